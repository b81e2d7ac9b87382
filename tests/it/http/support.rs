//! The real router over a fresh PostgreSQL database, called in-process with
//! `tower::ServiceExt::oneshot`, and the users a test calls it as.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method as HttpMethod, Request, StatusCode, header};
use herald_application::ports::{Clock, Dispatcher, SystemClock};
use herald_application::unsubscribe::UnsubscribeKey;
use herald_application::{Config, DefaultMethod, Limits, NotifierSettings, Ports, Services};
use herald_domain::{Role, User};
use herald_http::{Api, PrometheusMetrics};
use herald_inbox::InboxDispatcher;
use herald_postgres::{PgSignals, PgStore};
use herald_tests::postgres::TestDatabase;
use herald_tests::sample;
use herald_webhook::{WebhookConfig, WebhookDispatcher, WebhookFormat};
use serde_json::Value;
use tower::ServiceExt as _;

/// Where the app's webhook dispatcher posts: nothing listens there (the HTTP tests never
/// deliver by webhook; the dispatcher is there so the methods are those of a deployment with a
/// webhook endpoint).
const NOWHERE: &str = "http://127.0.0.1:9/herald";

/// The webhook settings of an app: posting [`NOWHERE`], unsigned.
pub fn nowhere_webhook() -> WebhookConfig {
    WebhookConfig {
        endpoint: NOWHERE.to_owned(),
        secret: None,
        timeout: Duration::from_secs(5),
        format: WebhookFormat::Herald,
    }
}

/// The dispatchers of an app: a webhook dispatcher with `webhook` ([`nowhere_webhook`] unless
/// a test configures another), and the inbox's.
fn dispatchers(
    store: &PgStore,
    signals: &Arc<PgSignals>,
    clock: &Arc<dyn Clock>,
    webhook: WebhookConfig,
) -> Vec<Arc<dyn Dispatcher>> {
    vec![
        Arc::new(WebhookDispatcher::new(webhook, clock.clone()).unwrap()),
        Arc::new(InboxDispatcher::new(
            Arc::new(store.clone()),
            signals.clone(),
            clock.clone(),
        )),
    ]
}

/// One response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|err| {
            panic!(
                "the body is not JSON ({err}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the status, and that an error body is `{"message", "detail"}` JSON.
    pub fn expect(self, status: StatusCode) -> Self {
        assert_eq!(self.status, status, "body: {}", self.text());
        if status.is_client_error() || status.is_server_error() {
            let body = self.json();
            assert!(body["message"].is_string(), "{body}");
            assert!(body["detail"].is_string(), "{body}");
        }
        self
    }
}

/// A signed-in user: who, and their token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub token: String,
}

/// The router over a database of its own, with an owner, a user admin and two members. The
/// use cases come from the composition root over PostgreSQL with a webhook and an inbox
/// dispatcher, as `herald server` builds them.
#[derive(Debug)]
pub struct App {
    pub router: Router,
    pub store: PgStore,
    pub services: Services,
    pub key: UnsubscribeKey,
    pub owner: Caller,
    pub admin: Caller,
    pub member: Caller,
    pub other: Caller,
    database: TestDatabase,
}

impl App {
    pub async fn start() -> App {
        Self::start_with(Limits::default(), Arc::new(SystemClock)).await
    }

    /// The app with these limits, on this clock.
    pub async fn start_with(limits: Limits, clock: Arc<dyn Clock>) -> App {
        Self::start_delivering(limits, clock, nowhere_webhook(), Vec::new()).await
    }

    /// The app with this webhook configuration, and `more` dispatchers besides (an SMTP one).
    pub async fn start_delivering(
        limits: Limits,
        clock: Arc<dyn Clock>,
        webhook: WebhookConfig,
        more: Vec<Arc<dyn Dispatcher>>,
    ) -> App {
        let database = TestDatabase::create().await;
        let store = database.store.clone();
        let signals = Arc::new(PgSignals::start(store.pool().clone()).await.unwrap());
        let key = UnsubscribeKey::generate().unwrap();
        let metrics = Arc::new(PrometheusMetrics::new());
        let mut dispatchers = dispatchers(&store, &signals, &clock, webhook);
        dispatchers.extend(more);
        let services = Services::build(
            Ports::over(
                Arc::new(store.clone()),
                signals.clone(),
                signals.clone(),
                clock,
                metrics.clone(),
            ),
            Config {
                app_name: "Herald".to_owned(),
                access_url: "https://herald.example.com".to_owned(),
                // Catalogue links go to the host application; Herald's own pages and links stay on
                // the access URL.
                app_url: Some("https://app.example.com".to_owned()),
                default_method: DefaultMethod::Webhook,
                notifier: NotifierSettings::default(),
                unsubscribe_key: key.clone(),
                limits,
            },
            dispatchers,
        );
        let router = herald_http::router(Api::new(services.clone(), metrics).unwrap());
        let users = services.users().unwrap().clone();
        let tokens = services.tokens().clone();
        let caller = |name: &'static str, roles: &'static [Role]| {
            let users = users.clone();
            let tokens = tokens.clone();
            async move {
                let user = sample::user(name, roles);
                let input = herald_application::UserInput {
                    email: user.email.clone(),
                    username: user.username.clone(),
                    name: String::new(),
                    roles: user.roles.clone(),
                    status: user.status,
                };
                let user = users.upsert(user.id, input).await.unwrap();
                let token = tokens.issue(user.id).await.unwrap().expose().to_owned();
                Caller { user, token }
            }
        };
        App {
            owner: caller("owner", &[Role::Owner]).await,
            admin: caller("admin", &[Role::UserAdmin]).await,
            member: caller("member", &[Role::Member]).await,
            other: caller("other", &[Role::Member]).await,
            router,
            store,
            services,
            key,
            database,
        }
    }

    /// The services of another replica on this app's database: a pool of its own, built by
    /// the composition root as [`App::start_with`] builds the app's, on `clock`.
    pub async fn replica_services(&self, clock: Arc<dyn Clock>) -> Services {
        let store = self.database.replica().await;
        let signals = Arc::new(PgSignals::start(store.pool().clone()).await.unwrap());
        Services::build(
            Ports::over(
                Arc::new(store.clone()),
                signals.clone(),
                signals.clone(),
                clock.clone(),
                Arc::new(PrometheusMetrics::new()),
            ),
            Config {
                app_name: "Herald".to_owned(),
                access_url: "https://herald.example.com".to_owned(),
                app_url: Some("https://app.example.com".to_owned()),
                default_method: DefaultMethod::Webhook,
                notifier: NotifierSettings::default(),
                unsubscribe_key: self.key.clone(),
                limits: Limits::default(),
            },
            dispatchers(&store, &signals, &clock, nowhere_webhook()),
        )
    }

    /// Sends a request with a raw body.
    pub async fn raw(
        &self,
        method: HttpMethod,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        self.raw_with(method, path, token, &[], body).await
    }

    /// Sends a request with a raw body and these extra headers.
    pub async fn raw_with(
        &self,
        method: HttpMethod,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &[u8])],
        body: Vec<u8>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send_request(request, body).await
    }

    /// Sends a request built elsewhere (a browser-like one, say) with this body, and collects
    /// the reply.
    pub async fn send_request(
        &self,
        request: axum::http::request::Builder,
        body: Vec<u8>,
    ) -> Reply {
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, caller: &Caller) -> Reply {
        self.raw(HttpMethod::GET, path, Some(&caller.token), Vec::new())
            .await
    }

    pub async fn send(
        &self,
        method: HttpMethod,
        path: &str,
        caller: &Caller,
        body: Value,
    ) -> Reply {
        let body = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        self.raw(method, path, Some(&caller.token), body).await
    }

    pub async fn post(&self, path: &str, caller: &Caller, body: Value) -> Reply {
        self.send(HttpMethod::POST, path, caller, body).await
    }

    pub async fn put(&self, path: &str, caller: &Caller, body: Value) -> Reply {
        self.send(HttpMethod::PUT, path, caller, body).await
    }
}
