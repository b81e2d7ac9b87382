//! DESIGN §7 `/metrics`: what the notifier reports through the `NotifierMetrics` port, as
//! the Prometheus text `herald-http` serves — per method/template/result, histograms, gauges,
//! and never a message or user id.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use herald_application::ports::{
    Delivery, DeliveryError, Dispatcher, NotifierMetrics, UserRegistry as _,
};
use herald_application::{Cycle, Event};
use herald_domain::catalogue::WORKSPACE_DELETED;
use herald_domain::{MessageId, Method, UserId};
use herald_http::PrometheusMetrics;
use herald_http::metrics::BUCKETS;

use super::support::{Harness, ScriptedDispatcher, quiet_config};

fn webhook_only() -> Harness {
    Harness::webhook_only()
}

async fn enqueue_for(h: &Harness, subject: UserId) -> Vec<MessageId> {
    let mut event = Event::new(WORKSPACE_DELETED);
    event.subject = Some(subject);
    event.labels.insert("name".into(), "ws".into());
    h.events.enqueue(event).await.unwrap().message_ids
}

/// The value of the one sample line starting with `series ` (labels included).
fn sample(text: &str, series: &str) -> f64 {
    let prefix = format!("{series} ");
    let found: Vec<_> = text.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(found.len(), 1, "{series} in:\n{text}");
    found[0][prefix.len()..].parse().unwrap()
}

const TEMPLATE: &str = "Workspace Deleted";

/// How long (paused time) each dispatch of [`Slow`] takes, in the order dispatches start.
const SEND_SECONDS: [f64; 3] = [0.3, 2.0, 7.0];

/// A dispatcher that takes the next of [`SEND_SECONDS`] before answering like `inner`, and
/// notes the in-flight gauge it sees when called.
#[derive(Debug)]
struct Slow {
    inner: Arc<ScriptedDispatcher>,
    delays: Mutex<VecDeque<f64>>,
    metrics: Arc<PrometheusMetrics>,
    in_flight_seen: Mutex<Vec<f64>>,
}

#[async_trait]
impl Dispatcher for Slow {
    fn method(&self) -> Method {
        self.inner.method()
    }

    async fn dispatch(&self, delivery: &Delivery) -> Result<(), DeliveryError> {
        let in_flight = sample(&self.metrics.render(), &in_flight());
        self.in_flight_seen.lock().unwrap().push(in_flight);
        let delay = self.delays.lock().unwrap().pop_front().unwrap();
        tokio::time::sleep(Duration::from_secs_f64(delay)).await;
        self.inner.dispatch(delivery).await
    }
}

fn in_flight() -> String {
    format!("herald_notifier_dispatches_in_flight{{method=\"webhook\",template=\"{TEMPLATE}\"}}")
}

fn attempts(result: &str) -> String {
    format!(
        "herald_notifier_dispatch_attempts_total{{method=\"webhook\",template=\"{TEMPLATE}\",result=\"{result}\"}}"
    )
}

#[tokio::test(start_paused = true)]
async fn the_notifier_reports_attempts_by_method_template_and_result() {
    let h = webhook_only();
    let mut ids = Vec::new();
    let mut users = Vec::new();
    for name in ["a", "b", "c", "d"] {
        let user = h.user(name, &[]).await;
        ids.extend(enqueue_for(&h, user.id).await);
        users.push(user.id);
    }
    assert_eq!(ids.len(), 4);
    // The fourth recipient is gone: inhibited, never dispatched.
    h.store.delete(users[3]).await.unwrap();
    let webhook = ScriptedDispatcher::scripted(
        Method::Webhook,
        [
            Ok(()),
            Err(DeliveryError::retryable("503 from receiver")),
            Err(DeliveryError::permanent("404 from receiver")),
        ],
    );
    let metrics = Arc::new(PrometheusMetrics::new());
    let slow = Arc::new(Slow {
        inner: webhook,
        delays: Mutex::new(SEND_SECONDS.into()),
        metrics: metrics.clone(),
        in_flight_seen: Mutex::new(Vec::new()),
    });
    let dispatchers: Vec<Arc<dyn Dispatcher>> = vec![slow.clone()];
    let mut notifier = h
        .notifier(quiet_config(), dispatchers)
        .with_metrics(metrics.clone());

    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(4));
    let before_flush = metrics.render();
    assert_eq!(
        sample(&before_flush, "herald_notifier_pending_result_updates"),
        4.0
    );
    assert_eq!(
        sample(&before_flush, "herald_notifier_synced_result_updates_total"),
        0.0
    );
    let flushed = notifier.flush().await;
    assert_eq!(flushed.dropped, 0);

    let text = metrics.render();
    assert_eq!(sample(&text, &attempts("sent")), 1.0);
    assert_eq!(sample(&text, &attempts("temporary_failure")), 1.0);
    assert_eq!(sample(&text, &attempts("permanent_failure")), 1.0);
    assert_eq!(sample(&text, &attempts("inhibited")), 1.0);
    assert_eq!(
        sample(
            &text,
            &format!(
                "herald_notifier_retries_scheduled_total{{method=\"webhook\",template=\"{TEMPLATE}\"}}"
            )
        ),
        1.0
    );
    assert_eq!(sample(&text, "herald_notifier_pending_result_updates"), 0.0);
    assert_eq!(
        sample(&text, "herald_notifier_synced_result_updates_total"),
        4.0
    );
    for family in [
        "# TYPE herald_notifier_dispatch_attempts_total counter",
        "# TYPE herald_notifier_retries_scheduled_total counter",
        "# TYPE herald_notifier_queued_seconds histogram",
        "# TYPE herald_notifier_send_seconds histogram",
        "# TYPE herald_notifier_dispatches_in_flight gauge",
        "# TYPE herald_notifier_pending_result_updates gauge",
        "# TYPE herald_notifier_synced_result_updates_total counter",
    ] {
        assert_eq!(text.matches(family).count(), 1, "{family} in:\n{text}");
    }
    // All three dispatches started before the first ran; none is left running.
    assert_eq!(*slow.in_flight_seen.lock().unwrap(), [3.0, 3.0, 3.0]);
    assert_eq!(sample(&text, &in_flight()), 0.0);

    // Three dispatches: each observed once in both histograms, buckets cumulative.
    for family in [
        "herald_notifier_queued_seconds",
        "herald_notifier_send_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} histogram")),
            "{text}"
        );
        assert_eq!(
            sample(&text, &format!("{family}_count{{method=\"webhook\"}}")),
            3.0
        );
        assert_eq!(
            sample(
                &text,
                &format!("{family}_bucket{{method=\"webhook\",le=\"+Inf\"}}")
            ),
            3.0
        );
        let mut previous = 0.0;
        for bound in BUCKETS {
            let value = sample(
                &text,
                &format!("{family}_bucket{{method=\"webhook\",le=\"{bound}\"}}"),
            );
            assert!(
                value >= previous,
                "{family} buckets are cumulative:\n{text}"
            );
            previous = value;
        }
    }
    // The memory queue reports no time queued; each send took its (paused) delay, give or
    // take the timer's millisecond.
    assert_eq!(
        sample(
            &text,
            "herald_notifier_queued_seconds_sum{method=\"webhook\"}"
        ),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "herald_notifier_queued_seconds_bucket{method=\"webhook\",le=\"0.005\"}"
        ),
        3.0
    );
    let send_sum = sample(
        &text,
        "herald_notifier_send_seconds_sum{method=\"webhook\"}",
    );
    let expected: f64 = SEND_SECONDS.iter().sum();
    assert!(
        (send_sum - expected).abs() < 0.01,
        "send seconds sum {send_sum}, expected {expected}:\n{text}"
    );
    for (bound, below) in [
        (0.25, 0.0),
        (0.5, 1.0),
        (1.0, 1.0),
        (2.5, 2.0),
        (5.0, 2.0),
        (10.0, 3.0),
    ] {
        assert_eq!(
            sample(
                &text,
                &format!(
                    "herald_notifier_send_seconds_bucket{{method=\"webhook\",le=\"{bound}\"}}"
                )
            ),
            below,
            "sends of at most {bound} s:\n{text}"
        );
    }

    // Low cardinality: no message or user id anywhere.
    for id in ids.iter().map(ToString::to_string) {
        assert!(!text.contains(&id), "message id {id} in:\n{text}");
    }
    for id in users.iter().map(ToString::to_string) {
        assert!(!text.contains(&id), "user id {id} in:\n{text}");
    }
    assert!(!contains_uuid(&text), "a UUID in:\n{text}");
}

#[test]
fn label_values_are_escaped() {
    let metrics = PrometheusMetrics::new();
    metrics.dispatch_attempt(
        Method::Inbox,
        "say \"hi\"\\\n",
        herald_application::ports::DispatchOutcome::Sent,
    );
    let text = metrics.render();
    assert!(
        text.contains(
            "herald_notifier_dispatch_attempts_total{method=\"inbox\",template=\"say \\\"hi\\\"\\\\\\n\",result=\"sent\"} 1"
        ),
        "{text}"
    );
}

/// Whether `text` holds anything shaped like a UUID (8-4-4-4-12 hex digits).
fn contains_uuid(text: &str) -> bool {
    let bytes = text.as_bytes();
    let shape = [8, 4, 4, 4, 12];
    (0..bytes.len()).any(|start| {
        let mut at = start;
        for (i, len) in shape.iter().enumerate() {
            if i > 0 {
                if bytes.get(at) != Some(&b'-') {
                    return false;
                }
                at += 1;
            }
            for _ in 0..*len {
                if !bytes.get(at).is_some_and(u8::is_ascii_hexdigit) {
                    return false;
                }
                at += 1;
            }
        }
        true
    })
}

/// The `herald_notifier_cycles_total` sample for `result`, 0 before the first.
fn cycles(metrics: &PrometheusMetrics, result: &str) -> f64 {
    let series = format!("herald_notifier_cycles_total{{result=\"{result}\"}} ");
    metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(series.as_str()))
        .map_or(0.0, |count| count.parse().unwrap())
}

#[tokio::test(start_paused = true)]
async fn each_cycle_of_a_running_notifier_is_counted_by_its_result() {
    let h = webhook_only();
    let metrics = Arc::new(PrometheusMetrics::new());
    h.settings.set_notifier_paused(true).await.unwrap();
    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let config = herald_application::NotifierConfig {
        fetch_interval: Duration::from_secs(1),
        ..quiet_config()
    };
    let handle = h
        .notifier(config, vec![webhook.clone()])
        .with_metrics(metrics.clone())
        .spawn();

    // Paused: a cycle per fetch interval (tokio's clock is paused and moves on when every
    // task waits), each counted as paused.
    herald_tests::fixture::within("three paused cycles", async {
        while cycles(&metrics, "paused") < 3.0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(cycles(&metrics, "dispatched"), 0.0);

    h.settings.set_notifier_paused(false).await.unwrap();
    let user = h.user("u", &[]).await;
    enqueue_for(&h, user.id).await;
    webhook.wait_for(1).await;
    handle.stop().await;
    assert!(
        cycles(&metrics, "dispatched") >= 1.0,
        "{}",
        metrics.render()
    );
    assert_eq!(cycles(&metrics, "failed"), 0.0);
}
