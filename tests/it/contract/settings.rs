//! The `SettingsStore` contract: the pause switch every replica reads.

use herald_tests::fixture::Backend;

async fn the_notifier_starts_unpaused(backend: Backend) {
    assert!(!backend.settings.notifier_paused().await.unwrap());
}

async fn pausing_reports_whether_the_flag_changed_and_every_replica_sees_it(backend: Backend) {
    let replica = backend.replica().await;

    assert!(backend.settings.set_notifier_paused(true).await.unwrap());
    assert!(replica.settings.notifier_paused().await.unwrap());
    assert!(
        !replica.settings.set_notifier_paused(true).await.unwrap(),
        "already paused"
    );

    assert!(replica.settings.set_notifier_paused(false).await.unwrap());
    assert!(!backend.settings.notifier_paused().await.unwrap());
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    the_notifier_starts_unpaused,
    pausing_reports_whether_the_flag_changed_and_every_replica_sees_it,
}
