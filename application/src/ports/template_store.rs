use async_trait::async_trait;
use herald_domain::{DigestWindow, Method, Template, TemplateId};

use super::StoreError;

/// The templates and the admins' per-template method overrides and digest windows.
///
/// Implementations MUST keep method overrides and digest windows across `seed` calls, and look
/// names up case-insensitively.
///
/// # Errors
/// [`StoreError`] when the store fails.
#[async_trait]
pub trait TemplateStore: Send + Sync + std::fmt::Debug {
    /// Inserts the catalogue's templates and refreshes their texts, keeping method overrides.
    async fn seed(&self, catalogue: &[Template]) -> Result<(), StoreError>;

    /// Every template, in a stable order (group, then name).
    async fn list(&self) -> Result<Vec<Template>, StoreError>;

    async fn get(&self, id: TemplateId) -> Result<Option<Template>, StoreError>;

    async fn find_by_name(&self, name: &str) -> Result<Option<Template>, StoreError>;

    /// Sets (`Some`) or clears (`None`) a template's method override. `Ok(None)` when the
    /// template does not exist, else whether the override changed.
    async fn set_method_override(
        &self,
        id: TemplateId,
        method: Option<Method>,
    ) -> Result<Option<bool>, StoreError>;

    /// Sets (`Some`) or clears (`None`) a template's digest window. `Ok(None)` when the
    /// template does not exist, else whether the window changed.
    async fn set_digest_window(
        &self,
        id: TemplateId,
        window: Option<DigestWindow>,
    ) -> Result<Option<bool>, StoreError>;
}
