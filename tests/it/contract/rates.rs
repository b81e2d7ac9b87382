//! The `RateCounter` contract: one fixed window per kind of request and user, shared by every
//! replica.

use chrono::TimeDelta;
use herald_domain::UserId;
use herald_tests::fixture::Backend;
use herald_tests::sample;

const SCOPE: &str = "custom_notification";

async fn a_window_counts_each_request_once(backend: Backend) {
    let ann = UserId::random();
    let start = sample::t0();

    for expected in 1..=3 {
        assert_eq!(
            backend.rates.count(SCOPE, ann, start).await.unwrap(),
            expected
        );
    }
}

async fn a_later_window_starts_again_and_an_earlier_one_counts_into_the_later(backend: Backend) {
    let ann = UserId::random();
    let start = sample::t0();
    backend.rates.count(SCOPE, ann, start).await.unwrap();
    backend.rates.count(SCOPE, ann, start).await.unwrap();

    let next = start + TimeDelta::minutes(1);
    assert_eq!(backend.rates.count(SCOPE, ann, next).await.unwrap(), 1);
    // A replica whose clock is behind still counts in the window held.
    assert_eq!(backend.rates.count(SCOPE, ann, start).await.unwrap(), 2);
    assert_eq!(backend.rates.count(SCOPE, ann, next).await.unwrap(), 3);
}

async fn users_and_scopes_are_counted_apart(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let start = sample::t0();
    backend.rates.count(SCOPE, ann, start).await.unwrap();
    backend.rates.count(SCOPE, ann, start).await.unwrap();

    assert_eq!(backend.rates.count(SCOPE, bob, start).await.unwrap(), 1);
    assert_eq!(backend.rates.count("other", ann, start).await.unwrap(), 1);
}

async fn replicas_count_into_one_window_even_at_once(backend: Backend) {
    let replica = backend.replica().await;
    let ann = UserId::random();
    let start = sample::t0();

    let counts = futures_util::future::join_all((0..20).map(|i| {
        let rates = if i % 2 == 0 {
            backend.rates.clone()
        } else {
            replica.rates.clone()
        };
        async move { rates.count(SCOPE, ann, start).await.unwrap() }
    }))
    .await;

    let mut counts = counts;
    counts.sort_unstable();
    assert_eq!(counts, (1..=20).collect::<Vec<u64>>());
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_window_counts_each_request_once,
    a_later_window_starts_again_and_an_earlier_one_counts_into_the_later,
    users_and_scopes_are_counted_apart,
    replicas_count_into_one_window_even_at_once,
}
