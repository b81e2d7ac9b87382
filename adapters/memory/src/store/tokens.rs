use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{NewToken, StoreError, TokenHash, TokenStore};
use herald_domain::UserId;

use super::MemoryStore;

/// API tokens by hash; revoked ones stay, flagged, as in PostgreSQL.
#[derive(Debug, Default)]
pub(super) struct Tokens {
    by_hash: HashMap<TokenHash, Token>,
}

#[derive(Debug)]
struct Token {
    user: UserId,
    name: String,
    revoked: bool,
}

impl Tokens {
    /// Revokes every live token of `user`; returns how many.
    pub(super) fn revoke_all(&mut self, user: UserId) -> u64 {
        let mut revoked = 0;
        for token in self.by_hash.values_mut() {
            if token.user == user && !token.revoked {
                token.revoked = true;
                revoked += 1;
            }
        }
        revoked
    }

    fn insert(&mut self, token: &NewToken) -> Result<(), StoreError> {
        if self.by_hash.contains_key(&token.hash) {
            return Err(StoreError::Conflict(
                "token: the hash is already stored".to_owned(),
            ));
        }
        let name = token.name.to_lowercase();
        if self
            .by_hash
            .values()
            .any(|t| t.user == token.user && !t.revoked && t.name.to_lowercase() == name)
        {
            return Err(StoreError::Conflict(format!(
                "name: the user already has a token named {:?}",
                token.name
            )));
        }
        self.by_hash.insert(
            token.hash,
            Token {
                user: token.user,
                name: token.name.clone(),
                revoked: false,
            },
        );
        Ok(())
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn insert(&self, token: &NewToken) -> Result<(), StoreError> {
        self.with(|state| state.tokens.insert(token))?
    }

    async fn find_user(
        &self,
        hash: &TokenHash,
        _now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        self.with(|state| {
            state
                .tokens
                .by_hash
                .get(hash)
                .filter(|t| !t.revoked)
                .map(|t| t.user)
        })
    }

    async fn revoke_all(&self, user: UserId, _now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.with(|state| state.tokens.revoke_all(user))
    }
}
