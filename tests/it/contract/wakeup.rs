//! The `Wakeup` contract: a wake reaches every listener, on every replica, even one that was
//! busy when it came; a resume is told apart from an enqueue's wake.

use herald_application::ports::Wake;
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
        assert_eq!(within("the wake-up", listener.wait()).await, Wake::Queued);
    }
}

async fn a_resume_wakes_every_listener_on_every_replica_as_a_resume(backend: Backend) {
    let replica = backend.replica().await;
    let listeners = [backend.wakeup.subscribe(), replica.wakeup.subscribe()];

    backend.wakeup.wake_resumed().await.unwrap();

    for listener in &listeners {
        assert_eq!(within("the resume", listener.wait()).await, Wake::Resumed);
        assert!(
            !is_ready_now(listener.wait()).await,
            "one resume woke it twice"
        );
    }
}

async fn a_resume_among_wakes_is_not_lost(backend: Backend) {
    let listener = backend.wakeup.subscribe();

    backend.wakeup.wake().await.unwrap();
    backend.wakeup.wake_resumed().await.unwrap();
    backend.wakeup.wake().await.unwrap();

    // However the three arrive and merge, the resume is reported once, and a later wake
    // is an enqueue's again.
    let mut woken = vec![within("the wake-ups", listener.wait()).await];
    while woken.iter().all(|wake| *wake != Wake::Resumed) {
        woken.push(within("the resume", listener.wait()).await);
    }
    while is_ready_now(listener.wait()).await {}
    backend.wakeup.wake().await.unwrap();
    assert_eq!(within("a later wake", listener.wait()).await, Wake::Queued);
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_wake_is_kept_for_a_listener_that_was_not_waiting,
    every_listener_on_every_replica_is_woken,
    a_resume_wakes_every_listener_on_every_replica_as_a_resume,
    a_resume_among_wakes_is_not_lost,
}
