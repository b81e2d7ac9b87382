//! Herald's workspace integration tests, one binary: the architecture rule, the contract
//! suites every adapter of a port must pass, and the use cases end to end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod architecture;
mod contract;
mod delivery;
mod dispatchers;
mod http;
mod postgres_plans;
mod postgres_pool;
mod postgres_purge;
mod replicas;
mod troubleshooting;
mod usecases;
