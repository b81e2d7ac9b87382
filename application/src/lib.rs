//! Herald's use cases and the ports they drive.
//!
//! Use cases are methods on small service structs holding `Arc<dyn Port>`s, all built in one
//! place: [`Services::build`]. Inputs are request
//! structs of already-validated domain types; outputs are domain types. Nothing here knows
//! which database, mail relay or HTTP framework sits behind a port.

pub mod config;
mod error;
pub mod events;
pub mod inbox;
pub mod limits;
pub mod messages;
pub mod notifier;
pub mod ports;
pub mod preferences;
pub mod purge;
pub mod rendering;
pub mod reports;
pub mod services;
pub mod settings;
pub mod signals;
pub mod templates;
pub mod tokens;
pub mod unsubscribe;
pub mod users;
pub mod watching;
pub mod web_sessions;

pub use config::{ConfigError, DefaultMethod, DeliveryConfig, NotifierConfig, NotifierSettings};
pub use error::Error;
pub use events::{
    CustomContent, CustomRecipients, EnqueueResult, Event, EventPorts, Events, MAX_BATCHES_AT_ONCE,
    MAX_CUSTOM_USER_IDS, SkipReason, Skipped, TemplateRef,
};
pub use inbox::{Inbox, InboxFilter, InboxPage};
pub use limits::{Limits, RateLimit, RateLimiter, WatchLimits};
pub use messages::Messages;
pub use notifier::{
    Cycle, Decision, Facts, Flushed, Notifier, NotifierHandle, NotifierHealth, NotifierPorts,
    WRITE_BACK_RETRY_DELAYS, decide,
};
pub use preferences::{PreferenceUpdate, Preferences, TemplatePreference, TemplateSetting};
pub use purge::Purger;
pub use reports::{ReportOutcome, ReportRun, ReportScheduler, ReportSkip, Reports, SentReport};
pub use services::{Config, NotifierStores, Ports, Services};
pub use settings::Settings;
pub use signals::Signals;
pub use templates::{CachedTemplates, TemplateView, Templates};
pub use tokens::{ApiToken, AuthCache, Tokens};
pub use users::{UserInput, Users};
pub use watching::{Watch, WatchEnd, Watching};
pub use web_sessions::{SessionSecret, WebSessions};
