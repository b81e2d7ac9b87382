//! The SMTP dispatcher delivering to the aiosmtpd server process, which records every message
//! it got to the end of DATA and every recipient it refused. Each delivery goes to an address
//! named after its message id, so a refused recipient names the message too. The server's
//! answers are fixed when it starts, so answering
//! differently starts another server, and another dispatcher for it.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use herald_application::ports::{Delivery, Dispatcher};
use herald_application::unsubscribe::UnsubscribeKey;
use herald_domain::{MessageId, Method};
use herald_smtp::{SmtpConfig, SmtpDispatcher};
use herald_tests::sample;
use herald_tests::smtp_server::{ScratchDir, ServerOptions, SmtpServer, header};

use super::OWN_TIMEOUT;
use crate::dispatchers::{Receiver, ReceiverUnderTest};

/// A fresh SMTP server, accepting, and a dispatcher sending through it.
pub async fn smtp() -> Receiver {
    let scratch = ScratchDir::new();
    let key = UnsubscribeKey::generate().expect("an unsubscribe key");
    let running = Running::start(&scratch, &key, Answers::Accept);
    Box::new(SmtpReceiver {
        scratch,
        key,
        state: Mutex::new(State {
            running,
            earlier: Vec::new(),
        }),
    })
}

/// How the server answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answers {
    Accept,
    /// The end of DATA with this reply code.
    Reject(&'static str),
    /// Every `RCPT TO` with 550.
    RefuseRecipients,
    /// Never, to the first message; accepts the ones after it.
    HangFirst,
}

struct SmtpReceiver {
    scratch: ScratchDir,
    key: UnsubscribeKey,
    state: Mutex<State>,
}

struct State {
    running: Running,
    /// What the servers stopped so far received.
    earlier: Vec<MessageId>,
}

/// One server and the dispatcher sending to it.
struct Running {
    server: SmtpServer,
    answers: Answers,
    dispatcher: Arc<SmtpDispatcher>,
}

impl Running {
    fn start(scratch: &ScratchDir, key: &UnsubscribeKey, answers: Answers) -> Self {
        let options = match answers {
            Answers::Accept => ServerOptions::default(),
            Answers::Reject(code) => ServerOptions {
                reject_data: Some(code),
                ..ServerOptions::default()
            },
            Answers::RefuseRecipients => ServerOptions {
                refuse_every_rcpt: true,
                ..ServerOptions::default()
            },
            Answers::HangFirst => ServerOptions {
                hang_first_data: true,
                ..ServerOptions::default()
            },
        };
        let server = SmtpServer::start(scratch.path(), options);
        let config = SmtpConfig {
            from: "Herald <herald@example.com>".into(),
            smarthost: format!("127.0.0.1:{}", server.port()),
            hello: "herald.test".into(),
            timeout: OWN_TIMEOUT,
            ..SmtpConfig::default()
        };
        let settings = config.validate().expect("the SMTP configuration is valid");
        let dispatcher = SmtpDispatcher::new(
            settings,
            "https://herald.example.com",
            "Herald",
            key.clone(),
        );
        Self {
            server,
            answers,
            dispatcher: Arc::new(dispatcher),
        }
    }

    /// The `Message-ID` of every message the server got to the end of DATA, whatever it
    /// answered, and the message id of every recipient it refused.
    fn received(&self) -> Vec<MessageId> {
        let messages = ["message", "rejected_data", "hung_data"]
            .into_iter()
            .flat_map(|kind| self.server.events(kind))
            .map(|message| {
                let header = header(&message, "Message-ID");
                header
                    .strip_prefix('<')
                    .and_then(|id| id.strip_suffix("@example.com>"))
                    .and_then(|id| id.parse().ok())
                    .unwrap_or_else(|| panic!("a Message-ID not made of a message id: {header:?}"))
            });
        let refused = self
            .server
            .events("refused_rcpt")
            .into_iter()
            .map(|refused| {
                let address = refused["rcpt"].as_str().unwrap_or_default().to_owned();
                address
                    .strip_suffix("@example.com")
                    .and_then(|id| id.parse().ok())
                    .unwrap_or_else(|| {
                        panic!("a recipient not named after a message id: {address:?}")
                    })
            });
        messages.chain(refused).collect()
    }
}

impl SmtpReceiver {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the server (and its dispatcher) by one answering as `answers` says.
    fn restart(&self, answers: Answers) {
        let mut state = self.state();
        let received = state.running.received();
        state.earlier.extend(received);
        state.running = Running::start(&self.scratch, &self.key, answers);
    }
}

#[async_trait]
impl ReceiverUnderTest for SmtpReceiver {
    fn dispatcher(&self) -> Arc<dyn Dispatcher> {
        self.state().running.dispatcher.clone()
    }

    /// To an address named after its message id.
    fn delivery(&self) -> Delivery {
        let mut delivery = sample::delivery(Method::Smtp);
        delivery.payload.user_email = format!("{}@example.com", delivery.message_id);
        delivery
    }

    /// Keeps a server that already held its first message: it accepts the ones after it.
    async fn accept(&self) {
        let accepting = {
            let running = &self.state().running;
            match running.answers {
                Answers::Accept => true,
                Answers::HangFirst => !running.server.events("hung_data").is_empty(),
                Answers::Reject(_) | Answers::RefuseRecipients => false,
            }
        };
        if !accepting {
            self.restart(Answers::Accept);
        }
    }

    /// A 451 at the end of DATA.
    async fn answer_retryable(&self) {
        self.restart(Answers::Reject("451"));
    }

    /// A 550 to `RCPT TO`: only a refused recipient is permanent (a 5xx elsewhere is not).
    async fn answer_permanent(&self) {
        self.restart(Answers::RefuseRecipients);
    }

    /// What the test server says with its 451 and its 550.
    fn failing_words(&self, retryable: bool) -> Option<&'static str> {
        Some(if retryable {
            "Try again later"
        } else {
            "Recipient address rejected: User unknown"
        })
    }

    /// Holds the first message at the end of DATA.
    async fn hang(&self) {
        self.restart(Answers::HangFirst);
    }

    async fn received(&self) -> Vec<MessageId> {
        let state = self.state();
        let mut received = state.earlier.clone();
        received.extend(state.running.received());
        received
    }

    fn own_timeout(&self) -> Option<Duration> {
        Some(OWN_TIMEOUT)
    }
}
