//! The `PreferenceStore` contract: exactly the stored opt-out rows.

use std::collections::{BTreeMap, HashMap};

use herald_domain::UserId;
use herald_domain::catalogue::{TASK_IDLE, WORKSPACE_CREATED, WORKSPACE_DELETED};
use herald_tests::fixture::Backend;

async fn a_user_without_rows_has_no_preferences(backend: Backend) {
    let rows = backend
        .preferences
        .for_user(UserId::random())
        .await
        .unwrap();
    assert!(rows.is_empty());
}

async fn set_stores_the_given_rows_and_keeps_the_others(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let first = BTreeMap::from([(WORKSPACE_DELETED, true), (WORKSPACE_CREATED, false)]);
    backend.preferences.set(ann, &first).await.unwrap();
    backend
        .preferences
        .set(bob, &BTreeMap::from([(TASK_IDLE, true)]))
        .await
        .unwrap();

    let second = BTreeMap::from([(WORKSPACE_DELETED, false), (TASK_IDLE, false)]);
    backend.preferences.set(ann, &second).await.unwrap();

    let expected = BTreeMap::from([
        (WORKSPACE_DELETED, false),
        (WORKSPACE_CREATED, false),
        (TASK_IDLE, false),
    ]);
    assert_eq!(backend.preferences.for_user(ann).await.unwrap(), expected);
    let bobs = backend.preferences.for_user(bob).await.unwrap();
    assert_eq!(bobs, BTreeMap::from([(TASK_IDLE, true)]));
}

async fn lookup_returns_only_the_pairs_that_have_a_row(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let rows = BTreeMap::from([(WORKSPACE_DELETED, true), (WORKSPACE_CREATED, false)]);
    backend.preferences.set(ann, &rows).await.unwrap();

    let found = backend
        .preferences
        .lookup(&[
            (ann, WORKSPACE_DELETED),
            (ann, WORKSPACE_CREATED),
            (ann, TASK_IDLE),
            (bob, WORKSPACE_DELETED),
        ])
        .await
        .unwrap();

    let expected = HashMap::from([
        ((ann, WORKSPACE_DELETED), true),
        ((ann, WORKSPACE_CREATED), false),
    ]);
    assert_eq!(found, expected);
    assert!(backend.preferences.lookup(&[]).await.unwrap().is_empty());
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_user_without_rows_has_no_preferences,
    set_stores_the_given_rows_and_keeps_the_others,
    lookup_returns_only_the_pairs_that_have_a_row,
}
