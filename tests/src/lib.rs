//! Shared fixtures for Herald's workspace tests.
//!
//! - [`fixture`]: the storage backends the contract suites run against ([`fixture::Backend`],
//!   [`fixture::memory`], [`fixture::postgres`]) and the [`contract_suite!`] macro that stamps a
//!   suite out per backend;
//! - [`link`]: a TCP link to a server that a test can cut (a database outage);
//! - [`postgres`]: a fresh PostgreSQL database per test, on the server `HERALD_TEST_DATABASE_URL`
//!   names;
//! - [`sample`]: sample domain values (users, messages, inbox notifications) at a fixed time;
//! - [`smtp_server`]: a real SMTP server process (aiosmtpd) recording what it received, with
//!   the certificates its TLS modes need.

pub mod checkout;
pub mod docker_postgres;
pub mod fixture;
pub mod link;
pub mod local_cluster;
pub mod postgres;
pub mod sample;
pub mod smtp_server;
