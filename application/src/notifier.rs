//! The notifier (DESIGN §5): leases messages in bulk, dispatches them as a continuous
//! pipeline, and writes the results back in bulk. One runs per replica; several share the
//! queue safely.
//!
//! At most `lease-count` dispatches are in flight; as each one ends, its slot takes the next
//! message of a small local backlog, which bulk leases ([`intake`]) keep topped up on a task
//! of their own. So one slow answer holds one slot, not a batch. When several delivery methods
//! have work, each gets an equal share of the slots, and one method alone leaves a slot for
//! each of the others, so a slow method cannot take them all.
//! No message starts with less than the dispatch timeout (plus half the slack between it and
//! the lease period) left on its lease: a message that waited too long in the backlog has its
//! lease extended in bulk first, or is dropped when another notifier took it over. Results are
//! written back before the earliest lease they complete ends ([`write_back`]).

mod backoff;
mod decision;
mod intake;
mod supervision;
mod write_back;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use herald_domain::{Completion, Message, MessageStatus, Method, RetryPolicy};
use tokio::sync::watch;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::config::{NotifierConfig, NotifierSettings};
use crate::ports::{
    Clock, CycleOutcome, DeliveryError, DispatchOutcome, Dispatcher, HeldLease, Jitter,
    MessageQueue, NoMetrics, NotifierMetrics, PreferenceStore, RandomJitter, SettingsStore,
    SkipMethods, StoreError, TemplateStore, UserDirectory, Wake, WakeupListener,
};
use crate::rendering::Renderer;

pub use backoff::{Backoff, RetryWaits};
pub use decision::{Decision, Facts, REASON_DISABLED, REASON_RECIPIENT_DELETED, decide};
use intake::{Batch, Intake, Ready};
pub use supervision::{NotifierHandle, NotifierHealth, RESTART_DELAY};
pub use write_back::{Flushed, WRITE_BACK_RETRY_DELAYS};
use write_back::{ResultBuffer, Writer};

/// The template label of metrics about messages whose template no longer exists.
pub const UNKNOWN_TEMPLATE: &str = "unknown";

/// While the pause switch is on, how often at most an enqueue's wake-up makes the notifier read
/// the switch again. Every enqueue wakes the notifiers; a paused one would otherwise read the
/// switch once per enqueue. Turning the switch off wakes them with [`Wake::Resumed`], which a
/// paused notifier answers at once. While messages wait in the local backlog, the switch is
/// read this often too, so pausing stops them from starting.
pub const PAUSED_RECHECK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// `call`, bounded by `timeout`: a store that does not answer in time (a silently dead
/// connection, say) is unavailable. A statement cut off so may still have run; every store call
/// the notifier makes is safe either way (a lease comes back when it expires, an extension or a
/// write-back applies only while its lease is held).
pub(crate) async fn bounded<T>(
    timeout: std::time::Duration,
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "{what} got no answer within {timeout:?}"
            )))
        })
}

/// The ports a notifier drives.
#[derive(Debug, Clone)]
pub struct NotifierPorts {
    pub queue: Arc<dyn MessageQueue>,
    /// The process's shared template cache (`CachedTemplates`), as every use case reads.
    pub templates: Arc<dyn TemplateStore>,
    pub directory: Arc<dyn UserDirectory>,
    pub preferences: Arc<dyn PreferenceStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub clock: Arc<dyn Clock>,
}

/// What one cycle did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cycle {
    /// The pause switch is on: nothing was leased.
    Paused,
    /// This many messages were leased and dispatched (0: nothing to do).
    Dispatched(usize),
}

/// What a dispatch task returns.
type Dispatched = Result<(), DeliveryError>;

/// One replica's notifier.
#[derive(Debug)]
pub struct Notifier {
    name: String,
    config: NotifierConfig,
    policy: RetryPolicy,
    /// How long a retryable failure waits, by attempt.
    waits: RetryWaits,
    /// Where exponential waits draw their jitter.
    jitter: Arc<dyn Jitter>,
    intake: Arc<Intake>,
    writer: Writer,
    wakeup: WakeupListener,
    buffer: ResultBuffer,
    metrics: Arc<dyn NotifierMetrics>,
    /// Leased, decided messages waiting for a slot, oldest first.
    backlog: VecDeque<Ready>,
    /// The dispatches in flight, and what each one is for.
    in_flight: JoinSet<Dispatched>,
    by_task: HashMap<tokio::task::Id, (Message, String)>,
    /// Dispatches in flight per method.
    busy: MethodCounts,
    /// The lease running on its own task, if any.
    leasing: Option<JoinHandle<Result<Option<Batch>, StoreError>>>,
    /// The write-back running in the background, if any. At most one runs at a time: the next
    /// write-back waits for it (backpressure).
    writing: Option<JoinHandle<Flushed>>,
    /// The least lease time a message may start its dispatch with.
    start_margin: chrono::Duration,
    /// How long before the earliest lease they complete buffered results are written.
    write_margin: chrono::Duration,
}

impl Notifier {
    /// A notifier with checked `settings`. Production builds it through
    /// [`crate::Services::notifier`].
    pub fn new(
        name: impl Into<String>,
        settings: NotifierSettings,
        ports: NotifierPorts,
        dispatchers: Vec<Arc<dyn Dispatcher>>,
        renderer: Renderer,
        wakeup: WakeupListener,
    ) -> Self {
        let name = name.into();
        let config = settings.config().clone();
        let lease_period = settings.lease_period();
        let timeout =
            chrono::Duration::from_std(config.dispatch_timeout).unwrap_or(chrono::Duration::MAX);
        // Settings guarantee the timeout is shorter than the lease period.
        let slack = (lease_period - timeout).max(chrono::Duration::zero());
        let metrics: Arc<dyn NotifierMetrics> = Arc::new(NoMetrics);
        let writer = Writer {
            name: name.clone(),
            queue: Arc::clone(&ports.queue),
            clock: Arc::clone(&ports.clock),
            metrics: Arc::clone(&metrics),
            timeout: config.store_timeout,
        };
        let intake = Arc::new(Intake {
            name: Arc::from(name.as_str()),
            ports,
            dispatchers: dispatchers.into_iter().map(|d| (d.method(), d)).collect(),
            renderer,
            lease_period,
            max_attempts: config.max_send_attempts,
            max_lease_expiries: config.max_lease_expiries,
            throttle: config.user_rate_limit,
            timeout: config.store_timeout,
        });
        Self {
            name,
            policy: settings.retry_policy(),
            waits: settings.retry_waits(),
            jitter: Arc::new(RandomJitter),
            config,
            intake,
            writer,
            wakeup,
            buffer: ResultBuffer::default(),
            metrics,
            backlog: VecDeque::new(),
            in_flight: JoinSet::new(),
            by_task: HashMap::new(),
            busy: MethodCounts::default(),
            leasing: None,
            writing: None,
            start_margin: timeout + slack / 2,
            write_margin: slack / 2,
        }
    }

    /// Reports to `metrics` (default: nowhere).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<dyn NotifierMetrics>) -> Self {
        self.writer.metrics = Arc::clone(&metrics);
        self.metrics = metrics;
        self
    }

    /// Draws exponential backoff's jitter from `jitter` (default: [`RandomJitter`]).
    #[must_use]
    pub fn with_jitter(mut self, jitter: Arc<dyn Jitter>) -> Self {
        self.jitter = jitter;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Results buffered and not yet written back.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    fn clock(&self) -> &dyn Clock {
        &*self.intake.ports.clock
    }

    /// One step, for callers that drive the notifier themselves: unless paused, lease up to
    /// `lease-count` messages, dispatch them all (each under the dispatch timeout) and buffer
    /// their results, written back whenever the buffer fills. [`Notifier::run`] instead keeps
    /// the slots busy continuously.
    ///
    /// # Errors
    /// [`StoreError`] when the pause flag or the lease could not be read; nothing was leased.
    pub async fn run_cycle(&mut self) -> Result<Cycle, StoreError> {
        let Some(batch) = self
            .intake
            .take(self.config.lease_count, SkipMethods::NONE)
            .await?
        else {
            return Ok(Cycle::Paused);
        };
        let leased = batch.leased;
        self.accept(batch).await;
        while !self.backlog.is_empty() || !self.in_flight.is_empty() {
            self.start_ready().await;
            if let Some(joined) = self.in_flight.join_next_with_id().await {
                self.finish(joined).await;
            }
        }
        Ok(Cycle::Dispatched(leased))
    }

    /// Writes the buffered results back (one statement for the sent, one for the rest) and
    /// waits for it, after the write-back running in the background, if any; reports both.
    /// A write-back the store cannot take is retried while the leases it completes hold; then
    /// its results are dropped: their rows stay leased and come back when the lease expires
    /// (at least once, never lost).
    pub async fn flush(&mut self) -> Flushed {
        let earlier = self.finish_writing().await;
        let changes = std::mem::take(&mut self.buffer);
        let latest = self.writer.write(changes).await;
        self.metrics.pending_result_updates(self.buffer.len());
        earlier.add(latest)
    }

    /// Starts writing the buffer back in the background, after waiting for the write-back
    /// already running (so at most one runs, and a slow database holds the notifier here).
    async fn flush_in_background(&mut self) {
        self.finish_writing().await;
        let changes = std::mem::take(&mut self.buffer);
        let writer = self.writer.clone();
        self.writing = Some(tokio::spawn(async move { writer.write(changes).await }));
        self.metrics.pending_result_updates(self.buffer.len());
    }

    /// Waits for the background write-back, if one runs.
    async fn finish_writing(&mut self) -> Flushed {
        match self.writing.take() {
            Some(task) => task.await.unwrap_or_else(|err| {
                tracing::error!(notifier = %self.name, error = %err, "notifications: the write-back task ended abnormally; its messages will be retried when their lease expires");
                Flushed::default()
            }),
            None => Flushed::default(),
        }
    }

    /// When the buffered results must be written: every store-sync interval, and before the
    /// earliest lease they complete ends. `None` while the buffer is empty.
    fn flush_due(&self, last_flush: Instant) -> Option<Instant> {
        if self.buffer.len() == 0 {
            return None;
        }
        let interval = last_flush + self.config.store_sync_interval;
        let Some(lease) = self.buffer.earliest_lease() else {
            return Some(interval);
        };
        let left = (lease - self.write_margin - self.clock().now())
            .to_std()
            .unwrap_or_default();
        Some(interval.min(Instant::now() + left))
    }

    /// Runs until stopped, keeping up to `lease-count` dispatches in flight: leases whenever
    /// the backlog runs low, and — once a lease came back short — waits for a wake-up or the
    /// fetch interval before leasing again. On stop it gives the backlog back, lets the
    /// dispatches in flight finish, and flushes.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        tracing::info!(notifier = %self.name, "notifications: notifier started");
        let mut last_flush = Instant::now();
        // Methods the last leases found nothing more of (all of them after a lease failed or
        // found the switch on): not leased for until a wake-up or the poll.
        let mut quiet = SkipMethods::NONE;
        // When the last lease found the switch on: a wake-up before then waits until then.
        let mut paused_until: Option<Instant> = None;
        let mut woken_while_paused = false;
        let mut last_switch_read = Instant::now();
        // The methods the running lease leaves queued.
        let mut leasing_skip = SkipMethods::NONE;
        let poll = tokio::time::sleep(self.config.fetch_interval);
        tokio::pin!(poll);
        loop {
            if *stop.borrow() {
                break;
            }
            self.start_ready().await;
            if self.leasing.is_none() {
                let wanted = self.lease_skip(quiet);
                let recheck = !self.backlog.is_empty()
                    && last_switch_read.elapsed() >= PAUSED_RECHECK_INTERVAL;
                if wanted.is_some() || recheck {
                    let count = if wanted.is_some() {
                        self.config.lease_count
                    } else {
                        0
                    };
                    let skip = wanted.unwrap_or(SkipMethods::NONE);
                    leasing_skip = skip;
                    let intake = Arc::clone(&self.intake);
                    self.leasing =
                        Some(tokio::spawn(async move { intake.take(count, skip).await }));
                    last_switch_read = Instant::now();
                }
            }
            let flush_at = self.flush_due(last_flush);
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                Some(joined) = self.in_flight.join_next_with_id(), if !self.in_flight.is_empty() => {
                    self.finish(joined).await;
                }
                taken = async {
                    match self.leasing.as_mut() {
                        Some(leasing) => leasing.await,
                        None => std::future::pending().await,
                    }
                }, if self.leasing.is_some() => {
                    self.leasing = None;
                    let every = self.methods();
                    let (outcome, now_quiet) = match taken {
                        Ok(Ok(Some(batch))) => {
                            paused_until = None;
                            let leased = batch.requested > 0;
                            let short = leased && batch.leased + batch.held_back < batch.requested;
                            self.accept(batch).await;
                            // Short: nothing more of the methods it asked for.
                            let asked = every.without(leasing_skip);
                            (
                                leased.then_some(CycleOutcome::Dispatched),
                                if short { asked } else { SkipMethods::NONE },
                            )
                        }
                        Ok(Ok(None)) => {
                            paused_until = Some(Instant::now() + PAUSED_RECHECK_INTERVAL);
                            self.give_back_backlog("the pause switch is on").await;
                            (Some(CycleOutcome::Paused), every)
                        }
                        Ok(Err(err)) => {
                            tracing::warn!(notifier = %self.name, error = %err, "notifications: could not lease messages");
                            (Some(CycleOutcome::Failed), every)
                        }
                        Err(err) => {
                            tracing::error!(notifier = %self.name, error = %err, "notifications: the lease task ended abnormally; what it leased comes back when the lease expires");
                            (Some(CycleOutcome::Failed), every)
                        }
                    };
                    if let Some(outcome) = outcome {
                        self.metrics.cycle_ended(outcome);
                    }
                    if !now_quiet.is_empty() {
                        if quiet.is_empty() {
                            woken_while_paused = false;
                            poll.as_mut().reset(Instant::now() + self.config.fetch_interval);
                        }
                        quiet = quiet.union(now_quiet);
                    }
                }
                wake = self.wakeup.wait(), if !quiet.is_empty() => match (paused_until, wake) {
                    (Some(_), Wake::Queued) => woken_while_paused = true,
                    _ => quiet = SkipMethods::NONE,
                },
                () = tokio::time::sleep_until(paused_until.unwrap_or_else(Instant::now)),
                    if !quiet.is_empty() && woken_while_paused => quiet = SkipMethods::NONE,
                () = &mut poll, if !quiet.is_empty() => quiet = SkipMethods::NONE,
                // Time to read the switch again for the messages waiting in the backlog.
                () = tokio::time::sleep_until(last_switch_read + PAUSED_RECHECK_INTERVAL),
                    if !self.backlog.is_empty() && self.leasing.is_none() => {}
                () = tokio::time::sleep_until(flush_at.unwrap_or_else(Instant::now)), if flush_at.is_some() => {
                    self.flush_in_background().await;
                    last_flush = Instant::now();
                }
            }
        }
        self.shut_down().await;
    }

    /// Stop: no lease starts; what the running lease brings and the backlog are given back at
    /// once (not left to expire); the dispatches in flight finish; everything is written back.
    async fn shut_down(&mut self) {
        if let Some(leasing) = self.leasing.take()
            && let Ok(Ok(Some(batch))) = leasing.await
        {
            self.accept(batch).await;
        }
        self.give_back_backlog("the notifier is stopping").await;
        while let Some(joined) = self.in_flight.join_next_with_id().await {
            self.finish(joined).await;
        }
        let flushed = self.flush().await;
        tracing::info!(
            notifier = %self.name,
            sent = flushed.sent,
            failed = flushed.failed,
            "notifications: notifier stopped"
        );
    }

    /// Starts [`Notifier::run`] on the runtime, unsupervised: a panic of its loop ends it
    /// (production supervises, [`NotifierHandle::supervise`]).
    pub fn spawn(self) -> NotifierHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped));
        NotifierHandle {
            stop,
            task,
            health: NotifierHealth::new(),
        }
    }

    /// Whether to lease now, and which methods to leave queued: those `quiet` (nothing more
    /// of them, since the last wake-up) and those with a batch's worth waiting in the backlog
    /// already, so that one slow method's messages, oldest, cannot fill the backlog while
    /// another's slots idle. `None`: no lease (every method quiet or waiting in full).
    fn lease_skip(&self, quiet: SkipMethods) -> Option<SkipMethods> {
        let cap = self.config.lease_count;
        let waiting = self.waiting();
        let mut skip = quiet;
        for method in self.intake.dispatchers.keys() {
            if waiting.get(*method) >= cap {
                skip = skip.with(*method);
            }
        }
        let every = self.methods();
        (every.without(skip) != SkipMethods::NONE).then_some(skip)
    }

    /// The methods this notifier has dispatchers for.
    fn methods(&self) -> SkipMethods {
        self.intake
            .dispatchers
            .keys()
            .fold(SkipMethods::NONE, |set, method| set.with(*method))
    }

    /// Each method's limit on the slots: an equal share while several methods have work (in
    /// flight or waiting); while one has, every slot but one per other delivery method, so a
    /// message of another method never waits for a slow method's dispatches to end.
    fn shares(&self, waiting: MethodCounts) -> Shares {
        let cap = self.config.lease_count;
        let with_work = Method::ALL
            .into_iter()
            .filter(|method| self.busy.get(*method) > 0 || waiting.get(*method) > 0)
            .count();
        let per_method = if with_work > 1 {
            cap.div_ceil(with_work)
        } else {
            let others = self.intake.dispatchers.len().saturating_sub(1);
            cap - others.min(cap - 1)
        };
        Shares { per_method }
    }

    /// How many backlog messages wait, per method.
    fn waiting(&self) -> MethodCounts {
        let mut waiting = MethodCounts::default();
        for ready in &self.backlog {
            waiting.add(ready.method());
        }
        waiting
    }

    /// Takes in a lease's batch: records what was decided without a dispatch, queues the rest.
    async fn accept(&mut self, batch: Batch) {
        for (message, template, completion) in batch.completed {
            self.record(&message, &template, &completion).await;
        }
        self.backlog.extend(batch.ready);
    }

    /// Starts dispatches from the backlog while slots are free, oldest first among the
    /// methods under their share, renewing leases that have too little left.
    async fn start_ready(&mut self) {
        let mut renewed = false;
        let mut waiting = self.waiting();
        while self.in_flight.len() < self.config.lease_count {
            let shares = self.shares(waiting);
            let Some(index) = self
                .backlog
                .iter()
                .position(|ready| shares.under(ready.method(), &self.busy))
            else {
                return;
            };
            let now = self.clock().now();
            if left_on(&self.backlog[index].message, now) >= self.start_margin {
                if let Some(ready) = self.backlog.remove(index) {
                    waiting.sub(ready.method());
                    self.start(ready);
                }
            } else if !renewed {
                self.renew_backlog(now).await;
                renewed = true;
                waiting = self.waiting();
            } else if let Some(short) = self.backlog.remove(index) {
                // Still short just after its renewal (a lease period barely longer than the
                // timeout): not dispatched, given back.
                waiting.sub(short.method());
                self.give_back(vec![short], "its lease is too short to dispatch it")
                    .await;
            }
        }
    }

    /// Extends, in one statement, the lease of every backlog message with less left than
    /// halfway between the start margin and a whole lease period (so also of every message
    /// that may not start now); drops from the backlog those another notifier took over (and,
    /// when the store could not be reached, those it tried: they come back when their lease
    /// ends).
    async fn renew_backlog(&mut self, now: DateTime<Utc>) {
        let lease_period = self.intake.lease_period;
        let renew_below = self.start_margin + (lease_period - self.start_margin) / 2;
        let held: Vec<HeldLease> = self
            .backlog
            .iter()
            .filter(|ready| left_on(&ready.message, now) < renew_below)
            .filter_map(|ready| {
                ready.message.leased_until.map(|lease| HeldLease {
                    id: ready.message.id,
                    lease,
                })
            })
            .collect();
        let until = now + lease_period;
        let tried: HashSet<_> = held.iter().map(|h| h.id).collect();
        let extended: HashSet<_> = match self.intake.ports.queue.extend_leases(&held, until).await {
            Ok(extended) => extended.into_iter().collect(),
            Err(err) => {
                tracing::warn!(notifier = %self.name, error = %err, messages = held.len(), "notifications: could not extend the leases of waiting messages; they come back when their lease expires");
                HashSet::new()
            }
        };
        let lost = tried.len() - extended.len();
        self.metrics
            .leases_renewed(extended.len() as u64, lost as u64);
        if lost > 0 {
            tracing::warn!(notifier = %self.name, lost, "notifications: waiting messages were taken over by another notifier before their lease could be extended; not dispatching them");
        }
        self.backlog.retain_mut(|ready| {
            if extended.contains(&ready.message.id) {
                ready.message.leased_until = Some(until);
                true
            } else {
                !tried.contains(&ready.message.id)
            }
        });
    }

    /// Gives every backlog message back, in one statement, so any notifier may lease it at
    /// once.
    async fn give_back_backlog(&mut self, why: &str) {
        let waiting: Vec<Ready> = self.backlog.drain(..).collect();
        self.give_back(waiting, why).await;
    }

    /// Gives `waiting` back, in one statement.
    async fn give_back(&mut self, waiting: Vec<Ready>, why: &str) {
        if waiting.is_empty() {
            return;
        }
        let held: Vec<HeldLease> = waiting
            .into_iter()
            .filter_map(|ready| {
                ready.message.leased_until.map(|lease| HeldLease {
                    id: ready.message.id,
                    lease,
                })
            })
            .collect();
        let giving = self.intake.ports.queue.give_back(&held);
        match bounded(self.config.store_timeout, "give_back", giving).await {
            Ok(given) => {
                self.metrics.leases_given_back(given);
                tracing::debug!(notifier = %self.name, given, why, "notifications: gave back waiting messages");
            }
            Err(err) => {
                tracing::warn!(notifier = %self.name, error = %err, messages = held.len(), why, "notifications: could not give back waiting messages; they come back when their lease expires");
            }
        }
    }

    /// Starts one dispatch under the dispatch timeout.
    fn start(&mut self, ready: Ready) {
        let Ready {
            message,
            template,
            dispatcher,
            delivery,
        } = ready;
        let timeout = self.config.dispatch_timeout;
        let metrics = Arc::clone(&self.metrics);
        let method = message.method;
        metrics.observe_queued_seconds(method, message.queued_seconds.max(0.0));
        metrics.dispatch_started(method, &template);
        let handle = self.in_flight.spawn(async move {
            let started = Instant::now();
            let result = match tokio::time::timeout(timeout, dispatcher.dispatch(&delivery)).await {
                Ok(result) => result,
                Err(_) => Err(DeliveryError::retryable(format!(
                    "dispatch timed out after {timeout:?}"
                ))),
            };
            metrics.observe_send_seconds(method, started.elapsed().as_secs_f64());
            result
        });
        self.busy.add(method);
        self.by_task.insert(handle.id(), (message, template));
    }

    /// Records how a dispatch ended.
    async fn finish(&mut self, joined: Result<(tokio::task::Id, Dispatched), JoinError>) {
        let (task, result) = match joined {
            Ok((task, result)) => (task, result),
            Err(err) => (
                err.id(),
                Err(DeliveryError::retryable(format!(
                    "dispatcher crashed: {err}"
                ))),
            ),
        };
        let Some((message, template)) = self.by_task.remove(&task) else {
            return;
        };
        self.busy.sub(message.method);
        self.metrics.dispatch_finished(message.method, &template);
        let completion = match result {
            Ok(()) => Completion::Sent,
            Err(err) => {
                tracing::warn!(
                    notifier = %self.name,
                    message_id = %message.id,
                    method = %message.method,
                    retryable = err.retryable,
                    reason = %err.reason,
                    "notifications: dispatch failed"
                );
                Completion::Failed {
                    reason: err.reason,
                    retryable: err.retryable,
                    retry_after: err.retry_after,
                }
            }
        };
        self.record(&message, &template, &completion).await;
    }

    /// Buffers a result, writing the buffer back first when it is full.
    async fn record(&mut self, message: &Message, template: &str, completion: &Completion) {
        let now = self.clock().now();
        let policy = RetryPolicy {
            retry_interval: self.waits.after(
                message.attempt_count.saturating_add(1),
                self.jitter.as_ref(),
            ),
            ..self.policy
        };
        match message.complete(completion, now, policy) {
            Ok(change) => {
                if let Some(outcome) = DispatchOutcome::from_status(change.status) {
                    self.metrics
                        .dispatch_attempt(message.method, template, outcome);
                }
                if change.status == MessageStatus::TemporaryFailure
                    && change.next_retry_after.is_some()
                {
                    self.metrics.retry_scheduled(message.method, template);
                }
                self.buffer.push(change);
                self.metrics.pending_result_updates(self.buffer.len());
            }
            Err(err) => {
                tracing::error!(notifier = %self.name, error = %err, "notifications: dispatch result refused by the state machine");
                return;
            }
        }
        if self.buffer.len() >= self.config.store_sync_buffer_size {
            self.flush_in_background().await;
        }
    }
}

/// The lease time left on a leased message at `now` (none when it holds no lease).
fn left_on(message: &Message, now: DateTime<Utc>) -> chrono::Duration {
    message
        .leased_until
        .map_or(chrono::Duration::zero(), |until| until - now)
}

/// Each method's share of the slots, while several have work.
#[derive(Debug, Clone, Copy)]
struct Shares {
    per_method: usize,
}

impl Shares {
    fn under(self, method: Method, busy: &MethodCounts) -> bool {
        busy.get(method) < self.per_method
    }
}

/// A count per delivery method.
#[derive(Debug, Clone, Copy, Default)]
struct MethodCounts([usize; 3]);

impl MethodCounts {
    const fn slot(method: Method) -> usize {
        match method {
            Method::Smtp => 0,
            Method::Webhook => 1,
            Method::Inbox => 2,
        }
    }

    fn get(self, method: Method) -> usize {
        self.0[Self::slot(method)]
    }

    fn add(&mut self, method: Method) {
        self.0[Self::slot(method)] += 1;
    }

    fn sub(&mut self, method: Method) {
        let count = &mut self.0[Self::slot(method)];
        *count = count.saturating_sub(1);
    }
}
