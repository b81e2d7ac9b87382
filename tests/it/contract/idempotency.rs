//! The idempotency half of the `MessageQueue` contract: keys claimed with a batch in one
//! transaction, their answers, the 24-hour window, concurrent claims, and the purge.

use chrono::Duration;
use herald_application::ports::{
    CallerKey, EnqueueOutcome, IDEMPOTENCY_WINDOW, KeyClaim, NewMessage, StoredAnswer,
};
use herald_domain::{DedupeHash, IdempotencyKey, UserId};
use herald_postgres::PURGE_CHUNK_ROWS;
use herald_tests::fixture::{Backend, within};
use herald_tests::sample::{self, t0};

fn key(caller: Option<UserId>, key: &str) -> CallerKey {
    CallerKey {
        caller,
        key: IdempotencyKey::parse(key).unwrap(),
    }
}

fn claim(key: &CallerKey, fingerprint: &str) -> KeyClaim {
    KeyClaim {
        key: key.clone(),
        fingerprint: fingerprint.to_owned(),
    }
}

/// An answer naming how many of the batch's messages were queued, one per claim.
fn counted(claims: usize) -> impl Fn(&[EnqueueOutcome]) -> Vec<String> + Send + Sync {
    move |outcomes| {
        let queued = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, EnqueueOutcome::Queued(_)))
            .count();
        vec![format!("{{\"queued\": {queued}}}"); claims]
    }
}

fn messages(count: usize) -> Vec<NewMessage> {
    let recipient = UserId::random();
    (0..count)
        .map(|_| sample::new_message(recipient, t0()))
        .collect()
}

async fn answer(
    backend: &Backend,
    key: &CallerKey,
    at: chrono::DateTime<chrono::Utc>,
) -> Option<StoredAnswer> {
    let mut answers = backend
        .queue
        .claimed_answers(std::slice::from_ref(key), at - IDEMPOTENCY_WINDOW)
        .await
        .unwrap();
    assert_eq!(answers.len(), 1);
    answers.pop().unwrap()
}

async fn is_stored(backend: &Backend, message: &NewMessage) -> bool {
    backend.queue.get(message.id).await.unwrap().is_some()
}

async fn a_claimed_key_holds_its_answer_and_its_batch_is_stored(backend: Backend) {
    let order = key(Some(UserId::random()), "order-42");
    let batch = messages(2);

    let outcomes = backend
        .queue
        .enqueue_claiming(&batch, &[claim(&order, "f1")], t0(), &counted(1))
        .await
        .unwrap();

    let expected: Vec<_> = batch.iter().map(|m| EnqueueOutcome::Queued(m.id)).collect();
    assert_eq!(outcomes, Some(expected));
    assert!(is_stored(&backend, &batch[0]).await && is_stored(&backend, &batch[1]).await);
    let stored = answer(&backend, &order, t0())
        .await
        .expect("the key is claimed");
    assert_eq!(stored.fingerprint, "f1");
    let answer: serde_json::Value = serde_json::from_str(&stored.answer).unwrap();
    assert_eq!(answer, serde_json::json!({"queued": 2}));
}

async fn a_key_claimed_within_the_window_stores_nothing_again(backend: Backend) {
    let caller = UserId::random();
    let order = key(Some(caller), "order-42");
    let first = messages(1);
    let again = messages(1);
    backend
        .queue
        .enqueue_claiming(&first, &[claim(&order, "f1")], t0(), &counted(1))
        .await
        .unwrap();

    let later = t0() + IDEMPOTENCY_WINDOW - Duration::seconds(1);
    let outcome = backend
        .queue
        .enqueue_claiming(&again, &[claim(&order, "f2")], later, &counted(1))
        .await
        .unwrap();

    assert_eq!(outcome, None);
    assert!(!is_stored(&backend, &again[0]).await);
    let stored = answer(&backend, &order, later).await.unwrap();
    assert_eq!(stored.fingerprint, "f1");
}

/// A keyed batch one of whose messages was queued before (same dedupe hash): the key is
/// claimed, the other message stored, and the answer is worded from the real outcomes, not
/// from every message queued.
async fn a_claimed_key_answers_the_outcomes_of_a_batch_holding_a_duplicate(backend: Backend) {
    let hash = DedupeHash::from_hex(format!("{:064x}", rand_suffix()));
    let mut earlier = messages(1);
    earlier[0].dedupe_hash = Some(hash.clone());
    backend.queue.enqueue(&earlier).await.unwrap();
    let order = key(Some(UserId::random()), "order-7");
    let mut batch = messages(2);
    batch[1].dedupe_hash = Some(hash);

    let outcomes = backend
        .queue
        .enqueue_claiming(&batch, &[claim(&order, "f1")], t0(), &counted(1))
        .await
        .unwrap();

    assert_eq!(
        outcomes,
        Some(vec![
            EnqueueOutcome::Queued(batch[0].id),
            EnqueueOutcome::Duplicate
        ])
    );
    assert!(is_stored(&backend, &batch[0]).await);
    assert!(!is_stored(&backend, &batch[1]).await);
    let stored = answer(&backend, &order, t0())
        .await
        .expect("the key is claimed");
    let answer: serde_json::Value = serde_json::from_str(&stored.answer).unwrap();
    assert_eq!(answer, serde_json::json!({"queued": 1}));
}

/// A keyed digest row joins the digest already open for its template, recipient and method,
/// as an enqueue's would, and the key's answer names that digest.
async fn a_keyed_digest_row_joins_the_open_digest(backend: Backend) {
    let recipient = UserId::random();
    let digest_row = || {
        let mut row = sample::new_message(recipient, t0());
        let labels = herald_domain::Labels::from([("name".to_owned(), "ws".to_owned())]);
        row.payload.data = Some(herald_domain::digest::data(vec![
            herald_domain::digest::item(&labels, None),
        ]));
        row.send_after = Some(t0() + Duration::hours(1));
        row.digest = true;
        row
    };
    let opened = backend.queue.enqueue(&[digest_row()]).await.unwrap();
    let [EnqueueOutcome::Queued(open)] = opened[..] else {
        panic!("the digest was not opened: {opened:?}");
    };
    let order = key(Some(UserId::random()), "order-9");

    let outcomes = backend
        .queue
        .enqueue_claiming(&[digest_row()], &[claim(&order, "f1")], t0(), &counted(1))
        .await
        .unwrap();

    assert_eq!(outcomes, Some(vec![EnqueueOutcome::Queued(open)]));
    let digest = backend.queue.get(open).await.unwrap().expect("the digest");
    assert_eq!(
        herald_domain::digest::items(digest.payload.data.as_ref()).len(),
        2
    );
    assert!(answer(&backend, &order, t0()).await.is_some());
}

/// A number no other test's dedupe hash shares.
fn rand_suffix() -> u128 {
    uuid::Uuid::new_v4().as_u128()
}

async fn keys_are_per_caller(backend: Backend) {
    let ann = key(Some(UserId::random()), "order-42");
    let bob = key(Some(UserId::random()), "order-42");
    let host = key(None, "order-42");
    for (caller, fingerprint) in [(&ann, "ann"), (&bob, "bob"), (&host, "host")] {
        let outcome = backend
            .queue
            .enqueue_claiming(
                &messages(1),
                &[claim(caller, fingerprint)],
                t0(),
                &counted(1),
            )
            .await
            .unwrap();
        assert!(outcome.is_some(), "{fingerprint}'s key was taken");
    }
    assert_eq!(
        answer(&backend, &bob, t0()).await.unwrap().fingerprint,
        "bob"
    );
    assert_eq!(
        answer(&backend, &host, t0()).await.unwrap().fingerprint,
        "host"
    );
}

async fn a_key_claimed_before_the_window_is_claimed_anew(backend: Backend) {
    let order = key(Some(UserId::random()), "order-42");
    backend
        .queue
        .enqueue_claiming(&messages(1), &[claim(&order, "old")], t0(), &counted(1))
        .await
        .unwrap();
    let later = t0() + IDEMPOTENCY_WINDOW + Duration::seconds(1);
    assert_eq!(
        answer(&backend, &order, later).await,
        None,
        "an expired key still answers"
    );

    let again = messages(1);
    let outcome = backend
        .queue
        .enqueue_claiming(&again, &[claim(&order, "new")], later, &counted(1))
        .await
        .unwrap();

    assert!(outcome.is_some());
    assert!(is_stored(&backend, &again[0]).await);
    assert_eq!(
        answer(&backend, &order, later).await.unwrap().fingerprint,
        "new"
    );
}

async fn a_refused_batch_claims_no_key(backend: Backend) {
    let order = key(Some(UserId::random()), "order-42");
    let batch = messages(1);
    backend.queue.enqueue(&batch).await.unwrap();

    let refused = backend
        .queue
        .enqueue_claiming(&batch, &[claim(&order, "f1")], t0(), &counted(1))
        .await;

    assert!(
        refused.is_err(),
        "a batch with a message id already queued was stored"
    );
    assert_eq!(answer(&backend, &order, t0()).await, None);
}

async fn concurrent_claims_of_one_key_store_one_batch(backend: Backend) {
    let order = key(Some(UserId::random()), "order-42");
    let replica = backend.replica().await;
    let claimers: Vec<_> = (0..8)
        .map(|index| {
            let queue = if index % 2 == 0 {
                backend.queue.clone()
            } else {
                replica.queue.clone()
            };
            let order = order.clone();
            tokio::spawn(async move {
                let batch = messages(1);
                let fingerprint = format!("f{index}");
                let outcome = queue
                    .enqueue_claiming(&batch, &[claim(&order, &fingerprint)], t0(), &counted(1))
                    .await
                    .unwrap();
                (batch, fingerprint, outcome.is_some())
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for claimer in claimers {
        let (batch, fingerprint, won) = within("a claim", claimer).await.unwrap();
        if won {
            winners.push((batch, fingerprint));
        } else {
            losers.push(batch);
        }
    }

    assert_eq!(
        winners.len(),
        1,
        "one key was claimed {} times",
        winners.len()
    );
    let (batch, fingerprint) = &winners[0];
    assert!(is_stored(&backend, &batch[0]).await);
    for lost in &losers {
        assert!(
            !is_stored(&backend, &lost[0]).await,
            "a losing claim stored its batch"
        );
    }
    assert_eq!(
        answer(&backend, &order, t0()).await.unwrap().fingerprint,
        *fingerprint
    );
}

async fn purging_keys_deletes_only_those_claimed_before_the_cutoff(backend: Backend) {
    let caller = Some(UserId::random());
    let (old, fresh) = (key(caller, "old"), key(caller, "fresh"));
    for (claimed, at) in [(&old, t0()), (&fresh, t0() + Duration::hours(2))] {
        backend
            .queue
            .enqueue_claiming(&messages(1), &[claim(claimed, "f")], at, &counted(1))
            .await
            .unwrap();
    }

    let purged = backend
        .queue
        .purge_idempotency_keys(t0() + Duration::hours(1))
        .await
        .unwrap();

    assert_eq!(purged, 1);
    let now = t0() + Duration::hours(3);
    assert_eq!(answer(&backend, &old, now).await, None);
    assert!(answer(&backend, &fresh, now).await.is_some());
}

async fn purging_more_keys_than_one_chunk_deletes_them_all(backend: Backend) {
    let caller = Some(UserId::random());
    let count = usize::try_from(PURGE_CHUNK_ROWS).unwrap() * 2 + 7;
    let old: Vec<CallerKey> = (0..count)
        .map(|n| key(caller, &format!("old-{n}")))
        .collect();
    let claims: Vec<KeyClaim> = old.iter().map(|k| claim(k, "f")).collect();
    backend
        .queue
        .enqueue_claiming(&messages(count), &claims, t0(), &counted(count))
        .await
        .unwrap();
    let fresh = key(caller, "fresh");
    backend
        .queue
        .enqueue_claiming(
            &messages(1),
            &[claim(&fresh, "f")],
            t0() + Duration::hours(2),
            &counted(1),
        )
        .await
        .unwrap();

    let purged = backend
        .queue
        .purge_idempotency_keys(t0() + Duration::hours(1))
        .await
        .unwrap();

    assert_eq!(purged, count as u64);
    let now = t0() + Duration::hours(3);
    let left = backend
        .queue
        .claimed_answers(&old, now - IDEMPOTENCY_WINDOW)
        .await
        .unwrap();
    assert!(
        left.iter().all(Option::is_none),
        "the purge kept an old key"
    );
    assert!(answer(&backend, &fresh, now).await.is_some());
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_claimed_key_holds_its_answer_and_its_batch_is_stored,
    a_claimed_key_answers_the_outcomes_of_a_batch_holding_a_duplicate,
    a_keyed_digest_row_joins_the_open_digest,
    a_key_claimed_within_the_window_stores_nothing_again,
    keys_are_per_caller,
    a_key_claimed_before_the_window_is_claimed_anew,
    a_refused_batch_claims_no_key,
    concurrent_claims_of_one_key_store_one_batch,
    purging_keys_deletes_only_those_claimed_before_the_cutoff,
    purging_more_keys_than_one_chunk_deletes_them_all,
}
