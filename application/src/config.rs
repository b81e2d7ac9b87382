//! Settings the use cases run with, checked once where they enter.
//!
//! A configuration error names a configuration *key* (`notifier.lease_period`,
//! `smtp.smarthost`): the field a Rust host sets. Only the edge that reads a command line
//! (`bootstrap`) knows the key is spelled `--notifications-lease-period` there, and renames it
//! with [`ConfigError::rename`].

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use herald_domain::{Method, RetryPolicy, Template};

use crate::limits::RateLimit;
use crate::notifier::{Backoff, RetryWaits};

/// A configuration value refused: the key at fault and why. A reason that mentions another key
/// quotes it in backticks (`` `notifier.lease_period` ``), so [`ConfigError::rename`] can rename
/// it too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub fn new(key: &'static str, reason: impl Into<String>) -> Self {
        Self {
            key,
            reason: reason.into(),
        }
    }

    /// The same error with its key and every key its reason quotes renamed by `name` (e.g. to
    /// the command-line flag that sets it); a key `name` does not know stays as it is.
    #[must_use]
    pub fn rename(&self, name: impl Fn(&str) -> Option<&'static str>) -> ConfigError {
        let mut reason = String::with_capacity(self.reason.len());
        let mut rest = self.reason.as_str();
        while let Some(start) = rest.find('`') {
            let after = &rest[start + 1..];
            let Some(end) = after.find('`') else { break };
            let quoted = &after[..end];
            reason.push_str(&rest[..start]);
            match name(quoted) {
                Some(renamed) => reason.push_str(renamed),
                None => {
                    reason.push('`');
                    reason.push_str(quoted);
                    reason.push('`');
                }
            }
            rest = &after[end + 1..];
        }
        reason.push_str(rest);
        ConfigError::new(name(self.key).unwrap_or(self.key), reason)
    }
}

/// The method events go out by unless their template overrides it: a transport, never the
/// inbox (the inbox is added beside it, DESIGN §10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultMethod {
    #[default]
    Smtp,
    Webhook,
}

impl DefaultMethod {
    pub const KEY: &'static str = "delivery.default_method";

    pub fn method(self) -> Method {
        match self {
            DefaultMethod::Smtp => Method::Smtp,
            DefaultMethod::Webhook => Method::Webhook,
        }
    }
}

impl TryFrom<Method> for DefaultMethod {
    type Error = ConfigError;

    fn try_from(method: Method) -> Result<Self, ConfigError> {
        match method {
            Method::Smtp => Ok(DefaultMethod::Smtp),
            Method::Webhook => Ok(DefaultMethod::Webhook),
            Method::Inbox => Err(ConfigError::new(
                Self::KEY,
                "inbox cannot be the default method (it is enabled with `delivery.inbox_enabled`); expected smtp or webhook",
            )),
        }
    }
}

impl FromStr for DefaultMethod {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let method = text.trim().parse::<Method>().map_err(|_| {
            ConfigError::new(
                Self::KEY,
                format!("unknown delivery method {text:?}; expected smtp or webhook"),
            )
        })?;
        Self::try_from(method)
    }
}

impl fmt::Display for DefaultMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.method().fmt(f)
    }
}

/// Which delivery methods a deployment has and which one events use by default. Derived from
/// the dispatchers a deployment built ([`DeliveryConfig::new`]), so it cannot claim a method
/// nothing delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    default_method: Method,
    configured: BTreeSet<Method>,
    inbox_enabled: bool,
}

impl DeliveryConfig {
    /// `methods` are those a dispatcher was built for: the transports (SMTP with a smarthost,
    /// webhook with an endpoint) and the inbox when it is enabled.
    pub fn new(default_method: DefaultMethod, methods: impl IntoIterator<Item = Method>) -> Self {
        let mut configured: BTreeSet<Method> = methods.into_iter().collect();
        let inbox_enabled = configured.remove(&Method::Inbox);
        Self {
            default_method: default_method.method(),
            configured,
            inbox_enabled,
        }
    }

    pub fn default_method(&self) -> Method {
        self.default_method
    }

    pub fn inbox_enabled(&self) -> bool {
        self.inbox_enabled
    }

    /// Whether the default method is usable (its transport is configured).
    pub fn default_is_configured(&self) -> bool {
        self.configured.contains(&self.default_method)
    }

    /// Every method messages can go out by: the configured transports, plus the inbox when
    /// enabled.
    pub fn available(&self) -> BTreeSet<Method> {
        let mut methods = self.configured.clone();
        if self.inbox_enabled {
            methods.insert(Method::Inbox);
        }
        methods
    }

    /// The methods an event of `template` goes out by: the template's override if set,
    /// otherwise the default method when configured; plus the inbox, once, when it is enabled
    /// and the template allows it (never for One-Time Passcode). May be empty.
    pub fn methods_for(&self, template: &Template) -> Vec<Method> {
        let mut methods = Vec::with_capacity(2);
        match template.method_override {
            Some(method) if template.allows(method) => methods.push(method),
            Some(_) => {}
            None if self.default_is_configured() => methods.push(self.default_method),
            None => {}
        }
        // The inbox comes beside the override as beside the default (DESIGN §10.1), once.
        if self.inbox_enabled && template.allows(Method::Inbox) && !methods.contains(&Method::Inbox)
        {
            methods.push(Method::Inbox);
        }
        methods
    }
}

/// The notifier's tuning as a host or a command line gives it. Defaults are the reference's,
/// plus Herald's additions. The notifier runs only with what [`NotifierConfig::validate`]
/// accepted ([`NotifierSettings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    pub max_send_attempts: u32,
    pub retry_interval: Duration,
    /// How retries are spaced: the retry interval each time, or doubling with full jitter.
    pub retry_backoff: Backoff,
    /// The longest exponential backoff waits.
    pub retry_max_interval: Duration,
    pub fetch_interval: Duration,
    pub lease_period: Duration,
    pub lease_count: usize,
    pub dispatch_timeout: Duration,
    pub store_sync_interval: Duration,
    pub store_sync_buffer_size: usize,
    /// The expiry of a message's lease that fails it permanently instead of leasing it again:
    /// a message whose dispatch kills the process would otherwise be leased, crash a
    /// replica, and be leased again, forever.
    pub max_lease_expiries: u32,
    /// The longest the notifier waits for one store call (a lease, an extension, a write-back)
    /// before taking the store for unreachable, so a silently dead connection cannot hold it.
    pub store_timeout: Duration,
    /// The throttle (DESIGN §10.3): at most this many messages per recipient and method per
    /// window; the excess waits for a later window. `None`: no throttle. Built with
    /// [`RateLimit::new`] under [`notifier_keys::USER_RATE_LIMIT`].
    pub user_rate_limit: Option<RateLimit>,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            max_send_attempts: 5,
            retry_interval: Duration::from_secs(5 * 60),
            retry_backoff: Backoff::Fixed,
            retry_max_interval: Duration::from_secs(60 * 60),
            fetch_interval: Duration::from_secs(15),
            lease_period: Duration::from_secs(2 * 60),
            lease_count: 20,
            dispatch_timeout: Duration::from_secs(60),
            store_sync_interval: Duration::from_secs(2),
            store_sync_buffer_size: 50,
            max_lease_expiries: 3,
            store_timeout: Duration::from_secs(10),
            user_rate_limit: None,
        }
    }
}

/// The longest time span the notifier accepts: a message not updated for 7 days is purged
/// (`purge::RETENTION`), so no wait may be longer, and nothing longer can overflow a clock.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The keys of [`NotifierConfig`]'s fields, as [`ConfigError`]s name them.
pub mod notifier_keys {
    pub const MAX_SEND_ATTEMPTS: &str = "notifier.max_send_attempts";
    pub const RETRY_INTERVAL: &str = "notifier.retry_interval";
    pub const RETRY_BACKOFF: &str = "notifier.retry_backoff";
    pub const RETRY_MAX_INTERVAL: &str = "notifier.retry_max_interval";
    pub const FETCH_INTERVAL: &str = "notifier.fetch_interval";
    pub const LEASE_PERIOD: &str = "notifier.lease_period";
    pub const LEASE_COUNT: &str = "notifier.lease_count";
    pub const DISPATCH_TIMEOUT: &str = "notifier.dispatch_timeout";
    pub const STORE_SYNC_INTERVAL: &str = "notifier.store_sync_interval";
    pub const STORE_SYNC_BUFFER_SIZE: &str = "notifier.store_sync_buffer_size";
    pub const MAX_LEASE_EXPIRIES: &str = "notifier.max_lease_expiries";
    pub const STORE_TIMEOUT: &str = "notifier.store_timeout";
    pub const USER_RATE_LIMIT: &str = "notifier.user_rate_limit";
}

impl NotifierConfig {
    /// Checks the values once; the notifier runs with what this returns.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key when a value is zero where it must not be, too large to
    /// be a time span, or when the dispatch timeout is not shorter than the lease period (a
    /// lease would expire while its message is still being sent, and another replica would
    /// send it again).
    pub fn validate(&self) -> Result<NotifierSettings, ConfigError> {
        use notifier_keys as key;
        let positive = [
            (key::RETRY_INTERVAL, self.retry_interval),
            (key::RETRY_MAX_INTERVAL, self.retry_max_interval),
            (key::FETCH_INTERVAL, self.fetch_interval),
            (key::LEASE_PERIOD, self.lease_period),
            (key::DISPATCH_TIMEOUT, self.dispatch_timeout),
            (key::STORE_SYNC_INTERVAL, self.store_sync_interval),
            (key::STORE_TIMEOUT, self.store_timeout),
        ];
        for (key, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::new(key, "must be greater than zero"));
            }
            if value > MAX_DURATION {
                return Err(ConfigError::new(
                    key,
                    format!(
                        "must be at most 7 days ({value:?} given): no wait may outlast the 7-day retention of messages"
                    ),
                ));
            }
        }
        if self.max_send_attempts == 0 {
            return Err(ConfigError::new(
                key::MAX_SEND_ATTEMPTS,
                "must be at least 1",
            ));
        }
        if self.max_lease_expiries == 0 {
            return Err(ConfigError::new(
                key::MAX_LEASE_EXPIRIES,
                "must be at least 1",
            ));
        }
        if self.lease_count == 0 {
            return Err(ConfigError::new(key::LEASE_COUNT, "must be at least 1"));
        }
        if self.store_sync_buffer_size == 0 {
            return Err(ConfigError::new(
                key::STORE_SYNC_BUFFER_SIZE,
                "must be at least 1",
            ));
        }
        if self.retry_backoff == Backoff::Exponential
            && self.retry_max_interval < self.retry_interval
        {
            return Err(ConfigError::new(
                key::RETRY_MAX_INTERVAL,
                format!(
                    "must be at least `{}` ({:?} < {:?}) with exponential backoff",
                    key::RETRY_INTERVAL,
                    self.retry_max_interval,
                    self.retry_interval
                ),
            ));
        }
        if self.dispatch_timeout >= self.lease_period {
            return Err(ConfigError::new(
                key::DISPATCH_TIMEOUT,
                format!(
                    "must be shorter than `{}` ({:?} >= {:?}); otherwise a lease expires while its message is still being sent",
                    key::LEASE_PERIOD,
                    self.dispatch_timeout,
                    self.lease_period
                ),
            ));
        }
        let span = |key: &'static str, value: Duration| {
            chrono::Duration::from_std(value).map_err(|_| ConfigError::new(key, "is too large"))
        };
        let retry_interval = span(key::RETRY_INTERVAL, self.retry_interval)?;
        Ok(NotifierSettings {
            retry_policy: RetryPolicy {
                max_attempts: self.max_send_attempts,
                retry_interval,
            },
            retry_waits: RetryWaits {
                backoff: self.retry_backoff,
                interval: retry_interval,
                max_interval: span(key::RETRY_MAX_INTERVAL, self.retry_max_interval)?,
            },
            lease_period: span(key::LEASE_PERIOD, self.lease_period)?,
            config: self.clone(),
        })
    }
}

/// A [`NotifierConfig`] that [`NotifierConfig::validate`] accepted: the only form a notifier
/// runs with, so its values are checked once, where they enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierSettings {
    config: NotifierConfig,
    retry_policy: RetryPolicy,
    retry_waits: RetryWaits,
    lease_period: chrono::Duration,
}

impl NotifierSettings {
    /// The values as given.
    pub fn config(&self) -> &NotifierConfig {
        &self.config
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry_policy
    }

    /// How long each retry waits.
    pub fn retry_waits(&self) -> RetryWaits {
        self.retry_waits
    }

    pub fn lease_period(&self) -> chrono::Duration {
        self.lease_period
    }
}

impl Default for NotifierSettings {
    /// The reference's settings ([`NotifierConfig::default`]).
    fn default() -> Self {
        match NotifierConfig::default().validate() {
            Ok(settings) => settings,
            // `the_default_notifier_config_is_valid` (below) keeps this from happening.
            Err(err) => unreachable!("the default notifier configuration is invalid: {err}"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_default_notifier_config_is_valid() {
        assert!(NotifierConfig::default().validate().is_ok());
        assert_eq!(
            NotifierSettings::default().config(),
            &NotifierConfig::default()
        );
    }

    #[test]
    fn durations_longer_than_the_retention_are_refused_naming_the_key() {
        let absurd = Duration::from_secs(u64::MAX / 4);
        type Set = fn(&mut NotifierConfig, Duration);
        let cases: [(&str, Set); 5] = [
            (notifier_keys::RETRY_INTERVAL, |c, d| c.retry_interval = d),
            (notifier_keys::FETCH_INTERVAL, |c, d| c.fetch_interval = d),
            (notifier_keys::LEASE_PERIOD, |c, d| c.lease_period = d),
            (notifier_keys::STORE_SYNC_INTERVAL, |c, d| {
                c.store_sync_interval = d;
            }),
            (notifier_keys::DISPATCH_TIMEOUT, |c, d| {
                c.lease_period = MAX_DURATION;
                c.dispatch_timeout = d;
            }),
        ];
        for (key, set) in cases {
            for too_long in [MAX_DURATION + Duration::from_secs(1), absurd] {
                let mut config = NotifierConfig::default();
                set(&mut config, too_long);
                let err = config.validate().map(drop).unwrap_err();
                assert_eq!(err.key, key, "{err}");
                assert!(err.reason.starts_with("must be at most 7 days"), "{err}");
            }
            let mut config = NotifierConfig::default();
            set(&mut config, MAX_DURATION);
            if key == notifier_keys::DISPATCH_TIMEOUT {
                // Still shorter than the lease period, as always.
                assert!(config.validate().is_err());
            } else {
                assert!(config.validate().is_ok(), "{key} of 7 days is refused");
            }
        }
    }

    #[test]
    fn rename_renames_the_key_and_every_quoted_key_it_knows() {
        let err = ConfigError::new(
            "notifier.dispatch_timeout",
            "must be shorter than `notifier.lease_period`, see `unknown.key`",
        );
        let flags = |key: &str| match key {
            "notifier.dispatch_timeout" => Some("--dispatch-timeout"),
            "notifier.lease_period" => Some("--lease-period"),
            _ => None,
        };

        assert_eq!(
            err.rename(flags).to_string(),
            "--dispatch-timeout: must be shorter than --lease-period, see `unknown.key`"
        );
        assert_eq!(
            err.to_string(),
            "notifier.dispatch_timeout: must be shorter than `notifier.lease_period`, see `unknown.key`"
        );
    }

    #[test]
    fn the_inbox_is_never_a_default_method() {
        assert_eq!("webhook".parse(), Ok(DefaultMethod::Webhook));
        assert_eq!(
            "inbox".parse::<DefaultMethod>().map_err(|err| err.key),
            Err(DefaultMethod::KEY)
        );
        assert!("fax".parse::<DefaultMethod>().is_err());
    }

    #[test]
    fn the_inbox_dispatcher_enables_the_inbox_and_is_no_transport() {
        let delivery =
            DeliveryConfig::new(DefaultMethod::Webhook, [Method::Inbox, Method::Webhook]);

        assert!(delivery.inbox_enabled());
        assert!(delivery.default_is_configured());
        assert_eq!(
            delivery.available(),
            BTreeSet::from([Method::Webhook, Method::Inbox])
        );
        assert!(
            !DeliveryConfig::new(DefaultMethod::Smtp, [Method::Webhook]).default_is_configured()
        );
    }
}
