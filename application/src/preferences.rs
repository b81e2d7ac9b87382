//! Users' opt-outs, per template and per delivery method (DESIGN §10.2).
//!
//! A template-wide value (`template_disabled_map`) is the template's switch for every method:
//! it replaces the template's per-method rows, so turning a template back on turns it on for
//! every method. Per-method values (`method_disabled_map`) are applied after it, so one body
//! can say "off, except in the inbox". Security messages (One-Time Passcode) cannot be
//! turned off.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald_domain::{Method, PreferenceScope, Template, TemplateId, UserId, catalogue, receives};

use crate::Error;
use crate::ports::{Clock, PreferenceChange, PreferenceStore, TemplateStore, UserDirectory};

/// The field a template-wide change comes in.
pub const TEMPLATE_DISABLED_MAP: &str = "template_disabled_map";
/// The field a per-method change comes in.
pub const METHOD_DISABLED_MAP: &str = "method_disabled_map";

/// Why a security message's preference is refused.
pub const SECURITY_REASON: &str = "security messages cannot be disabled";

/// One template's preferences for a user, as the API lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplatePreference {
    pub template: TemplateId,
    /// The template's switch for all methods: the all-methods row, else the opposite of the
    /// template's default (never for a security message).
    pub disabled: bool,
    /// Per method, whether the user does not receive the template by it (the method's row,
    /// else the all-methods row, else the default).
    pub methods: BTreeMap<Method, bool>,
    /// When the latest of the template's rows was written.
    pub updated_at: DateTime<Utc>,
}

/// One template as a user's settings page shows it: every template has one, rows or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSetting {
    pub template: Template,
    /// Per method, whether the user receives the template by it (the method's row, else the
    /// all-methods row, else the default; always for a security message).
    pub receives: BTreeMap<Method, bool>,
}

/// A change to a user's preferences: template-wide values, then per-method ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreferenceUpdate {
    /// Template → disabled for every method.
    pub templates: BTreeMap<TemplateId, bool>,
    /// Template → method → disabled for that method.
    pub methods: BTreeMap<TemplateId, BTreeMap<Method, bool>>,
}

/// Preference use cases.
#[derive(Debug, Clone)]
pub struct Preferences {
    store: Arc<dyn PreferenceStore>,
    templates: Arc<dyn TemplateStore>,
    directory: Arc<dyn UserDirectory>,
    clock: Arc<dyn Clock>,
}

impl Preferences {
    pub fn new(
        store: Arc<dyn PreferenceStore>,
        templates: Arc<dyn TemplateStore>,
        directory: Arc<dyn UserDirectory>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            templates,
            directory,
            clock,
        }
    }

    /// The user's preferences: one entry per template that has any stored row, in template
    /// id order.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or deleted user.
    pub async fn get(&self, user: UserId) -> Result<Vec<TemplatePreference>, Error> {
        self.existing_user(user).await?;
        self.list(user).await
    }

    /// What the user receives of every template, grouped as the catalogue groups them
    /// ([`catalogue::GROUPS`] order, any other group after them), by name within a group.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or deleted user.
    pub async fn settings(&self, user: UserId) -> Result<Vec<TemplateSetting>, Error> {
        self.existing_user(user).await?;
        let stored = self.store.for_user(user).await?;
        let mut settings: Vec<TemplateSetting> = self
            .templates
            .list()
            .await?
            .into_iter()
            .map(|template| {
                let rows = stored
                    .get(&template.id)
                    .map(|rows| rows.stored)
                    .unwrap_or_default();
                let receives = Method::ALL
                    .into_iter()
                    .map(|method| (method, receives(&template, &rows, method)))
                    .collect();
                TemplateSetting { template, receives }
            })
            .collect();
        settings.sort_by(|a, b| {
            let group = |setting: &TemplateSetting| {
                catalogue::GROUPS
                    .iter()
                    .position(|group| *group == setting.template.group)
                    .unwrap_or(catalogue::GROUPS.len())
            };
            group(a)
                .cmp(&group(b))
                .then_with(|| a.template.group.cmp(&b.template.group))
                .then_with(|| a.template.name.cmp(&b.template.name))
        });
        Ok(settings)
    }

    /// Applies the update (atomically) and returns the user's preferences as
    /// [`Preferences::get`] does.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown user; [`Error::Invalid`] naming
    /// `template_disabled_map` or `method_disabled_map` for an unknown template, or for
    /// disabling a security message.
    pub async fn update(
        &self,
        user: UserId,
        update: PreferenceUpdate,
    ) -> Result<Vec<TemplatePreference>, Error> {
        self.existing_user(user).await?;
        for (id, disabled) in &update.templates {
            self.changeable(TEMPLATE_DISABLED_MAP, *id, *disabled)
                .await?;
        }
        for (id, methods) in &update.methods {
            let disabling = methods.values().any(|disabled| *disabled);
            self.changeable(METHOD_DISABLED_MAP, *id, disabling).await?;
        }
        let changes = changes(&update);
        self.store.set(user, &changes, self.clock.now()).await?;
        self.list(user).await
    }

    /// Turns one template off for one method (the one-click unsubscribe link of an email
    /// turns off that template's email only).
    ///
    /// # Errors
    /// As [`Preferences::update`].
    pub async fn disable_method(
        &self,
        user: UserId,
        template: TemplateId,
        method: Method,
    ) -> Result<(), Error> {
        let update = PreferenceUpdate {
            methods: BTreeMap::from([(template, BTreeMap::from([(method, true)]))]),
            ..PreferenceUpdate::default()
        };
        self.update(user, update).await.map(|_| ())
    }

    /// Refuses a change of `id` given in `field` when no such template exists, or when it
    /// would disable a security message.
    async fn changeable(
        &self,
        field: &'static str,
        id: TemplateId,
        disabling: bool,
    ) -> Result<(), Error> {
        let Some(template) = self.templates.get(id).await? else {
            return Err(Error::invalid(field, format!("unknown template {id}")));
        };
        if disabling && template.is_security() {
            return Err(Error::invalid(
                field,
                format!("{:?} ({id}): {SECURITY_REASON}", template.name),
            ));
        }
        Ok(())
    }

    async fn list(&self, user: UserId) -> Result<Vec<TemplatePreference>, Error> {
        let stored = self.store.for_user(user).await?;
        if stored.is_empty() {
            return Ok(Vec::new());
        }
        let templates: BTreeMap<TemplateId, Template> = self
            .templates
            .list()
            .await?
            .into_iter()
            .map(|template| (template.id, template))
            .collect();
        Ok(stored
            .into_iter()
            .filter_map(|(id, rows)| {
                // Rows go with their template (a foreign key), so each has one.
                let template = templates.get(&id)?;
                let disabled = !template.is_security()
                    && rows
                        .stored
                        .disabled(PreferenceScope::AllMethods)
                        .unwrap_or(!template.enabled_by_default);
                let methods = Method::ALL
                    .into_iter()
                    .map(|method| (method, !receives(template, &rows.stored, method)))
                    .collect();
                Some(TemplatePreference {
                    template: id,
                    disabled,
                    methods,
                    updated_at: rows.updated_at,
                })
            })
            .collect())
    }

    async fn existing_user(&self, user: UserId) -> Result<(), Error> {
        match self.directory.get(user).await? {
            Some(found) if !found.deleted => Ok(()),
            _ => Err(Error::NotFound(format!("user {user}"))),
        }
    }
}

/// The store changes of an update: a template-wide value stores the all-methods row and
/// removes the template's method rows; per-method values then store theirs.
fn changes(update: &PreferenceUpdate) -> Vec<PreferenceChange> {
    let mut changes = Vec::new();
    for (&template, &disabled) in &update.templates {
        changes.push(PreferenceChange {
            template,
            scope: PreferenceScope::AllMethods,
            disabled: Some(disabled),
        });
        let kept = update.methods.get(&template);
        for method in Method::ALL {
            if kept.is_none_or(|methods| !methods.contains_key(&method)) {
                changes.push(PreferenceChange {
                    template,
                    scope: PreferenceScope::Method(method),
                    disabled: None,
                });
            }
        }
    }
    for (&template, methods) in &update.methods {
        for (&method, &disabled) in methods {
            changes.push(PreferenceChange {
                template,
                scope: PreferenceScope::Method(method),
                disabled: Some(disabled),
            });
        }
    }
    changes
}
