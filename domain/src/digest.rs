//! Digests (DESIGN §10.3): a template with a digest window gathers the events of one
//! recipient and method within the window into one message.
//!
//! The first event opens the window: its message is stored `pending`, not leasable before the
//! window closes (`send_after` = open + window), its `data.items` holding that event's labels
//! and data. Later events inside the window append their item to the same message instead of
//! queueing one of their own. Once the window has closed (or the message was leased), the next
//! event opens a new digest. [`Message::digest`](crate::Message::digest) marks such a message,
//! and the notifier renders it by the template's digest form.

use std::fmt;

use chrono::Duration;
use serde_json::{Map, Value};

use crate::{InvalidValue, Labels};

/// How long a template's digest gathers events: at least a second, at most 7 days (the
/// retention).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DigestWindow(Duration);

impl DigestWindow {
    /// The longest window: messages are kept 7 days.
    pub const MAX: Duration = Duration::days(7);

    /// Parses a window written as whole numbers with units, e.g. `90s`, `15m`, `1h`, `1h30m`,
    /// `1d` (units `s`, `m`, `h`, `d`).
    ///
    /// # Errors
    /// [`InvalidValue`] on `window` naming what is wrong.
    pub fn parse(text: &str) -> Result<DigestWindow, InvalidValue> {
        let invalid = |reason: String| InvalidValue::new("window", reason);
        let expected = || format!("{text:?} is not a duration; expected e.g. 30m, 1h or 1h30m");
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(invalid(expected()));
        }
        let mut seconds: i64 = 0;
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .ok_or_else(|| invalid(format!("{text:?} has no unit; expected e.g. 30m or 1h")))?;
            if digits == 0 {
                return Err(invalid(expected()));
            }
            let number: i64 = rest[..digits].parse().map_err(|_| invalid(expected()))?;
            let unit = rest[digits..].chars().next().unwrap_or_default();
            let scale = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(invalid(expected())),
            };
            seconds = number
                .checked_mul(scale)
                .and_then(|part| seconds.checked_add(part))
                .ok_or_else(|| invalid(format!("{text:?} is longer than 7 days")))?;
            rest = &rest[digits + unit.len_utf8()..];
        }
        Self::from_seconds(seconds).map_err(|reason| invalid(format!("{text:?}: {reason}")))
    }

    /// A window of `seconds`, as stored.
    ///
    /// # Errors
    /// Why it is out of range (under a second or over 7 days).
    pub fn from_seconds(seconds: i64) -> Result<DigestWindow, String> {
        if seconds < 1 {
            return Err("a digest window is at least 1s".to_owned());
        }
        let window = Duration::seconds(seconds);
        if window > Self::MAX {
            return Err("a digest window is at most 7 days (the retention)".to_owned());
        }
        Ok(DigestWindow(window))
    }

    pub fn duration(self) -> Duration {
        self.0
    }

    pub fn seconds(self) -> i64 {
        self.0.num_seconds()
    }
}

/// The shortest spelling: `1h30m`, `45s`, `2d`.
impl fmt::Display for DigestWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut left = self.seconds();
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if left >= size {
                write!(f, "{}{unit}", left / size)?;
                left %= size;
            }
        }
        Ok(())
    }
}

impl serde::Serialize for DigestWindow {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for DigestWindow {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        DigestWindow::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// The key of `data` that lists a digest's items.
pub const ITEMS: &str = "items";

/// One event's entry in a digest's `data.items`: its labels and its data.
pub fn item(labels: &Labels, data: Option<&Value>) -> Value {
    let mut item = Map::new();
    item.insert(
        "labels".to_owned(),
        Value::Object(
            labels
                .iter()
                .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                .collect(),
        ),
    );
    item.insert("data".to_owned(), data.cloned().unwrap_or(Value::Null));
    Value::Object(item)
}

/// A digest's `data` holding `items`.
pub fn data(items: Vec<Value>) -> Value {
    Value::Object(Map::from_iter([(ITEMS.to_owned(), Value::Array(items))]))
}

/// The items of a digest's `data` (none when it holds no list).
pub fn items(data: Option<&Value>) -> &[Value] {
    data.and_then(|data| data.get(ITEMS))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_from_units_and_print_back() {
        for (text, seconds, shown) in [
            ("1h", 3600, "1h"),
            ("90s", 90, "1m30s"),
            ("1h30m", 5400, "1h30m"),
            (" 2d ", 172_800, "2d"),
            ("7d", 604_800, "7d"),
        ] {
            let window = DigestWindow::parse(text).unwrap();
            assert_eq!(window.seconds(), seconds, "{text}");
            assert_eq!(window.to_string(), shown);
        }
    }

    #[test]
    fn bad_windows_are_refused_on_the_window_field() {
        for text in [
            "",
            "h",
            "10",
            "1x",
            "0s",
            "8d",
            "1.5h",
            "-1h",
            "99999999999999999d",
        ] {
            let err = DigestWindow::parse(text).unwrap_err();
            assert_eq!(err.field, "window", "{text}");
        }
    }

    #[test]
    fn items_are_read_back_from_the_data() {
        let labels = Labels::from([("name".to_owned(), "alpha".to_owned())]);
        let data = data(vec![
            item(&labels, None),
            item(&Labels::new(), Some(&Value::Bool(true))),
        ]);
        let items = items(Some(&data));
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["labels"]["name"], "alpha");
        assert_eq!(items[1]["data"], true);
        assert!(super::items(None).is_empty());
    }
}
