//! Preference resolution: whether a user receives a template by one delivery method.
//!
//! A user's preference rows for a template are one for all methods and at most one per method,
//! each a `disabled` flag (DESIGN §10.2). For one method the method's row decides, else the
//! all-methods row, else the template's `enabled_by_default`. Security messages (One-Time
//! Passcode) are always received: no row can turn them off.

use std::fmt;

use crate::{Method, Template, catalogue};

/// Which methods a preference row covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PreferenceScope {
    /// Every method (the reference's per-template preference).
    AllMethods,
    /// One method only.
    Method(Method),
}

impl PreferenceScope {
    /// `all`, or the method's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            PreferenceScope::AllMethods => "all",
            PreferenceScope::Method(method) => method.as_str(),
        }
    }

    /// The inverse of [`PreferenceScope::as_str`]; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "all" {
            return Some(PreferenceScope::AllMethods);
        }
        s.parse().ok().map(PreferenceScope::Method)
    }
}

impl fmt::Display for PreferenceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user's stored rows for one template: `disabled` per scope, `None` where no row is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredPreference {
    all_methods: Option<bool>,
    /// Indexed as [`Method::ALL`].
    methods: [Option<bool>; 3],
}

impl StoredPreference {
    /// The stored row of `scope`: `Some(true)` disabled, `Some(false)` enabled, `None` no row.
    pub fn disabled(&self, scope: PreferenceScope) -> Option<bool> {
        match scope {
            PreferenceScope::AllMethods => self.all_methods,
            PreferenceScope::Method(method) => self.methods[index(method)],
        }
    }

    /// Stores (`Some`) or removes (`None`) the row of `scope`.
    pub fn set(&mut self, scope: PreferenceScope, disabled: Option<bool>) {
        match scope {
            PreferenceScope::AllMethods => self.all_methods = disabled,
            PreferenceScope::Method(method) => self.methods[index(method)] = disabled,
        }
    }

    /// The same rows with `scope`'s set.
    #[must_use]
    pub fn with(mut self, scope: PreferenceScope, disabled: bool) -> Self {
        self.set(scope, Some(disabled));
        self
    }

    /// Whether no row is stored.
    pub fn is_empty(&self) -> bool {
        self.all_methods.is_none() && self.methods.iter().all(Option::is_none)
    }

    /// The stored rows, all-methods first then in [`Method::ALL`] order.
    pub fn rows(&self) -> impl Iterator<Item = (PreferenceScope, bool)> + '_ {
        std::iter::once(PreferenceScope::AllMethods)
            .chain(Method::ALL.into_iter().map(PreferenceScope::Method))
            .filter_map(|scope| self.disabled(scope).map(|disabled| (scope, disabled)))
    }
}

fn index(method: Method) -> usize {
    match method {
        Method::Smtp => 0,
        Method::Webhook => 1,
        Method::Inbox => 2,
    }
}

/// Whether a user receives a template by `method`: the method's row decides, else the
/// all-methods row, else `enabled_by_default`. A `disabled = false` row opts a user in to an
/// off-by-default event (for one method, or for all).
pub fn is_enabled(enabled_by_default: bool, stored: &StoredPreference, method: Method) -> bool {
    match stored
        .disabled(PreferenceScope::Method(method))
        .or(stored.disabled(PreferenceScope::AllMethods))
    {
        Some(disabled) => !disabled,
        None => enabled_by_default,
    }
}

/// Whether a user with these stored rows receives `template` by `method`: as [`is_enabled`],
/// except that security messages are always received.
pub fn receives(template: &Template, stored: &StoredPreference, method: Method) -> bool {
    template.is_security() || is_enabled(template.enabled_by_default, stored, method)
}

/// Whether a template is a security message, which users cannot turn off and whose emails
/// carry no unsubscribe link (DESIGN §10.1): One-Time Passcode.
pub fn is_security(template: crate::TemplateId) -> bool {
    template == catalogue::ONE_TIME_PASSCODE
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TemplateId;
    use PreferenceScope::{AllMethods, Method as Only};

    const SMTP: PreferenceScope = Only(Method::Smtp);
    const INBOX: PreferenceScope = Only(Method::Inbox);

    fn rows(all: Option<bool>, smtp: Option<bool>) -> StoredPreference {
        let mut stored = StoredPreference::default();
        stored.set(AllMethods, all);
        stored.set(SMTP, smtp);
        stored
    }

    /// Every combination of no row, an enabling row and a disabling row, for all methods and
    /// for the method asked, against both defaults: the method's row, else the all-methods
    /// row, else the default.
    #[test]
    fn the_methods_row_decides_else_the_all_methods_row_else_the_default() {
        let flags = [None, Some(false), Some(true)];
        for default in [true, false] {
            for all in flags {
                for smtp in flags {
                    let stored = rows(all, smtp);
                    let expected = match (smtp, all) {
                        (Some(disabled), _) | (None, Some(disabled)) => !disabled,
                        (None, None) => default,
                    };
                    assert_eq!(
                        is_enabled(default, &stored, Method::Smtp),
                        expected,
                        "default {default}, all {all:?}, smtp {smtp:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_methods_row_leaves_the_other_methods_to_the_all_methods_row_or_the_default() {
        let smtp_off = StoredPreference::default().with(SMTP, true);
        assert!(!is_enabled(true, &smtp_off, Method::Smtp));
        assert!(is_enabled(true, &smtp_off, Method::Inbox));
        assert!(!is_enabled(false, &smtp_off, Method::Inbox));

        let inbox_only = StoredPreference::default()
            .with(AllMethods, true)
            .with(INBOX, false);
        assert!(is_enabled(true, &inbox_only, Method::Inbox));
        assert!(!is_enabled(true, &inbox_only, Method::Smtp));
        assert!(!is_enabled(true, &inbox_only, Method::Webhook));
    }

    #[test]
    fn security_messages_are_received_whatever_is_stored() {
        let everything_off = Method::ALL.into_iter().fold(
            StoredPreference::default().with(AllMethods, true),
            |s, m| s.with(Only(m), true),
        );
        let templates = crate::catalogue::templates();
        let otp = templates
            .iter()
            .find(|t| t.id == catalogue::ONE_TIME_PASSCODE)
            .expect("the catalogue has the One-Time Passcode");
        assert!(otp.is_security());
        assert!(receives(otp, &everything_off, Method::Smtp));
        for other in templates.iter().filter(|t| t.id != otp.id) {
            assert!(!other.is_security(), "{}", other.name);
            assert!(
                !receives(other, &everything_off, Method::Smtp),
                "{}",
                other.name
            );
        }
        assert!(!is_security(TemplateId::random()));
    }

    #[test]
    fn rows_lists_what_is_stored_and_scopes_read_back_their_names() {
        let stored = StoredPreference::default()
            .with(INBOX, false)
            .with(AllMethods, true);
        assert_eq!(
            stored.rows().collect::<Vec<_>>(),
            vec![(AllMethods, true), (INBOX, false)]
        );
        assert!(!stored.is_empty());
        assert!(StoredPreference::default().is_empty());
        let mut removed = stored;
        removed.set(AllMethods, None);
        removed.set(INBOX, None);
        assert!(removed.is_empty());
        for scope in [AllMethods, SMTP, Only(Method::Webhook), INBOX] {
            assert_eq!(PreferenceScope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(PreferenceScope::parse("email"), None);
    }
}
