//! `GET /metrics`: the notifier's metrics in the Prometheus text format (version 0.0.4).
//!
//! A small registry of counters, gauges and fixed-bucket histograms behind one mutex; the
//! notifier reports into it through the [`NotifierMetrics`] port. Labels are a method, a
//! template's name and an outcome only (STYLE: low cardinality).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_application::ports::{DispatchOutcome, NotifierMetrics};
use herald_domain::Method;

use crate::State as ApiState;

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The upper bounds (seconds) of the queued-seconds and send-seconds histogram buckets.
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Debug, Clone, Default)]
struct Histogram {
    /// Per bucket (not cumulative); the last slot is `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, value: f64) {
        let value = if value.is_finite() { value } else { 0.0 };
        let slot = BUCKETS
            .iter()
            .position(|bound| value <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[slot] += 1;
        self.count += 1;
        self.sum += value;
    }
}

#[derive(Debug, Default)]
struct Registry {
    attempts: BTreeMap<(Method, String, DispatchOutcome), u64>,
    retries: BTreeMap<(Method, String), u64>,
    queued: BTreeMap<Method, Histogram>,
    send: BTreeMap<Method, Histogram>,
    in_flight: i64,
    pending: u64,
    synced: u64,
}

/// The notifier's metrics, kept in memory and rendered as Prometheus text.
#[derive(Debug, Default)]
pub struct PrometheusMetrics {
    registry: Mutex<Registry>,
}

impl PrometheusMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Registry) -> T) -> T {
        f(&mut self.registry.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Everything recorded so far, in the Prometheus text format.
    pub fn render(&self) -> String {
        self.with(|r| {
            let mut out = String::new();
            family(
                &mut out,
                "herald_notifier_dispatch_attempts_total",
                "counter",
                "Messages completed by the notifier, by method, template and result.",
            );
            for ((method, template, outcome), value) in &r.attempts {
                let _ = writeln!(
                    out,
                    "herald_notifier_dispatch_attempts_total{{method=\"{}\",template=\"{}\",result=\"{}\"}} {value}",
                    method.as_str(),
                    escape(template),
                    outcome.as_str(),
                );
            }
            family(
                &mut out,
                "herald_notifier_retries_scheduled_total",
                "counter",
                "Failed dispatches scheduled to be tried again, by method and template.",
            );
            for ((method, template), value) in &r.retries {
                let _ = writeln!(
                    out,
                    "herald_notifier_retries_scheduled_total{{method=\"{}\",template=\"{}\"}} {value}",
                    method.as_str(),
                    escape(template),
                );
            }
            histogram(
                &mut out,
                "herald_notifier_queued_seconds",
                "Seconds messages waited in the queue before being dispatched, by method.",
                &r.queued,
            );
            histogram(
                &mut out,
                "herald_notifier_send_seconds",
                "Seconds dispatchers took to deliver one message, by method.",
                &r.send,
            );
            family(
                &mut out,
                "herald_notifier_dispatches_in_flight",
                "gauge",
                "Dispatches running now.",
            );
            let _ = writeln!(out, "herald_notifier_dispatches_in_flight {}", r.in_flight);
            family(
                &mut out,
                "herald_notifier_pending_result_updates",
                "gauge",
                "Dispatch results waiting to be written back to the store.",
            );
            let _ = writeln!(out, "herald_notifier_pending_result_updates {}", r.pending);
            family(
                &mut out,
                "herald_notifier_synced_result_updates_total",
                "counter",
                "Dispatch results written back to the store.",
            );
            let _ = writeln!(out, "herald_notifier_synced_result_updates_total {}", r.synced);
            out
        })
    }
}

impl NotifierMetrics for PrometheusMetrics {
    fn dispatch_attempt(&self, method: Method, template: &str, outcome: DispatchOutcome) {
        self.with(|r| {
            *r.attempts
                .entry((method, template.to_owned(), outcome))
                .or_default() += 1;
        });
    }

    fn retry_scheduled(&self, method: Method, template: &str) {
        self.with(|r| *r.retries.entry((method, template.to_owned())).or_default() += 1);
    }

    fn observe_queued_seconds(&self, method: Method, seconds: f64) {
        self.with(|r| r.queued.entry(method).or_default().observe(seconds));
    }

    fn observe_send_seconds(&self, method: Method, seconds: f64) {
        self.with(|r| r.send.entry(method).or_default().observe(seconds));
    }

    fn dispatch_started(&self) {
        self.with(|r| r.in_flight += 1);
    }

    fn dispatch_finished(&self) {
        self.with(|r| r.in_flight = (r.in_flight - 1).max(0));
    }

    fn pending_result_updates(&self, count: usize) {
        self.with(|r| r.pending = u64::try_from(count).unwrap_or(u64::MAX));
    }

    fn synced_result_updates(&self, count: u64) {
        self.with(|r| r.synced = r.synced.saturating_add(count));
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn histogram(out: &mut String, name: &str, help: &str, series: &BTreeMap<Method, Histogram>) {
    family(out, name, "histogram", help);
    for (method, h) in series {
        let method = method.as_str();
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(h.buckets) {
            cumulative += count;
            let _ = writeln!(
                out,
                "{name}_bucket{{method=\"{method}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_bucket{{method=\"{method}\",le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(out, "{name}_sum{{method=\"{method}\"}} {}", h.sum);
        let _ = writeln!(out, "{name}_count{{method=\"{method}\"}} {}", h.count);
    }
}

/// Escapes a label value (backslash, double quote, line feed).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) async fn metrics(State(api): State<ApiState>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        api.metrics.render(),
    )
        .into_response()
}
