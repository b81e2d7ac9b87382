//! Delivery end to end over PostgreSQL: `Events` queues into a fresh database (`PgStore` for
//! every store and the queue, `PgSignals` for wake-ups and the live inbox feed), a `Notifier`
//! delivers through the real dispatchers to real peers — the aiosmtpd server process
//! (`herald_tests::smtp_server`), a wiremock receiver, the inbox — and the message rows end
//! as the peers saw it.
//!
//! Per DESIGN §10.1 one event goes out by its template's override OR by the default method,
//! plus the inbox, never by all three at once. So the three-peer test sends the same event
//! twice on one deployment (SMTP and webhook configured, SMTP the default, inbox enabled): once
//! as configured (email + inbox), then again after an admin routes the template to the webhook
//! (webhook; its inbox message is the first one's duplicate).
//!
//! The deployment's app URL (the host application's) differs from its access URL (Herald's):
//! action links are on the first, the email's unsubscribe link on the second.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use herald_application::ports::{
    Clock, Dispatcher, InboxFeed, MessageFilter, MessageQueue, NoMetrics, SystemClock, UserRegistry,
};
use herald_application::unsubscribe::UnsubscribeKey;
use herald_application::{
    Config, Cycle, DefaultMethod, Event, Events, InboxFilter, InboxPage, Notifier, NotifierConfig,
    Ports, Services, SkipReason, Skipped, Templates,
};
use herald_domain::catalogue::WORKSPACE_DELETED;
use herald_domain::{InboxNotificationId, Labels, Message, MessageId, MessageStatus, Method, User};
use herald_inbox::InboxDispatcher;
use herald_memory::ManualClock;
use herald_postgres::{PgSignals, PgStore};
use herald_smtp::{SmtpConfig, SmtpDispatcher};
use herald_tests::fixture::{PATIENCE, within};
use herald_tests::postgres::TestDatabase;
use herald_tests::smtp_server::{ScratchDir, ServerOptions, SmtpServer, header};
use herald_webhook::{WebhookConfig, WebhookDispatcher, WebhookFormat};
use serde_json::Value;
use tokio::time::Instant;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ACCESS_URL: &str = "https://herald.example.com";
const APP_URL: &str = "https://app.example.com";
const WEBHOOK_PATH: &str = "/hooks/herald";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_reaches_the_mail_server_the_webhook_receiver_and_the_inbox() {
    let scratch = ScratchDir::new();
    let mail = SmtpServer::start(scratch.path(), ServerOptions::default());
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let stack = Stack::new(
        DefaultMethod::Smtp,
        Arc::new(SystemClock),
        brisk(),
        vec![smtp_dispatcher(mail.port()), webhook_dispatcher(&receiver)],
        Inbox::Enabled,
    )
    .await;
    let danny = stack.user("danny", "Danny Example").await;
    let mut watcher = InboxFeed::subscribe(&*stack.signals, danny.id)
        .await
        .unwrap();
    let notifier = stack.notifier().spawn();

    let event = workspace_deleted(&danny);
    let configured = stack.events().enqueue(event.clone()).await.unwrap();
    assert!(
        stack
            .templates()
            .set_method(WORKSPACE_DELETED, Some(Method::Webhook))
            .await
            .unwrap()
    );
    let routed = stack.events().enqueue(event).await.unwrap();
    assert_eq!(configured.message_ids.len(), 2, "{configured:?}");
    assert_eq!(routed.message_ids.len(), 1, "{routed:?}");
    assert_eq!(
        routed.skipped,
        vec![Skipped {
            user_id: danny.id,
            reason: SkipReason::Duplicate,
            method: None,
        }],
        "the inbox beside the override, a duplicate of the first"
    );
    let ids: Vec<MessageId> = [configured.message_ids, routed.message_ids].concat();

    let sent = stack.all_sent(&ids).await;
    notifier.stop().await;

    let by_method: HashMap<Method, &Message> = sent.iter().map(|m| (m.method, m)).collect();
    assert_eq!(
        by_method.keys().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([Method::Smtp, Method::Webhook, Method::Inbox])
    );
    for message in &sent {
        assert_eq!(message.recipient, danny.id);
        assert_eq!(message.attempt_count, 1, "{message:?}");
    }
    let listed = MessageQueue::list(
        &*stack.store,
        &MessageFilter {
            recipient: Some(danny.id),
            limit: 10,
            ..MessageFilter::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.len(), 3, "{listed:#?}");
    assert!(listed.iter().all(|m| m.status == MessageStatus::Sent));

    // The mail server got the email.
    let email_id = by_method[&Method::Smtp].id;
    let [email] = mail.messages().try_into().unwrap();
    assert_eq!(email["rcpt_tos"], serde_json::json!(["danny@example.com"]));
    assert_eq!(header(&email, "To"), "Danny Example <danny@example.com>");
    assert_eq!(header(&email, "Subject"), r#"Workspace "dev" deleted"#);
    assert_eq!(
        header(&email, "Message-ID"),
        format!("<{email_id}@example.com>")
    );
    let text = email["parts"][0]["body"].as_str().unwrap();
    assert!(
        text.starts_with("Hi Danny Example,\n\nYour workspace dev has been deleted."),
        "{text}"
    );
    assert!(
        text.contains(&format!("{APP_URL}/workspaces")),
        "action links are on the app URL: {text}"
    );
    assert!(
        header(&email, "List-Unsubscribe").starts_with(&format!("<{ACCESS_URL}/")),
        "the unsubscribe link is on the access URL: {}",
        header(&email, "List-Unsubscribe")
    );

    // The webhook receiver got the webhook message.
    let webhook_id = by_method[&Method::Webhook].id;
    let requests = receiver.received_requests().await.unwrap();
    let [request] = requests.as_slice() else {
        panic!("expected one webhook request, got {requests:?}");
    };
    assert_eq!(
        request.headers["x-message-id"].to_str().unwrap(),
        webhook_id.to_string()
    );
    let body: Value = request.body_json().unwrap();
    assert_eq!(body["msg_id"], webhook_id.to_string());
    assert_eq!(body["payload"]["user_id"], danny.id.to_string());
    assert_eq!(body["payload"]["user_email"], "danny@example.com");
    assert_eq!(body["title"], r#"Workspace "dev" deleted"#);
    assert_eq!(
        body["payload"]["actions"][0]["url"],
        format!("{APP_URL}/workspaces")
    );

    // The inbox holds the inbox message, and Danny's live watcher saw it arrive.
    let inbox_id = InboxNotificationId::from(by_method[&Method::Inbox].id);
    let inbox = stack.inbox(&danny).await;
    assert_eq!(inbox.unread_count, 1);
    let [stored] = inbox.notifications.try_into().unwrap();
    assert_eq!(stored.id, inbox_id);
    assert_eq!(stored.template_id, WORKSPACE_DELETED);
    assert_eq!(stored.title, r#"Workspace "dev" deleted"#);
    assert!(stored.read_at.is_none());
    let live = within("the live inbox notification", watcher.next())
        .await
        .unwrap();
    assert_eq!(live.id, inbox_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_webhook_receiver_failing_twice_gets_the_message_on_the_third_attempt() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(2)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .and(path(WEBHOOK_PATH))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let stack = Stack::new(
        DefaultMethod::Webhook,
        Arc::new(SystemClock),
        brisk(),
        vec![webhook_dispatcher(&receiver)],
        Inbox::Disabled,
    )
    .await;
    let danny = stack.user("danny", "Danny Example").await;
    let notifier = stack.notifier().spawn();

    let result = stack.events().send_test(danny.id).await.unwrap();
    let [id] = result.message_ids.try_into().unwrap();

    let [message] = stack.all_sent(&[id]).await.try_into().unwrap();
    notifier.stop().await;

    assert_eq!(message.attempt_count, 3, "{message:?}");
    let requests = receiver.received_requests().await.unwrap();
    assert_eq!(requests.len(), 3, "{requests:?}");
    for request in &requests {
        // The same message each time, so the receiver can de-duplicate.
        let body: Value = request.body_json().unwrap();
        assert_eq!(body["msg_id"], id.to_string());
        assert_eq!(body["payload"]["user_id"], danny.id.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_email_waits_out_a_mail_server_outage_and_is_delivered_once_it_is_back() {
    let scratch = ScratchDir::new();
    // A port nothing listens on (yet).
    // Held by a socket that never listens, so connections are refused and no other process
    // takes the port until the server comes back on it.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let clock = ManualClock::default();
    let retry_interval = Duration::from_secs(60);
    let stack = Stack::new(
        DefaultMethod::Smtp,
        Arc::new(clock.clone()),
        NotifierConfig {
            retry_interval,
            ..brisk()
        },
        vec![smtp_dispatcher(port)],
        Inbox::Disabled,
    )
    .await;
    let danny = stack.user("danny", "Danny Example").await;
    let mut notifier = stack.notifier();
    let result = stack
        .events()
        .enqueue(workspace_deleted(&danny))
        .await
        .unwrap();
    let [id] = result.message_ids.try_into().unwrap();

    // The server is down: the attempt fails and may be retried.
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;
    let failed = stack.message(id).await;
    assert_eq!(failed.status, MessageStatus::TemporaryFailure, "{failed:?}");
    assert_eq!(failed.attempt_count, 1);
    let reason = failed.status_reason.unwrap_or_default();
    assert!(
        reason.contains(&format!("127.0.0.1:{port}")) && reason.contains("refused"),
        "{reason}"
    );
    assert_eq!(
        failed.next_retry_after,
        Some(clock.now() + chrono::Duration::from_std(retry_interval).unwrap())
    );
    // Not before the retry interval has passed.
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(0));

    // The server comes back on the same port, and the retry goes through.
    drop(held);
    let mail = SmtpServer::start_on(scratch.path(), port, ServerOptions::default());
    clock.advance(chrono::Duration::from_std(retry_interval).unwrap());
    assert_eq!(notifier.run_cycle().await.unwrap(), Cycle::Dispatched(1));
    notifier.flush().await;

    let sent = stack.message(id).await;
    assert_eq!(sent.status, MessageStatus::Sent, "{sent:?}");
    assert_eq!(sent.attempt_count, 2);
    let [email] = mail.messages().try_into().unwrap();
    assert_eq!(email["rcpt_tos"], serde_json::json!(["danny@example.com"]));
    assert_eq!(header(&email, "Message-ID"), format!("<{id}@example.com>"));
}

// ---------------------------------------------------------------------------------------------
// Wiring

/// Whether a [`Stack`] delivers to the inbox too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Inbox {
    Enabled,
    Disabled,
}

/// One deployment over a fresh database, its use cases built by the composition root as
/// `herald server` builds them: stores, signals, clock and dispatchers.
struct Stack {
    store: Arc<PgStore>,
    signals: Arc<PgSignals>,
    services: Services,
    /// Last: dropped after everything connected to it.
    _database: TestDatabase,
}

impl Stack {
    async fn new(
        default_method: DefaultMethod,
        clock: Arc<dyn Clock>,
        notifier: NotifierConfig,
        mut dispatchers: Vec<Arc<dyn Dispatcher>>,
        inbox: Inbox,
    ) -> Self {
        let database = TestDatabase::create().await;
        let store = Arc::new(database.store.clone());
        let signals = Arc::new(PgSignals::start(store.pool().clone()).await.unwrap());
        if inbox == Inbox::Enabled {
            dispatchers.push(Arc::new(InboxDispatcher::new(
                store.clone(),
                signals.clone(),
                clock.clone(),
            )));
        }
        let services = Services::build(
            Ports::over(
                store.clone(),
                signals.clone(),
                signals.clone(),
                clock,
                Arc::new(NoMetrics),
            ),
            Config {
                app_name: "Herald".to_owned(),
                access_url: ACCESS_URL.to_owned(),
                app_url: Some(APP_URL.to_owned()),
                default_method,
                notifier: notifier.validate().unwrap(),
                unsubscribe_key: UnsubscribeKey::generate().unwrap(),
                limits: herald_application::Limits::default(),
            },
            dispatchers,
        );
        Self {
            store,
            signals,
            services,
            _database: database,
        }
    }

    fn events(&self) -> &Events {
        self.services.events()
    }

    fn templates(&self) -> &Templates {
        self.services.templates()
    }

    /// A user synced into Herald's directory, at `username@example.com`.
    async fn user(&self, username: &str, name: &str) -> User {
        let mut user = herald_tests::sample::user(username, &[]);
        user.name = name.to_owned();
        self.store.upsert(&user).await.unwrap();
        user
    }

    fn notifier(&self) -> Notifier {
        self.services.notifier("end-to-end")
    }

    async fn message(&self, id: MessageId) -> Message {
        MessageQueue::get(&*self.store, id).await.unwrap().unwrap()
    }

    /// The user's inbox as they see it.
    async fn inbox(&self, user: &User) -> InboxPage {
        self.services
            .inbox()
            .list(user.id, InboxFilter::default())
            .await
            .unwrap()
    }

    /// Polls the rows of `ids` until every one is `sent`, failing the test when one ends in
    /// another final state or after [`PATIENCE`]; returns them in the order of `ids`.
    async fn all_sent(&self, ids: &[MessageId]) -> Vec<Message> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let mut messages = Vec::with_capacity(ids.len());
            for &id in ids {
                messages.push(self.message(id).await);
            }
            if messages.iter().all(|m| m.status == MessageStatus::Sent) {
                return messages;
            }
            let lost = messages
                .iter()
                .any(|m| m.status.is_final() && m.status != MessageStatus::Sent);
            assert!(!lost, "a message will never be sent: {messages:#?}");
            assert!(
                Instant::now() < deadline,
                "not every message was sent within {PATIENCE:?}: {messages:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Short intervals so retries come within the test's patience; the dispatch timeout stays
/// shorter than the lease period, as the notifier requires.
fn brisk() -> NotifierConfig {
    NotifierConfig {
        max_send_attempts: 5,
        retry_interval: Duration::from_millis(200),
        fetch_interval: Duration::from_millis(100),
        lease_period: Duration::from_secs(30),
        lease_count: 20,
        dispatch_timeout: Duration::from_secs(10),
        store_sync_interval: Duration::from_millis(50),
        store_sync_buffer_size: 50,
        max_lease_expiries: 3,
        store_timeout: Duration::from_secs(10),
        ..NotifierConfig::default()
    }
}

fn smtp_dispatcher(port: u16) -> Arc<dyn Dispatcher> {
    let config = SmtpConfig {
        from: "Herald <herald@example.com>".into(),
        smarthost: format!("127.0.0.1:{port}"),
        hello: "herald.test".into(),
        timeout: Duration::from_secs(5),
        ..SmtpConfig::default()
    };
    let key = UnsubscribeKey::generate().unwrap();
    Arc::new(SmtpDispatcher::new(
        config.validate().unwrap(),
        ACCESS_URL,
        "Herald",
        key,
    ))
}

fn webhook_dispatcher(receiver: &MockServer) -> Arc<dyn Dispatcher> {
    let config = WebhookConfig {
        endpoint: format!("{}{WEBHOOK_PATH}", receiver.uri()),
        secret: None,
        timeout: Duration::from_secs(5),
        format: WebhookFormat::Herald,
    };
    Arc::new(WebhookDispatcher::new(config, Arc::new(SystemClock)).unwrap())
}

/// "Workspace dev deleted", about `user`, by someone else.
fn workspace_deleted(user: &User) -> Event {
    let mut event = Event::new(WORKSPACE_DELETED);
    event.subject = Some(user.id);
    event.labels = Labels::from([
        ("name".to_owned(), "dev".to_owned()),
        ("reason".to_owned(), "it was no longer needed".to_owned()),
    ]);
    event.created_by = "end-to-end".to_owned();
    event
}
