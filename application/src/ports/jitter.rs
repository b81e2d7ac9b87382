use std::fmt::Debug;

/// A source of randomness for retry waits (full jitter, see `notifier::backoff`).
///
/// Implementations MUST return a fraction in `[0, 1)` from each call. Production draws it
/// from the operating system ([`RandomJitter`]); tests use a seeded sequence, so a backoff
/// sequence can be asserted exactly.
pub trait Jitter: Send + Sync + Debug {
    fn fraction(&self) -> f64;
}

/// Fractions from the operating system's random source.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomJitter;

impl Jitter for RandomJitter {
    fn fraction(&self) -> f64 {
        let mut bytes = [0u8; 8];
        // Without randomness the wait is the whole capped interval: never sooner than asked.
        if getrandom::fill(&mut bytes).is_err() {
            return 1.0 - f64::EPSILON;
        }
        // The top 53 bits, as many as an f64's mantissa holds exactly.
        (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
    }
}
