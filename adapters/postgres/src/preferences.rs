use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use herald_application::ports::{PreferenceStore, StoreError};
use herald_domain::{TemplateId, UserId};
use uuid::Uuid;

use crate::PgStore;
use crate::error::store_error;

#[async_trait]
impl PreferenceStore for PgStore {
    async fn for_user(&self, user: UserId) -> Result<BTreeMap<TemplateId, bool>, StoreError> {
        let rows: Vec<(Uuid, bool)> =
            sqlx::query_as("SELECT template_id, disabled FROM preferences WHERE user_id = $1")
                .bind(user.as_uuid())
                .fetch_all(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(rows
            .into_iter()
            .map(|(template, disabled)| (TemplateId::from(template), disabled))
            .collect())
    }

    async fn set(
        &self,
        user: UserId,
        disabled: &BTreeMap<TemplateId, bool>,
    ) -> Result<(), StoreError> {
        let (templates, flags): (Vec<Uuid>, Vec<bool>) = disabled
            .iter()
            .map(|(template, disabled)| (*template.as_uuid(), *disabled))
            .unzip();
        // One statement over parallel arrays: every row is stored or none is.
        sqlx::query(
            "INSERT INTO preferences (user_id, template_id, disabled) \
             SELECT $1, row.template_id, row.disabled \
             FROM UNNEST($2::uuid[], $3::boolean[]) AS row (template_id, disabled) \
             ON CONFLICT (user_id, template_id) \
             DO UPDATE SET disabled = EXCLUDED.disabled, updated_at = now()",
        )
        .bind(user.as_uuid())
        .bind(&templates)
        .bind(&flags)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn lookup(
        &self,
        pairs: &[(UserId, TemplateId)],
    ) -> Result<HashMap<(UserId, TemplateId), bool>, StoreError> {
        if pairs.is_empty() {
            return Ok(HashMap::new());
        }
        let (users, templates): (Vec<Uuid>, Vec<Uuid>) = pairs
            .iter()
            .map(|(user, template)| (*user.as_uuid(), *template.as_uuid()))
            .unzip();
        let mut connection = self.connection().await?;
        let rows: Vec<(Uuid, Uuid, bool)> = sqlx::query_as(
            "SELECT user_id, template_id, disabled FROM preferences \
             WHERE (user_id, template_id) IN (SELECT * FROM UNNEST($1::uuid[], $2::uuid[]))",
        )
        .bind(&users)
        .bind(&templates)
        .fetch_all(&mut *connection)
        .await
        .map_err(store_error)?;
        connection.done();
        Ok(rows
            .into_iter()
            .map(|(user, template, disabled)| ((user.into(), template.into()), disabled))
            .collect())
    }
}
