//! Settings the use cases run with, validated once at start-up.

use std::collections::BTreeSet;
use std::time::Duration;

use herald_domain::{Method, Template};

/// A configuration value refused at start-up: the option (its command-line flag name) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{option}: {reason}")]
pub struct ConfigError {
    pub option: &'static str,
    pub reason: String,
}

impl ConfigError {
    pub fn new(option: &'static str, reason: impl Into<String>) -> Self {
        Self {
            option,
            reason: reason.into(),
        }
    }
}

/// Which delivery methods a deployment has and which one events use by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    default_method: Method,
    configured: BTreeSet<Method>,
    inbox_enabled: bool,
}

impl DeliveryConfig {
    /// `default_method` is `--notifications-method`; `configured` holds the methods whose
    /// settings are present (SMTP with a smarthost, webhook with an endpoint).
    ///
    /// # Errors
    /// [`ConfigError`] on `--notifications-method` when the default is `inbox` (the inbox is
    /// switched on with `--notifications-inbox-enabled`, never the default), or when
    /// `configured` lists `inbox`.
    pub fn new(
        default_method: Method,
        configured: BTreeSet<Method>,
        inbox_enabled: bool,
    ) -> Result<Self, ConfigError> {
        if default_method == Method::Inbox {
            return Err(ConfigError::new(
                "--notifications-method",
                "inbox cannot be the default method (use --notifications-inbox-enabled); expected smtp or webhook",
            ));
        }
        if configured.contains(&Method::Inbox) {
            return Err(ConfigError::new(
                "--notifications-inbox-enabled",
                "the inbox is enabled by its own flag, not configured as a transport",
            ));
        }
        Ok(Self {
            default_method,
            configured,
            inbox_enabled,
        })
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

    /// The methods an event of `template` goes out by: the template's override if set;
    /// otherwise the default method when configured, plus the inbox when enabled and the
    /// template allows it. May be empty.
    pub fn methods_for(&self, template: &Template) -> Vec<Method> {
        if let Some(method) = template.method_override {
            return if template.allows(method) {
                vec![method]
            } else {
                Vec::new()
            };
        }
        let mut methods = Vec::with_capacity(2);
        if self.default_is_configured() {
            methods.push(self.default_method);
        }
        if self.inbox_enabled && template.allows(Method::Inbox) {
            methods.push(Method::Inbox);
        }
        methods
    }
}

/// The notifier's tuning. Defaults are the reference's, plus Herald's additions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifierConfig {
    pub max_send_attempts: u32,
    pub retry_interval: Duration,
    pub fetch_interval: Duration,
    pub lease_period: Duration,
    pub lease_count: usize,
    pub dispatch_timeout: Duration,
    pub store_sync_interval: Duration,
    pub store_sync_buffer_size: usize,
}

impl Default for NotifierConfig {
    fn default() -> Self {
        Self {
            max_send_attempts: 5,
            retry_interval: Duration::from_secs(5 * 60),
            fetch_interval: Duration::from_secs(15),
            lease_period: Duration::from_secs(2 * 60),
            lease_count: 20,
            dispatch_timeout: Duration::from_secs(60),
            store_sync_interval: Duration::from_secs(2),
            store_sync_buffer_size: 50,
        }
    }
}

impl NotifierConfig {
    /// # Errors
    /// [`ConfigError`] naming the option when a value is zero where it must not be, or when
    /// the dispatch timeout is not shorter than the lease period (a lease would expire while
    /// its message is still being sent, and another replica would send it again).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("--notifications-retry-interval", self.retry_interval),
            ("--notifications-fetch-interval", self.fetch_interval),
            ("--notifications-lease-period", self.lease_period),
            ("--notifications-dispatch-timeout", self.dispatch_timeout),
            (
                "--notifications-store-sync-interval",
                self.store_sync_interval,
            ),
        ];
        for (option, value) in positive {
            if value.is_zero() {
                return Err(ConfigError::new(option, "must be greater than zero"));
            }
        }
        if self.max_send_attempts == 0 {
            return Err(ConfigError::new(
                "--notifications-max-send-attempts",
                "must be at least 1",
            ));
        }
        if self.lease_count == 0 {
            return Err(ConfigError::new(
                "--notifications-lease-count",
                "must be at least 1",
            ));
        }
        if self.store_sync_buffer_size == 0 {
            return Err(ConfigError::new(
                "--notifications-store-sync-buffer-size",
                "must be at least 1",
            ));
        }
        if self.dispatch_timeout >= self.lease_period {
            return Err(ConfigError::new(
                "--notifications-dispatch-timeout",
                format!(
                    "must be shorter than --notifications-lease-period ({:?} >= {:?}); otherwise a lease expires while its message is still being sent",
                    self.dispatch_timeout, self.lease_period
                ),
            ));
        }
        Ok(())
    }
}
