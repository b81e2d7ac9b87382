//! Identifiers: plain newtypes over UUID so one kind of id cannot be passed for another.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// A fresh random (v4) id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

/// For the ids of other modules (`signals`).
pub(crate) use uuid_id;

uuid_id!(
    /// A user of the host application, as known to Herald's directory.
    UserId
);
uuid_id!(
    /// An event kind (a notification template).
    TemplateId
);
uuid_id!(
    /// One queued message: one recipient, one delivery method.
    MessageId
);
uuid_id!(
    /// An in-app inbox notification. It carries the id of the message that delivered it.
    InboxNotificationId
);

impl MessageId {
    /// A fresh time-ordered (v7) id: ids made later sort after earlier ones (within a process,
    /// also within one millisecond), so PostgreSQL appends new messages to the right edge of
    /// the primary key's index instead of touching a random page of it for each.
    pub fn time_ordered() -> Self {
        Self(Uuid::now_v7())
    }
}

impl From<MessageId> for InboxNotificationId {
    fn from(id: MessageId) -> Self {
        Self(id.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ordered_message_ids_sort_in_the_order_they_were_made() {
        let ids: Vec<MessageId> = (0..1_000).map(|_| MessageId::time_ordered()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(ids.iter().all(|id| id.as_uuid().get_version_num() == 7));
    }
}
