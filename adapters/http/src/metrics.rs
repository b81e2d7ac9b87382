//! `GET /metrics`: the notifier's and the HTTP server's metrics, and the live inbox watchers,
//! in the Prometheus text format (version 0.0.4).
//!
//! The metrics live in a `prometheus-client` registry; the notifier reports into it through
//! the [`NotifierMetrics`] port, the server that serves this API through [`ConnectionMetrics`],
//! and the route encodes the registry as it stands. Labels are a method, a template's name, an
//! outcome or a reason only (STYLE: low cardinality). A labelled family shows once it has its
//! first series.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_application::ports::{CycleOutcome, DispatchOutcome, NotifierMetrics};
use herald_domain::Method;
use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::State as ApiState;

/// The content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The upper bounds (seconds) of the queued-seconds and send-seconds histogram buckets.
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AttemptLabels {
    method: &'static str,
    template: String,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TemplateLabels {
    method: &'static str,
    template: String,
}

impl TemplateLabels {
    fn new(method: Method, template: &str) -> Self {
        Self {
            method: method.as_str(),
            template: template.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CycleLabels {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LeaseLabels {
    /// `extended`, `lost` (taken over before it could be extended) or `given_back`.
    change: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabels {
    method: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

type Seconds = Family<MethodLabels, Histogram, fn() -> Histogram>;

fn seconds_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The notifier's metrics, kept in memory and rendered as Prometheus text.
#[derive(Debug)]
pub struct PrometheusMetrics {
    registry: Registry,
    attempts: Family<AttemptLabels, Counter>,
    retries: Family<TemplateLabels, Counter>,
    queued: Seconds,
    send: Seconds,
    in_flight: Family<TemplateLabels, Gauge>,
    pending: Gauge,
    synced: Counter,
    stale: Counter,
    leases: Family<LeaseLabels, Counter>,
    cycles: Family<CycleLabels, Counter>,
    connections: ConnectionMetrics,
    /// Live inbox watchers on this replica, read from the use case when rendered.
    watchers: Gauge,
}

/// What the HTTP server reports about its connections: how many are open, and how many it
/// closed itself, by reason.
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    open: Gauge,
    dropped: Family<ReasonLabels, Counter>,
}

/// Why the server closed a connection it had accepted, or refused one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A request's head did not arrive within the header-read timeout.
    HeaderTimeout,
    /// A kept-alive connection sent no new request within the idle timeout.
    IdleTimeout,
    /// Closed to make room for a new connection at the connection limit.
    MadeRoom,
    /// A new connection refused at the connection limit.
    Refused,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HeaderTimeout => "header_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::MadeRoom => "made_room",
            Self::Refused => "refused",
        }
    }
}

impl ConnectionMetrics {
    pub fn opened(&self) {
        self.open.inc();
    }

    pub fn closed(&self) {
        self.open.dec();
    }

    pub fn dropped(&self, reason: DropReason) {
        self.dropped
            .get_or_create(&ReasonLabels {
                reason: reason.as_str(),
            })
            .inc();
    }
}

impl Default for PrometheusMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl PrometheusMetrics {
    pub fn new() -> Self {
        let attempts = Family::default();
        let retries = Family::default();
        let queued = Seconds::new_with_constructor(seconds_histogram);
        let send = Seconds::new_with_constructor(seconds_histogram);
        let in_flight = Family::default();
        let pending = Gauge::default();
        let synced = Counter::default();
        let stale = Counter::default();
        let leases = Family::default();
        let cycles = Family::default();
        let connections = ConnectionMetrics::default();
        let watchers = Gauge::default();
        // Counters are registered without `_total` (the encoder appends it), and help texts
        // without their final period (the registry adds it).
        let mut root = Registry::default();
        let http = root.sub_registry_with_prefix("herald_http");
        http.register(
            "connections_open",
            "HTTP connections open now",
            connections.open.clone(),
        );
        http.register(
            "connections_dropped",
            "HTTP connections the server closed or refused itself, by reason (header_timeout, idle_timeout, made_room, refused)",
            connections.dropped.clone(),
        );
        root.sub_registry_with_prefix("herald_inbox").register(
            "watchers",
            "Live inbox watchers (WebSocket and SSE) on this replica",
            watchers.clone(),
        );
        let registry = root.sub_registry_with_prefix("herald_notifier");
        registry.register(
            "dispatch_attempts",
            "Messages completed by the notifier, by method, template and result",
            attempts.clone(),
        );
        registry.register(
            "retries_scheduled",
            "Failed dispatches scheduled to be tried again, by method and template",
            retries.clone(),
        );
        registry.register(
            "queued_seconds",
            "Seconds messages waited in the queue before being dispatched, by method",
            queued.clone(),
        );
        registry.register(
            "send_seconds",
            "Seconds dispatchers took to deliver one message, by method",
            send.clone(),
        );
        registry.register(
            "dispatches_in_flight",
            "Dispatches running now, by method and template",
            in_flight.clone(),
        );
        registry.register(
            "pending_result_updates",
            "Dispatch results waiting to be written back to the store",
            pending.clone(),
        );
        registry.register(
            "synced_result_updates",
            "Dispatch results written back to the store",
            synced.clone(),
        );
        registry.register(
            "stale_result_updates",
            "Dispatch results not applied because the message no longer held the lease they complete",
            stale.clone(),
        );
        registry.register(
            "lease_changes",
            "Leases of messages waiting in the notifier's backlog extended, lost to another notifier, or given back",
            leases.clone(),
        );
        registry.register(
            "cycles",
            "Cycles of the notifier's loop, by result (paused, dispatched, failed)",
            cycles.clone(),
        );
        Self {
            registry: root,
            attempts,
            retries,
            queued,
            send,
            in_flight,
            pending,
            synced,
            stale,
            leases,
            cycles,
            connections,
            watchers,
        }
    }

    /// Where the HTTP server serving this API reports its connections.
    pub fn connections(&self) -> ConnectionMetrics {
        self.connections.clone()
    }

    /// How many inbox watchers are live now (shown as `herald_inbox_watchers`).
    pub fn set_inbox_watchers(&self, count: usize) {
        self.watchers.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// Everything recorded so far, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a `String` does not fail.
        if let Err(err) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!(error = %err, "metrics: could not encode the registry");
        }
        out
    }
}

impl NotifierMetrics for PrometheusMetrics {
    fn dispatch_attempt(&self, method: Method, template: &str, outcome: DispatchOutcome) {
        self.attempts
            .get_or_create(&AttemptLabels {
                method: method.as_str(),
                template: template.to_owned(),
                result: outcome.as_str(),
            })
            .inc();
    }

    fn retry_scheduled(&self, method: Method, template: &str) {
        self.retries
            .get_or_create(&TemplateLabels::new(method, template))
            .inc();
    }

    fn observe_queued_seconds(&self, method: Method, seconds: f64) {
        observe(&self.queued, method, seconds);
    }

    fn observe_send_seconds(&self, method: Method, seconds: f64) {
        observe(&self.send, method, seconds);
    }

    fn dispatch_started(&self, method: Method, template: &str) {
        self.in_flight
            .get_or_create(&TemplateLabels::new(method, template))
            .inc();
    }

    fn dispatch_finished(&self, method: Method, template: &str) {
        self.in_flight
            .get_or_create(&TemplateLabels::new(method, template))
            .dec();
    }

    fn pending_result_updates(&self, count: usize) {
        self.pending.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    fn cycle_ended(&self, outcome: CycleOutcome) {
        self.cycles
            .get_or_create(&CycleLabels {
                result: outcome.as_str(),
            })
            .inc();
    }

    fn synced_result_updates(&self, count: u64) {
        self.synced.inc_by(count);
    }

    fn stale_result_updates(&self, count: u64) {
        self.stale.inc_by(count);
    }

    fn leases_renewed(&self, extended: u64, lost: u64) {
        for (change, count) in [("extended", extended), ("lost", lost)] {
            if count > 0 {
                self.leases
                    .get_or_create(&LeaseLabels { change })
                    .inc_by(count);
            }
        }
    }

    fn leases_given_back(&self, count: u64) {
        if count > 0 {
            self.leases
                .get_or_create(&LeaseLabels {
                    change: "given_back",
                })
                .inc_by(count);
        }
    }
}

fn observe(family: &Seconds, method: Method, seconds: f64) {
    let seconds = if seconds.is_finite() { seconds } else { 0.0 };
    family
        .get_or_create(&MethodLabels {
            method: method.as_str(),
        })
        .observe(seconds);
}

pub(crate) async fn metrics(State(api): State<ApiState>) -> Response {
    api.metrics
        .set_inbox_watchers(api.services.watching().open_count());
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        api.metrics.render(),
    )
        .into_response()
}
