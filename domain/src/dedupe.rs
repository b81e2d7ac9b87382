//! The dedupe key: identical messages on one UTC day are queued once.

use std::fmt;
use std::fmt::Write as _;

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
        let basis = DedupeBasis::new(template, payload, targets, day);
        basis.hash(recipient, method, &basis.canonical_payload(payload))
    }

    /// Wraps a hash read back from storage.
    pub fn from_hex(hex: String) -> Self {
        Self(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What the dedupe hashes of one event's messages share, canonicalised once: the template, the
/// payload's event fields (version, name, template id, labels, data, targets), the message
/// targets and the day. Each recipient then costs only its own fields (`user_*`, `actions`), so
/// a fan-out to thousands of users does not re-serialise the event's labels and data for each.
#[derive(Debug, Clone)]
pub struct DedupeBasis {
    template: TemplateId,
    /// `"_version":…` as it appears in the canonical payload.
    version: String,
    /// `"data":…,"labels":…,"notification_name":…,"notification_template_id":…,"targets":…`.
    event_fields: String,
    targets: Vec<Uuid>,
    day: String,
}

impl DedupeBasis {
    /// The basis for the messages of the event `payload` belongs to; its recipient fields are
    /// not read.
    pub fn new(template: TemplateId, payload: &Payload, targets: &[Uuid], day: NaiveDate) -> Self {
        let mut version = String::new();
        write_key("_version", &mut version);
        write_string(&payload.version, &mut version);
        Self {
            template,
            version,
            event_fields: event_fields(payload),
            targets: targets.to_vec(),
            day: day.to_string(),
        }
    }

    /// The hash of each of `methods`, in order, for `recipient`'s message whose payload is
    /// `payload`: a payload of this basis's event, only its recipient fields may differ.
    pub fn hashes(
        &self,
        recipient: UserId,
        payload: &Payload,
        methods: &[Method],
    ) -> Vec<DedupeHash> {
        let canonical = self.canonical_payload(payload);
        methods
            .iter()
            .map(|&method| self.hash(recipient, method, &canonical))
            .collect()
    }

    fn hash(&self, recipient: UserId, method: Method, canonical_payload: &str) -> DedupeHash {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            // Length-prefix every field so no two different inputs concatenate alike.
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(self.template.as_uuid().as_bytes());
        field(recipient.as_uuid().as_bytes());
        field(method.as_str().as_bytes());
        field(canonical_payload.as_bytes());
        for target in &self.targets {
            field(target.as_bytes());
        }
        field(self.day.as_bytes());
        DedupeHash(hex::encode(hasher.finalize()))
    }

    /// The payload as canonical JSON (see [`write_canonical`]): its fields in sorted order,
    /// the event's taken from the basis.
    fn canonical_payload(&self, payload: &Payload) -> String {
        debug_assert_eq!(
            event_fields(payload),
            self.event_fields,
            "a payload of another event"
        );
        let mut out = String::with_capacity(self.version.len() + self.event_fields.len() + 256);
        out.push('{');
        out.push_str(&self.version);
        out.push(',');
        write_key("actions", &mut out);
        write_seq(&mut out, '[', &payload.actions, ']', |action, out| {
            out.push('{');
            write_key("label", out);
            write_string(&action.label, out);
            out.push(',');
            write_key("url", out);
            write_string(&action.url, out);
            out.push('}');
        });
        out.push(',');
        out.push_str(&self.event_fields);
        for (key, value) in [
            ("user_email", payload.user_email.as_str()),
            ("user_id", &payload.user_id.to_string()),
            ("user_name", &payload.user_name),
            ("user_username", &payload.user_username),
        ] {
            out.push(',');
            write_key(key, &mut out);
            write_string(value, &mut out);
        }
        out.push('}');
        out
    }
}

/// The canonical JSON of the payload fields every recipient of an event shares, in key order:
/// `data`, `labels`, `notification_name`, `notification_template_id`, `targets`.
fn event_fields(payload: &Payload) -> String {
    let mut out = String::new();
    write_key("data", &mut out);
    match &payload.data {
        Some(data) => write_canonical(data, &mut out),
        None => out.push_str("null"),
    }
    out.push(',');
    write_key("labels", &mut out);
    // A `BTreeMap` iterates in sorted key order already.
    write_seq(&mut out, '{', &payload.labels, '}', |(key, value), out| {
        write_key(key, out);
        write_string(value, out);
    });
    out.push(',');
    write_key("notification_name", &mut out);
    write_string(&payload.notification_name, &mut out);
    out.push(',');
    write_key("notification_template_id", &mut out);
    write_string(&payload.notification_template_id.to_string(), &mut out);
    out.push(',');
    write_key("targets", &mut out);
    write_seq(&mut out, '[', &payload.targets, ']', |target, out| {
        write_string(&target.to_string(), out);
    });
    out
}

/// `open`, the items (each written by `write`) separated by commas, `close`.
fn write_seq<T>(
    out: &mut String,
    open: char,
    items: impl IntoIterator<Item = T>,
    close: char,
    mut write: impl FnMut(T, &mut String),
) {
    out.push(open);
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write(item, out);
    }
    out.push(close);
}

/// `"key":`
fn write_key(key: &str, out: &mut String) {
    write_string(key, out);
    out.push(':');
}

/// A JSON string, escaped exactly as `serde_json` escapes it (stored hashes depend on it): `"`
/// and `\` backslashed, control characters as `\b \t \n \f \r` or `\u00xx`, the rest as is.
/// Written in place: going through `serde_json` cost a copy and a `String` per value, a large
/// share of the hashing.
fn write_string(value: &str, out: &mut String) {
    out.reserve(value.len() + 2);
    out.push('"');
    let mut unescaped = 0;
    for (at, byte) in value.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\x08' => "\\b",
            b'\t' => "\\t",
            b'\n' => "\\n",
            b'\x0c' => "\\f",
            b'\r' => "\\r",
            0x00..=0x1f => "",
            _ => continue,
        };
        // Every escaped byte is ASCII, so `at` is on a character boundary.
        out.push_str(&value[unescaped..at]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        unescaped = at + 1;
    }
    out.push_str(&value[unescaped..]);
    out.push('"');
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
            write_seq(out, '{', keys, '}', |key, out| {
                write_key(key, out);
                write_canonical(&map[key], out);
            });
        }
        Value::Array(items) => write_seq(out, '[', items, ']', write_canonical),
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

    /// The hash as first written: the whole payload through `serde_json::to_value`, then
    /// canonicalised. Stored hashes were made this way, so it must never change.
    fn reference_hash(
        template: TemplateId,
        recipient: UserId,
        method: Method,
        payload: &Payload,
        targets: &[Uuid],
        day: NaiveDate,
    ) -> DedupeHash {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_be_bytes());
            hasher.update(bytes);
        };
        field(template.as_uuid().as_bytes());
        field(recipient.as_uuid().as_bytes());
        field(method.as_str().as_bytes());
        let mut canonical = String::new();
        write_canonical(&serde_json::to_value(payload).unwrap(), &mut canonical);
        field(canonical.as_bytes());
        for target in targets {
            field(target.as_bytes());
        }
        field(day.to_string().as_bytes());
        DedupeHash(hex::encode(hasher.finalize()))
    }

    #[test]
    fn a_known_payload_keeps_its_hash() {
        let mut p = payload(&[("name", "ws \"1\"\n"), ("reason", "é")], None);
        p.data = Some(serde_json::json!({"b": [1, 2.5, null], "a": {"y": true, "x": "\u{1}"}}));
        p.actions = vec![crate::Action {
            label: "View".into(),
            url: "https://herald.example.com/@a/ws".into(),
        }];
        p.targets = vec![Uuid::from_u128(7)];
        let hash = DedupeHash::compute(
            crate::catalogue::WORKSPACE_DELETED,
            p.user_id,
            Method::Webhook,
            &p,
            &p.targets,
            day(28),
        );
        assert_eq!(
            hash.as_str(),
            "cc086df3f01b0a9bc6a2abef48c41f175e9cde6361407a3c8976ad915c067d41"
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let every_control: String = (0u8..0x20).map(char::from).collect();
        for value in [
            "",
            "plain",
            "é ü 😀",
            "\"q\" \\ /",
            "\u{7f}",
            &every_control,
        ] {
            let mut out = String::new();
            write_string(value, &mut out);
            assert_eq!(out, serde_json::to_string(value).unwrap(), "{value:?}");
        }
    }

    proptest! {
        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(value in any::<String>()) {
            let mut out = String::from("x");
            write_string(&value, &mut out);
            prop_assert_eq!(out, format!("x{}", serde_json::to_string(&value).unwrap()));
        }
    }

    fn json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    prop_compose! {
        fn any_payload()(
            name in ".{0,12}",
            user in any::<u128>(),
            email in ".{0,12}",
            user_name in ".{0,12}",
            username in ".{0,12}",
            actions in prop::collection::vec((".{0,8}", ".{0,16}"), 0..3),
            labels in prop::collection::btree_map(".{0,8}", ".{0,12}", 0..4),
            data in prop::option::of(json()),
            targets in prop::collection::vec(any::<u128>(), 0..3),
        ) -> Payload {
            Payload {
                version: Payload::VERSION.into(),
                notification_name: name,
                notification_template_id: crate::catalogue::WORKSPACE_DELETED,
                user_id: UserId::from_uuid(Uuid::from_u128(user)),
                user_email: email,
                user_name,
                user_username: username,
                actions: actions
                    .into_iter()
                    .map(|(label, url)| crate::Action { label, url })
                    .collect(),
                labels,
                data,
                targets: targets.into_iter().map(Uuid::from_u128).collect(),
            }
        }
    }

    proptest! {
        #[test]
        fn the_hash_is_the_reference_hash(p in any_payload(), other in any_payload()) {
            let template = crate::catalogue::WORKSPACE_DELETED;
            let targets = [Uuid::from_u128(1), Uuid::from_u128(2)];
            let expected = reference_hash(template, p.user_id, Method::Smtp, &p, &targets, day(5));
            prop_assert_eq!(
                &DedupeHash::compute(template, p.user_id, Method::Smtp, &p, &targets, day(5)),
                &expected
            );

            // Another recipient of the same event, hashed from a basis made of the first.
            let basis = DedupeBasis::new(template, &p, &targets, day(5));
            let q = Payload {
                user_id: other.user_id,
                user_email: other.user_email,
                user_name: other.user_name,
                user_username: other.user_username,
                actions: other.actions,
                ..p.clone()
            };
            let methods = [Method::Smtp, Method::Inbox];
            let expected: Vec<_> = methods
                .iter()
                .map(|&m| reference_hash(template, q.user_id, m, &q, &targets, day(5)))
                .collect();
            prop_assert_eq!(basis.hashes(q.user_id, &q, &methods), expected);
        }
    }
}
