//! Shared fixtures for Herald's workspace tests.
//!
//! - [`fixture`]: the storage backends the contract suites run against ([`fixture::Backend`],
//!   [`fixture::memory`]) and the [`contract_suite!`] macro that stamps a suite out per backend;
//! - [`sample`]: sample domain values (users, messages, inbox notifications) at a fixed time.

pub mod fixture;
pub mod sample;
