//! The dedupe key: identical messages on one UTC day are queued once.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{Method, Payload, TemplateId, UserId};

/// SHA-256 (hex) of template, recipient, method, payload, targets and the UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DedupeHash(String);

impl DedupeHash {
    pub fn compute(
        template: TemplateId,
        recipient: UserId,
        method: Method,
        payload: &Payload,
        targets: &[Uuid],
        day: NaiveDate,
    ) -> Self {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            // Length-prefix every field so no two different inputs concatenate alike.
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(template.as_uuid().as_bytes());
        field(recipient.as_uuid().as_bytes());
        field(method.as_str().as_bytes());
        let mut canonical = String::new();
        match serde_json::to_value(payload) {
            Ok(value) => write_canonical(&value, &mut canonical),
            // A payload is plain data and always serialises; hash its debug form if it ever did not.
            Err(_) => canonical = format!("{payload:?}"),
        }
        field(canonical.as_bytes());
        for target in targets {
            field(target.as_bytes());
        }
        field(day.to_string().as_bytes());
        Self(hex::encode(hasher.finalize()))
    }

    /// Wraps a hash read back from storage.
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DedupeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// JSON with object keys sorted at every level, so key order in the host's data never matters.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Labels;

    fn payload(labels: &[(&str, &str)], data: Option<Value>) -> Payload {
        Payload {
            version: Payload::VERSION.into(),
            notification_name: "Workspace Deleted".into(),
            notification_template_id: crate::catalogue::WORKSPACE_DELETED,
            user_id: UserId::from_uuid(Uuid::nil()),
            user_email: "a@b.io".into(),
            user_name: "a".into(),
            user_username: "a".into(),
            actions: vec![],
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect::<Labels>(),
            data,
            targets: vec![],
        }
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
    }

    fn hash(p: &Payload, method: Method, d: u32) -> DedupeHash {
        DedupeHash::compute(
            crate::catalogue::WORKSPACE_DELETED,
            UserId::from_uuid(Uuid::nil()),
            method,
            p,
            &[],
            day(d),
        )
    }

    #[test]
    fn same_inputs_same_day_give_the_same_hash() {
        let p = payload(&[("name", "ws")], None);
        assert_eq!(hash(&p, Method::Smtp, 1), hash(&p, Method::Smtp, 1));
        assert_eq!(hash(&p, Method::Smtp, 1).as_str().len(), 64);
    }

    #[test]
    fn day_method_and_labels_each_change_the_hash() {
        let p = payload(&[("name", "ws")], None);
        let base = hash(&p, Method::Smtp, 1);
        assert_ne!(base, hash(&p, Method::Smtp, 2));
        assert_ne!(base, hash(&p, Method::Webhook, 1));
        assert_ne!(
            base,
            hash(&payload(&[("name", "ws2")], None), Method::Smtp, 1)
        );
    }

    #[test]
    fn key_order_in_data_does_not_matter() {
        let a: Value =
            serde_json::from_str(r#"{"a":1,"b":{"c":2,"d":[1,{"y":1,"x":2}]}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"b":{"d":[1,{"x":2,"y":1}],"c":2},"a":1}"#).unwrap();
        assert_eq!(
            hash(&payload(&[], Some(a)), Method::Smtp, 1),
            hash(&payload(&[], Some(b)), Method::Smtp, 1)
        );
    }

    proptest! {
        #[test]
        fn different_label_values_never_collide(a in ".{0,20}", b in ".{0,20}") {
            prop_assume!(a != b);
            let pa = payload(&[("k", &a)], None);
            let pb = payload(&[("k", &b)], None);
            prop_assert_ne!(hash(&pa, Method::Inbox, 3), hash(&pb, Method::Inbox, 3));
        }
    }
}
