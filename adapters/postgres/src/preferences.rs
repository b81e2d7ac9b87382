use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{
    PreferenceChange, PreferenceStore, StoreError, TemplatePreferences,
};
use herald_domain::{PreferenceScope, StoredPreference, TemplateId, UserId};
use uuid::Uuid;

use crate::PgStore;
use crate::error::store_error;

/// A row's scope from its `method` column ('all' or a method's name).
fn scope(method: &str) -> Result<PreferenceScope, StoreError> {
    PreferenceScope::parse(method).ok_or_else(|| {
        StoreError::Other(format!(
            "a preference row has the unknown method {method:?}"
        ))
    })
}

#[async_trait]
impl PreferenceStore for PgStore {
    async fn for_user(
        &self,
        user: UserId,
    ) -> Result<BTreeMap<TemplateId, TemplatePreferences>, StoreError> {
        let rows: Vec<(Uuid, String, bool, DateTime<Utc>)> = sqlx::query_as(
            "SELECT template_id, method, disabled, updated_at FROM preferences WHERE user_id = $1",
        )
        .bind(user.as_uuid())
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        let mut found: BTreeMap<TemplateId, TemplatePreferences> = BTreeMap::new();
        for (template, method, disabled, updated_at) in rows {
            let entry = found
                .entry(TemplateId::from(template))
                .or_insert(TemplatePreferences {
                    stored: StoredPreference::default(),
                    updated_at,
                });
            entry.stored.set(scope(&method)?, Some(disabled));
            entry.updated_at = entry.updated_at.max(updated_at);
        }
        Ok(found)
    }

    async fn set(
        &self,
        user: UserId,
        changes: &[PreferenceChange],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut templates = Vec::with_capacity(changes.len());
        let mut methods = Vec::with_capacity(changes.len());
        let mut flags = Vec::with_capacity(changes.len());
        for change in changes {
            templates.push(*change.template.as_uuid());
            methods.push(change.scope.as_str());
            flags.push(change.disabled);
        }
        // One statement over parallel arrays, so every change is applied or none is: a NULL
        // flag removes the row, any other stores it.
        sqlx::query(
            "WITH changes AS ( \
                 SELECT * FROM UNNEST($2::uuid[], $3::text[], $4::boolean[]) \
                     AS change (template_id, method, disabled) \
             ), removed AS ( \
                 DELETE FROM preferences AS p USING changes AS c \
                 WHERE p.user_id = $1 AND p.template_id = c.template_id \
                   AND p.method = c.method AND c.disabled IS NULL \
             ) \
             INSERT INTO preferences (user_id, template_id, method, disabled, updated_at) \
             SELECT $1, template_id, method, disabled, $5 FROM changes \
             WHERE disabled IS NOT NULL \
             ON CONFLICT (user_id, template_id, method) \
             DO UPDATE SET disabled = EXCLUDED.disabled, updated_at = EXCLUDED.updated_at",
        )
        .bind(user.as_uuid())
        .bind(&templates)
        .bind(&methods)
        .bind(&flags)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn lookup(
        &self,
        pairs: &[(UserId, TemplateId)],
    ) -> Result<HashMap<(UserId, TemplateId), StoredPreference>, StoreError> {
        if pairs.is_empty() {
            return Ok(HashMap::new());
        }
        let (users, templates): (Vec<Uuid>, Vec<Uuid>) = pairs
            .iter()
            .map(|(user, template)| (*user.as_uuid(), *template.as_uuid()))
            .unzip();
        let mut connection = self.connection().await?;
        let rows: Vec<(Uuid, Uuid, String, bool)> = sqlx::query_as(
            "SELECT user_id, template_id, method, disabled FROM preferences \
             WHERE (user_id, template_id) IN (SELECT * FROM UNNEST($1::uuid[], $2::uuid[]))",
        )
        .bind(&users)
        .bind(&templates)
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
        connection.done();
        let mut found: HashMap<(UserId, TemplateId), StoredPreference> = HashMap::new();
        for (user, template, method, disabled) in rows {
            found
                .entry((user.into(), template.into()))
                .or_default()
                .set(scope(&method)?, Some(disabled));
        }
        Ok(found)
    }
}
