use async_trait::async_trait;
use herald_application::ports::{StoreError, TemplateStore};
use herald_domain::{
    ActionTemplate, Audience, DigestWindow, Method, Template, TemplateId, TemplateKind,
};
use sqlx::types::Json;
use uuid::Uuid;

use crate::PgStore;
use crate::error::{store_error, unique_violation};

/// The unique index on lower(name) in `migrations/0001_initial.sql`.
const NAME_KEY: &str = "templates_name_key";

/// The columns every template query selects, in [`TemplateRow`]'s order. The method override
/// is a `notification_method` enum, read as its text.
const TEMPLATE_COLUMNS: &str = "id, name, \"group\", kind, title, body, actions, \
    enabled_by_default, method_override::text AS method_override, audience, inbox_allowed, \
    deduplicate, digest_window_seconds";

/// A `templates` row as stored; parsed into a [`Template`] on the way out.
#[derive(Debug, sqlx::FromRow)]
struct TemplateRow {
    id: Uuid,
    name: String,
    group: String,
    kind: String,
    title: String,
    body: String,
    actions: Json<Vec<ActionTemplate>>,
    enabled_by_default: bool,
    method_override: Option<String>,
    audience: Json<Audience>,
    inbox_allowed: bool,
    deduplicate: bool,
    digest_window_seconds: Option<i32>,
}

impl TryFrom<TemplateRow> for Template {
    type Error = StoreError;

    fn try_from(row: TemplateRow) -> Result<Self, StoreError> {
        let invalid =
            |what: String| StoreError::Other(format!("template {} is stored with {what}", row.id));
        let kind = match row.kind.as_str() {
            "system" => TemplateKind::System,
            "custom" => TemplateKind::Custom,
            other => return Err(invalid(format!("an unknown kind {other:?}"))),
        };
        let method_override = row
            .method_override
            .as_deref()
            .map(str::parse::<Method>)
            .transpose()
            .map_err(|err| invalid(err.to_string()))?;
        let digest_window = row
            .digest_window_seconds
            .map(|seconds| DigestWindow::from_seconds(i64::from(seconds)))
            .transpose()
            .map_err(|reason| invalid(format!("a digest window out of range: {reason}")))?;
        Ok(Template {
            id: row.id.into(),
            name: row.name,
            group: row.group,
            kind,
            title: row.title,
            body: row.body,
            actions: row.actions.0,
            enabled_by_default: row.enabled_by_default,
            method_override,
            audience: row.audience.0,
            inbox_allowed: row.inbox_allowed,
            deduplicate: row.deduplicate,
            digest_window,
        })
    }
}

#[async_trait]
impl TemplateStore for PgStore {
    async fn seed(&self, catalogue: &[Template]) -> Result<(), StoreError> {
        // One transaction: a half-seeded catalogue is never visible. A new template takes its
        // own method override and no digest window (only an owner sets one); an existing one
        // keeps the admins' (neither is in the UPDATE list).
        let mut tx = self.pool.begin().await.map_err(store_error)?;
        for template in catalogue {
            sqlx::query(
                "INSERT INTO templates (id, name, \"group\", kind, title, body, actions, \
                     enabled_by_default, method_override, audience, inbox_allowed, deduplicate) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::notification_method, $10, $11, $12) \
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, \
                     \"group\" = EXCLUDED.\"group\", kind = EXCLUDED.kind, \
                     title = EXCLUDED.title, body = EXCLUDED.body, actions = EXCLUDED.actions, \
                     enabled_by_default = EXCLUDED.enabled_by_default, \
                     audience = EXCLUDED.audience, inbox_allowed = EXCLUDED.inbox_allowed, \
                     deduplicate = EXCLUDED.deduplicate, updated_at = now()",
            )
            .bind(template.id.as_uuid())
            .bind(&template.name)
            .bind(&template.group)
            .bind(template.kind.as_str())
            .bind(&template.title)
            .bind(&template.body)
            .bind(Json(&template.actions))
            .bind(template.enabled_by_default)
            .bind(template.method_override.map(Method::as_str))
            .bind(Json(&template.audience))
            .bind(template.inbox_allowed)
            .bind(template.deduplicate)
            .execute(&mut *tx)
            .await
            .map_err(|err| match unique_violation(&err) {
                Some(NAME_KEY) => StoreError::Conflict(format!(
                    "name: another template is already named {:?}",
                    template.name
                )),
                _ => store_error(err),
            })?;
        }
        tx.commit().await.map_err(store_error)
    }

    async fn list(&self) -> Result<Vec<Template>, StoreError> {
        // COLLATE "C": byte order, the same stable order as Rust's string comparison, whatever
        // the database's locale.
        let rows: Vec<TemplateRow> = sqlx::query_as(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates \
             ORDER BY \"group\" COLLATE \"C\", name COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(store_error)?;
        rows.into_iter().map(Template::try_from).collect()
    }

    async fn get(&self, id: TemplateId) -> Result<Option<Template>, StoreError> {
        let row: Option<TemplateRow> = sqlx::query_as(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(Template::try_from).transpose()
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<Template>, StoreError> {
        // lower(name) = lower($1) is served by templates_name_key.
        let row: Option<TemplateRow> = sqlx::query_as(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE lower(name) = lower($1)"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        row.map(Template::try_from).transpose()
    }

    async fn set_method_override(
        &self,
        id: TemplateId,
        method: Option<Method>,
    ) -> Result<Option<bool>, StoreError> {
        // One statement: the CTE locks the row (waiting for a concurrent setter to commit)
        // and reads its override as it stands, so each of two racing setters gets a true answer.
        let changed: Option<bool> = sqlx::query_scalar(
            "WITH old AS (SELECT id, method_override FROM templates WHERE id = $1 FOR UPDATE) \
             UPDATE templates AS t \
             SET method_override = $2::notification_method, updated_at = now() \
             FROM old WHERE t.id = old.id \
             RETURNING old.method_override IS DISTINCT FROM t.method_override",
        )
        .bind(id.as_uuid())
        .bind(method.map(Method::as_str))
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(changed)
    }

    async fn set_digest_window(
        &self,
        id: TemplateId,
        window: Option<DigestWindow>,
    ) -> Result<Option<bool>, StoreError> {
        // As `set_method_override`: the old value read under the row's lock.
        let changed: Option<bool> = sqlx::query_scalar(
            "WITH old AS ( \
                 SELECT id, digest_window_seconds FROM templates WHERE id = $1 FOR UPDATE) \
             UPDATE templates AS t SET digest_window_seconds = $2, updated_at = now() \
             FROM old WHERE t.id = old.id \
             RETURNING old.digest_window_seconds IS DISTINCT FROM t.digest_window_seconds",
        )
        .bind(id.as_uuid())
        .bind(window.map(window_seconds))
        .fetch_optional(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(changed)
    }
}

/// A window as its column stores it (at most 7 days, so it fits).
fn window_seconds(window: DigestWindow) -> i32 {
    i32::try_from(window.seconds()).unwrap_or(i32::MAX)
}
