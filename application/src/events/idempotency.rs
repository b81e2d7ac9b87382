//! Idempotency keys (DESIGN §10.3): an event carrying a key is queued once per caller and key
//! within [`IDEMPOTENCY_WINDOW`]; a later event with the same key and content gets the first
//! one's result again and queues nothing, one with other content is refused
//! ([`Error::Conflict`], naming the key).
//!
//! A key is stored with its event's result in the transaction that queues the event's messages
//! ([`MessageQueue::enqueue_claiming`]), so a result is never stored without its messages nor
//! the messages without the result. The content is compared by a fingerprint: a SHA-256 of
//! the event's fields (object keys in sorted order, so the order a client wrote them in does
//! not matter).
//!
//! A batch is first planned and claimed without reading its keys: a new key (the common case)
//! costs no read of its own. A key found claimed makes the store refuse the whole batch, and
//! the next round reads the keys' stored answers, replays those and stores the rest.
//!
//! Concurrent requests with one key: both may find the key free and plan their batch, but the
//! store's unique key lets one claim in; the other's claim waits for that transaction, finds
//! the key taken and stores nothing, and this use case then reads the winner's answer and
//! replays it. Only when the key keeps changing hands (it cannot within the window, short of
//! a purge racing the claim) does a caller get a 409 saying the key is in use.
//!
//! Within one batch (a batch request, or single events grouped together) a key given twice is
//! answered once: the later event gets the earlier one's result, or a 409 when their content
//! differs.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::event::CheckedEvent;
use super::planning::{Holders, Plan, Refusal};
use super::{EnqueueResult, Event, Events, TemplateRef, results};
use crate::Error;
use crate::ports::{CallerKey, IDEMPOTENCY_WINDOW, KeyClaim};

/// How many times a batch tries to claim its keys before answering that a key is in use: the
/// first try without looking the keys up, then up to three with their stored answers read.
const CLAIM_ATTEMPTS: usize = 4;

/// Why a keyed batch was not stored.
enum Failure {
    /// An event was refused: its index in the batch, and its error as it alone would have it.
    Refused(usize, Error),
    Other(Error),
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Other(err)
    }
}

impl From<crate::ports::StoreError> for Failure {
    fn from(err: crate::ports::StoreError) -> Self {
        Failure::Other(err.into())
    }
}

/// Where an event's result comes from.
enum Source {
    /// The stored answer of the key's first request.
    Replayed(EnqueueResult),
    /// Storing it now: its index among the events stored.
    Stored(usize),
    /// An earlier event of the same batch with the same key: its index in the batch.
    Repeats(usize),
}

impl Events {
    /// [`Events::store`] for a batch in which some events carry an idempotency key: events
    /// whose key holds an answer are replayed, the others planned and stored with their keys
    /// claimed.
    pub(super) async fn store_keyed(
        &self,
        events: Vec<CheckedEvent>,
        refusal: Refusal,
        name: impl FnOnce(usize, Error) -> Error,
    ) -> Result<Vec<EnqueueResult>, Error> {
        self.claim_rounds(events, refusal)
            .await
            .map_err(|failure| match failure {
                Failure::Refused(index, err) => name(index, err),
                Failure::Other(err) => err,
            })
    }

    /// Looks the keys up, then plans and stores the events without an answer, claiming their
    /// keys; again when a key was claimed meanwhile.
    async fn claim_rounds(
        &self,
        events: Vec<CheckedEvent>,
        refusal: Refusal,
    ) -> Result<Vec<EnqueueResult>, Failure> {
        let fingerprints: Vec<Option<String>> = events
            .iter()
            .map(|event| event.idempotency.as_ref().map(|_| fingerprint(event)))
            .collect();
        let mut keys: Vec<CallerKey> = events
            .iter()
            .filter_map(|event| event.idempotency.clone())
            .collect();
        keys.sort();
        keys.dedup();
        let refused_at = refusal.index().unwrap_or(events.len());
        let mut refusal = Some(refusal);
        for attempt in 0..CLAIM_ATTEMPTS {
            let now = self.ports.clock.now();
            // Most keys are new: the first try claims them without reading them first, and a
            // key found claimed sends the batch round again, reading the answers stored.
            let look_up = attempt > 0;
            let sources = self
                .sources(&events, &fingerprints, &keys, now, look_up)
                .await?;
            let positions: Vec<usize> = sources
                .iter()
                .enumerate()
                .filter_map(|(index, source)| matches!(source, Source::Stored(_)).then_some(index))
                .collect();
            let to_store: Vec<CheckedEvent> = positions
                .iter()
                .map(|&index| events[index].clone())
                .collect();
            // A refused event is not stored: only the events before it are in `events`.
            let planned_refusal = refusal
                .take()
                .unwrap_or_default()
                .moved(|_| positions.len());
            let plan = self
                .plan(to_store, planned_refusal, now, Holders::All)
                .await;
            let Plan {
                rows,
                events: plans,
                ..
            } = match plan {
                Ok(plan) => plan,
                Err((index, err)) => {
                    let index = positions.get(index).copied().unwrap_or(refused_at);
                    return Err(Failure::Refused(index, err));
                }
            };
            // Each key claimed, and the index among the stored events of the event it answers.
            let (claimed, claims): (Vec<usize>, Vec<KeyClaim>) = positions
                .iter()
                .enumerate()
                .filter_map(|(stored, &index)| {
                    let key = events[index].idempotency.clone()?;
                    let fingerprint = fingerprints[index].clone()?;
                    Some((stored, KeyClaim { key, fingerprint }))
                })
                .unzip();
            let answers = |outcomes: &[crate::ports::EnqueueOutcome]| -> Vec<String> {
                let Ok((results, _)) = results(&rows, &plans, outcomes) else {
                    return Vec::new();
                };
                claimed
                    .iter()
                    .filter_map(|stored| serde_json::to_string(&results[*stored]).ok())
                    .collect()
            };
            let Some(outcomes) = self
                .ports
                .queue
                .enqueue_claiming(&rows, &claims, now, &answers)
                .await?
            else {
                // Another request claimed a key meanwhile: its answer is read next round.
                refusal = Some(Refusal::default());
                continue;
            };
            let (stored, queued_any) = results(&rows, &plans, &outcomes)?;
            self.wake(queued_any).await;
            let mut answered: Vec<EnqueueResult> = Vec::with_capacity(sources.len());
            for source in sources {
                let result = match source {
                    Source::Replayed(result) => result,
                    Source::Stored(index) => stored.get(index).cloned().unwrap_or_default(),
                    Source::Repeats(index) => answered[index].clone(),
                };
                answered.push(result);
            }
            return Ok(answered);
        }
        let key = keys
            .first()
            .map(|key| key.key.to_string())
            .unwrap_or_default();
        Err(Failure::Other(Error::Conflict(format!(
            "idempotency key `{key}` is in use by a request still running; try again"
        ))))
    }

    /// Where each event's result comes from, given the answers stored for `keys` now (read
    /// when `look_up`, else taken to be none).
    async fn sources(
        &self,
        events: &[CheckedEvent],
        fingerprints: &[Option<String>],
        keys: &[CallerKey],
        now: DateTime<Utc>,
        look_up: bool,
    ) -> Result<Vec<Source>, Error> {
        let stored = if look_up {
            self.ports
                .queue
                .claimed_answers(keys, now - IDEMPOTENCY_WINDOW)
                .await?
        } else {
            vec![None; keys.len()]
        };
        let stored: HashMap<&CallerKey, _> = keys.iter().zip(stored).collect();
        let mut first: HashMap<&CallerKey, usize> = HashMap::new();
        let mut stored_count = 0;
        let mut sources = Vec::with_capacity(events.len());
        for (index, (event, fingerprint)) in events.iter().zip(fingerprints).enumerate() {
            let (Some(key), Some(fingerprint)) = (&event.idempotency, fingerprint) else {
                sources.push(Source::Stored(stored_count));
                stored_count += 1;
                continue;
            };
            if let Some(Some(answer)) = stored.get(key) {
                if answer.fingerprint != *fingerprint {
                    return Err(reused(key));
                }
                let result = serde_json::from_str(&answer.answer).map_err(|err| {
                    Error::Internal(format!("a stored idempotent answer is unreadable: {err}"))
                })?;
                sources.push(Source::Replayed(result));
            } else if let Some(&earlier) = first.get(key) {
                if fingerprints[earlier].as_ref() != Some(fingerprint) {
                    return Err(reused(key));
                }
                sources.push(Source::Repeats(earlier));
            } else {
                first.insert(key, index);
                sources.push(Source::Stored(stored_count));
                stored_count += 1;
            }
        }
        Ok(sources)
    }
}

/// The refusal of a key given again with other content.
fn reused(key: &CallerKey) -> Error {
    Error::Conflict(format!(
        "idempotency key `{}` was already used with a different event",
        key.key
    ))
}

/// The SHA-256 (hex) of everything an event asks for but its key: the compact JSON object of
/// its fields, keys in sorted order, streamed into the hash.
pub(super) fn fingerprint(event: &Event) -> String {
    let content = Fingerprinted {
        created_by: &event.created_by,
        data: &event.data,
        initiator: &event.initiator,
        labels: &event.labels,
        send_after: &event.send_after,
        subject: &event.subject,
        targets: &event.targets,
        template: match &event.template {
            TemplateRef::Id(id) => TemplateKey::Id(id),
            TemplateRef::Name(name) => TemplateKey::Name(name),
        },
    };
    let mut hash = Hashing(Sha256::new());
    if serde_json::to_writer(&mut hash, &content).is_err() {
        // Serializing these types into a hash cannot fail; were it to, the content could
        // not be told apart, which its debug form still can.
        hash.0.update(format!("{event:?}").as_bytes());
    }
    let mut hex = String::with_capacity(64);
    for byte in hash.0.finalize() {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// What [`fingerprint`] hashes: the fields in sorted order, so the bytes are those of the
/// event as a JSON object with sorted keys (as fingerprints stored earlier were computed).
#[derive(Serialize)]
struct Fingerprinted<'a> {
    created_by: &'a str,
    data: &'a Option<serde_json::Value>,
    initiator: &'a Option<herald_domain::UserId>,
    labels: &'a herald_domain::Labels,
    send_after: &'a Option<DateTime<Utc>>,
    subject: &'a Option<herald_domain::UserId>,
    targets: &'a [uuid::Uuid],
    template: TemplateKey<'a>,
}

/// A template as the fingerprint names it: `{"id": …}` or `{"name": …}`.
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum TemplateKey<'a> {
    Id(&'a herald_domain::TemplateId),
    Name(&'a str),
}

/// Serialized bytes written straight into the hash.
struct Hashing(Sha256);

impl std::io::Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use herald_domain::{TemplateId, UserId};

    use super::*;

    /// The fingerprint as it was first defined: the SHA-256 of the event's fields as a JSON
    /// value. Keys claimed before must keep matching their repeats.
    fn as_value_fingerprint(event: &Event) -> String {
        let template = match &event.template {
            TemplateRef::Id(id) => serde_json::json!({ "id": id }),
            TemplateRef::Name(name) => serde_json::json!({ "name": name }),
        };
        let content = serde_json::json!({
            "template": template,
            "subject": event.subject,
            "initiator": event.initiator,
            "labels": event.labels,
            "data": event.data,
            "targets": event.targets,
            "created_by": event.created_by,
            "send_after": event.send_after,
        });
        let digest = Sha256::digest(content.to_string().as_bytes());
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    #[test]
    fn fingerprints_are_those_of_the_event_as_a_json_value_with_sorted_keys() {
        let mut full = Event::new(TemplateId::random());
        full.subject = Some(UserId::random());
        full.initiator = Some(UserId::random());
        full.labels.insert("zeta".into(), "last \"quoted\"".into());
        full.labels.insert("alpha".into(), "first".into());
        full.data = Some(serde_json::json!({"b": [1, 2.5, null], "a": {"y": true, "x": "é"}}));
        full.targets = vec![uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
        full.created_by = "host".into();
        full.send_after = Some(chrono::Utc::now());
        let mut named = Event::new(TemplateId::random());
        named.template = TemplateRef::Name("Workspace Deleted".into());

        for event in [&full, &named] {
            assert_eq!(fingerprint(event), as_value_fingerprint(event));
        }
        assert_ne!(fingerprint(&full), fingerprint(&named));
    }
}
