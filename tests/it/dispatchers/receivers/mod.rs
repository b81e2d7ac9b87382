//! One receiver harness per delivery method, each a
//! [`ReceiverUnderTest`](super::ReceiverUnderTest) over the real
//! dispatcher and the real thing it delivers to.

mod inbox;
mod smtp;
mod webhook;

use std::time::Duration;

pub use inbox::{inbox_memory, inbox_postgres};
pub use smtp::smtp;
pub use webhook::webhook;

/// The network dispatchers' own timeout: long enough that a receiver answering is never cut
/// short, short enough that a case waiting for it to fire stays quick.
const OWN_TIMEOUT: Duration = Duration::from_secs(3);
