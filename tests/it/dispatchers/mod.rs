//! The `Dispatcher` contract suite: one body of cases, run against every delivery method with
//! its real receiver — the webhook against a wiremock receiver, SMTP against the aiosmtpd
//! server process, the inbox against the memory store and PostgreSQL.
//!
//! Each method gets a receiver harness ([`ReceiverUnderTest`], in [`receivers`]) that the
//! cases make accept, fail or hang, and read back. A case is an `async fn name(receiver:
//! Receiver)`; `contract_tests!` stamps the cases a method takes out as one test each, in a
//! module named after the receiver (`dispatchers::smtp::a_permanent_answer_…`).
//!
//! A method that cannot fail some way does not take that case, and a case standing for a
//! failure the method has its own way of having names that way: the inbox has no peer to
//! answer, so its store failing stands for a retryable answer; it never fails permanently;
//! it has no timeout of its own (the notifier's `dispatch-timeout` bounds it); and only
//! PostgreSQL can hang (a locked table), the memory store never blocks.
//!
//! A new delivery method passes this suite to be done: add its harness to [`receivers`] and
//! list it below with every case it can take.

mod receivers;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_application::ports::{Delivery, Dispatcher};
use herald_domain::MessageId;
use herald_tests::fixture::{PATIENCE, within};
use tokio::time::Instant;

/// A dispatcher and the real receiver it delivers to, which a case makes accept, fail or hang.
///
/// Choose how the receiver answers first, then take its [`dispatcher`](Self::dispatcher): a
/// receiver may have to restart to answer differently (the SMTP server does), and its
/// dispatcher with it. A receiver starts out accepting.
#[async_trait]
pub trait ReceiverUnderTest: Send + Sync {
    /// The dispatcher delivering to this receiver as it answers now.
    fn dispatcher(&self) -> Arc<dyn Dispatcher>;

    /// A delivery to a fresh recipient, with a fresh message id, that this method can deliver.
    fn delivery(&self) -> Delivery;

    /// Accepts every delivery from now on (after [`hang`](Self::hang): the ones after the
    /// held one).
    async fn accept(&self);

    /// Fails every delivery from now on in a way that may clear: a 5xx answer, a 4xx SMTP
    /// reply, the inbox's store failing.
    async fn answer_retryable(&self);

    /// Fails every delivery from now on in a way that will not clear (a 4xx HTTP answer, a
    /// 5xx SMTP reply).
    async fn answer_permanent(&self);

    /// Takes deliveries in and never answers them, until [`accept`](Self::accept) (the SMTP
    /// server holds the first one only, and accepts the ones after it).
    async fn hang(&self);

    /// The message id each attempt that reached the receiver carried, one per attempt (a
    /// request, a message at the end of DATA, an insert into the inbox), in no set order.
    async fn received(&self) -> Vec<MessageId>;

    /// Whether the receiver holds the delivery carrying `id` now, unanswered, after
    /// [`hang`](Self::hang): by default, whether that delivery reached it.
    async fn holds(&self, id: MessageId) -> bool {
        self.received().await.contains(&id)
    }

    /// How long the dispatcher waits for its peer before giving up, when it has a timeout of
    /// its own (network methods).
    fn own_timeout(&self) -> Option<Duration>;

    /// Words the receiver's failing answers carry (after [`answer_retryable`] or
    /// [`answer_permanent`](Self::answer_permanent)), which the failure's reason keeps so a
    /// person sees what the receiver said; `None` for a method without a peer that speaks.
    ///
    /// [`answer_retryable`]: Self::answer_retryable
    fn failing_words(&self, _retryable: bool) -> Option<&'static str> {
        None
    }
}

/// The receiver harness a case is given.
pub type Receiver = Box<dyn ReceiverUnderTest>;

herald_tests::contract_tests!(webhook => super::receivers::webhook; [
    an_accepted_delivery_reaches_the_receiver_once_carrying_its_message_id,
    a_repeated_delivery_carries_the_same_message_id_each_time,
    concurrent_dispatches_each_reach_the_receiver_once,
    a_retryable_answer_fails_retryably_after_one_attempt,
    a_permanent_answer_fails_permanently_after_one_attempt,
    a_receiver_that_never_answers_fails_retryably_within_the_dispatchers_own_timeout,
    a_dispatch_dropped_while_the_receiver_hangs_leaves_the_dispatcher_delivering,
]);

herald_tests::contract_tests!(smtp => super::receivers::smtp; [
    an_accepted_delivery_reaches_the_receiver_once_carrying_its_message_id,
    a_repeated_delivery_carries_the_same_message_id_each_time,
    concurrent_dispatches_each_reach_the_receiver_once,
    a_retryable_answer_fails_retryably_after_one_attempt,
    a_permanent_answer_fails_permanently_after_one_attempt,
    a_receiver_that_never_answers_fails_retryably_within_the_dispatchers_own_timeout,
    a_dispatch_dropped_while_the_receiver_hangs_leaves_the_dispatcher_delivering,
]);

herald_tests::contract_tests!(inbox_memory => super::receivers::inbox_memory; [
    an_accepted_delivery_reaches_the_receiver_once_carrying_its_message_id,
    a_repeated_delivery_carries_the_same_message_id_each_time,
    concurrent_dispatches_each_reach_the_receiver_once,
    a_failing_store_fails_retryably_after_one_attempt,
]);

herald_tests::contract_tests!(inbox_postgres => super::receivers::inbox_postgres; [
    an_accepted_delivery_reaches_the_receiver_once_carrying_its_message_id,
    a_repeated_delivery_carries_the_same_message_id_each_time,
    concurrent_dispatches_each_reach_the_receiver_once,
    a_failing_store_fails_retryably_after_one_attempt,
    a_dispatch_dropped_while_the_store_is_locked_leaves_the_dispatcher_delivering,
]);

async fn an_accepted_delivery_reaches_the_receiver_once_carrying_its_message_id(
    receiver: Receiver,
) {
    receiver.accept().await;
    let dispatcher = receiver.dispatcher();
    let delivery = receiver.delivery();

    let sent = within("the dispatch", dispatcher.dispatch(&delivery)).await;

    assert_eq!(sent, Ok(()));
    assert_eq!(receiver.received().await, [delivery.message_id]);
}

/// Delivery is at least once: the receiver recognises a message delivered again by its id.
async fn a_repeated_delivery_carries_the_same_message_id_each_time(receiver: Receiver) {
    receiver.accept().await;
    let dispatcher = receiver.dispatcher();
    let delivery = receiver.delivery();

    for _ in 0..2 {
        let sent = within("the dispatch", dispatcher.dispatch(&delivery)).await;
        assert_eq!(sent, Ok(()));
    }

    assert_eq!(
        receiver.received().await,
        [delivery.message_id, delivery.message_id]
    );
}

async fn concurrent_dispatches_each_reach_the_receiver_once(receiver: Receiver) {
    const CONCURRENT: usize = 8;
    receiver.accept().await;
    let dispatcher = receiver.dispatcher();
    let deliveries: Vec<Delivery> = (0..CONCURRENT).map(|_| receiver.delivery()).collect();

    let mut sends = tokio::task::JoinSet::new();
    for delivery in deliveries.clone() {
        let dispatcher = Arc::clone(&dispatcher);
        sends.spawn(async move { dispatcher.dispatch(&delivery).await });
    }
    let results = within("the concurrent dispatches", sends.join_all()).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        sorted(receiver.received().await),
        sorted(deliveries.iter().map(|d| d.message_id).collect())
    );
}

async fn a_retryable_answer_fails_retryably_after_one_attempt(receiver: Receiver) {
    fails_after_one_attempt(receiver, Answer::Retryable).await;
}

/// The inbox's retryable failure: its store fails.
async fn a_failing_store_fails_retryably_after_one_attempt(receiver: Receiver) {
    fails_after_one_attempt(receiver, Answer::Retryable).await;
}

async fn a_permanent_answer_fails_permanently_after_one_attempt(receiver: Receiver) {
    fails_after_one_attempt(receiver, Answer::Permanent).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Retryable,
    Permanent,
}

/// A failing receiver: the dispatch fails as the answer says, and the receiver saw exactly one
/// attempt, carrying the message id (no retry inside the dispatcher).
async fn fails_after_one_attempt(receiver: Receiver, answer: Answer) {
    match answer {
        Answer::Retryable => receiver.answer_retryable().await,
        Answer::Permanent => receiver.answer_permanent().await,
    }
    let dispatcher = receiver.dispatcher();
    let delivery = receiver.delivery();

    let failed = within("the dispatch", dispatcher.dispatch(&delivery)).await;

    let err = failed.expect_err("a failing receiver fails the dispatch");
    assert_eq!(err.retryable, answer == Answer::Retryable, "{err:?}");
    assert!(!err.reason.is_empty(), "{err:?}");
    if let Some(words) = receiver.failing_words(answer == Answer::Retryable) {
        assert!(
            err.reason.contains(words),
            "the receiver's words {words:?} are lost: {err:?}"
        );
    }
    assert_eq!(receiver.received().await, [delivery.message_id]);
}

/// A network method gives up on a receiver that never answers by its own timeout, retryably:
/// not much later (a generous bound), and not before (the receiver really did hang).
async fn a_receiver_that_never_answers_fails_retryably_within_the_dispatchers_own_timeout(
    receiver: Receiver,
) {
    let timeout = receiver
        .own_timeout()
        .expect("only a method with a timeout of its own takes this case");
    receiver.hang().await;
    let dispatcher = receiver.dispatcher();
    let delivery = receiver.delivery();

    let started = Instant::now();
    let outcome = tokio::time::timeout(timeout + PATIENCE, dispatcher.dispatch(&delivery)).await;
    let took = started.elapsed();

    let Ok(failed) = outcome else {
        panic!(
            "the dispatch to a hanging receiver was still running after {took:?}, its own timeout being {timeout:?}"
        );
    };
    let err = failed.expect_err("a receiver that never answers fails the dispatch");
    assert!(err.retryable, "{err:?}");
    assert!(
        took >= timeout,
        "gave up after {took:?}, before its timeout"
    );
    assert_eq!(receiver.received().await, [delivery.message_id]);
}

async fn a_dispatch_dropped_while_the_receiver_hangs_leaves_the_dispatcher_delivering(
    receiver: Receiver,
) {
    dropped_while_hanging_then_delivers(receiver).await;
}

/// The inbox's hanging receiver: its PostgreSQL table locked by another transaction.
async fn a_dispatch_dropped_while_the_store_is_locked_leaves_the_dispatcher_delivering(
    receiver: Receiver,
) {
    dropped_while_hanging_then_delivers(receiver).await;
}

/// What the notifier's `dispatch-timeout` does to a dispatch that overruns it: drops it,
/// here once the receiver holds the delivery. The same dispatcher then delivers the next
/// message to the receiver, accepting again.
async fn dropped_while_hanging_then_delivers(receiver: Receiver) {
    receiver.hang().await;
    let dispatcher = receiver.dispatcher();
    let held = receiver.delivery();

    {
        let dispatch = dispatcher.dispatch(&held);
        tokio::pin!(dispatch);
        tokio::select! {
            result = &mut dispatch => {
                panic!("a dispatch to a hanging receiver ended by itself: {result:?}")
            }
            () = wait_until_held(&*receiver, held.message_id) => {}
        }
        // Dropped here, mid-delivery.
    }
    receiver.accept().await;
    let next = receiver.delivery();

    let sent = within("the next dispatch", dispatcher.dispatch(&next)).await;

    assert_eq!(sent, Ok(()));
    assert_eq!(
        sorted(receiver.received().await),
        sorted(vec![held.message_id, next.message_id])
    );
}

/// Waits until the receiver holds the delivery carrying `id`, failing the test after
/// [`PATIENCE`].
async fn wait_until_held(receiver: &dyn ReceiverUnderTest, id: MessageId) {
    within("the receiver holding the delivery", async {
        while !receiver.holds(id).await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

fn sorted(mut ids: Vec<MessageId>) -> Vec<MessageId> {
    ids.sort();
    ids
}
