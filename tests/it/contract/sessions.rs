//! The `SessionStore` contract, and the `WebSessions` use case over each backend: sessions
//! and sign-in links are found by hash only, expire, links are redeemed once, and a user's
//! sessions end with their tokens, their deletion or their suspension.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use herald_application::ports::{NewSession, StoreError, TokenHash};
use herald_application::web_sessions::{SESSION_TTL, SIGN_IN_LINK_TTL};
use herald_application::{AuthCache, Tokens, WebSessions};
use herald_domain::{Role, UserId, UserStatus};
use herald_memory::ManualClock;
use herald_tests::fixture::Backend;
use herald_tests::sample;

fn row(user: UserId, secret: &str) -> NewSession {
    NewSession {
        hash: TokenHash::of(secret),
        user,
        created_at: sample::t0(),
        expires_at: sample::t0() + TimeDelta::minutes(10),
    }
}

/// The use cases over the backend alone (no authentication cache), on a manual clock.
fn sessions(backend: &Backend) -> (WebSessions, Tokens, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(sample::t0()));
    let tokens = Tokens::new(
        backend.tokens.clone(),
        backend.users.clone(),
        clock.clone(),
        AuthCache::new(Duration::ZERO, 0),
    )
    .with_sessions(backend.sessions.clone());
    let web = WebSessions::new(
        backend.sessions.clone(),
        tokens.clone(),
        backend.users.clone(),
        clock.clone(),
    );
    (web, tokens, clock)
}

async fn a_session_is_found_by_its_hash_until_it_expires_or_is_deleted(backend: Backend) {
    let ann = UserId::random();
    let store = &backend.sessions;
    store.insert_session(&row(ann, "s-1")).await.unwrap();
    let during = sample::t0() + TimeDelta::minutes(9);
    let at_expiry = sample::t0() + TimeDelta::minutes(10);
    assert_eq!(
        store
            .find_session(&TokenHash::of("s-1"), during)
            .await
            .unwrap(),
        Some(ann)
    );
    assert_eq!(
        store
            .find_session(&TokenHash::of("s-2"), during)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_session(&TokenHash::of("s-1"), at_expiry)
            .await
            .unwrap(),
        None
    );
    assert!(store.delete_session(&TokenHash::of("s-1")).await.unwrap());
    assert!(!store.delete_session(&TokenHash::of("s-1")).await.unwrap());
    assert_eq!(
        store
            .find_session(&TokenHash::of("s-1"), during)
            .await
            .unwrap(),
        None
    );
}

async fn a_second_session_or_link_with_the_same_hash_is_a_conflict(backend: Backend) {
    let store = &backend.sessions;
    store
        .insert_session(&row(UserId::random(), "s"))
        .await
        .unwrap();
    let again = store.insert_session(&row(UserId::random(), "s")).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    store
        .insert_link(&row(UserId::random(), "l"))
        .await
        .unwrap();
    let again = store.insert_link(&row(UserId::random(), "l")).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

async fn a_link_is_taken_once_and_never_after_it_expired(backend: Backend) {
    let ann = UserId::random();
    let store = &backend.sessions;
    store.insert_link(&row(ann, "l-1")).await.unwrap();
    store.insert_link(&row(ann, "l-2")).await.unwrap();
    let now = sample::t0() + TimeDelta::minutes(1);
    assert_eq!(
        store.take_link(&TokenHash::of("l-1"), now).await.unwrap(),
        Some(ann)
    );
    assert_eq!(
        store.take_link(&TokenHash::of("l-1"), now).await.unwrap(),
        None
    );
    // A link is not a session.
    assert_eq!(
        store
            .find_session(&TokenHash::of("l-2"), now)
            .await
            .unwrap(),
        None
    );
    let late = sample::t0() + TimeDelta::minutes(10);
    assert_eq!(
        store.take_link(&TokenHash::of("l-2"), late).await.unwrap(),
        None
    );
}

async fn deleting_a_users_sessions_leaves_others(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let store = &backend.sessions;
    store.insert_session(&row(ann, "a-1")).await.unwrap();
    store.insert_session(&row(ann, "a-2")).await.unwrap();
    store.insert_link(&row(ann, "a-link")).await.unwrap();
    store.insert_session(&row(bob, "b-1")).await.unwrap();
    assert_eq!(store.delete_sessions_of(ann).await.unwrap(), 2);
    let now = sample::t0();
    for secret in ["a-1", "a-2"] {
        assert_eq!(
            store
                .find_session(&TokenHash::of(secret), now)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(
        store
            .take_link(&TokenHash::of("a-link"), now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_session(&TokenHash::of("b-1"), now)
            .await
            .unwrap(),
        Some(bob)
    );
}

async fn expired_rows_are_purged(backend: Backend) {
    let store = &backend.sessions;
    store
        .insert_session(&row(UserId::random(), "old"))
        .await
        .unwrap();
    store
        .insert_link(&row(UserId::random(), "old-link"))
        .await
        .unwrap();
    let mut fresh = row(UserId::random(), "fresh");
    fresh.expires_at = sample::t0() + TimeDelta::days(1);
    store.insert_session(&fresh).await.unwrap();
    let later = sample::t0() + TimeDelta::hours(1);
    assert_eq!(store.delete_expired(later).await.unwrap(), 2);
    assert_eq!(
        store
            .find_session(&TokenHash::of("fresh"), later)
            .await
            .unwrap(),
        Some(fresh.user)
    );
}

async fn a_link_signs_in_once_within_ten_minutes(backend: Backend) {
    let ann = sample::user("ann", &[Role::Member]);
    backend.users.upsert(&ann).await.unwrap();
    let (web, _, clock) = sessions(&backend);

    let link = web.mint_link(ann.id).await.unwrap();
    let session = web.redeem_link(link.expose()).await.unwrap().unwrap();
    let user = web.authenticate(&session).await.unwrap().unwrap();
    assert_eq!(user.id, ann.id);
    assert_eq!(web.redeem_link(link.expose()).await.unwrap(), None);

    let late = web.mint_link(ann.id).await.unwrap();
    clock.advance(SIGN_IN_LINK_TTL);
    assert_eq!(web.redeem_link(late.expose()).await.unwrap(), None);

    // The session itself lasts its own TTL, then ends.
    clock.advance(SESSION_TTL - SIGN_IN_LINK_TTL);
    assert_eq!(web.authenticate(&session).await.unwrap(), None);
}

async fn signing_out_revoking_tokens_deleting_or_suspending_ends_sessions(backend: Backend) {
    let ann = sample::user("ann", &[Role::Member]);
    backend.users.upsert(&ann).await.unwrap();
    let (web, tokens, _) = sessions(&backend);
    let token = tokens.issue(ann.id).await.unwrap();
    let signed_in = || async {
        web.sign_in_with_token(token.expose())
            .await
            .unwrap()
            .unwrap()
    };

    let first = signed_in().await;
    web.sign_out(&first).await.unwrap();
    assert_eq!(web.authenticate(&first).await.unwrap(), None);

    let second = signed_in().await;
    tokens.revoke_all(ann.id).await.unwrap();
    assert_eq!(web.authenticate(&second).await.unwrap(), None);
    assert_eq!(web.sign_in_with_token(token.expose()).await.unwrap(), None);

    let token = tokens.issue(ann.id).await.unwrap();
    let third = web
        .sign_in_with_token(token.expose())
        .await
        .unwrap()
        .unwrap();
    let mut suspended = ann.clone();
    suspended.status = UserStatus::Suspended;
    backend.users.upsert(&suspended).await.unwrap();
    assert_eq!(web.authenticate(&third).await.unwrap(), None);
    // Ended, not merely refused: resuming the user does not bring it back.
    backend.users.upsert(&ann).await.unwrap();
    assert_eq!(web.authenticate(&third).await.unwrap(), None);

    let link = web.mint_link(ann.id).await.unwrap();
    let fourth = web.redeem_link(link.expose()).await.unwrap().unwrap();
    assert!(web.authenticate(&fourth).await.unwrap().is_some());
    backend.users.delete(ann.id).await.unwrap();
    assert_eq!(web.authenticate(&fourth).await.unwrap(), None);
    let refused = web.mint_link(ann.id).await;
    assert!(
        matches!(refused, Err(herald_application::Error::NotFound(_))),
        "{refused:?}"
    );
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_session_is_found_by_its_hash_until_it_expires_or_is_deleted,
    a_second_session_or_link_with_the_same_hash_is_a_conflict,
    a_link_is_taken_once_and_never_after_it_expired,
    deleting_a_users_sessions_leaves_others,
    expired_rows_are_purged,
    a_link_signs_in_once_within_ten_minutes,
    signing_out_revoking_tokens_deleting_or_suspending_ends_sessions,
}
