//! DESIGN §10.3: retry backoff — fixed, or exponential with full jitter from a seeded source,
//! capped; a later `Retry-After` still wins. Time moves by hand (`ManualClock`).

use std::sync::Arc;
use std::time::Duration;

use chrono::Duration as Age;
use herald_application::notifier::Backoff;
use herald_application::ports::{DeliveryError, Jitter};
use herald_application::{Cycle, NotifierConfig};
use herald_domain::{MessageStatus, Method};
use herald_memory::SeededJitter;

use super::notifier::{as_dispatchers, one_message, webhook_only};
use super::support::{ScriptedDispatcher, quiet_config};

const SEED: u64 = 0x5eed;

fn exponential(max_attempts: u32) -> NotifierConfig {
    NotifierConfig {
        max_send_attempts: max_attempts,
        retry_interval: Duration::from_secs(60),
        retry_backoff: Backoff::Exponential,
        retry_max_interval: Duration::from_secs(240),
        ..quiet_config()
    }
}

fn failures(count: usize) -> impl Iterator<Item = Result<(), DeliveryError>> {
    (0..count).map(|i| Err(DeliveryError::retryable(format!("503 #{i}"))))
}

#[tokio::test]
async fn exponential_waits_double_from_the_interval_up_to_the_cap_with_full_jitter() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let webhook = ScriptedDispatcher::scripted(Method::Webhook, failures(5));
    let mut notifier = h
        .notifier(exponential(6), as_dispatchers(&webhook))
        .with_jitter(Arc::new(SeededJitter::new(SEED)));
    // The same seed, drawn alongside: the fraction of its ceiling each wait must be.
    let fractions = SeededJitter::new(SEED);
    let ceilings = [60, 120, 240, 240, 240];

    let mut waits = Vec::new();
    for (attempt, ceiling) in ceilings.into_iter().enumerate() {
        let failed_at = h.clock_now();
        assert_eq!(
            notifier.run_cycle().await.unwrap(),
            Cycle::Dispatched(1),
            "attempt {}",
            attempt + 1
        );
        notifier.flush().await;
        let message = h.message(id).await;
        assert_eq!(message.status, MessageStatus::TemporaryFailure);
        let next = message.next_retry_after.expect("a retry time");
        let wait = next - failed_at;
        let expected =
            (Age::seconds(ceiling).num_milliseconds() as f64 * fractions.fraction()) as i64;
        assert_eq!(wait, Age::milliseconds(expected), "attempt {}", attempt + 1);
        assert!(
            wait <= Age::seconds(ceiling),
            "attempt {} waited {wait}",
            attempt + 1
        );
        waits.push(wait);
        h.clock.set(next);
    }
    // Jittered: the waits are not simply the ceilings.
    assert!(
        waits
            .iter()
            .zip(ceilings)
            .any(|(wait, ceiling)| *wait != Age::seconds(ceiling))
    );
}

#[tokio::test]
async fn fixed_backoff_waits_the_interval_after_every_failure() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let webhook = ScriptedDispatcher::scripted(Method::Webhook, failures(2));
    let mut notifier = h.notifier(quiet_config(), as_dispatchers(&webhook));

    for attempt in 1..=2 {
        let failed_at = h.clock_now();
        notifier.run_cycle().await.unwrap();
        notifier.flush().await;
        let next = h.message(id).await.next_retry_after.unwrap();
        assert_eq!(next - failed_at, Age::seconds(60), "attempt {attempt}");
        h.clock.set(next);
    }
}

#[tokio::test]
async fn a_later_retry_after_wins_over_exponential_backoff() {
    let h = webhook_only();
    let (_, id) = one_message(&h).await;
    let later = h.clock_now() + Age::hours(2);
    let webhook = ScriptedDispatcher::scripted(
        Method::Webhook,
        [Err(DeliveryError {
            reason: "429".into(),
            retryable: true,
            retry_after: Some(later),
        })],
    );
    let mut notifier = h
        .notifier(exponential(3), as_dispatchers(&webhook))
        .with_jitter(Arc::new(SeededJitter::new(SEED)));

    notifier.run_cycle().await.unwrap();
    notifier.flush().await;

    assert_eq!(h.message(id).await.next_retry_after, Some(later));
}

#[test]
fn exponential_backoff_needs_a_cap_no_shorter_than_the_interval() {
    let config = NotifierConfig {
        retry_max_interval: Duration::from_secs(30),
        ..exponential(3)
    };
    let err = config.validate().unwrap_err();
    assert_eq!(err.key, "notifier.retry_max_interval", "{err}");
}
