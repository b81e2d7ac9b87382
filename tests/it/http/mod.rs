//! The HTTP API (`herald-http`) end to end: the real router over PostgreSQL, called
//! in-process. Auth and roles, every route's happy path and shapes (DESIGN §7), 304s, the
//! unsubscribe links, and malformed input that must never be answered with a 5xx.

mod builds;
mod cors;
mod deployment_page;
mod digests;
mod directory;
mod failures;
mod idempotency;
mod inbox;
mod malformed;
mod notifications;
mod openapi;
mod scheduled;
mod settings;
mod signals;
mod support;
mod unsubscribe;
mod watch;
mod web;
