//! Use cases end to end over the in-memory adapters, with a controllable clock and no sleeps.

mod backoff;
mod decision;
mod digests;
mod enqueue;
mod group_enqueue;
mod idempotency;
mod limits;
mod metrics;
mod notifier;
mod notifier_failures;
mod paged_enqueue;
mod pipeline;
mod preferences;
mod reports;
mod scheduled;
mod services;
mod signals;
mod support;
mod template_cache;
mod throttle;
mod tokens;
