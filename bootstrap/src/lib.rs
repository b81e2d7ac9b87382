//! Herald bootstrap: configuration, wiring and the built-in database, shared by the `herald`
//! binary and by Rust hosts that embed Herald.
//!
//! [`Herald::builder`] composes the use cases over PostgreSQL and the configured delivery
//! methods, starts one notifier, the hourly purge loop and the report scheduler
//! (`Services::spawn_reports`), and hands back a [`Herald`] whose
//! [`Herald::shutdown`] stops them in order. A host may bring its own user directory
//! ([`HeraldBuilder::user_directory`]) and its own connection pool ([`HeraldBuilder::pool`]);
//! the binary passes its checked command line ([`HeraldBuilder::config`]).
//!
//! The notifier runs on connections the API cannot take: when Herald opens its own pools (a
//! URL, the built-in database) the notifier gets a small pool of its own
//! ([`HeraldBuilder::notifier_connections`]), so requests holding every API connection leave
//! leases and write-backs unaffected. On a host's pool the notifier shares it, unless the host
//! hands it one more ([`HeraldBuilder::notifier_pool`]).

pub mod builtin_postgres;
pub mod client;
pub mod config;
pub mod http_server;
pub mod logging;

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use herald_application::ports::{
    Clock, Dispatcher, InboxFeed, PurgeOutcome, SystemClock, TemplateStore as _, UserDirectory,
};
use herald_application::unsubscribe::UnsubscribeKey;
use herald_application::{
    Config, ConfigError, DefaultMethod, DeliveryConfig, Events, Inbox, Limits, Messages,
    NotifierConfig, NotifierHandle, NotifierSettings, NotifierStores, Ports, Preferences, Purger,
    ReportScheduler, Services, Settings, Templates, Tokens, Users, WebSessions,
};
use herald_domain::catalogue;
use herald_http::AllowedOrigins;
use herald_inbox::InboxDispatcher;
use herald_postgres::{PgSignals, PgStore};
use herald_smtp::{SmtpConfig, SmtpDispatcher, SmtpSettings};
use herald_webhook::{WebhookConfig, WebhookDispatcher};
use sqlx::PgPool;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use builtin_postgres::{BuiltinOptions, BuiltinPostgres};
pub use config::ServerConfig;

/// The name notifications sign with unless [`HeraldBuilder::app_name`] says otherwise.
pub const APP_NAME: &str = "Herald";
/// How often old messages are purged.
pub const PURGE_INTERVAL: Duration = Duration::from_secs(60 * 60);
/// The file in the data directory that keeps the unsubscribe signing key.
pub const UNSUBSCRIBE_KEY_FILE: &str = "unsubscribe-key";
/// The connections of the notifier's own pool unless [`HeraldBuilder::notifier_connections`]
/// says otherwise: its lease, the three reads of a batch and a write-back at once.
pub const NOTIFIER_CONNECTIONS: u32 = 5;
/// The configuration key of [`HeraldBuilder::notifier_connections`].
pub const NOTIFIER_CONNECTIONS_KEY: &str = "postgres.notifier_connections";
/// The most connections [`HeraldBuilder::notifier_connections`] accepts.
const MAX_NOTIFIER_CONNECTIONS: u32 = 100;

/// Where the builder gets its database from.
#[derive(Debug)]
enum Database {
    Unset,
    Url(config::PostgresUrl),
    Pool(PgPool),
    Builtin(BuiltinOptions),
}

/// Composes a [`Herald`]. Defaults: the reference's notifier settings, `smtp` as the default
/// method (used only once SMTP is configured), the inbox enabled, the system clock, Herald's
/// own user directory, migrations applied at build.
///
/// Each setting is checked where it enters (the setter); the first bad one is what
/// [`HeraldBuilder::build`] reports, naming its configuration key.
pub struct HeraldBuilder {
    database: Database,
    /// The host's pool for the notifier ([`HeraldBuilder::notifier_pool`]).
    notifier_pool: Option<PgPool>,
    notifier_connections: u32,
    directory: Option<Arc<dyn UserDirectory>>,
    notifier: NotifierSettings,
    notifier_name: Option<String>,
    default_method: DefaultMethod,
    inbox_enabled: bool,
    smtp: Option<SmtpSettings>,
    webhook: Option<WebhookConfig>,
    access_url: String,
    app_url: Option<String>,
    app_name: String,
    unsubscribe_key: Option<UnsubscribeKey>,
    web_allowed_origins: AllowedOrigins,
    limits: Limits,
    clock: Arc<dyn Clock>,
    migrate: bool,
    /// The first setting refused.
    refused: Option<ConfigError>,
}

impl fmt::Debug for HeraldBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeraldBuilder")
            .field("database", &self.database)
            .field("notifier_pool", &self.notifier_pool)
            .field("notifier_connections", &self.notifier_connections)
            .field("directory", &self.directory)
            .field("notifier", &self.notifier)
            .field("default_method", &self.default_method)
            .field("inbox_enabled", &self.inbox_enabled)
            .field("smtp", &self.smtp)
            .field("webhook", &self.webhook)
            .field("access_url", &self.access_url)
            .field("app_url", &self.app_url)
            .field("app_name", &self.app_name)
            .field(
                "unsubscribe_key",
                &self.unsubscribe_key.as_ref().map(|_| "<redacted>"),
            )
            .field("web_allowed_origins", &self.web_allowed_origins)
            .field("limits", &self.limits)
            .field("migrate", &self.migrate)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl HeraldBuilder {
    fn new() -> Self {
        Self {
            database: Database::Unset,
            notifier_pool: None,
            notifier_connections: NOTIFIER_CONNECTIONS,
            directory: None,
            notifier: NotifierSettings::default(),
            notifier_name: None,
            default_method: DefaultMethod::Smtp,
            inbox_enabled: true,
            smtp: None,
            webhook: None,
            access_url: "http://127.0.0.1:3000".to_owned(),
            app_url: None,
            app_name: APP_NAME.to_owned(),
            unsubscribe_key: None,
            web_allowed_origins: AllowedOrigins::default(),
            limits: Limits::default(),
            clock: Arc::new(SystemClock),
            migrate: true,
            refused: None,
        }
    }

    fn refuse(&mut self, err: ConfigError) {
        self.refused.get_or_insert(err);
    }

    /// Everything from the checked command line (`herald server`): database, notifier,
    /// delivery methods, access URL and (when given) the unsubscribe key.
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.database = match config.database {
            config::DatabaseConfig::External(url) => Database::Url(url),
            config::DatabaseConfig::Builtin(options) => Database::Builtin(options),
        };
        self.notifier = config.notifier;
        self.notifier_connections = config.notifier_connections;
        self.default_method = config.default_method;
        self.inbox_enabled = config.inbox_enabled;
        self.smtp = config.smtp;
        self.webhook = config.webhook;
        self.access_url = config.access_url;
        self.app_url = config.app_url;
        self.limits = config.limits;
        self.web_allowed_origins = config.web_allowed_origins;
        if let Some(key) = config.unsubscribe_key {
            self.unsubscribe_key = Some(key);
        }
        self
    }

    /// Connect to the database at this URL (a pool of Herald's own).
    pub fn database_url(mut self, url: impl Into<String>) -> Self {
        self.database = Database::Url(config::PostgresUrl::new(url));
        self
    }

    /// Use the host's pool. Herald never closes it. The notifier shares it with the API and
    /// the host, so requests holding all its connections delay leases and write-backs (a
    /// write-back that cannot get a connection within the pool's acquire timeout fails), unless
    /// [`HeraldBuilder::notifier_pool`] gives the notifier a pool of its own.
    pub fn pool(mut self, pool: PgPool) -> Self {
        self.database = Database::Pool(pool);
        self
    }

    /// With [`HeraldBuilder::pool`]: the pool the notifier runs on (its leases, reads,
    /// write-backs and inbox inserts, and the wake-up signals), apart from the one the API
    /// uses. Herald never closes it. Ignored when Herald opens its own pools.
    pub fn notifier_pool(mut self, pool: PgPool) -> Self {
        self.notifier_pool = Some(pool);
        self
    }

    /// How many connections the notifier's own pool holds when Herald opens its pools (a URL,
    /// the built-in database; default [`NOTIFIER_CONNECTIONS`]), on top of the API's.
    pub fn notifier_connections(mut self, connections: u32) -> Self {
        match check_notifier_connections(connections) {
            Ok(()) => self.notifier_connections = connections,
            Err(err) => self.refuse(err),
        }
        self
    }

    /// Run a private PostgreSQL cluster in a data directory (stopped by [`Herald::shutdown`]).
    pub fn builtin_postgres(mut self, options: BuiltinOptions) -> Self {
        self.database = Database::Builtin(options);
        self
    }

    /// The host's user directory. Without it Herald keeps its own (`users` table), managed
    /// through [`Herald::users`].
    pub fn user_directory(mut self, directory: Arc<dyn UserDirectory>) -> Self {
        self.directory = Some(directory);
        self
    }

    /// The notifier's tuning, checked here ([`NotifierConfig::validate`]).
    pub fn notifier_config(mut self, config: NotifierConfig) -> Self {
        match config.validate() {
            Ok(settings) => self.notifier = settings,
            Err(err) => self.refuse(err),
        }
        self
    }

    /// What one caller may take: open inbox watchers per user and per replica, custom
    /// notifications per user (default [`Limits::default`]; its parts check their values
    /// where they are built).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The notifier's name in logs (default `herald-<pid>`).
    pub fn notifier_name(mut self, name: impl Into<String>) -> Self {
        self.notifier_name = Some(name.into());
        self
    }

    /// The method events go out by unless their template overrides it: `smtp` or `webhook`.
    pub fn default_method(mut self, method: DefaultMethod) -> Self {
        self.default_method = method;
        self
    }

    pub fn inbox_enabled(mut self, enabled: bool) -> Self {
        self.inbox_enabled = enabled;
        self
    }

    /// Deliver by email with these settings, checked here ([`SmtpConfig::validate`], which
    /// reads the files they name).
    pub fn smtp(mut self, config: SmtpConfig) -> Self {
        match config.validate() {
            Ok(settings) => self.smtp = Some(settings),
            Err(err) => self.refuse(err),
        }
        self
    }

    /// Deliver by webhook with these settings: endpoint, signing secret, timeout and body
    /// format ([`herald_webhook::WebhookFormat`]: Herald's JSON, Slack or Microsoft Teams).
    pub fn webhook(mut self, config: WebhookConfig) -> Self {
        self.webhook = Some(config);
        self
    }

    /// Herald's own public URL: unsubscribe links and Herald's pages are built on it (and
    /// action links too, unless [`HeraldBuilder::app_url`] is set).
    pub fn access_url(mut self, url: impl Into<String>) -> Self {
        self.access_url = url.into();
        self
    }

    /// The host application's URL: notifications' action links and the `base_url` template
    /// helper are built on it. Defaults to the access URL.
    pub fn app_url(mut self, url: impl Into<String>) -> Self {
        self.app_url = Some(url.into());
        self
    }

    pub fn app_name(mut self, name: impl Into<String>) -> Self {
        self.app_name = name.into();
        self
    }

    /// The origins whose pages may embed the `<herald-inbox>` bell: [`Herald::http_router`]
    /// answers their cross-origin requests on the bell's routes ([`herald_http::cors`]).
    /// Default: none.
    pub fn web_allowed_origins(mut self, origins: AllowedOrigins) -> Self {
        self.web_allowed_origins = origins;
        self
    }

    /// The key signing one-click unsubscribe links. Without it a key is generated for this
    /// process only, and links in emails sent before a restart stop working.
    pub fn unsubscribe_key(mut self, key: UnsubscribeKey) -> Self {
        self.unsubscribe_key = Some(key);
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Whether to apply the migrations at build (default `true`).
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Connects (starting the built-in database if asked), migrates, seeds the catalogue, and
    /// starts the notifier, the purge loop and the report scheduler.
    ///
    /// # Errors
    /// A setting refused when it was given (naming its configuration key), an unreachable
    /// database, a failed migration. Whatever was started is stopped again.
    pub async fn build(mut self) -> Result<Herald> {
        if let Some(err) = self.refused.take() {
            return Err(anyhow!("invalid configuration: {err}"));
        }
        let mut builtin = None;
        let database = std::mem::replace(&mut self.database, Database::Unset);
        let connections = self.notifier_connections;
        let (pools, owns_pool) = match database {
            Database::Unset => {
                return Err(anyhow!(
                    "no database: give the builder a pool, a URL or the built-in PostgreSQL"
                ));
            }
            Database::Pool(pool) => (
                Pools {
                    api: pool,
                    notifier: self.notifier_pool.take(),
                },
                false,
            ),
            Database::Url(url) => (Pools::connect(&url, connections).await?, true),
            Database::Builtin(options) => {
                let cluster = BuiltinPostgres::start(&options).await?;
                let url = cluster.url().clone();
                builtin = Some(cluster);
                match Pools::connect(&url, connections).await {
                    Ok(pools) => (pools, true),
                    Err(err) => return Err(stop_builtin(builtin, err).await),
                }
            }
        };
        match self.assemble(pools.clone(), owns_pool).await {
            Ok(mut herald) => {
                herald.builtin = builtin;
                Ok(herald)
            }
            Err(err) => {
                if owns_pool {
                    pools.close().await;
                }
                Err(stop_builtin(builtin, err).await)
            }
        }
    }

    async fn assemble(self, pools: Pools, owns_pool: bool) -> Result<Herald> {
        let over = |pool: &PgPool| {
            if owns_pool {
                PgStore::from_own_pool(pool.clone())
            } else {
                PgStore::from_pool(pool.clone())
            }
        };
        let store = over(&pools.api);
        let notifier_store = pools.notifier.as_ref().map(over);
        if self.migrate {
            store
                .migrate()
                .await
                .context("applying the database migrations")?;
        }
        store
            .seed(&catalogue::templates())
            .await
            .context("seeding the template catalogue")?;
        // On the notifier's pool: publishing what the inbox dispatcher stored must not wait
        // for an API connection. The API's statements there (a wake-up after an enqueue) are
        // few and short.
        let signals = Arc::new(
            PgSignals::start(pools.notifier.clone().unwrap_or_else(|| pools.api.clone()))
                .await
                .context("listening for wake-ups on the database")?,
        );
        let unsubscribe_key = match self.unsubscribe_key {
            Some(key) => key,
            None => {
                tracing::warn!(
                    "no unsubscribe key configured: using one for this process only; unsubscribe links stop working after a restart"
                );
                UnsubscribeKey::generate().context("generating an unsubscribe key")?
            }
        };
        let shared = Arc::new(store.clone());
        let clock = self.clock;
        let metrics = Arc::new(herald_http::PrometheusMetrics::new());
        let mut ports = Ports::over(
            shared.clone(),
            signals.clone(),
            signals.clone(),
            clock.clone(),
            metrics.clone(),
        );
        let notifier_shared = notifier_store.clone().map(Arc::new);
        ports.notifier_stores = notifier_shared.clone().map(NotifierStores::over);
        if let Some(directory) = self.directory {
            ports.directory = directory.clone();
            ports.registry = None;
            if let Some(stores) = &mut ports.notifier_stores {
                stores.directory = directory;
            }
        }
        let feed = ports.inbox_feed.clone();

        let mut dispatchers: Vec<Arc<dyn Dispatcher>> = Vec::new();
        if let Some(smtp) = self.smtp {
            dispatchers.push(Arc::new(SmtpDispatcher::new(
                smtp,
                &self.access_url,
                &self.app_name,
                unsubscribe_key.clone(),
            )));
        }
        if let Some(webhook) = self.webhook {
            dispatchers.push(Arc::new(
                WebhookDispatcher::new(webhook, clock.clone()).map_err(|err| anyhow!(err))?,
            ));
        }
        if self.inbox_enabled {
            dispatchers.push(Arc::new(InboxDispatcher::new(
                notifier_shared.unwrap_or_else(|| shared.clone()),
                feed.clone(),
                clock.clone(),
            )));
        }

        let services = Services::build(
            ports,
            Config {
                app_name: self.app_name,
                access_url: self.access_url,
                app_url: self.app_url,
                default_method: self.default_method,
                notifier: self.notifier,
                unsubscribe_key,
                limits: self.limits,
            },
            dispatchers,
        );
        let delivery = services.delivery();
        if !delivery.default_is_configured() {
            tracing::warn!(
                method = %delivery.default_method(),
                "notifications: the default delivery method is not configured; events go to the inbox only (set --email-smarthost or --notifications-webhook-endpoint)"
            );
        }
        let notifier =
            services.spawn_notifier(self.notifier_name.unwrap_or_else(default_notifier_name));
        Ok(Herald {
            purge: Some(PurgeLoop::spawn(
                services.purger().clone(),
                services.web_sessions().clone(),
                PURGE_INTERVAL,
            )),
            reports: Some(services.spawn_reports()),
            notifier: Some(notifier),
            services,
            metrics,
            store,
            notifier_store,
            signals: Some(signals),
            web_allowed_origins: self.web_allowed_origins,
            owns_pool,
            builtin: None,
        })
    }
}

/// The API's pool, and the notifier's when it has one of its own.
#[derive(Debug, Clone)]
struct Pools {
    api: PgPool,
    notifier: Option<PgPool>,
}

impl Pools {
    /// Herald's own pools at `url`: [`herald_postgres::POOL_SIZE`] connections for the API,
    /// `notifier` for the notifier.
    async fn connect(url: &config::PostgresUrl, notifier: u32) -> Result<Self> {
        let connect = |size| async move {
            PgStore::connect_sized(url.expose(), size)
                .await
                .map(|store| store.pool().clone())
                .with_context(|| format!("connecting to the database at {url}"))
        };
        let api = connect(herald_postgres::POOL_SIZE).await?;
        match connect(notifier).await {
            Ok(notifier) => Ok(Self {
                api,
                notifier: Some(notifier),
            }),
            Err(err) => {
                api.close().await;
                Err(err)
            }
        }
    }

    async fn close(&self) {
        self.api.close().await;
        if let Some(notifier) = &self.notifier {
            notifier.close().await;
        }
    }
}

/// [`HeraldBuilder::notifier_connections`]: at least 2 (a lease and a write-back at once), at
/// most [`MAX_NOTIFIER_CONNECTIONS`].
pub(crate) fn check_notifier_connections(connections: u32) -> Result<(), ConfigError> {
    if (2..=MAX_NOTIFIER_CONNECTIONS).contains(&connections) {
        Ok(())
    } else {
        Err(ConfigError::new(
            NOTIFIER_CONNECTIONS_KEY,
            format!(
                "must be between 2 and {MAX_NOTIFIER_CONNECTIONS} connections, not {connections}"
            ),
        ))
    }
}

/// Stops the built-in cluster (if any) after `err`, and returns `err`.
async fn stop_builtin(builtin: Option<BuiltinPostgres>, err: anyhow::Error) -> anyhow::Error {
    if let Some(cluster) = builtin
        && let Err(stop) = cluster.stop().await
    {
        tracing::warn!(error = %stop, "could not stop the built-in PostgreSQL");
    }
    err
}

/// A running Herald: the use cases, one notifier, the purge loop, and the built-in database
/// when it runs one. End it with [`Herald::shutdown`]: merely dropping it leaves the notifier
/// task running until the runtime ends (a built-in cluster is still stopped on drop).
#[derive(Debug)]
pub struct Herald {
    services: Services,
    store: PgStore,
    /// The notifier's store, when it has a pool of its own.
    notifier_store: Option<PgStore>,
    signals: Option<Arc<PgSignals>>,
    notifier: Option<NotifierHandle>,
    /// The notifier's metrics, shown by `GET /metrics`.
    metrics: Arc<herald_http::PrometheusMetrics>,
    /// Whose pages may embed the bell ([`HeraldBuilder::web_allowed_origins`]).
    web_allowed_origins: AllowedOrigins,
    purge: Option<PurgeLoop>,
    /// Sends the weekly failed-builds report when it is due (one replica of all sends it).
    reports: Option<ReportScheduler>,
    owns_pool: bool,
    builtin: Option<BuiltinPostgres>,
}

impl Herald {
    pub fn builder() -> HeraldBuilder {
        HeraldBuilder::new()
    }

    /// Every use case, as the HTTP API drives them.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Enqueue events (DESIGN §4).
    pub fn events(&self) -> &Events {
        self.services.events()
    }

    /// The pause switch.
    pub fn settings(&self) -> &Settings {
        self.services.settings()
    }

    pub fn preferences(&self) -> &Preferences {
        self.services.preferences()
    }

    pub fn templates(&self) -> &Templates {
        self.services.templates()
    }

    pub fn inbox(&self) -> &Inbox {
        self.services.inbox()
    }

    /// API tokens: issued to users, exchanged for the calling user.
    pub fn tokens(&self) -> &Tokens {
        self.services.tokens()
    }

    /// Troubleshooting listings of the queue.
    pub fn messages(&self) -> &Messages {
        self.services.messages()
    }

    /// The HTTP API over this Herald's use cases (what `herald server` serves on
    /// `--http-address`, with [`http_server::serve`]); `None` when the host supplied its own
    /// user directory, whose users the API's `/users` routes cannot manage.
    pub fn http_router(&self) -> Option<axum::Router> {
        let api = herald_http::Api::new(self.services.clone(), self.metrics.clone())?
            .with_allowed_origins(self.web_allowed_origins.clone());
        let api = match &self.notifier {
            Some(notifier) => {
                api.with_readiness(herald_http::Readiness::from_settings_and_notifier(
                    self.services.settings().clone(),
                    notifier.health(),
                ))
            }
            None => api,
        };
        Some(herald_http::router(api))
    }

    /// Where the server serving [`Herald::http_router`] reports its connections (shown by
    /// `GET /metrics`).
    pub fn connection_metrics(&self) -> herald_http::metrics::ConnectionMetrics {
        self.metrics.connections()
    }

    /// Herald's own user directory; `None` when the host supplied its directory.
    pub fn users(&self) -> Option<&Users> {
        self.services.users()
    }

    /// Live inbox notifications, per user, from every replica.
    pub fn inbox_feed(&self) -> Arc<dyn InboxFeed> {
        self.services.inbox_feed().clone()
    }

    pub fn delivery(&self) -> &DeliveryConfig {
        self.services.delivery()
    }

    /// The pool the API's use cases run on (the host's, when it gave one).
    pub fn pool(&self) -> &PgPool {
        self.store.pool()
    }

    /// The pool the notifier runs on: its own, or the one [`Herald::pool`] returns when it
    /// shares it.
    pub fn notifier_pool(&self) -> &PgPool {
        self.notifier_store.as_ref().unwrap_or(&self.store).pool()
    }

    /// Stops the notifier (no new leases; in-flight dispatches finish within the dispatch
    /// timeout; results are written back), stops the purge loop, the report scheduler and the
    /// wake-up listener, closes Herald's own pools, and stops the built-in database.
    ///
    /// # Errors
    /// When the built-in database could not be stopped.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(notifier) = self.notifier.take() {
            notifier.stop().await;
        }
        if let Some(purge) = self.purge.take() {
            purge.stop().await;
        }
        if let Some(reports) = self.reports.take() {
            reports.stop().await;
        }
        let Herald {
            services,
            store,
            notifier_store,
            signals,
            owns_pool,
            builtin,
            ..
        } = self;
        // The last handles on the signals: dropping them ends the LISTEN task before the
        // database goes away.
        drop(services);
        drop(signals);
        tokio::task::yield_now().await;
        if owns_pool {
            store.close().await;
            if let Some(notifier_store) = notifier_store {
                notifier_store.close().await;
            }
        }
        if let Some(cluster) = builtin {
            cluster.stop().await?;
        }
        tracing::info!("herald stopped");
        Ok(())
    }
}

/// Purges old messages, and expired web sessions and sign-in links, every `interval` (the
/// first time at once) until stopped.
#[derive(Debug)]
struct PurgeLoop {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl PurgeLoop {
    fn spawn(purger: Purger, sessions: WebSessions, interval: Duration) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = stop_asked(&mut stopped) => break,
                }
                // A purge paces its chunks and can run for minutes: a stop gives it up at once.
                // The chunk in flight rolls back whole and the next purge deletes the rest.
                tokio::select! {
                    () = purge_round(&purger, &sessions) => {}
                    () = stop_asked(&mut stopped) => break,
                }
            }
        });
        Self { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(err) = self.task.await {
            tracing::error!(error = %err, "notifications: purge task ended abnormally");
        }
    }
}

/// Resolves once the purge loop is told to stop (or its stop sender is gone).
async fn stop_asked(stopped: &mut watch::Receiver<bool>) {
    while !*stopped.borrow_and_update() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

/// One round of the purge loop: old messages, keys and builds, then expired web sessions.
async fn purge_round(purger: &Purger, sessions: &WebSessions) {
    match purger.purge().await {
        Ok(PurgeOutcome::Purged(_)) => {}
        Ok(PurgeOutcome::Skipped) => {
            tracing::debug!("notifications: another replica is purging");
        }
        Err(err) => {
            tracing::warn!(error = %err, "notifications: could not purge old messages");
        }
    }
    if let Err(err) = sessions.purge_expired().await {
        tracing::warn!(error = %err, "web: could not purge expired sessions");
    }
}

/// The unsubscribe key kept in `data_dir` ([`UNSUBSCRIBE_KEY_FILE`], hex, mode 0600),
/// generated on first use.
///
/// # Errors
/// When the file cannot be read or written, or holds something that is not a key.
pub fn unsubscribe_key_in(data_dir: &Path) -> Result<UnsubscribeKey> {
    let path = data_dir.join(UNSUBSCRIBE_KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim())
                .map_err(|_| anyhow!("{} does not hold a hex key", path.display()))?;
            UnsubscribeKey::new(bytes).with_context(|| format!("reading {}", path.display()))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
            let key = UnsubscribeKey::generate().context("generating an unsubscribe key")?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(file, "{}", hex::encode(key.expose_bytes()))
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated the unsubscribe signing key");
            Ok(key)
        }
        Err(err) => Err(err).with_context(|| format!("reading {}", path.display())),
    }
}

/// This replica's notifier name when the host gives none: the machine's (or container's) host
/// name and the process id, so "leased by notifier <name>" tells replicas apart even where
/// every process is pid 1.
fn default_notifier_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty());
    match host {
        Some(host) => format!("{host}-{}", std::process::id()),
        None => format!("herald-{}", std::process::id()),
    }
}
