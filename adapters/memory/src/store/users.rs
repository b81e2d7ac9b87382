use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use herald_application::ports::{StoreError, UserDirectory, UserRegistry};
use herald_domain::{Role, User, UserId};

use super::MemoryStore;

/// Herald's own user directory. Deleted users stay, flagged, but give up their username and
/// email: a live user may take them.
#[derive(Debug, Default)]
pub(super) struct Users {
    by_id: HashMap<UserId, User>,
}

impl Users {
    fn upsert(&mut self, user: &User) -> Result<(), StoreError> {
        let username = user.username.as_str().to_lowercase();
        let email = user.email.as_str().to_lowercase();
        let others = || {
            self.by_id
                .values()
                .filter(|other| other.id != user.id && !other.deleted)
        };
        if others().any(|other| other.username.as_str().to_lowercase() == username) {
            return Err(StoreError::Conflict(format!(
                "username: {} is taken by another user",
                user.username
            )));
        }
        if others().any(|other| other.email.as_str().to_lowercase() == email) {
            return Err(StoreError::Conflict(format!(
                "email: {} is taken by another user",
                user.email
            )));
        }
        let stored = User {
            deleted: false,
            ..user.clone()
        };
        self.by_id.insert(user.id, stored);
        Ok(())
    }

    fn delete(&mut self, id: UserId) -> bool {
        match self.by_id.get_mut(&id) {
            Some(user) if !user.deleted => {
                user.deleted = true;
                true
            }
            _ => false,
        }
    }
}

#[async_trait]
impl UserDirectory for MemoryStore {
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.with(|state| state.users.by_id.get(&id).cloned())
    }

    async fn get_many(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let ids: BTreeSet<_> = ids.iter().collect();
        self.with(|state| {
            ids.into_iter()
                .filter_map(|id| state.users.by_id.get(id).cloned())
                .collect()
        })
    }

    async fn with_any_role(&self, roles: &BTreeSet<Role>) -> Result<Vec<User>, StoreError> {
        self.with(|state| {
            let mut users: Vec<_> = state
                .users
                .by_id
                .values()
                .filter(|user| !user.deleted && user.has_any_role(roles))
                .cloned()
                .collect();
            users.sort_by(|a, b| a.username.cmp(&b.username));
            users
        })
    }
}

#[async_trait]
impl UserRegistry for MemoryStore {
    async fn upsert(&self, user: &User) -> Result<(), StoreError> {
        self.with(|state| state.users.upsert(user))?
    }

    async fn delete(&self, id: UserId) -> Result<bool, StoreError> {
        self.with(|state| {
            state.tokens.revoke_all(id);
            state.sessions.delete_of(id);
            state.users.delete(id)
        })
    }
}
