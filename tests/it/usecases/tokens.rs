//! Authentication through the short-lived cache: repeated within the TTL it asks no store, and
//! every change on this replica that can invalidate it applies from the next request on.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{
    Clock as _, NewToken, StoreError, TokenHash, TokenStore, UserDirectory, UserRegistry as _,
};
use herald_application::tokens::AUTH_CACHE_TTL;
use herald_application::{AuthCache, DefaultMethod, Tokens, UserInput};
use herald_domain::{Method, Role, User, UserId, UserStatus};
use herald_memory::MemoryStore;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::support::Harness;

/// The token and user stores, counting the calls authentication makes:
/// `TokenStore::find_user` and `UserDirectory::get`. A holding one makes each `find_user` read,
/// then wait to be let through (a lookup in flight).
#[derive(Debug)]
struct CountingStore {
    inner: MemoryStore,
    calls: AtomicUsize,
    holds_lookups: bool,
    looked_up: Semaphore,
    release: Semaphore,
}

impl CountingStore {
    fn over(inner: MemoryStore) -> Arc<Self> {
        Self::new(inner, false)
    }

    fn holding_lookups(inner: MemoryStore) -> Arc<Self> {
        Self::new(inner, true)
    }

    fn new(inner: MemoryStore, holds_lookups: bool) -> Arc<Self> {
        Arc::new(Self {
            inner,
            calls: AtomicUsize::new(0),
            holds_lookups,
            looked_up: Semaphore::new(0),
            release: Semaphore::new(0),
        })
    }

    /// The calls since the last time this was asked.
    fn take_calls(&self) -> usize {
        self.calls.swap(0, Ordering::SeqCst)
    }
}

#[async_trait]
impl TokenStore for CountingStore {
    async fn insert(&self, token: &NewToken) -> Result<(), StoreError> {
        self.inner.insert(token).await
    }

    async fn find_user(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let found = self.inner.find_user(hash, now).await;
        if self.holds_lookups {
            self.looked_up.add_permits(1);
            self.release.acquire().await.unwrap().forget();
        }
        found
    }

    async fn revoke_all(&self, user: UserId, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.revoke_all(user, now).await
    }
}

#[async_trait]
impl UserDirectory for CountingStore {
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        UserDirectory::get(&self.inner, id).await
    }

    async fn get_many(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        self.inner.get_many(ids).await
    }

    async fn with_any_role(&self, roles: &BTreeSet<Role>) -> Result<Vec<User>, StoreError> {
        self.inner.with_any_role(roles).await
    }
}

/// `Tokens` over the harness's store (counted) and clock, with `cache`.
fn tokens_with(h: &Harness, cache: AuthCache) -> (Tokens, Arc<CountingStore>) {
    let store = CountingStore::over(h.store.clone());
    let tokens = Tokens::new(
        store.clone(),
        store.clone(),
        Arc::new(h.clock.clone()),
        cache,
    );
    (tokens, store)
}

/// A harness whose token store and directory count their calls: its `Tokens` and `Users`
/// share one authentication cache, as the composition root wires them.
fn counted_with(make: fn(MemoryStore) -> Arc<CountingStore>) -> (Harness, Arc<CountingStore>) {
    let mut counted = None;
    let h = Harness::with_ports(
        DefaultMethod::Webhook,
        &[Method::Webhook, Method::Inbox],
        |ports, store| {
            let counting = make(store.clone());
            ports.tokens = counting.clone();
            ports.directory = counting.clone();
            counted = Some(counting);
        },
    );
    (h, counted.unwrap())
}

fn counted() -> (Harness, Arc<CountingStore>) {
    counted_with(CountingStore::over)
}

fn ttl() -> chrono::Duration {
    chrono::Duration::from_std(AUTH_CACHE_TTL).unwrap()
}

/// A user with a token, authenticated once (so cached), with the call count reset.
async fn signed_in(
    h: &Harness,
    tokens: &Tokens,
    store: &CountingStore,
    name: &str,
) -> (User, String) {
    let user = h.user(name, &[Role::Member]).await;
    let token = tokens.issue(user.id).await.unwrap().expose().to_owned();
    assert_eq!(
        tokens.authenticate(&token).await.unwrap(),
        Some(user.clone())
    );
    store.take_calls();
    (user, token)
}

#[tokio::test]
async fn a_repeated_authentication_within_the_ttl_asks_no_store() {
    let (h, store) = counted();
    let tokens = h.tokens.clone();
    let ann = h.user("ann", &[Role::Member]).await;
    let token = tokens.issue(ann.id).await.unwrap();
    store.take_calls();

    assert_eq!(
        tokens.authenticate(token.expose()).await.unwrap(),
        Some(ann.clone())
    );
    assert_eq!(store.take_calls(), 2, "the token, then its user");

    h.clock.advance(ttl() - chrono::Duration::milliseconds(1));
    assert_eq!(
        tokens.authenticate(token.expose()).await.unwrap(),
        Some(ann)
    );
    assert_eq!(store.take_calls(), 0, "answered from the cache");
}

#[tokio::test]
async fn after_the_ttl_authentication_asks_the_stores_again() {
    let (h, store) = counted();
    let tokens = h.tokens.clone();
    let (ann, token) = signed_in(&h, &tokens, &store, "ann").await;

    h.clock.advance(ttl());
    assert_eq!(tokens.authenticate(&token).await.unwrap(), Some(ann));
    assert_eq!(store.take_calls(), 2);
}

#[tokio::test]
async fn revoking_a_users_tokens_on_this_replica_refuses_them_at_once() {
    let (h, store) = counted();
    let tokens = h.tokens.clone();
    let (ann, anns_token) = signed_in(&h, &tokens, &store, "ann").await;
    let (bob, bobs_token) = signed_in(&h, &tokens, &store, "bob").await;

    assert_eq!(tokens.revoke_all(ann.id).await.unwrap(), 1);

    assert_eq!(tokens.authenticate(&anns_token).await.unwrap(), None);
    assert_eq!(tokens.authenticate(&anns_token).await.unwrap(), None);
    assert_eq!(
        store.take_calls(),
        2,
        "a revoked token is looked up each time"
    );
    assert_eq!(tokens.authenticate(&bobs_token).await.unwrap(), Some(bob));
    assert_eq!(store.take_calls(), 0, "other users' entries stay");
}

#[tokio::test]
async fn deleting_a_user_on_this_replica_refuses_their_tokens_at_once() {
    let (h, store) = counted();
    let tokens = h.tokens.clone();
    let (ann, token) = signed_in(&h, &tokens, &store, "ann").await;

    // The use case alone, without revoking the tokens as the HTTP handler also does.
    h.users.delete(ann.id).await.unwrap();

    assert_eq!(tokens.authenticate(&token).await.unwrap(), None);
}

#[tokio::test]
async fn changing_a_users_roles_or_status_on_this_replica_applies_at_once() {
    let (h, store) = counted();
    let tokens = h.tokens.clone();
    let (ann, token) = signed_in(&h, &tokens, &store, "ann").await;

    let input = UserInput::parse(
        ann.email.as_str(),
        ann.username.as_str(),
        "",
        &["owner".to_owned()],
        "suspended",
    )
    .unwrap();
    let changed = h.users.upsert(ann.id, input).await.unwrap();

    let authenticated = tokens.authenticate(&token).await.unwrap().unwrap();
    assert_eq!(authenticated, changed);
    assert_eq!(authenticated.status, UserStatus::Suspended);
    assert_eq!(authenticated.roles, BTreeSet::from([Role::Owner]));
}

#[tokio::test]
async fn an_unknown_token_is_never_cached_so_it_works_once_issued() {
    let (h, store) = counted();
    let tokens = h.tokens.clone();
    let ann = h.user("ann", &[Role::Member]).await;
    // Shaped like an issued token, so it is looked up.
    let plaintext = "herald_not-issued-yet-but-shaped-like-a-token-0000";
    assert!(herald_application::tokens::is_token_shaped(plaintext));

    assert_eq!(tokens.authenticate(plaintext).await.unwrap(), None);
    assert_eq!(tokens.authenticate(plaintext).await.unwrap(), None);
    assert_eq!(store.take_calls(), 2, "looked up each time");

    store
        .insert(&NewToken {
            id: Uuid::new_v4(),
            user: ann.id,
            name: "ci".to_owned(),
            hash: TokenHash::of(plaintext),
            created_at: h.clock.now(),
        })
        .await
        .unwrap();
    assert_eq!(tokens.authenticate(plaintext).await.unwrap(), Some(ann));
}

#[tokio::test]
async fn a_change_made_by_another_replica_shows_within_the_ttl() {
    let (h, store) = counted();
    let tokens = h.tokens.clone();
    let (ann, token) = signed_in(&h, &tokens, &store, "ann").await;

    // Straight to the shared store, as another replica would: this one is not told.
    assert!(h.store.delete(ann.id).await.unwrap());
    assert_eq!(
        tokens.authenticate(&token).await.unwrap(),
        Some(ann),
        "the documented trade-off: served from the cache until it expires"
    );

    h.clock.advance(ttl());
    assert_eq!(tokens.authenticate(&token).await.unwrap(), None);
}

#[tokio::test]
async fn a_full_cache_drops_its_expired_entries_first() {
    let h = Harness::new();
    let (tokens, store) = tokens_with(&h, AuthCache::new(AUTH_CACHE_TTL, 2));
    signed_in(&h, &tokens, &store, "ann").await;
    h.clock.advance(ttl());
    let (bob, bobs_token) = signed_in(&h, &tokens, &store, "bob").await;
    // Full (ann expired, bob): caching cat drops ann only.
    let (cat, cats_token) = signed_in(&h, &tokens, &store, "cat").await;

    assert_eq!(tokens.authenticate(&bobs_token).await.unwrap(), Some(bob));
    assert_eq!(tokens.authenticate(&cats_token).await.unwrap(), Some(cat));
    assert_eq!(store.take_calls(), 0);
}

#[tokio::test]
async fn a_full_cache_of_live_entries_is_emptied_before_taking_another() {
    let h = Harness::new();
    let (tokens, store) = tokens_with(&h, AuthCache::new(AUTH_CACHE_TTL, 2));
    let (ann, anns_token) = signed_in(&h, &tokens, &store, "ann").await;
    signed_in(&h, &tokens, &store, "bob").await;
    let (cat, cats_token) = signed_in(&h, &tokens, &store, "cat").await;

    assert_eq!(tokens.authenticate(&cats_token).await.unwrap(), Some(cat));
    assert_eq!(store.take_calls(), 0, "the newest entry is kept");
    assert_eq!(tokens.authenticate(&anns_token).await.unwrap(), Some(ann));
    assert_eq!(store.take_calls(), 2, "the older ones were dropped");
}

#[tokio::test]
async fn an_authentication_racing_a_revocation_is_not_cached() {
    let (h, store) = counted_with(CountingStore::holding_lookups);
    let tokens = h.tokens.clone();
    let ann = h.user("ann", &[Role::Member]).await;
    let token = tokens.issue(ann.id).await.unwrap().expose().to_owned();

    let in_flight = tokio::spawn({
        let (tokens, token) = (tokens.clone(), token.clone());
        async move { tokens.authenticate(&token).await }
    });
    store.looked_up.acquire().await.unwrap().forget();
    tokens.revoke_all(ann.id).await.unwrap();
    store.release.add_permits(1);
    // It read the token before the revocation: this one request may pass.
    assert_eq!(in_flight.await.unwrap().unwrap(), Some(ann));

    store.release.add_permits(1);
    assert_eq!(
        tokens.authenticate(&token).await.unwrap(),
        None,
        "what the racing lookup read was not kept"
    );
}

#[tokio::test]
async fn junk_that_is_not_shaped_like_a_token_never_reaches_the_stores() {
    let (h, store) = counted();
    let tokens = h.tokens.clone();
    let ann = h.user("ann", &[Role::Member]).await;
    let issued = tokens.issue(ann.id).await.unwrap();
    assert!(herald_application::tokens::is_token_shaped(issued.expose()));
    store.take_calls();
    let body = &issued.expose()["herald_".len()..];
    let junk = [
        String::new(),
        "Bearer".to_owned(),
        "herald_".to_owned(),
        format!("herald_{}", &body[1..]),
        format!("herald_{body}A"),
        format!("heraldx{body}"),
        format!("herald_{}!", &body[1..]),
        format!("herald_{}é", &body[2..]),
        "x".repeat(10_000),
    ];
    for text in &junk {
        assert_eq!(tokens.authenticate(text).await.unwrap(), None, "{text:?}");
    }
    assert_eq!(store.take_calls(), 0, "junk was looked up");

    assert_eq!(
        tokens.authenticate(issued.expose()).await.unwrap(),
        Some(ann)
    );
    assert_eq!(store.take_calls(), 2, "a real token is looked up");
}
