//! [`AuthCache`]: successful authentications kept for a few seconds, so a busy client does not
//! cost two store round trips per request.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use herald_domain::{User, UserId};

use crate::ports::TokenHash;

/// How long a successful authentication is reused without asking the stores again.
///
/// On this replica, everything that can invalidate an authentication drops the affected
/// entries at once: revoking a user's tokens ([`crate::Tokens::revoke_all`]), deleting a user
/// and changing their roles or status ([`crate::Users`]). Other replicas, and a host's own
/// `UserDirectory` (whose changes Herald never hears of), are not told: there a revoked token,
/// a deleted or suspended user or a removed role keeps working until the entry expires, at most
/// this long after the change. A token given an `expires_at` in the store may likewise outlive
/// it by this much. That is the price of skipping two database round trips per request.
///
/// Keep it well under a minute: the store records a token's `last_used_at` (at most once a
/// minute) only when it is looked up, and a token in use is looked up once per TTL.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(5);

/// The most authentications an [`AuthCache`] holds. When full, expired entries go first; if
/// none has expired, everything goes (the next requests look their tokens up again).
pub const AUTH_CACHE_CAPACITY: usize = 10_000;

/// Token hash → the user it authenticated as, for a short TTL. Only successful authentications
/// are kept, so an unknown token is looked up every time and a newly issued one works at once.
/// Keyed by [`TokenHash`]: no plaintext token is ever held here.
///
/// Clones share the same entries: build one per process and hand it to every use case that
/// can invalidate an authentication ([`crate::Tokens`], [`crate::Users`]).
#[derive(Clone)]
pub struct AuthCache {
    ttl: TimeDelta,
    capacity: usize,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    entries: HashMap<TokenHash, Entry>,
    /// Moved on by every invalidation, so a lookup that ran alongside one does not cache what
    /// it read before the change.
    generation: u64,
}

struct Entry {
    user: User,
    cached_at: DateTime<Utc>,
}

/// What [`AuthCache::get`] found.
#[derive(Debug)]
pub(crate) enum Cached {
    Hit(User),
    /// Not cached (or expired): look it up, then hand this back to [`AuthCache::put`].
    Miss(Generation),
}

/// The cache's generation when a lookup started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Generation(u64);

impl AuthCache {
    /// A cache keeping each authentication for `ttl` and at most `capacity` of them. A zero
    /// `ttl` or `capacity` keeps nothing.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl: TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX),
            capacity,
            state: Arc::default(),
        }
    }

    /// Drops every authentication of `user`. Call it after (not before) the store change
    /// that invalidates them, so a lookup racing the change cannot cache what it read.
    pub fn forget_user(&self, user: UserId) {
        let mut state = self.lock();
        state.generation = state.generation.wrapping_add(1);
        state.entries.retain(|_, entry| entry.user.id != user);
    }

    pub(crate) fn get(&self, hash: &TokenHash, now: DateTime<Utc>) -> Cached {
        let mut state = self.lock();
        if let Some(entry) = state.entries.get(hash) {
            if self.is_fresh(entry, now) {
                return Cached::Hit(entry.user.clone());
            }
            state.entries.remove(hash);
        }
        Cached::Miss(Generation(state.generation))
    }

    /// Keeps `user` for `hash`, unless an invalidation happened since `since` was handed out.
    pub(crate) fn put(&self, since: Generation, hash: TokenHash, user: User, now: DateTime<Utc>) {
        if self.capacity == 0 || self.ttl <= TimeDelta::zero() {
            return;
        }
        let mut state = self.lock();
        if state.generation != since.0 {
            return;
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&hash) {
            state.entries.retain(|_, entry| self.is_fresh(entry, now));
            if state.entries.len() >= self.capacity {
                state.entries.clear();
            }
        }
        state.entries.insert(
            hash,
            Entry {
                user,
                cached_at: now,
            },
        );
    }

    /// Younger than the TTL. An entry from the future (the clock went back) is stale, so a
    /// clock step cannot stretch its life.
    fn is_fresh(&self, entry: &Entry, now: DateTime<Utc>) -> bool {
        let age = now.signed_duration_since(entry.cached_at);
        age >= TimeDelta::zero() && age < self.ttl
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No critical section leaves the map half-changed, so a poisoned lock's data is good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for AuthCache {
    /// [`AUTH_CACHE_TTL`] and [`AUTH_CACHE_CAPACITY`].
    fn default() -> Self {
        Self::new(AUTH_CACHE_TTL, AUTH_CACHE_CAPACITY)
    }
}

impl fmt::Debug for AuthCache {
    /// Sizes only: no hashes, no users.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .field("entries", &self.lock().entries.len())
            .finish()
    }
}
