//! In-memory implementations of Herald's storage, queue and feed ports.
//!
//! These are stateful fakes, not mocks: they keep the same contracts as the PostgreSQL
//! adapter and pass the same contract suites (`tests/it/contract`), so use-case tests written
//! against them hold for production. [`MemoryStore`] holds every repository and the queue
//! behind one lock; [`MemoryInboxFeed`] and [`MemoryWakeup`] fan out within the process;
//! [`ManualClock`] is time that tests move by hand, [`SeededJitter`] randomness they can
//! repeat.

mod clock;
mod inbox_feed;
mod jitter;
mod store;
mod wakeup;

pub use clock::ManualClock;
pub use inbox_feed::MemoryInboxFeed;
pub use jitter::SeededJitter;
pub use store::{MemoryStore, PurgeLockGuard};
pub use wakeup::MemoryWakeup;
