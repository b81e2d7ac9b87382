use herald_domain::{MessageStatus, Method};

/// How one dispatch attempt ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DispatchOutcome {
    Sent,
    TemporaryFailure,
    PermanentFailure,
    Inhibited,
}

impl DispatchOutcome {
    pub const ALL: [DispatchOutcome; 4] = [
        DispatchOutcome::Sent,
        DispatchOutcome::TemporaryFailure,
        DispatchOutcome::PermanentFailure,
        DispatchOutcome::Inhibited,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            DispatchOutcome::Sent => "sent",
            DispatchOutcome::TemporaryFailure => "temporary_failure",
            DispatchOutcome::PermanentFailure => "permanent_failure",
            DispatchOutcome::Inhibited => "inhibited",
        }
    }

    /// The outcome a completed message's new status stands for (`None` for statuses a
    /// dispatch never ends in).
    pub const fn from_status(status: MessageStatus) -> Option<Self> {
        match status {
            MessageStatus::Sent => Some(DispatchOutcome::Sent),
            MessageStatus::TemporaryFailure => Some(DispatchOutcome::TemporaryFailure),
            MessageStatus::PermanentFailure => Some(DispatchOutcome::PermanentFailure),
            MessageStatus::Inhibited => Some(DispatchOutcome::Inhibited),
            MessageStatus::Pending | MessageStatus::Leased => None,
        }
    }
}

/// How one notifier cycle ended, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CycleOutcome {
    /// The pause switch was on: nothing leased.
    Paused,
    /// The lease was read (maybe empty) and what it held dispatched.
    Dispatched,
    /// The pause switch or the lease could not be read.
    Failed,
}

impl CycleOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            CycleOutcome::Paused => "paused",
            CycleOutcome::Dispatched => "dispatched",
            CycleOutcome::Failed => "failed",
        }
    }
}

/// What the notifier reports about its work (DESIGN §7, `GET /metrics`).
///
/// Labels MUST stay low-cardinality: a method, a template's name, an outcome — never a
/// message or user id. Implementations MUST be cheap and MUST NOT block (they are called on
/// the dispatch path) and MUST be safe to call concurrently. Every method defaults to doing
/// nothing.
pub trait NotifierMetrics: Send + Sync + std::fmt::Debug {
    /// One message completed: dispatched (sent or failed) or inhibited.
    fn dispatch_attempt(&self, method: Method, template: &str, outcome: DispatchOutcome) {
        let _ = (method, template, outcome);
    }

    /// A failed message will be tried again.
    fn retry_scheduled(&self, method: Method, template: &str) {
        let _ = (method, template);
    }

    /// Seconds a message waited in the queue before this dispatch.
    fn observe_queued_seconds(&self, method: Method, seconds: f64) {
        let _ = (method, seconds);
    }

    /// Seconds a dispatcher took to deliver (or fail to deliver) one message.
    fn observe_send_seconds(&self, method: Method, seconds: f64) {
        let _ = (method, seconds);
    }

    /// A dispatch of a message of `template` by `method` started.
    fn dispatch_started(&self, method: Method, template: &str) {
        let _ = (method, template);
    }

    /// A dispatch [`NotifierMetrics::dispatch_started`] reported ended (however it ended).
    fn dispatch_finished(&self, method: Method, template: &str) {
        let _ = (method, template);
    }

    /// How many results wait to be written back, now.
    fn pending_result_updates(&self, count: usize) {
        let _ = count;
    }

    /// This many results were written back.
    fn synced_result_updates(&self, count: u64) {
        let _ = count;
    }

    /// This many results were not applied: their message no longer held the lease they
    /// complete (another notifier took it over after it expired).
    fn stale_result_updates(&self, count: u64) {
        let _ = count;
    }

    /// Leases held in the notifier's local backlog were extended (`extended`) or lost to
    /// another notifier before they could be (`lost`).
    fn leases_renewed(&self, extended: u64, lost: u64) {
        let _ = (extended, lost);
    }

    /// This many leases were given back undispatched (on stop or pause).
    fn leases_given_back(&self, count: u64) {
        let _ = count;
    }

    /// A cycle of the notifier's loop ended so: a running notifier reports one per wake-up
    /// or fetch interval, paused or not, so the count shows it is alive.
    fn cycle_ended(&self, outcome: CycleOutcome) {
        let _ = outcome;
    }
}

/// Metrics that go nowhere: the notifier's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl NotifierMetrics for NoMetrics {}
