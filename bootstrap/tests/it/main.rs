//! The `herald` package's integration tests, in one binary (one link instead of one per file):
//! the command line and its configuration, `herald migrate` and `herald server` on a fresh
//! database, the HTTP API and the client commands against a running server, two replicas on
//! one database, the notifier's own pool beside the API's, the failed-builds report scheduler,
//! the built-in PostgreSQL cluster, the embedding example, the webhook body formats, and the web
//! pages in a headless Chromium (`browser`, `browser_deployment`, driven through `webdriver`).

mod browser;
mod browser_deployment;
mod builtin;
mod cli;
mod config;
mod database;
mod embedded;
mod http;
mod http_limits;
mod logging;
mod pools;
mod purging;
mod replicas;
mod reports;
mod running;
mod support;
mod throttle;
mod webdriver;
mod webhook_formats;

// The embedding example itself, compiled into the tests that run it: its `main` is not called
// here.
#[allow(dead_code)]
#[path = "../../examples/embedded.rs"]
mod example;
