//! Live inbox watchers: how many one replica holds, and when an open one must end.
//!
//! [`Watching::open`] takes a slot before subscribing to the feed: at most
//! [`WatchLimits::per_user`] per user and [`WatchLimits::total`] in all on this replica (each
//! watcher holds a socket and a buffer here). A slot is given back when its [`Watch`] is
//! dropped, however the watcher ended.
//!
//! An open watch checks the token it was opened with every [`WATCH_RECHECK_INTERVAL`], through
//! the same authentication cache as requests, and ends once the token no longer
//! authenticates (revoked, its user deleted) or its user is suspended. On this replica such a
//! change drops the user's cached authentications at once, so the watch ends within one
//! interval; a change made on another replica (or in a host's own directory) is seen once
//! the cached authentication expires, within [`crate::tokens::AUTH_CACHE_TTL`] more. Checking
//! again needs no signal between replicas and costs a store lookup per open token per cache
//! lifetime, as if each watcher made a request that often. A check the store cannot answer
//! keeps the watch open: nothing new reaches it during an outage anyway.
//!
//! A watch the web inbox opens ([`Watching::open_session`]) checks its web session instead,
//! in the store each time (sessions are not cached): it ends once the session is signed out,
//! expired, or ended with its user's tokens, deletion or suspension.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use herald_domain::{InboxNotification, UserId, UserStatus};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::Error;
use crate::limits::{WatchLimits, limit_keys};
use crate::ports::{InboxFeed, InboxSubscription, TokenHash};
use crate::tokens::Tokens;
use crate::web_sessions::WebSessions;

/// How often an open watch checks that its token still authenticates.
pub const WATCH_RECHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Opens watches of users' inboxes, within this replica's [`WatchLimits`].
#[derive(Debug, Clone)]
pub struct Watching {
    feed: Arc<dyn InboxFeed>,
    tokens: Tokens,
    limits: WatchLimits,
    open: Arc<Mutex<Open>>,
}

/// The watches open on this replica.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_user: HashMap<UserId, usize>,
}

/// Why a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEnd {
    /// The feed dropped the watcher (it fell too far behind, or the feed stopped).
    FeedEnded,
    /// The token no longer authenticates: revoked, or its user deleted.
    Revoked,
    /// The user was suspended.
    Suspended,
}

impl WatchEnd {
    /// Why, in words fit for the client.
    pub fn reason(self) -> &'static str {
        match self {
            WatchEnd::FeedEnded => "the inbox feed ended",
            WatchEnd::Revoked => "the token was revoked or its user deleted",
            WatchEnd::Suspended => "the account is suspended",
        }
    }
}

impl Watching {
    /// `tokens` must be the services' own, so that changes on this replica reach open watches
    /// at once.
    pub fn new(feed: Arc<dyn InboxFeed>, tokens: Tokens, limits: WatchLimits) -> Self {
        Self {
            feed,
            tokens,
            limits,
            open: Arc::default(),
        }
    }

    /// Opens a watch of `user`'s new notifications for the token `token` authenticated as
    /// `user`; it lasts while the token does.
    ///
    /// # Errors
    /// [`Error::Limited`] when the user already has [`WatchLimits::per_user`] watches open
    /// here; [`Error::AtCapacity`] when this replica holds [`WatchLimits::total`];
    /// [`Error::Unavailable`] when the feed cannot subscribe.
    pub async fn open(&self, user: UserId, token: TokenHash) -> Result<Watch, Error> {
        self.open_with(user, Credential::Token(self.tokens.clone(), token))
            .await
    }

    /// As [`Watching::open`], for a web session (known by its hash) of `sessions`: the watch
    /// lasts while the session does.
    ///
    /// # Errors
    /// As [`Watching::open`].
    pub async fn open_session(
        &self,
        user: UserId,
        sessions: WebSessions,
        session: TokenHash,
    ) -> Result<Watch, Error> {
        self.open_with(user, Credential::Session(sessions, session))
            .await
    }

    async fn open_with(&self, user: UserId, credential: Credential) -> Result<Watch, Error> {
        let slot = self.take_slot(user)?;
        let subscription = self.feed.subscribe(user).await?;
        let period = WATCH_RECHECK_INTERVAL;
        let mut recheck = tokio::time::interval_at(Instant::now() + period, period);
        recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(Watch {
            subscription,
            _slot: slot,
            credential,
            user,
            recheck,
        })
    }

    /// How many watches are open on this replica.
    pub fn open_count(&self) -> usize {
        self.lock().total
    }

    fn take_slot(&self, user: UserId) -> Result<Slot, Error> {
        let mut open = self.lock();
        let mine = open.by_user.get(&user).copied().unwrap_or(0);
        if mine >= self.limits.per_user() {
            return Err(Error::Limited {
                limit: limit_keys::WATCHERS_PER_USER,
                reason: format!(
                    "at most {} inbox watchers per user are open at once; close one first",
                    self.limits.per_user()
                ),
                retry_after: None,
            });
        }
        if open.total >= self.limits.total() {
            return Err(Error::AtCapacity {
                limit: limit_keys::WATCHERS,
                reason: format!(
                    "this server holds its most inbox watchers ({}); try again later",
                    self.limits.total()
                ),
            });
        }
        open.total += 1;
        *open.by_user.entry(user).or_insert(0) += 1;
        Ok(Slot {
            open: Arc::clone(&self.open),
            user,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        lock(&self.open)
    }
}

/// No critical section leaves the counts half-changed, so a poisoned lock's data is good.
fn lock(open: &Mutex<Open>) -> MutexGuard<'_, Open> {
    open.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One open watch's place in the count, given back when dropped.
#[derive(Debug)]
struct Slot {
    open: Arc<Mutex<Open>>,
    user: UserId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = lock(&self.open);
        open.total = open.total.saturating_sub(1);
        if let Some(mine) = open.by_user.get_mut(&self.user) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                open.by_user.remove(&self.user);
            }
        }
    }
}

/// What a watch was opened with, checked again every [`WATCH_RECHECK_INTERVAL`].
#[derive(Debug)]
enum Credential {
    Token(Tokens, TokenHash),
    Session(WebSessions, TokenHash),
}

/// One user's open watch: their new notifications, while their token lasts.
#[derive(Debug)]
pub struct Watch {
    subscription: InboxSubscription,
    _slot: Slot,
    credential: Credential,
    user: UserId,
    recheck: Interval,
}

impl Watch {
    /// The user watched.
    pub fn user(&self) -> UserId {
        self.user
    }

    /// The next notification, or why the watch ended. Cancel-safe: a notification taken from
    /// the feed is always returned, and a cancelled call loses at most one token check.
    pub async fn next(&mut self) -> Result<InboxNotification, WatchEnd> {
        loop {
            tokio::select! {
                next = self.subscription.next() => return next.ok_or(WatchEnd::FeedEnded),
                _ = self.recheck.tick() => {
                    if let Some(end) = self.check().await {
                        return Err(end);
                    }
                }
            }
        }
    }

    /// Why the watch must end now, if it must.
    async fn check(&self) -> Option<WatchEnd> {
        let authenticated = match &self.credential {
            Credential::Token(tokens, token) => tokens.authenticate_hash(*token).await,
            Credential::Session(sessions, session) => sessions.authenticate_hash(*session).await,
        };
        match authenticated {
            Ok(Some(user)) if user.id != self.user => Some(WatchEnd::Revoked),
            Ok(Some(user)) if user.status == UserStatus::Suspended => Some(WatchEnd::Suspended),
            Ok(Some(_)) => None,
            Ok(None) => Some(WatchEnd::Revoked),
            Err(err) => {
                tracing::debug!(user = %self.user, error = %err, "inbox watch: could not check the token again; keeping the watch open");
                None
            }
        }
    }
}
