//! The `Wakeup` contract: a wake reaches every listener, on every replica, even one that was
//! busy when it came.

use herald_tests::fixture::{Backend, is_ready_now, within};

async fn a_wake_is_kept_for_a_listener_that_was_not_waiting(backend: Backend) {
    let listener = backend.wakeup.subscribe();
    assert!(
        !is_ready_now(listener.wait()).await,
        "woken before any wake"
    );

    backend.wakeup.wake().await.unwrap();

    within("the wake-up", listener.wait()).await;
    assert!(
        !is_ready_now(listener.wait()).await,
        "one wake woke it twice"
    );
}

async fn every_listener_on_every_replica_is_woken(backend: Backend) {
    let replica = backend.replica().await;
    let listeners = [
        backend.wakeup.subscribe(),
        backend.wakeup.subscribe(),
        replica.wakeup.subscribe(),
    ];

    backend.wakeup.wake().await.unwrap();

    for listener in &listeners {
        within("the wake-up", listener.wait()).await;
    }
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_wake_is_kept_for_a_listener_that_was_not_waiting,
    every_listener_on_every_replica_is_woken,
}
