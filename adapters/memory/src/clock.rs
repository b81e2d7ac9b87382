use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Duration, Utc};
use herald_application::ports::Clock;

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// 2026-11-28T09:00:00Z, the time a [`ManualClock::default`] starts at.
    pub const DEFAULT_START_SECS: i64 = 1_795_856_400;

    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves the time forward (or back, for a negative duration).
    pub fn advance(&self, by: Duration) {
        *self.lock() += by;
    }

    pub fn set(&self, now: DateTime<Utc>) {
        *self.lock() = now;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for ManualClock {
    /// Starts at 2026-11-28T09:00:00Z.
    fn default() -> Self {
        Self::new(DateTime::UNIX_EPOCH + Duration::seconds(Self::DEFAULT_START_SECS))
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_starts_on_the_documented_date() {
        assert_eq!(
            ManualClock::default().now().to_rfc3339(),
            "2026-11-28T09:00:00+00:00"
        );
    }

    #[test]
    fn clones_share_the_time_they_are_moved_to() {
        let clock = ManualClock::default();
        let start = clock.now();
        let other = clock.clone();
        other.advance(Duration::minutes(5));
        assert_eq!(clock.now(), start + Duration::minutes(5));
        clock.set(start);
        assert_eq!(other.now(), start);
    }
}
