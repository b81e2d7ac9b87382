//! Herald's use cases and the ports they drive.
//!
//! Use cases are methods on small service structs holding `Arc<dyn Port>`s. Inputs are request
//! structs of already-validated domain types; outputs are domain types. Nothing here knows
//! which database, mail relay or HTTP framework sits behind a port.

pub mod ports;
pub mod rendering;
