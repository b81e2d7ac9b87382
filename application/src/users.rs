//! The standalone directory: hosts sync their users into Herald.

use std::collections::BTreeSet;
use std::sync::Arc;

use herald_domain::{EmailAddress, Role, User, UserId, UserStatus, Username};

use crate::Error;
use crate::notifier::REASON_RECIPIENT_DELETED;
use crate::ports::{Clock, MessageQueue, UserRegistry};
use crate::tokens::AuthCache;

/// A user as a host sends it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInput {
    pub email: EmailAddress,
    pub username: Username,
    pub name: String,
    pub roles: BTreeSet<Role>,
    pub status: UserStatus,
}

impl UserInput {
    /// # Errors
    /// [`Error::Invalid`] naming `email`, `username`, `name`, `roles` or `status`.
    pub fn parse(
        email: &str,
        username: &str,
        name: &str,
        roles: &[String],
        status: &str,
    ) -> Result<Self, Error> {
        Ok(Self {
            email: EmailAddress::parse(email)?,
            username: Username::parse(username)?,
            name: User::parse_name(name)?,
            roles: roles.iter().map(|r| r.parse()).collect::<Result<_, _>>()?,
            status: status.parse()?,
        })
    }
}

/// Directory use cases.
#[derive(Debug, Clone)]
pub struct Users {
    registry: Arc<dyn UserRegistry>,
    queue: Arc<dyn MessageQueue>,
    clock: Arc<dyn Clock>,
    auth_cache: AuthCache,
}

impl Users {
    /// `auth_cache` must be the one [`crate::Tokens`] authenticates through: every change
    /// here drops the user's cached authentications.
    pub fn new(
        registry: Arc<dyn UserRegistry>,
        queue: Arc<dyn MessageQueue>,
        clock: Arc<dyn Clock>,
        auth_cache: AuthCache,
    ) -> Self {
        Self {
            registry,
            queue,
            clock,
            auth_cache,
        }
    }

    /// Creates or replaces the user with this id. On this replica their tokens authenticate
    /// as the new version (roles, status) from the next request on; elsewhere within
    /// [`crate::tokens::AUTH_CACHE_TTL`].
    ///
    /// # Errors
    /// [`Error::Conflict`] when another user has the username or email.
    pub async fn upsert(&self, id: UserId, input: UserInput) -> Result<User, Error> {
        let user = User {
            id,
            email: input.email,
            username: input.username,
            name: input.name,
            roles: input.roles,
            status: input.status,
            deleted: false,
        };
        let stored = self.registry.upsert(&user).await;
        // Even after an error: the write may have been applied all the same.
        self.auth_cache.forget_user(id);
        stored?;
        Ok(user)
    }

    /// # Errors
    /// [`Error::NotFound`] for an unknown or deleted user.
    pub async fn get(&self, id: UserId) -> Result<User, Error> {
        match self.registry.get(id).await? {
            Some(user) if !user.deleted => Ok(user),
            _ => Err(Error::NotFound(format!("user {id}"))),
        }
    }

    /// Deletes the user and inhibits every message still queued for them; returns how many
    /// were inhibited. On this replica their tokens stop authenticating from the next request
    /// on; elsewhere within [`crate::tokens::AUTH_CACHE_TTL`].
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or already deleted user.
    pub async fn delete(&self, id: UserId) -> Result<u64, Error> {
        let deleted = self.registry.delete(id).await;
        // Even after an error: the write may have been applied all the same.
        self.auth_cache.forget_user(id);
        if !deleted? {
            return Err(Error::NotFound(format!("user {id}")));
        }
        Ok(self
            .queue
            .inhibit_recipient(id, REASON_RECIPIENT_DELETED, self.clock.now())
            .await?)
    }
}
