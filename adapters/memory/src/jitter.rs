use std::sync::Mutex;
use std::sync::PoisonError;

use herald_application::ports::Jitter;

/// A repeatable jitter source: the same seed gives the same fractions in the same order
/// (xorshift64*), so tests can assert a backoff sequence exactly.
#[derive(Debug)]
pub struct SeededJitter {
    state: Mutex<u64>,
}

impl SeededJitter {
    pub fn new(seed: u64) -> Self {
        // xorshift never leaves zero; any other seed works.
        Self {
            state: Mutex::new(seed.max(1)),
        }
    }
}

impl Jitter for SeededJitter {
    fn fraction(&self) -> f64 {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut x = *state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        let value = x.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (value >> 11) as f64 / (1u64 << 53) as f64
    }
}
