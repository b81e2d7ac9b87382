//! Directory users as Herald sees them: who they are, which roles they hold, whether they
//! still receive anything.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{EmailAddress, InvalidValue, UserId};

/// A role a user holds in the host application. Role audiences fan out over these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Owner,
    UserAdmin,
    TemplateAdmin,
    Member,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Owner,
        Role::UserAdmin,
        Role::TemplateAdmin,
        Role::Member,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::UserAdmin => "user-admin",
            Role::TemplateAdmin => "template-admin",
            Role::Member => "member",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| {
                InvalidValue::new(
                    "roles",
                    format!(
                        "unknown role {s:?}; expected owner, user-admin, template-admin or member"
                    ),
                )
            })
    }
}

/// Whether a user may use the host application. Suspended users still receive messages:
/// "your account has been suspended" must reach them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    #[default]
    Active,
    Suspended,
}

impl UserStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Suspended => "suspended",
        }
    }
}

impl FromStr for UserStatus {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(UserStatus::Active),
            "suspended" => Ok(UserStatus::Suspended),
            other => Err(InvalidValue::new(
                "status",
                format!("unknown status {other:?}; expected active or suspended"),
            )),
        }
    }
}

/// A login name: 1 to 64 characters of letters, digits, `-`, `_` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// # Errors
    /// [`InvalidValue`] on the field `username` when empty, longer than 64 characters, or
    /// holding a character other than letters, digits, `-`, `_` and `.`.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let text = raw.trim();
        if text.is_empty() {
            return Err(InvalidValue::new("username", "must not be empty"));
        }
        if text.chars().count() > 64 {
            return Err(InvalidValue::new(
                "username",
                "must be at most 64 characters",
            ));
        }
        if !text
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(InvalidValue::new(
                "username",
                "may hold only letters, digits, '-', '_' and '.'",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Username {
    type Error = InvalidValue;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> Self {
        value.0
    }
}

/// A user of the host application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub email: EmailAddress,
    pub username: Username,
    /// The display name; empty means "use the username".
    pub name: String,
    pub roles: BTreeSet<Role>,
    pub status: UserStatus,
    /// Deleted users receive nothing new and their queued messages are inhibited.
    pub deleted: bool,
}

impl User {
    /// The longest display name accepted.
    pub const MAX_NAME_CHARS: usize = 128;

    /// The name to greet the user by: the display name, or the username when it is blank.
    pub fn display_name(&self) -> &str {
        let name = self.name.trim();
        if name.is_empty() {
            self.username.as_str()
        } else {
            name
        }
    }

    pub fn has_any_role(&self, roles: &BTreeSet<Role>) -> bool {
        !self.roles.is_disjoint(roles)
    }

    /// Checks a display name given for a user.
    ///
    /// # Errors
    /// [`InvalidValue`] on the field `name` when it is longer than [`User::MAX_NAME_CHARS`] or
    /// holds control characters.
    pub fn parse_name(raw: &str) -> Result<String, InvalidValue> {
        let name = raw.trim();
        if name.chars().count() > Self::MAX_NAME_CHARS {
            return Err(InvalidValue::new("name", "must be at most 128 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(InvalidValue::new(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(name.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User {
            id: UserId::random(),
            email: EmailAddress::parse("a@b.io").unwrap(),
            username: Username::parse("danny").unwrap(),
            name: name.to_owned(),
            roles: BTreeSet::new(),
            status: UserStatus::Active,
            deleted: false,
        }
    }

    #[test]
    fn display_name_falls_back_to_username() {
        assert_eq!(user("").display_name(), "danny");
        assert_eq!(user("   ").display_name(), "danny");
        assert_eq!(user("Danny Boy").display_name(), "Danny Boy");
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
        let err = "admin".parse::<Role>().unwrap_err();
        assert_eq!(err.field, "roles");
    }

    #[test]
    fn usernames_are_validated() {
        assert!(Username::parse("a.b-c_d9").is_ok());
        for bad in ["", "has space", "semi;colon", &"x".repeat(65)] {
            assert_eq!(Username::parse(bad).unwrap_err().field, "username");
        }
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(User::parse_name("  Ann  ").unwrap(), "Ann");
        assert_eq!(
            User::parse_name(&"x".repeat(129)).unwrap_err().field,
            "name"
        );
        assert_eq!(User::parse_name("a\u{7}b").unwrap_err().field, "name");
    }
}
