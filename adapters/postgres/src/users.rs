use std::collections::BTreeSet;

use async_trait::async_trait;
use herald_application::ports::{StoreError, UserDirectory, UserRegistry};
use herald_domain::{EmailAddress, Role, User, UserId, Username};
use uuid::Uuid;

use crate::PgStore;
use crate::error::{store_error, unique_violation};

/// The partial unique indexes of `migrations/0001_initial.sql` (lower(username) and
/// lower(email) among live users): a violation of either is a conflict on that field.
const USERNAME_KEY: &str = "users_username_live_key";
const EMAIL_KEY: &str = "users_email_live_key";

/// The columns every user query selects, in [`UserRow`]'s order.
const USER_COLUMNS: &str = "id, email, username, name, roles, status, deleted";

/// A `users` row as stored; parsed into a [`User`] on the way out.
#[derive(Debug, sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    username: String,
    name: String,
    roles: Vec<String>,
    status: String,
    deleted: bool,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;

    fn try_from(row: UserRow) -> Result<Self, StoreError> {
        let invalid = |err: herald_domain::InvalidValue| {
            StoreError::Other(format!(
                "user {} is stored with an invalid value: {err}",
                row.id
            ))
        };
        Ok(User {
            id: row.id.into(),
            email: EmailAddress::parse(&row.email).map_err(invalid)?,
            username: Username::parse(&row.username).map_err(invalid)?,
            name: row.name.clone(),
            roles: row
                .roles
                .iter()
                .map(|role| role.parse::<Role>())
                .collect::<Result<_, _>>()
                .map_err(invalid)?,
            status: row.status.parse().map_err(invalid)?,
            deleted: row.deleted,
        })
    }
}

fn users(rows: Vec<UserRow>) -> Result<Vec<User>, StoreError> {
    rows.into_iter().map(User::try_from).collect()
}

fn role_names(roles: &BTreeSet<Role>) -> Vec<&'static str> {
    roles.iter().map(|role| role.as_str()).collect()
}

#[async_trait]
impl UserDirectory for PgStore {
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
                .bind(id.as_uuid())
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
        row.map(User::try_from).transpose()
    }

    async fn get_many(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        let ids: Vec<Uuid> = ids.iter().map(|id| *id.as_uuid()).collect();
        let mut connection = self.connection().await?;
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = ANY($1)"
        ))
        .bind(&ids)
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
        connection.done();
        users(rows)
    }

    async fn with_any_role(&self, roles: &BTreeSet<Role>) -> Result<Vec<User>, StoreError> {
        // `&&` is array overlap (served by users_roles_live_idx); ordered like the memory store.
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE NOT deleted AND roles && $1::text[] \
             ORDER BY username COLLATE \"C\""
        ))
        .bind(role_names(roles))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        users(rows)
    }

    async fn with_any_role_page(
        &self,
        roles: &BTreeSet<Role>,
        after: Option<UserId>,
        limit: usize,
    ) -> Result<Vec<User>, StoreError> {
        // Keyset pagination on the primary key; the nil id is below every other.
        let after = after.map_or(Uuid::nil(), |id| *id.as_uuid());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut connection = self.connection().await?;
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users \
             WHERE NOT deleted AND roles && $1::text[] AND id > $2 \
             ORDER BY id LIMIT $3"
        ))
        .bind(role_names(roles))
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
        connection.done();
        users(rows)
    }
}

#[async_trait]
impl UserRegistry for PgStore {
    async fn upsert(&self, user: &User) -> Result<(), StoreError> {
        // Upserting un-deletes: the row is written live, so the partial unique indexes check
        // the username and email against every other live user.
        sqlx::query(
            "INSERT INTO users (id, email, username, name, roles, status, deleted) \
             VALUES ($1, $2, $3, $4, $5, $6, false) \
             ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, \
                 username = EXCLUDED.username, name = EXCLUDED.name, roles = EXCLUDED.roles, \
                 status = EXCLUDED.status, deleted = false, updated_at = now()",
        )
        .bind(user.id.as_uuid())
        .bind(user.email.as_str())
        .bind(user.username.as_str())
        .bind(&user.name)
        .bind(role_names(&user.roles))
        .bind(user.status.as_str())
        .execute(&self.pool)
        .await
        .map_err(|err| match unique_violation(&err) {
            Some(USERNAME_KEY) => StoreError::Conflict(format!(
                "username: {} is taken by another user",
                user.username
            )),
            Some(EMAIL_KEY) => {
                StoreError::Conflict(format!("email: {} is taken by another user", user.email))
            }
            _ => store_error(err),
        })?;
        Ok(())
    }

    async fn delete(&self, id: UserId) -> Result<bool, StoreError> {
        // One statement: the tokens and web sessions go with the user, whatever happens
        // after it.
        let result = sqlx::query(
            "WITH revoked AS (UPDATE api_tokens SET revoked_at = now() \
                 WHERE user_id = $1 AND revoked_at IS NULL), \
             ended AS (DELETE FROM web_sessions WHERE user_id = $1), \
             unlinked AS (DELETE FROM sign_in_links WHERE user_id = $1) \
             UPDATE users SET deleted = true, updated_at = now() WHERE id = $1 AND NOT deleted",
        )
        .bind(id.as_uuid())
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(result.rows_affected() > 0)
    }
}
