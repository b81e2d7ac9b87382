use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{NewSession, SessionStore, StoreError, TokenHash};
use herald_domain::UserId;

use super::MemoryStore;

/// Web sessions and sign-in links by hash.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    sessions: HashMap<TokenHash, NewSession>,
    links: HashMap<TokenHash, NewSession>,
}

impl Sessions {
    /// Ends every session of `user` and forgets their links; how many sessions.
    pub(super) fn delete_of(&mut self, user: UserId) -> u64 {
        let before = self.sessions.len();
        self.sessions.retain(|_, s| s.user != user);
        self.links.retain(|_, l| l.user != user);
        (before - self.sessions.len()) as u64
    }
}

fn insert(rows: &mut HashMap<TokenHash, NewSession>, row: &NewSession) -> Result<(), StoreError> {
    if rows.contains_key(&row.hash) {
        return Err(StoreError::Conflict(
            "session: the hash is already stored".to_owned(),
        ));
    }
    rows.insert(row.hash, row.clone());
    Ok(())
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(&self, session: &NewSession) -> Result<(), StoreError> {
        self.with(|state| insert(&mut state.sessions.sessions, session))?
    }

    async fn find_session(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        self.with(|state| {
            state
                .sessions
                .sessions
                .get(hash)
                .filter(|s| s.expires_at > now)
                .map(|s| s.user)
        })
    }

    async fn delete_session(&self, hash: &TokenHash) -> Result<bool, StoreError> {
        self.with(|state| state.sessions.sessions.remove(hash).is_some())
    }

    async fn delete_sessions_of(&self, user: UserId) -> Result<u64, StoreError> {
        self.with(|state| state.sessions.delete_of(user))
    }

    async fn insert_link(&self, link: &NewSession) -> Result<(), StoreError> {
        self.with(|state| insert(&mut state.sessions.links, link))?
    }

    async fn take_link(
        &self,
        hash: &TokenHash,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        self.with(|state| {
            state
                .sessions
                .links
                .remove(hash)
                .filter(|l| l.expires_at > now)
                .map(|l| l.user)
        })
    }

    async fn delete_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with(|state| {
            let before = state.sessions.sessions.len() + state.sessions.links.len();
            state.sessions.sessions.retain(|_, s| s.expires_at > now);
            state.sessions.links.retain(|_, l| l.expires_at > now);
            (before - state.sessions.sessions.len() - state.sessions.links.len()) as u64
        })
    }
}
