//! The embedding example (`examples/embedded.rs`) runs: a host directory and the host's own
//! pool, an event enqueued and delivered to the inbox by the running notifier.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use herald_domain::catalogue;

use crate::{example, support};

#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_example_delivers_an_event_to_the_host_users_inbox() {
    let db = support::TestDatabase::create().await;
    let unused = support::temp_dir("herald-embedded-unused");

    let notification = example::run(Some(&db.url), &unused).await;

    std::fs::remove_dir_all(&unused).ok();
    db.drop_now().await;
    let notification = notification.unwrap();
    assert_eq!(notification.template_id, catalogue::TEST_NOTIFICATION);
    assert!(!notification.title.is_empty());
    assert!(notification.read_at.is_none());
}
