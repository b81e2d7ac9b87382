//! Templates: the kinds of event Herald knows, who hears about each, and how it reads.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{DigestWindow, Method, Role, TemplateId};

/// Whether a template ships with Herald or is the host's free-form custom notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    System,
    Custom,
}

impl TemplateKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            TemplateKind::System => "system",
            TemplateKind::Custom => "custom",
        }
    }
}

/// Who must hear about an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Audience {
    /// The user the event is about (the workspace owner, the suspended user).
    Subject {
        /// Do not tell the subject of their own act (Workspace Deleted).
        not_when_initiator: bool,
    },
    /// Every non-deleted user holding any of these roles.
    Roles {
        roles: BTreeSet<Role>,
        /// Leave out the subject of the event (admins are not told of their own suspension).
        exclude_subject: bool,
    },
    /// The user the event is about and every non-deleted holder of any of these roles, each
    /// once (Workspace Manual Build Failed: the workspace owner and the template admins).
    SubjectAndRoles { roles: BTreeSet<Role> },
    /// The user who made the request (test and custom notifications).
    Caller,
}

impl Audience {
    /// Whether the event must name a subject user for this audience.
    pub fn needs_subject(&self) -> bool {
        matches!(
            self,
            Audience::Subject { .. } | Audience::SubjectAndRoles { .. }
        )
    }
}

/// One call-to-action: a Handlebars label and a Handlebars path under the access URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionTemplate {
    pub label: String,
    /// A path (with optional query) under the access URL, such as `/@{{user_username}}/{{labels.name}}`.
    /// Values substituted into it are percent-encoded.
    pub url: String,
}

/// An event kind. Title, body and actions are Handlebars templates producing Markdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub id: TemplateId,
    pub name: String,
    pub group: String,
    pub kind: TemplateKind,
    pub title: String,
    pub body: String,
    pub actions: Vec<ActionTemplate>,
    pub enabled_by_default: bool,
    /// The admin's delivery preference: replaces the deployment's default method.
    pub method_override: Option<Method>,
    pub audience: Audience,
    /// False for events that must never land in the inbox (One-Time Passcode).
    pub inbox_allowed: bool,
    /// False for events that are never deduplicated (test, custom and task events): the
    /// enqueue adds a timestamp to their data.
    pub deduplicate: bool,
    /// The owner's digest window: events of this template for one recipient and method within
    /// it go out as one message (see [`crate::digest`]). `None`: each event is its own message.
    #[serde(default)]
    pub digest_window: Option<DigestWindow>,
}

impl Template {
    /// Whether the template may be delivered by `method` at all.
    pub fn allows(&self, method: Method) -> bool {
        method != Method::Inbox || self.inbox_allowed
    }

    /// Whether this is a security message: users cannot turn it off, and its emails carry no
    /// unsubscribe link (see [`crate::is_security`]).
    pub fn is_security(&self) -> bool {
        crate::is_security(self.id)
    }
}
