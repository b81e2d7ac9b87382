//! The composition root: every use case built from the ports and the checked configuration,
//! in one place.
//!
//! `bootstrap`'s `Herald::builder`, the HTTP adapter (through the `Services` it is handed) and
//! the test harnesses all go through [`Services::build`], so tests run the object graph
//! production runs: one template cache shared by enqueue, the template use cases and the
//! notifier (unless the notifier runs on stores of its own, [`NotifierStores`]); one
//! authentication cache shared by the use cases that can invalidate a token; the set of
//! delivery methods derived from the dispatchers actually built.

use std::sync::Arc;

use herald_domain::Method;

use crate::config::{DefaultMethod, DeliveryConfig, NotifierSettings};
use crate::events::{EventPorts, Events};
use crate::inbox::Inbox;
use crate::limits::{Limits, RateLimiter};
use crate::messages::Messages;
use crate::notifier::{Notifier, NotifierHandle, NotifierPorts};
use crate::ports::{
    BuildStore, Clock, Dispatcher, DispatcherSetting, InboxFeed, InboxStore, MessageQueue,
    NotifierMetrics, PreferenceStore, RateCounter, ReportLog, ResourceStateStore, SessionStore,
    SettingsStore, TaskStateStore, TemplateStore, TokenStore, UserDirectory, UserRegistry, Wakeup,
};
use crate::preferences::Preferences;
use crate::purge::Purger;
use crate::rendering::Renderer;
use crate::reports::{REPORT_CHECK_INTERVAL, ReportScheduler, Reports};
use crate::settings::Settings;
use crate::signals::{SignalPorts, Signals};
use crate::templates::{CachedTemplates, TEMPLATE_CACHE_TTL, Templates};
use crate::tokens::{AuthCache, Tokens};
use crate::unsubscribe::UnsubscribeKey;
use crate::users::Users;
use crate::watching::Watching;
use crate::web_sessions::WebSessions;

/// Everything the use cases drive. Each is one port; a store implementing several is handed
/// once per port.
#[derive(Debug, Clone)]
pub struct Ports {
    /// Who the users are (the host's directory when embedded, else Herald's own).
    pub directory: Arc<dyn UserDirectory>,
    /// Herald's own directory, written through the `/users` API; `None` when the host's
    /// directory is the source of users (then there is no [`Users`] use case).
    pub registry: Option<Arc<dyn UserRegistry>>,
    pub preferences: Arc<dyn PreferenceStore>,
    /// The template store itself: [`Services::build`] puts the one shared cache in front.
    pub templates: Arc<dyn TemplateStore>,
    pub queue: Arc<dyn MessageQueue>,
    pub settings: Arc<dyn SettingsStore>,
    pub inbox: Arc<dyn InboxStore>,
    pub tokens: Arc<dyn TokenStore>,
    /// The web pages' sessions and sign-in links.
    pub sessions: Arc<dyn SessionStore>,
    /// Where rate limits count requests (shared by every replica).
    pub rates: Arc<dyn RateCounter>,
    /// Where the host signals keep each resource's last state (shared by every replica).
    pub resources: Arc<dyn ResourceStateStore>,
    /// Where the host signals keep each task's last state (shared by every replica).
    pub tasks: Arc<dyn TaskStateStore>,
    /// The workspace builds hosts report, for the failed-builds report.
    pub builds: Arc<dyn BuildStore>,
    /// When each periodic report last ran (shared by every replica).
    pub report_log: Arc<dyn ReportLog>,
    pub wakeup: Arc<dyn Wakeup>,
    pub inbox_feed: Arc<dyn InboxFeed>,
    pub clock: Arc<dyn Clock>,
    /// Where the notifier reports (`NoMetrics` to report nowhere).
    pub metrics: Arc<dyn NotifierMetrics>,
    /// The stores the notifier runs on when it has connections of its own, so that requests
    /// holding every connection of the stores above cannot stall leases and write-backs;
    /// `None`: the notifier shares the stores above.
    pub notifier_stores: Option<NotifierStores>,
}

/// The storage a notifier reads and writes, when it is not the API's.
#[derive(Debug, Clone)]
pub struct NotifierStores {
    pub queue: Arc<dyn MessageQueue>,
    /// The template store itself: [`Services::build`] puts the notifier's own cache in front.
    pub templates: Arc<dyn TemplateStore>,
    pub directory: Arc<dyn UserDirectory>,
    pub preferences: Arc<dyn PreferenceStore>,
    pub settings: Arc<dyn SettingsStore>,
}

impl NotifierStores {
    /// Every store a notifier needs over one store that implements them all; a host with a
    /// directory of its own replaces `directory`.
    pub fn over<S>(store: Arc<S>) -> Self
    where
        S: UserDirectory + PreferenceStore + TemplateStore + MessageQueue + SettingsStore + 'static,
    {
        Self {
            queue: store.clone(),
            templates: store.clone(),
            directory: store.clone(),
            preferences: store.clone(),
            settings: store,
        }
    }
}

impl Ports {
    /// Every storage port over one store that implements them all (PostgreSQL, the memory
    /// fakes), with Herald's own directory, the notifier sharing them; a host with a directory
    /// of its own replaces `directory` and clears `registry`.
    pub fn over<S>(
        store: Arc<S>,
        wakeup: Arc<dyn Wakeup>,
        inbox_feed: Arc<dyn InboxFeed>,
        clock: Arc<dyn Clock>,
        metrics: Arc<dyn NotifierMetrics>,
    ) -> Self
    where
        S: UserRegistry
            + PreferenceStore
            + TemplateStore
            + MessageQueue
            + SettingsStore
            + InboxStore
            + TokenStore
            + SessionStore
            + RateCounter
            + ResourceStateStore
            + TaskStateStore
            + BuildStore
            + ReportLog
            + 'static,
    {
        Self {
            directory: store.clone(),
            registry: Some(store.clone()),
            preferences: store.clone(),
            templates: store.clone(),
            queue: store.clone(),
            settings: store.clone(),
            inbox: store.clone(),
            tokens: store.clone(),
            sessions: store.clone(),
            rates: store.clone(),
            resources: store.clone(),
            tasks: store.clone(),
            builds: store.clone(),
            report_log: store,
            wakeup,
            inbox_feed,
            clock,
            metrics,
            notifier_stores: None,
        }
    }
}

/// What the use cases run with besides their ports, each value checked where it entered.
#[derive(Debug, Clone)]
pub struct Config {
    /// The name notifications sign with.
    pub app_name: String,
    /// Herald's own public URL (unsubscribe links, Herald's pages).
    pub access_url: String,
    /// The host application's URL, on which catalogue action links and the `base_url` helper
    /// are built; `None`: the access URL.
    pub app_url: Option<String>,
    pub default_method: DefaultMethod,
    pub notifier: NotifierSettings,
    /// Signs one-click unsubscribe links (emails carry them, the API checks them).
    pub unsubscribe_key: UnsubscribeKey,
    /// What one caller may take: open inbox watchers, custom notifications.
    pub limits: Limits,
}

/// Every use case of one Herald process, over one set of ports.
#[derive(Debug, Clone)]
pub struct Services {
    events: Events,
    signals: Signals,
    settings: Settings,
    preferences: Preferences,
    templates: Templates,
    inbox: Inbox,
    tokens: Tokens,
    messages: Messages,
    users: Option<Users>,
    purger: Purger,
    reports: Reports,
    delivery: DeliveryConfig,
    renderer: Renderer,
    /// Herald's own public URL (`--access-url`), without a trailing `/`: its pages and links.
    access_url: String,
    unsubscribe_key: UnsubscribeKey,
    notifier: NotifierParts,
    inbox_feed: Arc<dyn InboxFeed>,
    watching: Watching,
    web_sessions: WebSessions,
}

/// What [`Services::notifier`] builds a notifier from.
#[derive(Debug, Clone)]
struct NotifierParts {
    settings: NotifierSettings,
    ports: NotifierPorts,
    dispatchers: Vec<Arc<dyn Dispatcher>>,
    wakeup: Arc<dyn Wakeup>,
    metrics: Arc<dyn NotifierMetrics>,
}

impl Services {
    /// Builds every use case. `dispatchers` are the delivery methods this deployment built
    /// (at most one per method); the methods events go out by are derived from them.
    pub fn build(ports: Ports, config: Config, dispatchers: Vec<Arc<dyn Dispatcher>>) -> Self {
        let Ports {
            directory,
            registry,
            preferences,
            templates,
            queue,
            settings,
            inbox,
            tokens,
            sessions,
            rates,
            resources,
            tasks,
            builds,
            report_log,
            wakeup,
            inbox_feed,
            clock,
            metrics,
            notifier_stores,
        } = ports;
        let delivery = DeliveryConfig::new(
            config.default_method,
            dispatchers.iter().map(|dispatcher| dispatcher.method()),
        );
        let renderer = Renderer::new(
            &config.app_name,
            config.app_url.as_deref().unwrap_or(&config.access_url),
        );
        // One per process, shared by every use case that reads or changes templates, so a
        // method override set on this replica applies to the next event at once.
        let templates: Arc<dyn TemplateStore> = Arc::new(CachedTemplates::new(
            templates,
            Arc::clone(&clock),
            TEMPLATE_CACHE_TTL,
        ));
        // One per process, shared by every use case that can invalidate an authentication
        // (revoking tokens, changing or deleting a user), so such a change on this replica
        // applies from the next request on.
        let auth_cache = AuthCache::default();
        let events = Events::new(
            EventPorts {
                directory: Arc::clone(&directory),
                preferences: Arc::clone(&preferences),
                templates: Arc::clone(&templates),
                queue: Arc::clone(&queue),
                wakeup: Arc::clone(&wakeup),
                clock: Arc::clone(&clock),
            },
            delivery.clone(),
            renderer.clone(),
        );
        let events = match config.limits.custom_notifications {
            Some(limit) => events.with_custom_limit(RateLimiter::custom_notifications(
                rates,
                Arc::clone(&clock),
                limit,
            )),
            None => events,
        };
        let signals = Signals::new(
            SignalPorts {
                directory: Arc::clone(&directory),
                resources,
                tasks,
                clock: Arc::clone(&clock),
            },
            events.clone(),
        );
        let tokens = Tokens::new(
            tokens,
            directory.clone(),
            Arc::clone(&clock),
            auth_cache.clone(),
        )
        .with_sessions(Arc::clone(&sessions));
        let web_sessions = WebSessions::new(
            sessions,
            tokens.clone(),
            directory.clone(),
            Arc::clone(&clock),
        );
        let watching = Watching::new(
            Arc::clone(&inbox_feed),
            tokens.clone(),
            config.limits.watchers,
        );
        let notifier_ports = match notifier_stores {
            // The notifier's own cache, over its own store: a change made through the use
            // cases below reaches it within the TTL, as a change made on another replica does
            // (the notifier reads a template's text, which only a seed changes).
            Some(stores) => NotifierPorts {
                queue: stores.queue,
                templates: Arc::new(CachedTemplates::new(
                    stores.templates,
                    Arc::clone(&clock),
                    TEMPLATE_CACHE_TTL,
                )),
                directory: stores.directory,
                preferences: stores.preferences,
                settings: stores.settings,
                clock: Arc::clone(&clock),
            },
            None => NotifierPorts {
                queue: Arc::clone(&queue),
                templates: Arc::clone(&templates),
                directory: Arc::clone(&directory),
                preferences: Arc::clone(&preferences),
                settings: Arc::clone(&settings),
                clock: Arc::clone(&clock),
            },
        };
        let notifier = NotifierParts {
            settings: config.notifier,
            ports: notifier_ports,
            dispatchers,
            wakeup: Arc::clone(&wakeup),
            metrics,
        };
        let reports = Reports::new(
            Arc::clone(&builds),
            report_log,
            Arc::clone(&directory),
            events.clone(),
            Arc::clone(&clock),
        );
        Self {
            events,
            signals,
            settings: Settings::new(settings, wakeup),
            preferences: Preferences::new(
                preferences,
                Arc::clone(&templates),
                Arc::clone(&directory),
                Arc::clone(&clock),
            ),
            templates: Templates::new(templates, delivery.clone()),
            inbox: Inbox::new(inbox, Arc::clone(&clock)),
            tokens,
            messages: Messages::new(Arc::clone(&queue)),
            users: registry.map(|registry| {
                Users::new(registry, Arc::clone(&queue), Arc::clone(&clock), auth_cache)
            }),
            purger: Purger::new(queue, builds, clock),
            reports,
            delivery,
            renderer,
            access_url: config.access_url.trim_end_matches('/').to_owned(),
            unsubscribe_key: config.unsubscribe_key,
            notifier,
            inbox_feed,
            watching,
            web_sessions,
        }
    }

    /// This replica's notifier, named `name` in logs, over the services' ports and
    /// dispatchers, woken by their enqueues.
    pub fn notifier(&self, name: impl Into<String>) -> Notifier {
        let parts = &self.notifier;
        Notifier::new(
            name,
            parts.settings.clone(),
            parts.ports.clone(),
            parts.dispatchers.clone(),
            self.renderer.clone(),
            parts.wakeup.subscribe(),
        )
        .with_metrics(Arc::clone(&parts.metrics))
    }

    /// This replica's notifier running under supervision: restarted after a panic of its loop
    /// ([`NotifierHandle::supervise`]).
    pub fn spawn_notifier(&self, name: impl Into<String>) -> NotifierHandle {
        let (services, name) = (self.clone(), name.into());
        NotifierHandle::supervise(move || services.notifier(name.clone()))
    }

    /// The notifier's validated tuning (attempts, retry interval, lease period…).
    pub fn notifier_settings(&self) -> &NotifierSettings {
        &self.notifier.settings
    }

    /// Each dispatcher's method and the configuration it shows an operator (secrets only as
    /// set or not: [`Dispatcher::settings`]), in method order.
    pub fn dispatcher_settings(&self) -> Vec<(Method, Vec<DispatcherSetting>)> {
        let mut listed: Vec<_> = self
            .notifier
            .dispatchers
            .iter()
            .map(|dispatcher| (dispatcher.method(), dispatcher.settings()))
            .collect();
        listed.sort_by_key(|(method, _)| *method);
        listed
    }

    /// The ports a notifier of these services drives (a test may replace some and build its
    /// own notifier over them).
    pub fn notifier_ports(&self) -> &NotifierPorts {
        &self.notifier.ports
    }

    /// Enqueue events (DESIGN §4).
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// Host signals (DESIGN §10.5): resource usage and task state, announced when they change.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// The pause switch.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn preferences(&self) -> &Preferences {
        &self.preferences
    }

    pub fn templates(&self) -> &Templates {
        &self.templates
    }

    pub fn inbox(&self) -> &Inbox {
        &self.inbox
    }

    /// API tokens: issued to users, exchanged for the calling user.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Troubleshooting listings of the queue.
    pub fn messages(&self) -> &Messages {
        &self.messages
    }

    /// Herald's own user directory; `None` when the host supplied its directory.
    pub fn users(&self) -> Option<&Users> {
        self.users.as_ref()
    }

    /// The 7-day retention.
    pub fn purger(&self) -> &Purger {
        &self.purger
    }

    /// Builds hosts report, and the weekly failed-builds report.
    pub fn reports(&self) -> &Reports {
        &self.reports
    }

    /// This replica's report scheduler: checks every [`REPORT_CHECK_INTERVAL`] whether the
    /// failed-builds report is due; of all replicas, one sends it.
    pub fn spawn_reports(&self) -> ReportScheduler {
        ReportScheduler::spawn(self.reports.clone(), REPORT_CHECK_INTERVAL)
    }

    /// The delivery methods this deployment has, and the default.
    pub fn delivery(&self) -> &DeliveryConfig {
        &self.delivery
    }

    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// Herald's own public URL (`--access-url`, without a trailing `/`), on which its pages,
    /// sign-in links and unsubscribe links are built; catalogue links use the app URL
    /// ([`Renderer::app_url`]).
    pub fn access_url(&self) -> &str {
        &self.access_url
    }

    pub fn unsubscribe_key(&self) -> &UnsubscribeKey {
        &self.unsubscribe_key
    }

    /// Live inbox notifications, per user.
    pub fn inbox_feed(&self) -> &Arc<dyn InboxFeed> {
        &self.inbox_feed
    }

    /// The web pages' sessions and sign-in links.
    pub fn web_sessions(&self) -> &WebSessions {
        &self.web_sessions
    }

    /// Live inbox watches, within this replica's limits, ending with their token.
    pub fn watching(&self) -> &Watching {
        &self.watching
    }
}
