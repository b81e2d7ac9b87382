//! Limits on what one caller may take of a replica or of the queue: live inbox watchers
//! ([`WatchLimits`], enforced by [`crate::Watching`]) and custom notifications per user
//! ([`RateLimit`], enforced by [`RateLimiter`]).
//!
//! Watchers are counted per replica: each holds memory and a socket on the replica serving it,
//! so that is where the cap protects. Custom notifications are counted in the store
//! ([`RateCounter`]), so a user spreading requests over replicas gets the same limit as on one.
//! Windows are fixed and aligned to the Unix epoch (a window of one minute runs from one whole
//! minute to the next on every replica), which takes one counter per user and kind: a burst
//! across a window's end may see up to twice the limit in a window's length.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use herald_domain::UserId;

use crate::Error;
use crate::config::{ConfigError, MAX_DURATION};
use crate::ports::{Clock, RateCounter, ThrottleWindow};

/// The keys of the limits, as [`ConfigError`]s and refusals name them.
pub mod limit_keys {
    pub const WATCHERS_PER_USER: &str = "inbox.max_watchers_per_user";
    pub const WATCHERS: &str = "inbox.max_watchers";
    pub const CUSTOM_NOTIFICATIONS: &str = "events.custom_rate_limit";
}

/// Every limit of one Herald process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub watchers: WatchLimits,
    /// Custom notifications a user may send (`None`: unlimited).
    pub custom_notifications: Option<RateLimit>,
}

impl Default for Limits {
    /// [`WatchLimits::default`] and [`RateLimit::DEFAULT_CUSTOM`].
    fn default() -> Self {
        Self {
            watchers: WatchLimits::default(),
            custom_notifications: Some(RateLimit::DEFAULT_CUSTOM),
        }
    }
}

/// The most live inbox watchers one replica holds for one user, and for everyone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchLimits {
    per_user: usize,
    total: usize,
}

impl WatchLimits {
    /// # Errors
    /// [`ConfigError`] naming the limit that is zero, or the per-user limit when it exceeds
    /// the total.
    pub fn new(per_user: usize, total: usize) -> Result<Self, ConfigError> {
        if per_user == 0 {
            return Err(ConfigError::new(
                limit_keys::WATCHERS_PER_USER,
                "must be at least 1",
            ));
        }
        if total == 0 {
            return Err(ConfigError::new(limit_keys::WATCHERS, "must be at least 1"));
        }
        if per_user > total {
            return Err(ConfigError::new(
                limit_keys::WATCHERS_PER_USER,
                format!(
                    "must be at most `{}` ({per_user} > {total})",
                    limit_keys::WATCHERS
                ),
            ));
        }
        Ok(Self { per_user, total })
    }

    pub fn per_user(self) -> usize {
        self.per_user
    }

    pub fn total(self) -> usize {
        self.total
    }
}

impl Default for WatchLimits {
    /// 16 per user (a user with a few browser tabs and devices), 10,000 in all.
    fn default() -> Self {
        Self {
            per_user: 16,
            total: 10_000,
        }
    }
}

/// At most `count` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    count: u32,
    window: Duration,
}

impl RateLimit {
    /// Custom notifications per user unless configured otherwise: 30 a minute.
    pub const DEFAULT_CUSTOM: RateLimit = RateLimit {
        count: 30,
        window: Duration::from_secs(60),
    };

    /// A limit set by configuration key `key`.
    ///
    /// # Errors
    /// [`ConfigError`] naming `key` when `count` is zero or the window is shorter than a
    /// second or longer than 7 days.
    pub fn new(key: &'static str, count: u32, window: Duration) -> Result<Self, ConfigError> {
        if count == 0 {
            return Err(ConfigError::new(key, "must allow at least 1 per window"));
        }
        if window < Duration::from_secs(1) || window > MAX_DURATION {
            return Err(ConfigError::new(
                key,
                format!("the window must be from 1s to 7 days ({window:?} given)"),
            ));
        }
        Ok(Self { count, window })
    }

    pub fn count(self) -> u32 {
        self.count
    }

    pub fn window(self) -> Duration {
        self.window
    }
}

impl RateLimit {
    /// The throttle a lease at `now` applies with this limit per recipient and method: the
    /// epoch-aligned window `now` falls in, and the reason a message held back shows.
    pub fn throttle_at(self, now: DateTime<Utc>) -> ThrottleWindow {
        let length = TimeDelta::from_std(self.window).unwrap_or(TimeDelta::MAX);
        let start = window_start(now, length);
        ThrottleWindow {
            limit: self.count,
            start,
            end: start + length,
            reason: format!(
                "throttled: {} per {} for this recipient and method",
                self.count,
                span_text(self.window)
            ),
        }
    }
}

/// A window's length in its largest whole unit of those the command line takes (`1h`, `90s`).
fn span_text(span: Duration) -> String {
    let seconds = span.as_secs();
    let units = [(3_600, "h"), (60, "m")];
    match units
        .into_iter()
        .find(|(unit, _)| seconds > 0 && seconds.is_multiple_of(*unit) && span.subsec_nanos() == 0)
    {
        Some((unit, suffix)) => format!("{}{suffix}", seconds / unit),
        None if span.subsec_nanos() == 0 => format!("{seconds}s"),
        None => format!("{}ms", span.as_millis()),
    }
}

/// Holds one kind of request to a [`RateLimit`] per user, counted in the store.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    counter: Arc<dyn RateCounter>,
    clock: Arc<dyn Clock>,
    limit: RateLimit,
    /// What is counted, as the store keys it.
    scope: &'static str,
    /// The configuration key a refusal names.
    key: &'static str,
    /// What is counted, in a refusal's words ("custom notifications").
    what: &'static str,
}

impl RateLimiter {
    /// Custom notifications per user.
    pub fn custom_notifications(
        counter: Arc<dyn RateCounter>,
        clock: Arc<dyn Clock>,
        limit: RateLimit,
    ) -> Self {
        Self {
            counter,
            clock,
            limit,
            scope: "custom_notification",
            key: limit_keys::CUSTOM_NOTIFICATIONS,
            what: "custom notifications",
        }
    }

    /// Counts one request of `user`; refuses it when it is over the limit of its window.
    ///
    /// # Errors
    /// [`Error::Limited`] with the time left in the window when over the limit;
    /// [`Error::Unavailable`] when the store is down.
    pub async fn admit(&self, user: UserId) -> Result<(), Error> {
        let now = self.clock.now();
        let window = TimeDelta::from_std(self.limit.window).unwrap_or(TimeDelta::MAX);
        let start = window_start(now, window);
        let count = self.counter.count(self.scope, user, start).await?;
        if count <= u64::from(self.limit.count) {
            return Ok(());
        }
        let left = (start + window - now).max(TimeDelta::zero());
        // Whole seconds, rounded up: trying again at once must not be refused again.
        let left_ms = u64::try_from(left.num_milliseconds()).unwrap_or(0);
        let retry_after = Duration::from_secs(left_ms.div_ceil(1000).max(1));
        Err(Error::Limited {
            limit: self.key,
            reason: format!(
                "at most {} {} per {}s per user; try again in {}s",
                self.limit.count,
                self.what,
                self.limit.window.as_secs(),
                retry_after.as_secs()
            ),
            retry_after: Some(retry_after),
        })
    }
}

/// The start of the window `now` falls in: windows of `length` from the Unix epoch on.
fn window_start(now: DateTime<Utc>, length: TimeDelta) -> DateTime<Utc> {
    let length_ms = length.num_milliseconds().max(1);
    let start_ms = now.timestamp_millis().div_euclid(length_ms) * length_ms;
    DateTime::from_timestamp_millis(start_ms).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn windows_start_on_whole_multiples_of_their_length() {
        let now = DateTime::parse_from_rfc3339("2025-03-01T10:17:42.5Z")
            .unwrap()
            .to_utc();
        let start = window_start(now, TimeDelta::minutes(1));
        assert_eq!(start.to_rfc3339(), "2025-03-01T10:17:00+00:00");
        let start = window_start(now, TimeDelta::minutes(5));
        assert_eq!(start.to_rfc3339(), "2025-03-01T10:15:00+00:00");
    }

    #[test]
    fn a_throttle_window_is_the_epoch_aligned_window_of_now_and_names_its_limit() {
        let now = DateTime::parse_from_rfc3339("2025-03-01T10:17:42Z")
            .unwrap()
            .to_utc();
        let limit = RateLimit::new("k", 5, Duration::from_secs(3_600)).unwrap();
        let throttle = limit.throttle_at(now);
        assert_eq!(throttle.limit, 5);
        assert_eq!(throttle.start.to_rfc3339(), "2025-03-01T10:00:00+00:00");
        assert_eq!(throttle.end.to_rfc3339(), "2025-03-01T11:00:00+00:00");
        assert_eq!(
            throttle.reason,
            "throttled: 5 per 1h for this recipient and method"
        );
        assert_eq!(span_text(Duration::from_secs(90)), "90s");
        assert_eq!(span_text(Duration::from_secs(120)), "2m");
        assert_eq!(span_text(Duration::from_secs(2 * 86_400)), "48h");
    }

    #[test]
    fn limits_refuse_zero_and_name_their_key() {
        assert_eq!(
            WatchLimits::new(0, 10).unwrap_err().key,
            limit_keys::WATCHERS_PER_USER
        );
        assert_eq!(
            WatchLimits::new(1, 0).unwrap_err().key,
            limit_keys::WATCHERS
        );
        assert_eq!(
            WatchLimits::new(11, 10).unwrap_err().key,
            limit_keys::WATCHERS_PER_USER
        );
        let key = limit_keys::CUSTOM_NOTIFICATIONS;
        assert_eq!(
            RateLimit::new(key, 0, Duration::from_secs(60))
                .unwrap_err()
                .key,
            key
        );
        assert!(RateLimit::new(key, 1, Duration::from_millis(500)).is_err());
        assert!(RateLimit::new(key, 1, MAX_DURATION + Duration::from_secs(1)).is_err());
        assert_eq!(
            RateLimit::new(key, 30, Duration::from_secs(60)).unwrap(),
            RateLimit::DEFAULT_CUSTOM
        );
    }
}
