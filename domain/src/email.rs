//! Email addresses, parsed once at the edge.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::InvalidValue;

/// A syntactically valid email address (`local@domain`). [`EmailAddress::parse`] is the only
/// way to make one; everything downstream trusts it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Longest address SMTP allows (RFC 5321 forward-path limit).
    pub const MAX_LEN: usize = 254;

    /// Parses an address after trimming surrounding white space.
    ///
    /// # Errors
    /// [`InvalidValue`] on the field `email` when the text is not `local@domain` with a
    /// non-empty local part of at most 64 characters, a domain made of dot-separated labels
    /// of letters, digits and hyphens, and no white space or control characters.
    pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
        let text = raw.trim();
        let invalid = |reason: &str| InvalidValue::new("email", reason);
        if text.is_empty() {
            return Err(invalid("must not be empty"));
        }
        if text.len() > Self::MAX_LEN {
            return Err(invalid("must be at most 254 characters"));
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain white space"));
        }
        let Some((local, domain)) = text.rsplit_once('@') else {
            return Err(invalid("must look like name@domain"));
        };
        if local.is_empty() || local.len() > 64 {
            return Err(invalid("the part before @ must be 1 to 64 characters"));
        }
        if local.contains(['@', '<', '>', '(', ')', ',', ';', ':', '\\', '"', '[', ']']) {
            return Err(invalid(
                "the part before @ has a character addresses cannot hold",
            ));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(invalid("the part before @ has a misplaced dot"));
        }
        let labels_ok = !domain.is_empty()
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !labels_ok {
            return Err(invalid("the domain after @ is not a valid host name"));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = InvalidValue;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_trims_them() {
        for ok in [
            "a@b.co",
            "  danny@coder.com ",
            "first.last+tag@mail.example.org",
            "x@localhost",
        ] {
            let parsed = EmailAddress::parse(ok).unwrap();
            assert_eq!(parsed.as_str(), ok.trim());
        }
    }

    #[test]
    fn refuses_malformed_addresses_naming_the_field() {
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@exa mple.com",
            "a@-example.com",
            "a@example..com",
            ".a@example.com",
            "a<b>@example.com",
            "a@b@c",
        ] {
            let err = EmailAddress::parse(bad).unwrap_err();
            assert_eq!(err.field, "email", "{bad:?}");
        }
    }

    #[test]
    fn refuses_over_long_addresses() {
        let long = format!("{}@example.com", "a".repeat(65));
        assert!(EmailAddress::parse(&long).is_err());
        let huge = format!("a@{}.com", "b".repeat(260));
        assert!(EmailAddress::parse(&huge).is_err());
    }

    #[test]
    fn deserialising_goes_through_parse() {
        let err = serde_json::from_str::<EmailAddress>("\"nope\"").unwrap_err();
        assert!(err.to_string().contains("email"), "{err}");
        let ok: EmailAddress = serde_json::from_str("\"a@b.io\"").unwrap();
        assert_eq!(ok.as_str(), "a@b.io");
    }
}
