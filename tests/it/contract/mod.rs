//! Contract suites: one per storage, queue and feed port, each run against every backend
//! (see `herald_tests::fixture`). They hold every adapter of a port to the port's documented
//! contract, so the in-memory fakes cannot drift from PostgreSQL.

mod builds;
mod digests;
mod idempotency;
mod inbox;
mod inbox_feed;
mod preferences;
mod queue;
mod rates;
mod scheduled;
mod sessions;
mod settings;
mod signal_states;
mod templates;
mod throttle;
mod tokens;
mod users;
mod wakeup;
