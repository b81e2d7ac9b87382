use std::collections::HashMap;

use async_trait::async_trait;
use herald_application::ports::{StoreError, TemplateStore};
use herald_domain::{DigestWindow, Method, Template, TemplateId};

use super::MemoryStore;

/// The templates, with the admins' method overrides.
#[derive(Debug, Default)]
pub(super) struct Templates {
    by_id: HashMap<TemplateId, Template>,
}

impl Templates {
    /// Inserts or refreshes each template, keeping a stored method override and digest window.
    pub(super) fn seed(&mut self, catalogue: &[Template]) {
        for template in catalogue {
            // A new template takes no digest window, as in PostgreSQL: only an owner sets one.
            let (method_override, digest_window) = self
                .by_id
                .get(&template.id)
                .map_or((template.method_override, None), |stored| {
                    (stored.method_override, stored.digest_window)
                });
            self.by_id.insert(
                template.id,
                Template {
                    method_override,
                    digest_window,
                    ..template.clone()
                },
            );
        }
    }
}

#[async_trait]
impl TemplateStore for MemoryStore {
    async fn seed(&self, catalogue: &[Template]) -> Result<(), StoreError> {
        self.with(|state| state.templates.seed(catalogue))
    }

    async fn list(&self) -> Result<Vec<Template>, StoreError> {
        self.with(|state| {
            let mut templates: Vec<_> = state.templates.by_id.values().cloned().collect();
            templates.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
            templates
        })
    }

    async fn get(&self, id: TemplateId) -> Result<Option<Template>, StoreError> {
        self.with(|state| state.templates.by_id.get(&id).cloned())
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<Template>, StoreError> {
        let name = name.to_lowercase();
        self.with(|state| {
            state
                .templates
                .by_id
                .values()
                .find(|template| template.name.to_lowercase() == name)
                .cloned()
        })
    }

    async fn set_method_override(
        &self,
        id: TemplateId,
        method: Option<Method>,
    ) -> Result<Option<bool>, StoreError> {
        self.with(|state| {
            let template = state.templates.by_id.get_mut(&id)?;
            let changed = template.method_override != method;
            template.method_override = method;
            Some(changed)
        })
    }

    async fn set_digest_window(
        &self,
        id: TemplateId,
        window: Option<DigestWindow>,
    ) -> Result<Option<bool>, StoreError> {
        self.with(|state| {
            let template = state.templates.by_id.get_mut(&id)?;
            let changed = template.digest_window != window;
            template.digest_window = window;
            Some(changed)
        })
    }
}
