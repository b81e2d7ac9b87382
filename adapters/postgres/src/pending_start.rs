//! Where a plain lease starts reading the pending index (`messages_pending_idx`).
//!
//! Every lease turns the oldest pending messages into leased ones, and each such update leaves
//! the message's old entry behind in the pending index until a VACUUM removes it. PostgreSQL
//! marks those entries dead the first time a scan finds them so, but a scan from the index's
//! start still steps over every one of them: during a long drain each lease would walk past
//! everything leased since the table was last vacuumed, a cost that grows with the drain (and
//! with autovacuum off or behind, without bound).
//!
//! So the store remembers the oldest message its last lease took, and the next lease reads the
//! pending index from there (`(created_at, id) >= …`): nothing before it was leasable when that
//! lease ran. A message can still become pending behind that point: one enqueued with an older
//! creation time, one given back, a scheduled message or a retry time coming due, a row another
//! lease had locked and let go. This store forgets the point when it enqueues an older message,
//! gives a lease back or holds messages back in a throttled lease, does not move it after a
//! lease that skipped methods (their messages stay pending behind), and in any case reads the
//! index from its start again once [`RESCAN_INTERVAL`] of the lease's clock has passed since it
//! last did, so any other such message is leased at most that much later than from the start.
//! A lease taken in between by another store over the same database (another replica) is one
//! of those other cases.

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, TimeDelta, Utc};
use uuid::Uuid;

/// How long a lease may start from the remembered point before one reads the pending index
/// from its start again, by the lease's clock (`LeaseRequest::now`).
pub(crate) const RESCAN_INTERVAL: TimeDelta = TimeDelta::seconds(1);

/// A pending message's place in the pending index.
pub(crate) type Key = (DateTime<Utc>, Uuid);

/// The point the next plain lease starts from, shared by a store's clones.
#[derive(Debug, Default)]
pub(crate) struct PendingStart {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    mark: Option<Mark>,
    /// Counts the times the point was forgotten, so a lease that read it before cannot
    /// remember a point past a message that became pending meanwhile.
    forgotten: u64,
}

#[derive(Debug, Clone, Copy)]
struct Mark {
    key: Key,
    /// When the last lease that read the index from its start ran.
    scanned_at: DateTime<Utc>,
}

/// Where one lease starts: `key` (`None`: the index's start) and what it needs to move the
/// point afterwards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Start {
    pub(crate) key: Option<Key>,
    scanned_at: DateTime<Utc>,
    forgotten: u64,
}

impl PendingStart {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value, whole after any panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where a lease at `now` starts: the remembered point, or the index's start when there is
    /// none, when [`RESCAN_INTERVAL`] has passed since the last lease from the start, or when the
    /// clock went back.
    pub(crate) fn start(&self, now: DateTime<Utc>) -> Start {
        let state = self.state();
        let recent = state
            .mark
            .filter(|mark| mark.scanned_at <= now && now - mark.scanned_at < RESCAN_INTERVAL);
        Start {
            key: recent.map(|mark| mark.key),
            scanned_at: recent.map_or(now, |mark| mark.scanned_at),
            forgotten: state.forgotten,
        }
    }

    /// A lease from `start` took `oldest` first (`None`: it took nothing): the next one starts
    /// there. A lease from the index's start that took nothing leaves no point.
    pub(crate) fn leased(&self, start: Start, oldest: Option<Key>) {
        let mut state = self.state();
        if state.forgotten != start.forgotten {
            return;
        }
        match (oldest, start.key) {
            (Some(key), _) => {
                state.mark = Some(Mark {
                    key,
                    scanned_at: start.scanned_at,
                });
            }
            (None, None) => state.mark = None,
            (None, Some(_)) => {}
        }
    }

    /// Messages created at `created` were queued: a point past the oldest of them is forgotten.
    pub(crate) fn queued(&self, created: impl IntoIterator<Item = DateTime<Utc>>) {
        let mut state = self.state();
        let Some(mark) = state.mark else {
            return;
        };
        if created.into_iter().any(|at| at <= mark.key.0) {
            state.forget();
        }
    }

    /// Messages may have become pending anywhere in the index (given back, held back): the
    /// next lease reads it from the start.
    pub(crate) fn forget(&self) {
        self.state().forget();
    }
}

impl State {
    fn forget(&mut self) {
        self.mark = None;
        self.forgotten += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    fn key(seconds: i64) -> Key {
        (at(seconds), Uuid::from_u128(seconds as u128))
    }

    #[test]
    fn a_lease_starts_where_the_last_one_took_its_oldest_message() {
        let point = PendingStart::default();
        let first = point.start(at(0));
        assert_eq!(first.key, None);
        point.leased(first, Some(key(-50)));
        assert_eq!(point.start(at(0)).key, Some(key(-50)));
    }

    #[test]
    fn the_index_is_read_from_its_start_again_once_the_interval_passed() {
        let point = PendingStart::default();
        point.leased(point.start(at(0)), Some(key(-50)));
        let later = point.start(at(0) + RESCAN_INTERVAL - TimeDelta::milliseconds(1));
        assert_eq!(later.key, Some(key(-50)));
        // Leases from the point do not put the next read from the start off.
        point.leased(later, Some(key(-40)));
        assert_eq!(point.start(at(0) + RESCAN_INTERVAL).key, None);
    }

    #[test]
    fn a_clock_gone_back_reads_from_the_start() {
        let point = PendingStart::default();
        point.leased(point.start(at(10)), Some(key(-50)));
        assert_eq!(point.start(at(9)).key, None);
    }

    #[test]
    fn an_older_message_queued_or_a_lease_given_back_forgets_the_point() {
        let point = PendingStart::default();
        point.leased(point.start(at(0)), Some(key(-50)));
        point.queued([at(-10)]);
        assert_eq!(point.start(at(0)).key, Some(key(-50)), "a newer message");
        point.queued([at(-10), at(-50)]);
        assert_eq!(point.start(at(0)).key, None);

        point.leased(point.start(at(0)), Some(key(-50)));
        point.forget();
        assert_eq!(point.start(at(0)).key, None);
    }

    #[test]
    fn a_lease_that_ran_while_the_point_was_forgotten_remembers_nothing() {
        let point = PendingStart::default();
        point.leased(point.start(at(0)), Some(key(-50)));
        let running = point.start(at(0));
        point.queued([at(-60)]);
        point.leased(running, Some(key(-40)));
        assert_eq!(point.start(at(0)).key, None);
    }

    #[test]
    fn a_lease_from_the_start_that_took_nothing_leaves_no_point() {
        let point = PendingStart::default();
        point.leased(point.start(at(0)), Some(key(-50)));
        let from_point = point.start(at(0));
        point.leased(from_point, None);
        assert_eq!(
            point.start(at(0)).key,
            Some(key(-50)),
            "kept after a lease from it"
        );
        let from_start = point.start(at(0) + RESCAN_INTERVAL);
        point.leased(from_start, None);
        assert_eq!(point.start(at(0) + RESCAN_INTERVAL).key, None);
    }
}
