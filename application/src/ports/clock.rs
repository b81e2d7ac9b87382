use chrono::{DateTime, Utc};

/// The time, as a port, so tests move it forward instead of sleeping.
///
/// Implementations MUST be monotonic enough for lease and retry arithmetic (never jump back
/// by more than clock skew between replicas).
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}
