//! Delivery methods.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::InvalidValue;

/// How a message reaches its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Smtp,
    Webhook,
    Inbox,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Smtp, Method::Webhook, Method::Inbox];

    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Smtp => "smtp",
            Method::Webhook => "webhook",
            Method::Inbox => "inbox",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                InvalidValue::new(
                    "method",
                    format!("unknown method {s:?}; expected smtp, webhook or inbox"),
                )
            })
    }
}
