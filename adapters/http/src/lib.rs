//! Herald's HTTP API (DESIGN §7): an axum [`Router`] over the use cases, all under
//! [`API_PREFIX`], JSON in and out, callers authenticated by `Authorization: Bearer <token>`.
//!
//! What a client can rely on:
//! - every error is JSON `{"message", "detail"}` (plus `"field"` for bad input) — axum's
//!   plain-text rejections never reach a client: bodies, paths and queries go through this
//!   crate's own extractors (`extract`), and unknown routes and methods have JSON fallbacks;
//! - bad input is a 400 naming the field, never a 500; bodies over [`MAX_BODY_BYTES`] are a
//!   413; request bodies refuse unknown fields, so a typo is an error rather than ignored;
//! - 401 without a live token (unknown, revoked, or its user deleted), 403 when the caller's
//!   roles do not allow the route.
//!
//! Routes live next to their handlers: `users` (the directory and tokens), `builds` (workspace
//! builds a host reports), `notifications`
//! (events, settings, templates, preferences, messages), `inbox`, `signals` (the host's resource usage and task states), `unsubscribe` (the signed
//! one-click links of emails), `health` and `metrics` (`GET /metrics`, Prometheus text). The
//! route table in [`routes`] builds the router and writes `GET /api/v2/openapi.json`, so a
//! route cannot be served without being described. The web pages ([`web`]: sign-in and the
//! inbox, HTML over session cookies, and the embeddable bell's script) are added beside the
//! API's routes, outside the table; [`cors`] lets the listed origins' pages call the bell's
//! routes.

mod builds;
pub mod cors;
mod error;
mod extract;
mod health;
mod inbox;
pub mod metrics;
mod notifications;
pub mod routes;
mod signals;
mod unsubscribe;
mod users;
mod vocabulary;
pub mod watch;
pub mod web;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Router;
use herald_application::{NotifierHealth, Services, Settings, Users};

pub use cors::AllowedOrigins;
pub use error::ApiError;
pub use metrics::PrometheusMetrics;
pub use routes::{openapi, routes};

/// Where every API route lives.
pub const API_PREFIX: &str = "/api/v2";
/// The largest request body accepted; larger ones are answered 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What `GET /readyz` runs: `Ok` when the service can serve (the database answers), else why
/// not, in words fit for the answer's `detail`.
#[derive(Clone)]
pub struct Readiness(Arc<dyn Fn() -> ReadinessFuture + Send + Sync>);

type ReadinessFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

impl Readiness {
    pub fn new<F, Fut>(check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self(Arc::new(move || Box::pin(check())))
    }

    /// Ready as long as the notifier's pause flag can be read (it lives in the database).
    pub fn from_settings(settings: Settings) -> Self {
        Self::new(move || {
            let settings = settings.clone();
            async move {
                settings.notifier_paused().await.map(|_| ()).map_err(|err| {
                    // The store's own words stay in the log: they may name hosts.
                    tracing::warn!(error = %err, "http: not ready: the database cannot be reached");
                    "the database cannot be reached".to_owned()
                })
            }
        })
    }

    /// Ready while the notifier runs (not restarting after a panic) and the pause flag can
    /// be read.
    pub fn from_settings_and_notifier(settings: Settings, notifier: NotifierHealth) -> Self {
        let settings = Self::from_settings(settings);
        Self::new(move || {
            let (settings, running) = (settings.clone(), notifier.is_running());
            async move {
                if !running {
                    return Err(
                        "the notifier is not running: it is starting again after a panic"
                            .to_owned(),
                    );
                }
                settings.check().await
            }
        })
    }

    async fn check(&self) -> Result<(), String> {
        (self.0)().await
    }
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Readiness")
    }
}

/// What the API drives: the use cases of one Herald process (built by
/// [`Services::build`], the composition root), and where the notifier reports its metrics.
#[derive(Debug, Clone)]
pub struct Api {
    services: Services,
    /// Herald's own user directory, which the `/users` routes manage.
    users: Users,
    readiness: Readiness,
    /// What `GET /metrics` shows (the notifier reports into it).
    metrics: Arc<PrometheusMetrics>,
    /// The origins whose pages may embed the bell ([`cors`]).
    allowed_origins: AllowedOrigins,
}

impl Api {
    /// The API over `services`, ready when their pause switch can be read. `None` when the
    /// services have no user directory of Herald's own (a host brought its directory): the
    /// `/users` routes could not manage its users.
    pub fn new(services: Services, metrics: Arc<PrometheusMetrics>) -> Option<Self> {
        let users = services.users()?.clone();
        Some(Self {
            readiness: Readiness::from_settings(services.settings().clone()),
            users,
            services,
            metrics,
            allowed_origins: AllowedOrigins::default(),
        })
    }

    /// Pages on these origins may embed the bell: they get CORS headers on its routes
    /// ([`cors`]).
    #[must_use]
    pub fn with_allowed_origins(mut self, origins: AllowedOrigins) -> Self {
        self.allowed_origins = origins;
        self
    }

    /// `GET /readyz` runs `readiness` instead of reading the pause switch.
    #[must_use]
    pub fn with_readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }
}

type State = Arc<Api>;

/// The whole HTTP API: the routes under [`API_PREFIX`], `/healthz`, `/readyz` and `/metrics`.
/// Routes are added in [`routes`]'s table only: it also writes `GET /api/v2/openapi.json`.
/// The bell's routes answer the allowed origins' cross-origin requests ([`cors`]).
pub fn router(api: Api) -> Router {
    let origins = api.allowed_origins.clone();
    web::add(routes::add_all(Router::new()))
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(origins, cors::headers))
        .with_state(Arc::new(api))
}
