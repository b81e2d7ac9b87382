//! Messages and their state machine.
//!
//! ```text
//! pending ──lease──▶ leased ──ok──────────────▶ sent
//!    ▲                 │  ──retryable, attempts+1 < max──▶ temporary_failure ──after retry interval──▶ (leasable again)
//!    │                 │  ──retryable, attempts+1 = max──▶ permanent_failure
//!    │                 │  ──permanent error──────────────▶ permanent_failure
//!    │                 │  ──user disabled it / user deleted─▶ inhibited
//!    ├── lease expired (leased_until < now): leasable again, attempt NOT counted, expiry counted
//!    │                 ──lease expired for the Nth time──▶ permanent_failure (not leased again)
//!    └── lease given back by its holder (never dispatched): pending again, or
//!        temporary_failure when attempted before; leasable at once, attempt NOT counted,
//!        no expiry counted
//!
//! pending ──held back (throttled)──▶ pending, not leasable before `next_retry_after`
//!
//! A holder may also extend its lease (`leased_until` moves later) while it still holds it.
//! ```
//!
//! A lease that expires is a dispatch that never reported back: a replica crashed, or its
//! write-back failed. If the dispatch itself kills the process, every replica that takes the
//! message over dies the same way, so expiries are counted (`lease_expiries`) and the Nth
//! ([`Message::lease`]'s `max_lease_expiries`) ends the message instead of leasing it again.
//!
//! The functions here are pure: they compute the next state or refuse the transition. Stores
//! apply what they compute (the in-memory store literally, PostgreSQL in SQL that the contract
//! suites hold to the same behaviour).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{DedupeHash, InvalidValue, MessageId, Method, Payload, TemplateId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    Pending,
    Leased,
    Sent,
    TemporaryFailure,
    PermanentFailure,
    Inhibited,
}

impl MessageStatus {
    pub const ALL: [MessageStatus; 6] = [
        MessageStatus::Pending,
        MessageStatus::Leased,
        MessageStatus::Sent,
        MessageStatus::TemporaryFailure,
        MessageStatus::PermanentFailure,
        MessageStatus::Inhibited,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Pending => "pending",
            MessageStatus::Leased => "leased",
            MessageStatus::Sent => "sent",
            MessageStatus::TemporaryFailure => "temporary_failure",
            MessageStatus::PermanentFailure => "permanent_failure",
            MessageStatus::Inhibited => "inhibited",
        }
    }

    /// Final states: nothing moves a message out of them (only purge deletes it).
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            MessageStatus::Sent | MessageStatus::PermanentFailure | MessageStatus::Inhibited
        )
    }
}

impl fmt::Display for MessageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageStatus {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| InvalidValue::new("status", format!("unknown message status {s:?}")))
    }
}

/// What [`Message::lease`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leasing {
    /// The message is leased: dispatch it.
    Leased,
    /// Its lease expired once too often: it failed permanently instead, and is not dispatched.
    GaveUp,
}

/// The `status_reason` of a message given up after its lease expired `expiries` times (a
/// store computing it itself passes a placeholder to fill in).
#[must_use]
pub fn lease_expiries_reason(expiries: impl fmt::Display) -> String {
    format!(
        "its lease expired {expiries} times without its dispatch reporting back (the dispatch \
         may be crashing the notifier's process); not sent again"
    )
}

/// The `status_reason` of a leased message: which notifier (replica) holds it.
#[must_use]
pub fn leased_by_reason(notifier: impl fmt::Display) -> String {
    format!("leased by notifier {notifier}")
}

/// The `status_reason` of a message its notifier gave back without dispatching it (stopping,
/// or paused): the lease's reason no longer holds.
pub const GIVEN_BACK_REASON: &str =
    "given back by its notifier before dispatch (stopped or paused); waiting for a lease";

/// How failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The upper limit of attempts to send a message (at least 1).
    pub max_attempts: u32,
    /// How long after a retryable failure the message may be leased again.
    pub retry_interval: Duration,
}

/// How a dispatch ended, as the notifier reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    Sent,
    Failed {
        reason: String,
        retryable: bool,
        /// The earliest time the receiver asked to be retried at (HTTP `Retry-After`).
        retry_after: Option<DateTime<Utc>>,
    },
    /// The recipient opted out or was deleted after the message was queued.
    Inhibited {
        reason: String,
    },
}

/// A transition the state machine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message {id} cannot {action} while {status}")]
pub struct IllegalTransition {
    pub id: MessageId,
    pub status: MessageStatus,
    pub action: &'static str,
}

/// The new state of one message, computed by the state machine and written back by a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    pub id: MessageId,
    /// The lease this change completes (`leased_until` when the dispatch began). A store
    /// applies a write-back only to a message still holding that very lease, so a notifier
    /// whose lease expired and was taken over cannot overwrite the new holder's outcome.
    /// `None` for changes that need no lease (inhibiting a recipient's messages).
    pub lease: Option<DateTime<Utc>>,
    pub status: MessageStatus,
    pub status_reason: Option<String>,
    pub attempt_count: u32,
    pub next_retry_after: Option<DateTime<Utc>>,
    pub at: DateTime<Utc>,
}

/// One queued message: one recipient, one delivery method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub id: MessageId,
    pub template_id: TemplateId,
    pub recipient: UserId,
    pub method: Method,
    pub status: MessageStatus,
    pub status_reason: Option<String>,
    pub attempt_count: u32,
    pub payload: Payload,
    pub targets: Vec<Uuid>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub leased_until: Option<DateTime<Utc>>,
    pub next_retry_after: Option<DateTime<Utc>>,
    /// Seconds the message waited between its last state change and its latest lease.
    pub queued_seconds: f64,
    /// How many times a lease of this message expired and was taken over.
    #[serde(default)]
    pub lease_expiries: u32,
    pub dedupe_hash: Option<DedupeHash>,
    /// A digest: its payload's `data.items` lists the events it gathers, and it is rendered by
    /// its template's digest form (see [`crate::digest`]).
    #[serde(default)]
    pub digest: bool,
}

impl Message {
    /// Whether a notifier may lease the message at `now`: pending; a temporary failure whose
    /// retry time has come; or leased with an expired lease. Never once `max_attempts` is
    /// reached.
    pub fn is_leasable(&self, now: DateTime<Utc>, max_attempts: u32) -> bool {
        if self.attempt_count >= max_attempts {
            return false;
        }
        match self.status {
            MessageStatus::Pending => self.next_retry_after.is_none_or(|at| at <= now),
            MessageStatus::TemporaryFailure => self.next_retry_after.is_none_or(|at| at <= now),
            MessageStatus::Leased => self.leased_until.is_none_or(|until| until < now),
            MessageStatus::Sent | MessageStatus::PermanentFailure | MessageStatus::Inhibited => {
                false
            }
        }
    }

    /// Leases the message until `now + lease_period`.
    ///
    /// An expired lease is taken over without counting an attempt, but counting an expiry; the
    /// expiry that brings the count to `max_lease_expiries` fails the message permanently
    /// instead ([`Leasing::GaveUp`], with [`lease_expiries_reason`] as its reason): its
    /// dispatch may be what kills the replicas that take it.
    ///
    /// # Errors
    /// [`IllegalTransition`] when the message is not leasable at `now`.
    pub fn lease(
        &mut self,
        now: DateTime<Utc>,
        lease_period: Duration,
        max_attempts: u32,
        max_lease_expiries: u32,
    ) -> Result<Leasing, IllegalTransition> {
        if !self.is_leasable(now, max_attempts) {
            return Err(self.refuse("be leased"));
        }
        self.queued_seconds = (now - self.updated_at).num_milliseconds().max(0) as f64 / 1000.0;
        self.updated_at = now;
        if self.status == MessageStatus::Leased {
            self.lease_expiries = self.lease_expiries.saturating_add(1);
            if self.lease_expiries >= max_lease_expiries {
                self.status = MessageStatus::PermanentFailure;
                self.status_reason = Some(lease_expiries_reason(self.lease_expiries));
                self.leased_until = None;
                self.next_retry_after = None;
                return Ok(Leasing::GaveUp);
            }
        }
        self.status = MessageStatus::Leased;
        self.leased_until = Some(now + lease_period);
        Ok(Leasing::Leased)
    }

    /// Computes where a leased message goes once its dispatch ended.
    ///
    /// Sent and failed dispatches count an attempt; an inhibited one does not (nothing was
    /// attempted). A retryable failure is retried after the retry interval, or later if the
    /// receiver asked for later, until the attempts reach the maximum.
    ///
    /// # Errors
    /// [`IllegalTransition`] unless the message is leased.
    pub fn complete(
        &self,
        completion: &Completion,
        now: DateTime<Utc>,
        policy: RetryPolicy,
    ) -> Result<StatusChange, IllegalTransition> {
        if self.status != MessageStatus::Leased {
            return Err(self.refuse("complete a dispatch"));
        }
        let attempts = self.attempt_count.saturating_add(1);
        let (status, status_reason, attempt_count, next_retry_after) = match completion {
            Completion::Sent => (MessageStatus::Sent, None, attempts, None),
            Completion::Inhibited { reason } => (
                MessageStatus::Inhibited,
                Some(reason.clone()),
                self.attempt_count,
                None,
            ),
            Completion::Failed {
                reason,
                retryable: true,
                retry_after,
            } if attempts < policy.max_attempts => {
                let earliest = now + policy.retry_interval;
                let next = retry_after.map_or(earliest, |asked| asked.max(earliest));
                (
                    MessageStatus::TemporaryFailure,
                    Some(reason.clone()),
                    attempts,
                    Some(next),
                )
            }
            Completion::Failed {
                reason,
                retryable: true,
                ..
            } => (
                MessageStatus::PermanentFailure,
                Some(format!("{reason} (gave up after {attempts} attempts)")),
                attempts,
                None,
            ),
            Completion::Failed {
                reason,
                retryable: false,
                ..
            } => (
                MessageStatus::PermanentFailure,
                Some(reason.clone()),
                attempts,
                None,
            ),
        };
        Ok(StatusChange {
            id: self.id,
            lease: self.leased_until,
            status,
            status_reason,
            attempt_count,
            next_retry_after,
            at: now,
        })
    }

    /// Computes the inhibition of a message that has not reached a final state (its recipient
    /// was deleted or opted out).
    ///
    /// # Errors
    /// [`IllegalTransition`] when the message is already sent, failed permanently or inhibited.
    pub fn inhibit(
        &self,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<StatusChange, IllegalTransition> {
        if self.status.is_final() {
            return Err(self.refuse("be inhibited"));
        }
        Ok(StatusChange {
            id: self.id,
            lease: None,
            status: MessageStatus::Inhibited,
            status_reason: Some(reason.to_owned()),
            attempt_count: self.attempt_count,
            next_retry_after: None,
            at: now,
        })
    }

    /// Moves the lease a holder still holds (`leased_until == lease`) to end at `until`.
    ///
    /// # Errors
    /// [`IllegalTransition`] unless the message is leased with exactly that lease (it was
    /// completed, given back, or taken over by another notifier after it expired).
    pub fn extend_lease(
        &mut self,
        lease: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<(), IllegalTransition> {
        if self.status != MessageStatus::Leased || self.leased_until != Some(lease) {
            return Err(self.refuse("have its lease extended"));
        }
        self.leased_until = Some(until);
        Ok(())
    }

    /// Gives back a lease its holder still holds without dispatching the message: it is
    /// pending again, or a temporary failure when it was attempted before (so leasable at
    /// once either way); no attempt is counted and its reason and retry time stay.
    ///
    /// # Errors
    /// [`IllegalTransition`] unless the message is leased with exactly that lease.
    pub fn give_back(&mut self, lease: DateTime<Utc>) -> Result<(), IllegalTransition> {
        if self.status != MessageStatus::Leased || self.leased_until != Some(lease) {
            return Err(self.refuse("be given back"));
        }
        self.status = if self.attempt_count == 0 {
            MessageStatus::Pending
        } else {
            MessageStatus::TemporaryFailure
        };
        self.status_reason = Some(GIVEN_BACK_REASON.to_owned());
        self.leased_until = None;
        Ok(())
    }

    /// Holds a pending message back until `until` instead of leasing it (its recipient and
    /// method reached the throttle's limit for the window): it stays pending, not leasable
    /// before `until`, with `reason` saying why. Its `updated_at` stays, so the wait counts
    /// in its `queued_seconds` once leased.
    ///
    /// # Errors
    /// [`IllegalTransition`] unless the message is pending.
    pub fn hold_back(
        &mut self,
        until: DateTime<Utc>,
        reason: impl Into<String>,
    ) -> Result<(), IllegalTransition> {
        if self.status != MessageStatus::Pending {
            return Err(self.refuse("be held back"));
        }
        self.next_retry_after = Some(until);
        self.status_reason = Some(reason.into());
        Ok(())
    }

    /// Applies a computed change.
    ///
    /// # Errors
    /// [`IllegalTransition`] when the change is for another message, the message is already
    /// final, or the change completes a lease the message no longer holds (a stale write-back
    /// from a notifier whose lease was taken over).
    pub fn apply(&mut self, change: &StatusChange) -> Result<(), IllegalTransition> {
        let stale_lease = change.lease.is_some()
            && (self.status != MessageStatus::Leased || self.leased_until != change.lease);
        if change.id != self.id || self.status.is_final() || stale_lease {
            return Err(self.refuse("take a new status"));
        }
        self.status = change.status;
        self.status_reason.clone_from(&change.status_reason);
        self.attempt_count = change.attempt_count;
        self.next_retry_after = change.next_retry_after;
        self.leased_until = None;
        self.updated_at = change.at;
        Ok(())
    }

    fn refuse(&self, action: &'static str) -> IllegalTransition {
        IllegalTransition {
            id: self.id,
            status: self.status,
            action,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::Labels;

    const POLICY: RetryPolicy = RetryPolicy {
        max_attempts: 3,
        retry_interval: Duration::minutes(5),
    };

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap()
    }

    fn message() -> Message {
        let user = UserId::from_uuid(Uuid::nil());
        Message {
            id: MessageId::random(),
            template_id: crate::catalogue::TEST_NOTIFICATION,
            recipient: user,
            method: Method::Webhook,
            status: MessageStatus::Pending,
            status_reason: None,
            attempt_count: 0,
            payload: Payload {
                version: Payload::VERSION.into(),
                notification_name: "Test Notification".into(),
                notification_template_id: crate::catalogue::TEST_NOTIFICATION,
                user_id: user,
                user_email: "a@b.io".into(),
                user_name: "a".into(),
                user_username: "a".into(),
                actions: vec![],
                labels: Labels::new(),
                data: None,
                targets: vec![],
            },
            targets: vec![],
            created_by: "test".into(),
            created_at: t0(),
            updated_at: t0(),
            leased_until: None,
            next_retry_after: None,
            queued_seconds: 0.0,
            lease_expiries: 0,
            dedupe_hash: None,
            digest: false,
        }
    }

    fn fail(retryable: bool) -> Completion {
        Completion::Failed {
            reason: "boom".into(),
            retryable,
            retry_after: None,
        }
    }

    fn leased(at: DateTime<Utc>) -> Message {
        let mut m = message();
        m.lease(at, Duration::minutes(2), POLICY.max_attempts, 3)
            .unwrap();
        m
    }

    #[test]
    fn lease_sets_the_lease_and_records_the_wait() {
        let mut m = message();
        let leasing = m
            .lease(t0() + Duration::seconds(3), Duration::minutes(2), 3, 3)
            .unwrap();
        assert_eq!(leasing, Leasing::Leased);
        assert_eq!(m.status, MessageStatus::Leased);
        assert_eq!(m.leased_until, Some(t0() + Duration::seconds(123)));
        assert_eq!(m.queued_seconds, 3.0);
    }

    #[test]
    fn success_is_sent_and_counts_an_attempt() {
        let m = leased(t0());
        let change = m.complete(&Completion::Sent, t0(), POLICY).unwrap();
        assert_eq!(change.status, MessageStatus::Sent);
        assert_eq!(change.attempt_count, 1);
        assert_eq!(change.status_reason, None);
    }

    #[test]
    fn retryable_failure_waits_the_retry_interval() {
        let m = leased(t0());
        let change = m.complete(&fail(true), t0(), POLICY).unwrap();
        assert_eq!(change.status, MessageStatus::TemporaryFailure);
        assert_eq!(change.next_retry_after, Some(t0() + Duration::minutes(5)));
        assert_eq!(change.status_reason.as_deref(), Some("boom"));
    }

    #[test]
    fn retry_after_later_than_the_interval_is_honoured_and_earlier_is_not() {
        let m = leased(t0());
        let later = t0() + Duration::hours(1);
        let asked_later = Completion::Failed {
            reason: "429".into(),
            retryable: true,
            retry_after: Some(later),
        };
        assert_eq!(
            m.complete(&asked_later, t0(), POLICY)
                .unwrap()
                .next_retry_after,
            Some(later)
        );
        let asked_sooner = Completion::Failed {
            reason: "429".into(),
            retryable: true,
            retry_after: Some(t0() + Duration::seconds(1)),
        };
        assert_eq!(
            m.complete(&asked_sooner, t0(), POLICY)
                .unwrap()
                .next_retry_after,
            Some(t0() + Duration::minutes(5))
        );
    }

    #[test]
    fn the_max_th_retryable_failure_is_permanent() {
        let mut m = leased(t0());
        m.attempt_count = POLICY.max_attempts - 1;
        let change = m.complete(&fail(true), t0(), POLICY).unwrap();
        assert_eq!(change.status, MessageStatus::PermanentFailure);
        assert_eq!(change.attempt_count, POLICY.max_attempts);
        assert!(
            change
                .status_reason
                .unwrap()
                .contains("gave up after 3 attempts")
        );
    }

    #[test]
    fn a_permanent_error_is_permanent_at_once() {
        let change = leased(t0()).complete(&fail(false), t0(), POLICY).unwrap();
        assert_eq!(change.status, MessageStatus::PermanentFailure);
        assert_eq!(change.attempt_count, 1);
    }

    #[test]
    fn inhibition_does_not_count_an_attempt() {
        let change = leased(t0())
            .complete(
                &Completion::Inhibited {
                    reason: "disabled".into(),
                },
                t0(),
                POLICY,
            )
            .unwrap();
        assert_eq!(change.status, MessageStatus::Inhibited);
        assert_eq!(change.attempt_count, 0);
    }

    #[test]
    fn only_a_leased_message_can_complete() {
        let err = message()
            .complete(&Completion::Sent, t0(), POLICY)
            .unwrap_err();
        assert_eq!(err.status, MessageStatus::Pending);
        assert!(
            err.to_string()
                .contains("cannot complete a dispatch while pending")
        );
    }

    #[test]
    fn a_live_lease_is_not_leasable_and_an_expired_one_is_without_counting() {
        let mut m = leased(t0());
        assert!(!m.is_leasable(t0() + Duration::minutes(1), 3));
        assert!(
            m.lease(t0() + Duration::minutes(1), Duration::minutes(2), 3, 3)
                .is_err()
        );
        let later = t0() + Duration::minutes(2) + Duration::milliseconds(1);
        assert_eq!(
            m.lease(later, Duration::minutes(2), 3, 3).unwrap(),
            Leasing::Leased
        );
        assert_eq!(m.attempt_count, 0);
        assert_eq!(m.lease_expiries, 1);
        assert_eq!(m.leased_until, Some(later + Duration::minutes(2)));
    }

    #[test]
    fn the_nth_expired_lease_fails_the_message_instead_of_leasing_it_again() {
        let mut m = leased(t0());
        let mut now = t0();
        for expiries in 1..3 {
            now += Duration::minutes(3);
            assert_eq!(
                m.lease(now, Duration::minutes(2), 5, 3).unwrap(),
                Leasing::Leased
            );
            assert_eq!(m.lease_expiries, expiries);
        }
        now += Duration::minutes(3);

        assert_eq!(
            m.lease(now, Duration::minutes(2), 5, 3).unwrap(),
            Leasing::GaveUp
        );

        assert_eq!(m.status, MessageStatus::PermanentFailure);
        assert_eq!(m.lease_expiries, 3);
        assert_eq!(m.attempt_count, 0);
        assert_eq!(m.leased_until, None);
        assert_eq!(m.updated_at, now);
        let reason = m.status_reason.clone().unwrap();
        assert!(reason.contains("lease expired 3 times"), "{reason}");
        assert!(!m.is_leasable(now + Duration::days(1), 5));
    }

    #[test]
    fn a_lease_after_a_completed_dispatch_counts_no_expiry() {
        let mut m = leased(t0());
        let change = m.complete(&fail(true), t0(), POLICY).unwrap();
        m.apply(&change).unwrap();
        m.lease(t0() + Duration::minutes(5), Duration::minutes(2), 3, 1)
            .unwrap();
        assert_eq!(m.status, MessageStatus::Leased);
        assert_eq!(m.lease_expiries, 0);
    }

    #[test]
    fn temporary_failure_is_leasable_only_after_its_retry_time() {
        let mut m = leased(t0());
        let change = m.complete(&fail(true), t0(), POLICY).unwrap();
        m.apply(&change).unwrap();
        assert!(!m.is_leasable(t0() + Duration::minutes(4), 3));
        assert!(m.is_leasable(t0() + Duration::minutes(5), 3));
    }

    #[test]
    fn final_states_refuse_everything() {
        for status in [
            MessageStatus::Sent,
            MessageStatus::PermanentFailure,
            MessageStatus::Inhibited,
        ] {
            let mut m = message();
            m.status = status;
            assert!(!m.is_leasable(t0() + Duration::days(1), 3));
            assert!(m.inhibit("x", t0()).is_err());
            let change = StatusChange {
                id: m.id,
                lease: None,
                status: MessageStatus::Sent,
                status_reason: None,
                attempt_count: 1,
                next_retry_after: None,
                at: t0(),
            };
            assert!(m.apply(&change).is_err(), "{status}");
        }
    }

    #[test]
    fn a_change_for_a_lease_taken_over_is_refused() {
        let mut m = leased(t0());
        let stale = m.complete(&Completion::Sent, t0(), POLICY).unwrap();
        let takeover = t0() + Duration::minutes(3);
        m.lease(takeover, Duration::minutes(2), 3, 3).unwrap();
        let err = m.apply(&stale).unwrap_err();
        assert_eq!(err.action, "take a new status");
        assert_eq!(m.status, MessageStatus::Leased);
        let current = m.complete(&Completion::Sent, takeover, POLICY).unwrap();
        m.apply(&current).unwrap();
        assert_eq!(m.status, MessageStatus::Sent);
    }

    #[test]
    fn a_held_lease_is_extended_and_a_lease_taken_over_is_not() {
        let mut m = leased(t0());
        let lease = m.leased_until.unwrap();
        let later = lease + Duration::minutes(2);
        m.extend_lease(lease, later).unwrap();
        assert_eq!(m.leased_until, Some(later));
        assert_eq!(m.status, MessageStatus::Leased);
        // The old lease is no longer the one held.
        let err = m
            .extend_lease(lease, later + Duration::minutes(1))
            .unwrap_err();
        assert_eq!(err.action, "have its lease extended");
        assert_eq!(m.leased_until, Some(later));
        // A completion computed after the extension completes the extended lease.
        let change = m.complete(&Completion::Sent, t0(), POLICY).unwrap();
        m.apply(&change).unwrap();
        assert!(m.extend_lease(later, later).is_err(), "a sent message");
    }

    #[test]
    fn a_lease_given_back_is_leasable_at_once_without_counting_an_attempt() {
        let mut fresh = leased(t0());
        let lease = fresh.leased_until.unwrap();
        fresh.give_back(lease).unwrap();
        assert_eq!(fresh.status, MessageStatus::Pending);
        assert_eq!(fresh.attempt_count, 0);
        assert_eq!(fresh.status_reason.as_deref(), Some(GIVEN_BACK_REASON));
        assert!(fresh.is_leasable(t0(), POLICY.max_attempts));
        assert!(fresh.give_back(lease).is_err(), "given back twice");

        let mut retried = leased(t0());
        let failed = retried.complete(&fail(true), t0(), POLICY).unwrap();
        retried.apply(&failed).unwrap();
        let due = failed.next_retry_after.unwrap();
        retried
            .lease(due, Duration::minutes(2), POLICY.max_attempts, 3)
            .unwrap();
        let lease = retried.leased_until.unwrap();
        let err = retried.give_back(lease + Duration::seconds(1)).unwrap_err();
        assert_eq!(err.action, "be given back", "another lease");
        retried.give_back(lease).unwrap();
        assert_eq!(retried.status, MessageStatus::TemporaryFailure);
        assert_eq!(retried.attempt_count, 1);
        assert_eq!(retried.status_reason.as_deref(), Some(GIVEN_BACK_REASON));
        assert!(retried.is_leasable(due, POLICY.max_attempts));
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in MessageStatus::ALL {
            assert_eq!(status.as_str().parse::<MessageStatus>().unwrap(), status);
        }
        assert!("done".parse::<MessageStatus>().is_err());
    }

    fn completion() -> impl Strategy<Value = Completion> {
        prop_oneof![
            Just(Completion::Sent),
            any::<bool>().prop_map(|retryable| Completion::Failed {
                reason: "x".into(),
                retryable,
                retry_after: None
            }),
            Just(Completion::Inhibited { reason: "x".into() }),
        ]
    }

    proptest! {
        /// Whatever happens, attempts never exceed the maximum, a message at the maximum is
        /// never leasable, and every completion lands in a non-leased state.
        #[test]
        fn attempts_never_exceed_the_maximum(outcomes in proptest::collection::vec(completion(), 1..20), max in 1u32..6) {
            let policy = RetryPolicy { max_attempts: max, retry_interval: Duration::minutes(5) };
            let mut m = message();
            let mut now = t0();
            for outcome in outcomes {
                now += Duration::hours(1);
                if m.lease(now, Duration::minutes(2), max, 3).is_err() {
                    prop_assert!(m.status.is_final() || m.attempt_count >= max);
                    break;
                }
                let change = m.complete(&outcome, now, policy).unwrap();
                prop_assert_ne!(change.status, MessageStatus::Leased);
                prop_assert!(change.attempt_count <= max);
                m.apply(&change).unwrap();
                if m.status == MessageStatus::TemporaryFailure {
                    prop_assert!(m.attempt_count < max);
                }
            }
        }
    }
}
