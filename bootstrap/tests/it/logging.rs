//! `--log-filter`: the reference's regular expression (`".*notifications.*"`) is accepted and
//! picks out the notification debug lines; directives still work as before.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use herald::logging::{LogFilter, subscriber};
use tracing_subscriber::fmt::MakeWriter;

/// What the log lines wrote, shared with the subscriber writing them.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Lines {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl io::Write for Lines {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'w> MakeWriter<'w> for Lines {
    type Writer = Lines;

    fn make_writer(&'w self) -> Lines {
        self.clone()
    }
}

/// The lines `filter` lets through of: two debug lines about notifications (one by its
/// target, one by its message), a debug line about something else, and an info line.
fn written(filter: &str) -> String {
    let lines = Lines::default();
    let filter = LogFilter::parse(filter).expect("the filter is accepted");
    tracing::subscriber::with_default(subscriber(filter, lines.clone(), false), || {
        tracing::debug!(target: "herald_application::notifications", "leased 3 messages");
        tracing::debug!(target: "herald_application::notifier", count = 3, "notifications: wrote back results");
        tracing::debug!(target: "sqlx::query", "SELECT 1");
        tracing::info!(target: "herald", "listening on 127.0.0.1:3000");
    });
    lines.text()
}

#[test]
fn the_references_regular_expression_keeps_the_notification_debug_lines_and_info() {
    let text = written(".*notifications.*");
    assert!(
        text.contains("leased 3 messages"),
        "matched by target: {text}"
    );
    assert!(
        text.contains("notifications: wrote back results"),
        "matched by message: {text}"
    );
    assert!(
        text.contains("listening on"),
        "INFO is always written: {text}"
    );
    assert!(
        !text.contains("SELECT 1"),
        "an unmatched debug line: {text}"
    );
}

#[test]
fn directives_filter_by_target_and_level_as_before() {
    let text = written("herald_application=debug,info");
    assert!(text.contains("leased 3 messages"), "{text}");
    assert!(text.contains("listening on"), "{text}");
    assert!(!text.contains("SELECT 1"), "{text}");
    let quiet = written("warn");
    assert!(quiet.is_empty(), "{quiet}");
}

#[test]
fn a_bad_filter_is_refused_saying_why() {
    let err = LogFilter::parse("(notifications").unwrap_err();
    assert!(err.contains("regular expression"), "{err}");
    let err = LogFilter::parse("herald=loud").unwrap_err();
    assert!(err.contains("directives"), "{err}");
}

#[test]
fn the_server_refuses_a_bad_log_filter_in_one_line() {
    let (status, _, stderr) =
        crate::support::run(&["migrate", "--log-filter", "(notifications"], &[]);
    assert!(!status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("herald: --log-filter: "), "{stderr}");
}
