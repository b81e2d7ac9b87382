//! The `TokenStore` contract, and the `Tokens` use case over each backend: tokens belong to
//! users, are stored only as hashes, and stop authenticating when revoked or their user is
//! deleted.

use std::sync::Arc;
use std::time::Duration;

use herald_application::ports::{NewToken, StoreError, SystemClock, TokenHash};
use herald_application::{AuthCache, Tokens};
use herald_domain::{Role, UserId};
use herald_tests::fixture::Backend;
use herald_tests::sample;
use uuid::Uuid;

fn token(user: UserId, name: &str, plaintext: &str) -> NewToken {
    NewToken {
        id: Uuid::new_v4(),
        user,
        name: name.to_owned(),
        hash: TokenHash::of(plaintext),
        created_at: sample::t0(),
    }
}

/// Over the backend alone: a zero TTL caches nothing, so every authentication reaches the
/// stores this contract is about (the cache has its own tests in `usecases::tokens`).
fn tokens(backend: &Backend) -> Tokens {
    Tokens::new(
        backend.tokens.clone(),
        backend.users.clone(),
        Arc::new(SystemClock),
        AuthCache::new(Duration::ZERO, 0),
    )
}

async fn a_stored_token_finds_its_user_by_hash_only(backend: Backend) {
    let ann = UserId::random();
    backend
        .tokens
        .insert(&token(ann, "ci", "secret-1"))
        .await
        .unwrap();

    let found = backend
        .tokens
        .find_user(&TokenHash::of("secret-1"), sample::t0())
        .await
        .unwrap();
    assert_eq!(found, Some(ann));
    let unknown = backend
        .tokens
        .find_user(&TokenHash::of("secret-2"), sample::t0())
        .await
        .unwrap();
    assert_eq!(unknown, None);
}

async fn a_second_token_with_the_same_hash_or_user_and_name_is_a_conflict(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    backend
        .tokens
        .insert(&token(ann, "ci", "secret-1"))
        .await
        .unwrap();

    let same_hash = backend
        .tokens
        .insert(&token(bob, "other", "secret-1"))
        .await;
    assert!(
        matches!(&same_hash, Err(StoreError::Conflict(m)) if m.contains("token")),
        "{same_hash:?}"
    );
    let same_name = backend.tokens.insert(&token(ann, "CI", "secret-2")).await;
    assert!(
        matches!(&same_name, Err(StoreError::Conflict(m)) if m.contains("name")),
        "{same_name:?}"
    );
    // Names are per user.
    backend
        .tokens
        .insert(&token(bob, "ci", "secret-3"))
        .await
        .unwrap();
}

async fn revoked_tokens_find_no_one_and_free_their_name(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    for (user, name, secret) in [(ann, "a", "s-a"), (ann, "b", "s-b"), (bob, "a", "s-c")] {
        backend
            .tokens
            .insert(&token(user, name, secret))
            .await
            .unwrap();
    }

    assert_eq!(
        backend.tokens.revoke_all(ann, sample::t0()).await.unwrap(),
        2
    );
    assert_eq!(
        backend.tokens.revoke_all(ann, sample::t0()).await.unwrap(),
        0
    );

    for secret in ["s-a", "s-b"] {
        let found = backend
            .tokens
            .find_user(&TokenHash::of(secret), sample::t0())
            .await
            .unwrap();
        assert_eq!(found, None, "{secret}");
    }
    let bobs = backend
        .tokens
        .find_user(&TokenHash::of("s-c"), sample::t0())
        .await
        .unwrap();
    assert_eq!(bobs, Some(bob));
    backend
        .tokens
        .insert(&token(ann, "a", "s-d"))
        .await
        .unwrap();
}

async fn an_issued_token_authenticates_its_user_until_the_user_is_deleted(backend: Backend) {
    let ann = sample::user("ann", &[Role::Owner]);
    backend.users.upsert(&ann).await.unwrap();
    let tokens = tokens(&backend);

    let first = tokens.issue(ann.id).await.unwrap();
    let second = tokens.issue(ann.id).await.unwrap();

    assert_ne!(first, second);
    for token in [&first, &second] {
        let text = token.expose();
        assert!(text.len() >= 43, "{text}");
        assert!(
            text.starts_with(herald_application::tokens::TOKEN_PREFIX),
            "{text}"
        );
        assert!(
            text.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{text}"
        );
        assert_eq!(tokens.authenticate(text).await.unwrap(), Some(ann.clone()));
    }
    assert_eq!(tokens.authenticate("not-a-token").await.unwrap(), None);
    assert_eq!(tokens.authenticate("").await.unwrap(), None);

    backend.users.delete(ann.id).await.unwrap();
    assert_eq!(tokens.authenticate(first.expose()).await.unwrap(), None);
}

async fn tokens_are_stored_only_as_hashes(backend: Backend) {
    let ann = sample::user("ann", &[Role::Member]);
    backend.users.upsert(&ann).await.unwrap();
    let issued = tokens(&backend).issue(ann.id).await.unwrap();

    // The plaintext itself is no stored hash: only its SHA-256 finds the user.
    let by_plaintext_bytes = {
        let mut bytes = [0u8; 32];
        let raw = issued.expose().as_bytes();
        bytes.copy_from_slice(&raw[..32]);
        TokenHash::from_bytes(bytes)
    };
    let found = backend
        .tokens
        .find_user(&by_plaintext_bytes, sample::t0())
        .await
        .unwrap();
    assert_eq!(found, None);
    let found = backend
        .tokens
        .find_user(&TokenHash::of(issued.expose()), sample::t0())
        .await
        .unwrap();
    assert_eq!(found, Some(ann.id));
}

async fn no_token_is_issued_for_an_unknown_or_deleted_user(backend: Backend) {
    let tokens = tokens(&backend);
    let unknown = tokens.issue(UserId::random()).await;
    assert!(
        matches!(unknown, Err(herald_application::Error::NotFound(_))),
        "{unknown:?}"
    );
    let ann = sample::user("ann", &[Role::Member]);
    backend.users.upsert(&ann).await.unwrap();
    backend.users.delete(ann.id).await.unwrap();
    let deleted = tokens.issue(ann.id).await;
    assert!(
        matches!(deleted, Err(herald_application::Error::NotFound(_))),
        "{deleted:?}"
    );
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_stored_token_finds_its_user_by_hash_only,
    a_second_token_with_the_same_hash_or_user_and_name_is_a_conflict,
    revoked_tokens_find_no_one_and_free_their_name,
    an_issued_token_authenticates_its_user_until_the_user_is_deleted,
    tokens_are_stored_only_as_hashes,
    no_token_is_issued_for_an_unknown_or_deleted_user,
}
