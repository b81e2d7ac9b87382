//! Users' opt-outs.

use std::collections::BTreeMap;
use std::sync::Arc;

use herald_domain::{TemplateId, UserId};

use crate::Error;
use crate::ports::{PreferenceStore, TemplateStore, UserDirectory};

/// Preference use cases.
#[derive(Debug, Clone)]
pub struct Preferences {
    store: Arc<dyn PreferenceStore>,
    templates: Arc<dyn TemplateStore>,
    directory: Arc<dyn UserDirectory>,
}

impl Preferences {
    pub fn new(
        store: Arc<dyn PreferenceStore>,
        templates: Arc<dyn TemplateStore>,
        directory: Arc<dyn UserDirectory>,
    ) -> Self {
        Self {
            store,
            templates,
            directory,
        }
    }

    /// The user's stored preferences: template → disabled.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or deleted user.
    pub async fn get(&self, user: UserId) -> Result<BTreeMap<TemplateId, bool>, Error> {
        self.existing_user(user).await?;
        Ok(self.store.for_user(user).await?)
    }

    /// Stores the given template → disabled rows and returns the user's full stored list.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown user; [`Error::Invalid`] on
    /// `template_disabled_map` naming an unknown template.
    pub async fn update(
        &self,
        user: UserId,
        disabled: BTreeMap<TemplateId, bool>,
    ) -> Result<BTreeMap<TemplateId, bool>, Error> {
        self.existing_user(user).await?;
        for id in disabled.keys() {
            if self.templates.get(*id).await?.is_none() {
                return Err(Error::invalid(
                    "template_disabled_map",
                    format!("unknown template {id}"),
                ));
            }
        }
        self.store.set(user, &disabled).await?;
        Ok(self.store.for_user(user).await?)
    }

    /// Opts the user out of one template (the one-click unsubscribe link).
    ///
    /// # Errors
    /// As [`Preferences::update`].
    pub async fn disable(&self, user: UserId, template: TemplateId) -> Result<(), Error> {
        self.update(user, BTreeMap::from([(template, true)]))
            .await
            .map(|_| ())
    }

    async fn existing_user(&self, user: UserId) -> Result<(), Error> {
        match self.directory.get(user).await? {
            Some(found) if !found.deleted => Ok(()),
            _ => Err(Error::NotFound(format!("user {user}"))),
        }
    }
}
