//! Use cases end to end over the in-memory adapters, with a controllable clock and no sleeps.

mod decision;
mod enqueue;
mod group_enqueue;
mod limits;
mod metrics;
mod notifier;
mod notifier_failures;
mod pipeline;
mod preferences;
mod reports;
mod services;
mod signals;
mod support;
mod template_cache;
mod tokens;
