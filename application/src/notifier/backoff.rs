//! Retry waits (DESIGN §10.3): `fixed` waits the retry interval after every retryable failure
//! (the reference's behaviour); `exponential` waits a random time between zero and the retry
//! interval × 2^(attempt − 1), capped at the maximum interval ("full jitter": replicas and
//! messages that failed together spread out instead of retrying in step). A receiver's
//! `Retry-After` later than the wait still wins (`Message::complete`).

use chrono::Duration;

use crate::ports::Jitter;

/// How retries are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backoff {
    /// The retry interval after every failure.
    #[default]
    Fixed,
    /// Doubling from the retry interval, capped, with full jitter.
    Exponential,
}

impl Backoff {
    /// The names a configuration gives (`fixed`, `exponential`).
    pub const NAMES: [&'static str; 2] = ["fixed", "exponential"];

    /// # Errors
    /// The name given, when it is none of [`Backoff::NAMES`].
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "fixed" => Ok(Backoff::Fixed),
            "exponential" => Ok(Backoff::Exponential),
            other => Err(format!(
                "must be `fixed` or `exponential` (`{other}` given)"
            )),
        }
    }
}

/// The retry waits of one notifier: the kind, the retry interval, and the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryWaits {
    pub backoff: Backoff,
    pub interval: Duration,
    pub max_interval: Duration,
}

impl RetryWaits {
    /// How long to wait after the `attempt`th attempt (from 1) failed, with `jitter` drawn
    /// only for exponential backoff.
    pub fn after(&self, attempt: u32, jitter: &dyn Jitter) -> Duration {
        match self.backoff {
            Backoff::Fixed => self.interval,
            Backoff::Exponential => {
                let doublings = attempt.saturating_sub(1).min(62);
                let ceiling = self
                    .interval
                    .checked_mul(i32::try_from(1u64 << doublings.min(30)).unwrap_or(i32::MAX))
                    .unwrap_or(self.max_interval)
                    .min(self.max_interval);
                let fraction = jitter.fraction().clamp(0.0, 1.0);
                let millis = ceiling.num_milliseconds() as f64 * fraction;
                Duration::milliseconds(millis as i64)
            }
        }
    }
}
