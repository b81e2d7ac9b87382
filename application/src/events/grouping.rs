//! Group enqueue: single events that arrive while a group is being stored wait for it and are
//! then planned and stored together, as one batch: one read per kind of lookup and one insert
//! (one commit, one wake-up) for all of them instead of one each. An event that arrives when
//! nothing runs goes at once, alone, so grouping never adds a wait of its own.
//!
//! The caller that finds no group running leads: a task of its own stores everything waiting,
//! group after group, until nothing is left waiting; the callers answered meanwhile return at
//! once. An event whose caller went away before any group took it is dropped unstored (its
//! caller was never answered); once taken, it is stored whatever its caller does.
//!
//! A batch is all or nothing, so a group that is refused (one event is bad, or a store failed)
//! is queued again event by event, each caller getting the answer its event would have had
//! alone.
//!
//! One group is stored at a time, and the next is planned only once it is stored: more groups
//! in flight, or planning the next while inserting one, made groups smaller and enqueueing
//! slower as a whole in the benchmark.

use std::sync::{Arc, PoisonError};

use tokio::sync::oneshot;

use super::event::CheckedEvent;
use super::planning::Refusal;
use super::{EnqueueResult, Events};
use crate::Error;

/// Single events waiting to be stored together, shared by every clone of an [`Events`].
#[derive(Debug, Default)]
pub(super) struct Group {
    waiting: std::sync::Mutex<Vec<Waiting>>,
    /// Held by the task storing groups; a caller that gets it with its event still waiting
    /// starts that task.
    leader: Arc<tokio::sync::Mutex<()>>,
}

type Waiting = (CheckedEvent, oneshot::Sender<Result<EnqueueResult, Error>>);

/// The most single events stored in one group.
const MAX_GROUP: usize = 500;

impl Events {
    /// Queues a single event with whatever others wait alongside it; answers as if it had been
    /// queued alone.
    pub(super) async fn enqueue_grouped(
        &self,
        event: CheckedEvent,
    ) -> Result<EnqueueResult, Error> {
        let (sender, mut result) = oneshot::channel();
        self.group
            .waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((event, sender));
        // Either a group takes this event and answers it while this caller waits to lead, or
        // this caller leads, its own event still waiting.
        let leader = tokio::select! {
            biased;
            answer = &mut result => return answered(answer),
            leader = Arc::clone(&self.group.leader).lock_owned() => leader,
        };
        let waiting = self.take_waiting();
        if !waiting.is_empty() {
            // On a task of its own: a caller that goes away (its client hung up) must not
            // take the other callers' events down with it.
            let events = self.clone();
            tokio::spawn(async move {
                let mut waiting = waiting;
                while !waiting.is_empty() {
                    let mut groups = waiting.into_iter().peekable();
                    while groups.peek().is_some() {
                        events
                            .enqueue_group(groups.by_ref().take(MAX_GROUP).collect())
                            .await;
                    }
                    waiting = events.take_waiting();
                }
                drop(leader);
            });
        }
        answered(result.await)
    }

    /// Every event waiting to be stored whose caller still waits for it.
    fn take_waiting(&self) -> Vec<Waiting> {
        let mut waiting = std::mem::take(
            &mut *self
                .group
                .waiting
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        waiting.retain(|(_, answer)| !answer.is_closed());
        waiting
    }

    /// Stores a group of single events as one batch and answers each. When one of its events
    /// refuses the batch, queues each event alone instead, so each caller gets its own answer;
    /// when the store is down, answers every caller so at once (trying each alone would only
    /// make each wait for the store again). An event whose caller has gone is not stored.
    async fn enqueue_group(&self, group: Vec<Waiting>) {
        let (events, senders): (Vec<CheckedEvent>, Vec<_>) = group.into_iter().unzip();
        if events.len() > 1 {
            match self
                .store(events.clone(), Refusal::default(), |_, err| err)
                .await
            {
                Ok(results) => {
                    for (sender, result) in senders.into_iter().zip(results) {
                        let _ = sender.send(Ok(result));
                    }
                    return;
                }
                Err(err @ Error::Unavailable(_)) => {
                    for sender in senders {
                        let _ = sender.send(Err(err.clone()));
                    }
                    return;
                }
                Err(_) => {}
            }
        }
        for (event, sender) in events.into_iter().zip(senders) {
            if sender.is_closed() {
                continue;
            }
            let _ = sender.send(self.enqueue_alone(event).await);
        }
    }

    /// A single event as a batch of one; a refusal names the event's field as it is.
    async fn enqueue_alone(&self, event: CheckedEvent) -> Result<EnqueueResult, Error> {
        let mut results = self
            .store(vec![event], Refusal::default(), |_, err| err)
            .await?;
        Ok(results.pop().unwrap_or_default())
    }
}

/// A grouped event's answer; a group that ended without answering (it cannot, short of a
/// panic) is an internal error.
fn answered(
    answer: Result<Result<EnqueueResult, Error>, oneshot::error::RecvError>,
) -> Result<EnqueueResult, Error> {
    answer.unwrap_or_else(|_| {
        Err(Error::Internal(
            "the group enqueue ended without a result".to_owned(),
        ))
    })
}
