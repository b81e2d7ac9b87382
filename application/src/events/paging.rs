//! A single event planned and stored a page of role holders at a time.
//!
//! A role audience can hold every user of a deployment. Planned whole, its holders, their
//! rows with rendered payloads and the insert's arrays would all be held at once. Here the
//! holders are read [`Events::with_audience_page`] at a time in id order (keyset pagination,
//! [`UserDirectory::with_any_role_page`](crate::ports::UserDirectory::with_any_role_page)),
//! each page is planned (preferences read for that page only) and its rows handed to one
//! [`EnqueueTransaction`](crate::ports::EnqueueTransaction), then dropped before the next
//! page is read. What is kept across pages grows only by a recipient id per row and the
//! skipped recipients: the answer lists every message and every skip.
//!
//! The event stays all or nothing: every page goes into the one transaction, committed after
//! the last page, so a failure on any page (a store down, a payload that cannot be rendered)
//! queues nothing. Every page is planned with the same enqueue time, so the dedupe hashes and
//! timestamps are those of one event. An audience that fits in one page is stored as any batch
//! is, with one `enqueue` and no transaction around it.

use herald_domain::UserId;

use super::planning::{EventPlan, Holders, Plan, Refusal};
use super::{EnqueueResult, Events, event::CheckedEvent, results_by_recipient};
use crate::Error;

impl Events {
    /// Plans and stores one event (without an idempotency key) a page of role holders at a
    /// time, all or nothing, and wakes the notifiers; `name` words a refusal from its index.
    pub(super) async fn store_paged(
        &self,
        event: CheckedEvent,
        name: impl Fn(usize, Error) -> Error,
    ) -> Result<Vec<EnqueueResult>, Error> {
        let now = self.ports.clock.now();
        let page = |after: Option<UserId>| Holders::Page {
            after,
            limit: self.audience_page,
        };
        let first = self
            .plan(vec![event.clone()], Refusal::default(), now, page(None))
            .await
            .map_err(|(index, err)| name(index, err))?;
        if first.next_page.is_none() {
            return self.store_plan(first).await;
        }
        let mut transaction = self.ports.queue.begin_enqueue().await?;
        let mut recipients: Vec<UserId> = Vec::new();
        let mut skipped = Vec::new();
        let mut plan = first;
        loop {
            let Plan {
                rows,
                events,
                next_page,
            } = plan;
            skipped.extend(events.into_iter().flat_map(|event| event.skipped));
            if !rows.is_empty() {
                recipients.extend(rows.iter().map(|row| row.recipient));
                transaction.add(rows).await?;
            }
            let Some(after) = next_page else {
                break;
            };
            plan = self
                .plan(
                    vec![event.clone()],
                    Refusal::default(),
                    now,
                    page(Some(after)),
                )
                .await
                .map_err(|(index, err)| name(index, err))?;
        }
        let outcomes = transaction.commit().await?;
        let count = recipients.len();
        let planned = [EventPlan {
            rows: count,
            skipped,
        }];
        let (results, queued_any) =
            results_by_recipient(recipients.into_iter(), count, &planned, &outcomes)?;
        self.wake(queued_any).await;
        Ok(results)
    }
}
