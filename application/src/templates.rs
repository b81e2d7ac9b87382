//! Templates and the admins' delivery preferences.

use std::sync::Arc;

mod cache;

use herald_domain::{DigestWindow, Method, Template, TemplateId, TemplateKind};

use crate::Error;
use crate::config::DeliveryConfig;
use crate::ports::TemplateStore;

pub use cache::{CachedTemplates, TEMPLATE_CACHE_TTL};

/// A template as listed, with the method its events actually go out by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateView {
    pub template: Template,
    /// The methods an event of this template uses now (override or default, plus inbox).
    pub methods: Vec<Method>,
}

/// Template use cases.
#[derive(Debug, Clone)]
pub struct Templates {
    store: Arc<dyn TemplateStore>,
    delivery: DeliveryConfig,
}

impl Templates {
    pub fn new(store: Arc<dyn TemplateStore>, delivery: DeliveryConfig) -> Self {
        Self { store, delivery }
    }

    /// Templates of one kind, with their effective methods.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is down.
    pub async fn list(&self, kind: TemplateKind) -> Result<Vec<TemplateView>, Error> {
        Ok(self
            .store
            .list()
            .await?
            .into_iter()
            .filter(|t| t.kind == kind)
            .map(|template| TemplateView {
                methods: self.delivery.methods_for(&template),
                template,
            })
            .collect())
    }

    /// One template with its effective methods.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown template.
    pub async fn get(&self, id: TemplateId) -> Result<TemplateView, Error> {
        let template = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("template {id}")))?;
        Ok(TemplateView {
            methods: self.delivery.methods_for(&template),
            template,
        })
    }

    /// Sets the template's method override (`None` resets it to the deployment default);
    /// returns whether it changed.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown template; [`Error::Invalid`] on `method` when the
    /// method is not available on this deployment or the template may not use it.
    pub async fn set_method(&self, id: TemplateId, method: Option<Method>) -> Result<bool, Error> {
        let template = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("template {id}")))?;
        if let Some(method) = method {
            if !self.delivery.available().contains(&method) {
                let available: Vec<_> = self
                    .delivery
                    .available()
                    .iter()
                    .map(|m| m.as_str())
                    .collect();
                return Err(Error::invalid(
                    "method",
                    format!(
                        "{method} is not available on this deployment (available: {})",
                        available.join(", ")
                    ),
                ));
            }
            if !template.allows(method) {
                return Err(Error::invalid(
                    "method",
                    format!("{:?} is never delivered by {method}", template.name),
                ));
            }
        }
        self.store
            .set_method_override(id, method)
            .await?
            .ok_or_else(|| Error::NotFound(format!("template {id}")))
    }

    /// Sets the template's digest window (`None` clears it: each event is a message of its
    /// own again); returns whether it changed. Digests already open go out when their window
    /// closes.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown template; [`Error::Invalid`] on `window` for a
    /// security message (One-Time Passcode), which must go out at once.
    pub async fn set_digest(
        &self,
        id: TemplateId,
        window: Option<DigestWindow>,
    ) -> Result<bool, Error> {
        let template = self
            .store
            .get(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("template {id}")))?;
        if window.is_some() && template.is_security() {
            return Err(Error::invalid(
                "window",
                format!(
                    "{:?} is a security message, sent at once, never in a digest",
                    template.name
                ),
            ));
        }
        self.store
            .set_digest_window(id, window)
            .await?
            .ok_or_else(|| Error::NotFound(format!("template {id}")))
    }
}
