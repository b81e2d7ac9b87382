//! The payload stored with every message and sent inside the webhook body.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{TemplateId, UserId};

/// The host-supplied string labels of an event. Ordered, so hashes and JSON are stable.
pub type Labels = BTreeMap<String, String>;

/// A rendered call-to-action with an absolute URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Action {
    pub label: String,
    pub url: String,
}

/// What a message carries: who it is for, what happened, and the links to act on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    #[serde(rename = "_version")]
    pub version: String,
    pub notification_name: String,
    pub notification_template_id: TemplateId,
    pub user_id: UserId,
    pub user_email: String,
    /// The recipient's display name (falls back to the username).
    pub user_name: String,
    pub user_username: String,
    pub actions: Vec<Action>,
    pub labels: Labels,
    /// Any JSON object the host sent, or null.
    pub data: Option<serde_json::Value>,
    pub targets: Vec<Uuid>,
}

impl Payload {
    /// The payload schema version. 1.0 was the reference's; 1.1 added the template id, data
    /// and targets.
    pub const VERSION: &'static str = "1.1";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_the_reference_field_names() {
        let payload = Payload {
            version: Payload::VERSION.to_owned(),
            notification_name: "Workspace Deleted".into(),
            notification_template_id: crate::catalogue::WORKSPACE_DELETED,
            user_id: UserId::from_uuid(Uuid::nil()),
            user_email: "danny@coder.com".into(),
            user_name: "danny".into(),
            user_username: "danny".into(),
            actions: vec![Action {
                label: "View workspaces".into(),
                url: "https://herald.example/workspaces".into(),
            }],
            labels: Labels::from([("name".to_owned(), "my-workspace".to_owned())]),
            data: None,
            targets: vec![],
        };
        let json = serde_json::to_value(&payload).unwrap();
        let keys: Vec<_> = json.as_object().unwrap().keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "_version",
                "actions",
                "data",
                "labels",
                "notification_name",
                "notification_template_id",
                "targets",
                "user_email",
                "user_id",
                "user_name",
                "user_username"
            ]
        );
        assert_eq!(json["_version"], "1.1");
        assert_eq!(
            json["notification_template_id"],
            "f517da0b-cdc9-410f-ab89-a86107c420ed"
        );
        assert_eq!(
            json["actions"][0]["url"],
            "https://herald.example/workspaces"
        );
        let back: Payload = serde_json::from_value(json).unwrap();
        assert_eq!(back, payload);
    }
}
