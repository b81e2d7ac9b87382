//! Where the PostgreSQL store's plain lease starts in the pending index (`pending_start`): past
//! what earlier leases took, yet never past a message another replica's enqueue was still
//! committing when the lease ran.

use chrono::Duration;
use herald_application::ports::MessageQueue;
use herald_domain::UserId;
use herald_tests::postgres::TestDatabase;
use herald_tests::sample::{self, lease_request, t0};

#[tokio::test]
async fn a_message_another_replica_was_still_enqueueing_is_leased_next() {
    let database = TestDatabase::create().await;
    let notifier = &database.store;
    let api = database.replica().await;
    let user = UserId::random();
    let queued: Vec<_> = (10..13)
        .map(|second| sample::new_message(user, t0() + Duration::seconds(second)))
        .collect();
    notifier.enqueue(&queued).await.unwrap();
    let now = t0() + Duration::minutes(1);
    let first = notifier.lease(lease_request(now, 1)).await.unwrap();
    assert_eq!(first[0].id, queued[0].id);

    // Its request began a second before the message just leased was created, and it commits
    // only now, on another replica.
    let late = sample::new_message(user, t0() + Duration::seconds(9));
    api.enqueue(std::slice::from_ref(&late)).await.unwrap();
    let next = notifier.lease(lease_request(now, 1)).await.unwrap();

    assert_eq!(next[0].id, late.id);
}
