//! Ports: what the use cases need from the outside world. One trait per file; each trait's
//! documentation is the contract an implementation MUST keep. Held as `Arc<dyn Port>`.

mod build_store;
mod clock;
mod dispatcher;
mod inbox_feed;
mod inbox_store;
mod jitter;
mod message_queue;
mod notifier_metrics;
mod preference_store;
mod rate_counter;
mod report_log;
mod resource_state_store;
mod session_store;
mod settings_store;
mod store_error;
mod task_state_store;
mod template_store;
mod token_store;
mod user_directory;
mod user_registry;
mod wakeup;

pub use build_store::BuildStore;
pub use clock::{Clock, SystemClock};
pub use dispatcher::{Delivery, DeliveryError, Dispatcher, DispatcherSetting};
pub use inbox_feed::{InboxFanout, InboxFeed, InboxSubscription};
pub use inbox_store::{InboxQuery, InboxStore, ReadStatus};
pub use jitter::{Jitter, RandomJitter};
pub use message_queue::{
    CallerKey, CancelOutcome, ClaimAnswers, EnqueueOutcome, EnqueueTransaction, HeldLease,
    IDEMPOTENCY_WINDOW, KeyClaim, LeaseRequest, MessageFilter, MessageQueue, NewMessage,
    PurgeOutcome, SkipMethods, StoredAnswer, ThrottleWindow, ThrottledLease, throttle_scope,
};
pub use notifier_metrics::{CycleOutcome, DispatchOutcome, NoMetrics, NotifierMetrics};
pub use preference_store::{PreferenceChange, PreferenceStore, TemplatePreferences};
pub use rate_counter::RateCounter;
pub use report_log::{ReportClaim, ReportLog};
pub use resource_state_store::ResourceStateStore;
pub use session_store::{NewSession, SessionStore};
pub use settings_store::SettingsStore;
pub use store_error::StoreError;
pub use task_state_store::TaskStateStore;
pub use template_store::TemplateStore;
pub use token_store::{NewToken, TokenHash, TokenStore};
pub use user_directory::UserDirectory;
pub use user_registry::UserRegistry;
pub use wakeup::{Wake, Wakeup, WakeupHub, WakeupListener};
