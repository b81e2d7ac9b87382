//! herald-smtp against a real SMTP server process: aiosmtpd, driven by herald-tests'
//! `smtp_server` harness (`tests/support/smtp_server.py`; `python3 -m pip install aiosmtpd`).
//! Each test starts its own server on a free port with freshly generated certificates, sends
//! through `SmtpDispatcher`, and checks what the server received (decoded by Python's `email`
//! package) or how the failure was classified.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::time::Duration;

use herald_application::ports::{Delivery, DeliveryError, Dispatcher};
use herald_application::rendering::RenderedMessage;
use herald_application::unsubscribe::UnsubscribeKey;
use herald_domain::{Action, MessageId, Method, Payload, TemplateId, UserId};
use herald_smtp::{SmtpConfig, SmtpDispatcher};
use herald_tests::smtp_server::{
    PASSWORD, Pki, ScratchDir, ServerOptions, SmtpServer, USER, header,
};
use serde_json::{Value, json};

const ACCESS_URL: &str = "https://herald.example.com";
/// The authorization identity the identity tests act as (the server accepts it for PLAIN).
const IDENTITY: &str = "ops@example.com";

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn plain_delivery_sends_both_parts_and_every_header() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions::default());
    let dispatcher = env.dispatcher(env.config(&server));
    let delivery = delivery("danny@example.com");

    dispatcher.dispatch(&delivery).await.unwrap();

    let [message] = server.messages().try_into().unwrap();
    assert_eq!(message["mail_from"], "herald@example.com");
    assert_eq!(
        message["rcpt_tos"],
        serde_json::json!(["danny@example.com"])
    );
    assert_eq!(message["tls"], false);
    assert_eq!(message["auth_mechanism"], Value::Null);
    assert_eq!(message["ehlo"], "herald.test");

    assert_eq!(
        header(&message, "Message-ID"),
        format!("<{}@example.com>", delivery.message_id)
    );
    assert_eq!(header(&message, "From"), "Herald <herald@example.com>");
    assert_eq!(header(&message, "To"), "Danny Example <danny@example.com>");
    assert_eq!(header(&message, "Subject"), "Workspace “dev” deleted");
    assert!(!header(&message, "Date").is_empty());
    assert_eq!(header(&message, "MIME-Version"), "1.0");
    assert_eq!(header(&message, "Auto-Submitted"), "auto-generated");
    assert_eq!(message["content_type"], "multipart/alternative");

    let parts = message["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert_eq!(parts[0]["content_type"], "text/plain");
    let text = parts[0]["body"].as_str().unwrap();
    assert!(
        text.starts_with("Hi Danny\n\nYour workspace dev was deleted."),
        "{text}"
    );
    assert!(
        text.contains("View workspaces: https://herald.example.com/workspaces\n"),
        "{text}"
    );
    assert!(
        text.contains("Open <docs> & more: https://herald.example.com/docs?a=1&b=2\n"),
        "{text}"
    );
    assert!(
        text.contains("https://herald.example.com/settings/notifications"),
        "{text}"
    );

    assert_eq!(parts[1]["content_type"], "text/html");
    let html = parts[1]["body"].as_str().unwrap();
    assert!(
        html.contains("<p>Your workspace <strong>dev</strong> was deleted.</p>"),
        "{html}"
    );
    assert!(
        html.contains(r#"<a href="https://herald.example.com/workspaces""#),
        "{html}"
    );
    assert!(html.contains(">View workspaces</a>"), "{html}");
    assert!(
        html.contains(r#"href="https://herald.example.com/docs?a=1&amp;b=2""#),
        "{html}"
    );
    assert!(html.contains(">Open &lt;docs&gt; &amp; more</a>"), "{html}");
    assert!(
        html.contains(r#"href="https://herald.example.com/settings/notifications""#),
        "{html}"
    );
    assert!(html.contains("Herald"), "{html}");
}

#[tokio::test]
async fn the_one_click_unsubscribe_headers_carry_a_token_for_that_user_and_template() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions::default());
    let dispatcher = env.dispatcher(env.config(&server));
    let delivery = delivery("danny@example.com");

    dispatcher.dispatch(&delivery).await.unwrap();

    let [message] = server.messages().try_into().unwrap();
    assert_eq!(
        header(&message, "List-Unsubscribe-Post"),
        "List-Unsubscribe=One-Click"
    );
    let list_unsubscribe = header(&message, "List-Unsubscribe");
    let token = list_unsubscribe
        .strip_prefix(&format!("<{ACCESS_URL}/api/v2/notifications/unsubscribe/"))
        .and_then(|rest| rest.strip_suffix('>'))
        .unwrap_or_else(|| panic!("unexpected List-Unsubscribe: {list_unsubscribe}"));
    assert_eq!(
        env.key.verify(token),
        Some((delivery.recipient, delivery.template_id))
    );
    let other_key = UnsubscribeKey::new(vec![1; 32]).unwrap();
    assert_eq!(other_key.verify(token), None);
}

#[tokio::test]
async fn pooled_connections_are_reused_across_messages() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: "PLAIN",
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    authenticate(&mut config);
    let dispatcher = env.dispatcher(config);

    dispatcher
        .dispatch(&delivery("a@example.com"))
        .await
        .unwrap();
    dispatcher
        .dispatch(&delivery("b@example.com"))
        .await
        .unwrap();

    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["peer_port"], messages[1]["peer_port"]);
    let logins = server.events("auth");
    assert_eq!(
        logins.len(),
        1,
        "authenticated once per connection: {logins:?}"
    );
}

/// The notifier dispatches a whole lease at once (`--notifications-lease-count` messages, 20 by
/// default): the connections one lease opened, each with its TLS session and login, are all
/// kept for the next, however many there were.
#[tokio::test]
async fn every_connection_a_lease_opened_is_reused_by_the_next() {
    leases_reuse_every_connection(None).await;
}

/// The same when acting as another identity (authenticating with its own AUTH PLAIN).
#[tokio::test]
async fn every_connection_a_lease_opened_as_an_identity_is_reused_by_the_next() {
    leases_reuse_every_connection(Some(IDENTITY)).await;
}

/// Sends three leases of 20 messages, each all at once, and checks that only the first logged
/// in (opened connections).
async fn leases_reuse_every_connection(identity: Option<&'static str>) {
    const LEASE: usize = 20;
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: "PLAIN",
        identity,
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    authenticate(&mut config);
    config.auth_identity = identity.map(str::to_owned);
    let dispatcher = std::sync::Arc::new(env.dispatcher(config));

    let mut logins = Vec::new();
    for lease in 0..3 {
        let mut sends = tokio::task::JoinSet::new();
        for i in 0..LEASE {
            let delivery = delivery(&format!("lease{lease}-{i}@example.com"));
            let dispatcher = std::sync::Arc::clone(&dispatcher);
            sends.spawn(async move { dispatcher.dispatch(&delivery).await });
        }
        while let Some(sent) = sends.join_next().await {
            sent.unwrap().unwrap();
        }
        logins.push(server.events("auth").len());
    }
    assert_eq!(server.messages().len(), 3 * LEASE);
    assert!(
        logins[0] > 10,
        "{LEASE} messages sent at once open more connections than lettre's default pool keeps \
         ({} logins)",
        logins[0]
    );
    assert_eq!(
        logins,
        vec![logins[0]; 3],
        "logins after each lease: the later leases log in again only on new connections"
    );
}

#[tokio::test]
async fn starttls_with_a_trusted_certificate_encrypts_the_session() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions::tls("starttls", &env.pki.localhost));
    let mut config = env.config(&server);
    config.starttls = true;
    config.tls_ca_file = Some(env.pki.ca.clone());

    env.dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap();

    let [message] = server.messages().try_into().unwrap();
    assert_eq!(message["tls"], true);
}

#[tokio::test]
async fn starttls_with_an_untrusted_certificate_is_a_retryable_tls_failure() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions::tls("starttls", &env.pki.untrusted));
    let mut config = env.config(&server);
    config.starttls = true;
    config.tls_ca_file = Some(env.pki.ca.clone());

    let err = env
        .dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();

    assert!(err.retryable, "{err:?}");
    assert!(err.reason.contains("TLS"), "{}", err.reason);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn starttls_is_required_and_never_falls_back_to_plaintext() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: "PLAIN",
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    config.starttls = true;
    authenticate(&mut config);

    let err = env
        .dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();

    assert!(err.retryable, "{err:?}");
    assert!(
        err.reason.contains("did not offer STARTTLS"),
        "{}",
        err.reason
    );
    assert!(server.messages().is_empty());
    assert!(
        server.events("auth").is_empty(),
        "credentials sent in plaintext"
    );
}

#[tokio::test]
async fn force_tls_uses_implicit_tls_on_a_port_other_than_465() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions::tls("implicit", &env.pki.localhost));
    let mut config = env.config(&server);
    config.force_tls = true;
    config.tls_ca_file = Some(env.pki.ca.clone());

    env.dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap();

    let [message] = server.messages().try_into().unwrap();
    assert_eq!(message["tls"], true);
}

#[tokio::test]
async fn skip_verify_accepts_an_untrusted_certificate() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions::tls("implicit", &env.pki.untrusted));
    let mut config = env.config(&server);
    config.force_tls = true;
    config.tls_skip_verify = true;

    env.dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap();

    let [message] = server.messages().try_into().unwrap();
    assert_eq!(message["tls"], true);
}

#[tokio::test]
async fn the_server_name_option_verifies_the_certificate_against_that_name() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions::tls("starttls", &env.pki.named));
    let mut config = env.config(&server);
    config.starttls = true;
    config.tls_ca_file = Some(env.pki.ca.clone());

    // The certificate is for mail.herald.test only, not for 127.0.0.1.
    let err = env
        .dispatcher(config.clone())
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();
    assert!(err.retryable && err.reason.contains("TLS"), "{err:?}");

    config.tls_server_name = Some("mail.herald.test".into());
    env.dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap();
    let [message] = server.messages().try_into().unwrap();
    assert_eq!(message["tls"], true);
}

#[tokio::test]
async fn a_client_certificate_is_presented_when_configured() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        client_ca: Some(env.pki.ca.clone()),
        ..ServerOptions::tls("implicit", &env.pki.localhost)
    });
    let mut config = env.config(&server);
    config.force_tls = true;
    config.tls_ca_file = Some(env.pki.ca.clone());
    config.tls_cert_file = Some(env.pki.client.cert.clone());
    config.tls_cert_key_file = Some(env.pki.client.key.clone());

    env.dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap();

    let [message] = server.messages().try_into().unwrap();
    assert_eq!(message["client_cert_subject"], "commonName=herald-client");
}

#[tokio::test]
async fn auth_plain_is_used_when_offered() {
    let message = send_with_auth("PLAIN,XOAUTH9").await;
    assert_eq!(message["auth_mechanism"], "PLAIN");
    // lettre's PLAIN: no authorization identity, i.e. act as the username.
    assert_eq!(message["auth_authzid"], "");
}

#[tokio::test]
async fn an_identity_equal_to_the_username_keeps_lettres_plain_and_login() {
    for (offered, mechanism, authzid) in [
        ("PLAIN", "PLAIN", json!("")),
        ("LOGIN", "LOGIN", Value::Null),
    ] {
        let env = TestEnv::new();
        let server = env.server(ServerOptions {
            auth: offered,
            ..ServerOptions::default()
        });
        let mut config = env.config(&server);
        authenticate(&mut config);
        config.auth_identity = Some(USER.into());

        env.dispatcher(config)
            .dispatch(&delivery("danny@example.com"))
            .await
            .unwrap();

        let [message] = server.messages().try_into().unwrap();
        assert_eq!(message["auth_mechanism"], mechanism, "{offered}");
        assert_eq!(message["auth_authzid"], authzid, "{offered}");
    }
}

#[tokio::test]
async fn an_identity_other_than_the_username_is_sent_as_plains_authorization_identity() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: "PLAIN,LOGIN",
        identity: Some(IDENTITY),
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    authenticate(&mut config);
    config.auth_identity = Some(IDENTITY.into());
    let dispatcher = env.dispatcher(config);

    let first = delivery("danny@example.com");
    dispatcher.dispatch(&first).await.unwrap();

    let [login] = server.events("auth").try_into().unwrap();
    assert_eq!(login["mechanism"], "PLAIN");
    assert_eq!(login["login"], USER);
    assert_eq!(login["authzid"], IDENTITY);
    assert_eq!(login["success"], true);
    let [message] = server.messages().try_into().unwrap();
    assert_eq!(message["auth_mechanism"], "PLAIN");
    assert_eq!(message["auth_authzid"], IDENTITY);
    assert_eq!(message["tls"], false);
    assert_eq!(message["ehlo"], "herald.test");
    assert_eq!(message["mail_from"], "herald@example.com");
    assert_eq!(message["rcpt_tos"], json!(["danny@example.com"]));
    assert_eq!(
        header(&message, "Message-ID"),
        format!("<{}@example.com>", first.message_id)
    );
    assert!(
        header(&message, "List-Unsubscribe").starts_with(&format!("<{ACCESS_URL}/")),
        "{message}"
    );

    // The idle connection is reused, already authenticated.
    dispatcher
        .dispatch(&delivery("b@example.com"))
        .await
        .unwrap();
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["peer_port"], messages[1]["peer_port"]);
    assert_eq!(server.events("auth").len(), 1);
    assert!(!format!("{dispatcher:?}").contains(PASSWORD));
}

#[tokio::test]
async fn an_identity_over_starttls_or_implicit_tls_is_sent_encrypted() {
    for mode in ["starttls", "implicit"] {
        let env = TestEnv::new();
        let server = env.server(ServerOptions {
            auth: "PLAIN",
            identity: Some(IDENTITY),
            ..ServerOptions::tls(mode, &env.pki.localhost)
        });
        let mut config = env.config(&server);
        config.starttls = mode == "starttls";
        config.force_tls = mode == "implicit";
        config.tls_ca_file = Some(env.pki.ca.clone());
        authenticate(&mut config);
        config.auth_identity = Some(IDENTITY.into());

        env.dispatcher(config)
            .dispatch(&delivery("danny@example.com"))
            .await
            .unwrap();

        let [message] = server.messages().try_into().unwrap();
        assert_eq!(message["tls"], true, "{mode}");
        assert_eq!(message["auth_mechanism"], "PLAIN", "{mode}");
        assert_eq!(message["auth_authzid"], IDENTITY, "{mode}");
    }
}

#[tokio::test]
async fn an_identity_keeps_starttls_required_and_classifies_tls_failures_as_retryable() {
    // No STARTTLS offered: nothing is sent in plaintext, credentials included.
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: "PLAIN",
        identity: Some(IDENTITY),
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    config.starttls = true;
    authenticate(&mut config);
    config.auth_identity = Some(IDENTITY.into());
    let err = env
        .dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();
    assert!(err.retryable, "{err:?}");
    assert!(
        err.reason.contains("did not offer STARTTLS"),
        "{}",
        err.reason
    );
    assert!(server.events("auth").is_empty());
    assert!(server.messages().is_empty());

    // An untrusted certificate.
    let server = env.server(ServerOptions {
        auth: "PLAIN",
        identity: Some(IDENTITY),
        ..ServerOptions::tls("starttls", &env.pki.untrusted)
    });
    let mut config = env.config(&server);
    config.starttls = true;
    config.tls_ca_file = Some(env.pki.ca.clone());
    authenticate(&mut config);
    config.auth_identity = Some(IDENTITY.into());
    let err = env
        .dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();
    assert!(err.retryable && err.reason.contains("TLS"), "{err:?}");
    assert!(server.events("auth").is_empty());
}

#[tokio::test]
async fn an_identity_with_a_server_offering_only_login_is_a_permanent_failure() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: "LOGIN,XOAUTH9",
        identity: Some(IDENTITY),
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    authenticate(&mut config);
    config.auth_identity = Some(IDENTITY.into());

    let err = env
        .dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();

    assert!(!err.retryable, "{err:?}");
    assert!(
        err.reason.contains("does not offer AUTH PLAIN"),
        "{}",
        err.reason
    );
    assert!(
        err.reason
            .contains("AUTH LOGIN cannot carry an authorization identity"),
        "{}",
        err.reason
    );
    assert!(err.reason.contains("smtp.auth_identity"), "{}", err.reason);
    // Never authenticated as the bare username instead.
    assert!(server.events("auth").is_empty());
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn an_identity_the_server_refuses_is_retried_as_any_refused_authentication() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: "PLAIN",
        identity: Some(IDENTITY),
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    authenticate(&mut config);
    config.auth_identity = Some("someone-else@example.com".into());

    let err = env
        .dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();

    assert!(err.retryable, "{err:?}");
    assert!(err.reason.contains("535"), "{}", err.reason);
    assert!(!err.reason.contains(PASSWORD), "{}", err.reason);
    let [attempt] = server.events("auth").try_into().unwrap();
    assert_eq!(attempt["authzid"], "someone-else@example.com");
    assert_eq!(attempt["success"], false);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn an_identity_connection_left_mid_conversation_by_a_timeout_is_never_reused() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: "PLAIN",
        identity: Some(IDENTITY),
        hang_first_data: true,
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    config.timeout = Duration::from_secs(2);
    authenticate(&mut config);
    config.auth_identity = Some(IDENTITY.into());
    let dispatcher = env.dispatcher(config);

    let err = dispatcher
        .dispatch(&delivery("first@example.com"))
        .await
        .unwrap_err();
    assert!(err.retryable, "{err:?}");
    assert!(err.reason.contains("timed out"), "{}", err.reason);

    dispatcher
        .dispatch(&delivery("second@example.com"))
        .await
        .unwrap();
    let [hung] = server.events("hung_data").try_into().unwrap();
    let [message] = server.messages().try_into().unwrap();
    assert_eq!(message["rcpt_tos"], json!(["second@example.com"]));
    assert_eq!(message["auth_authzid"], IDENTITY);
    assert_ne!(message["peer_port"], hung["peer_port"]);
}

#[tokio::test]
async fn auth_login_is_used_when_it_is_the_only_known_mechanism() {
    let message = send_with_auth("LOGIN,XOAUTH9").await;
    assert_eq!(message["auth_mechanism"], "LOGIN");
}

#[tokio::test]
async fn auth_plain_is_preferred_when_both_are_offered() {
    let message = send_with_auth("PLAIN,LOGIN,XOAUTH9").await;
    assert_eq!(message["auth_mechanism"], "PLAIN");
}

#[tokio::test]
async fn bad_credentials_are_retryable_so_a_password_rotation_loses_no_message() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: "PLAIN,LOGIN",
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    config.auth_username = Some("herald".into());
    config.auth_password = Some("wrong-password".into());

    let err = env
        .dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();

    assert!(err.retryable, "{err:?}");
    assert!(err.reason.contains("535"), "{}", err.reason);
    assert!(!err.reason.contains("wrong-password"), "{}", err.reason);
    assert!(server.messages().is_empty());
    let [attempt] = server.events("auth").try_into().unwrap();
    assert_eq!(attempt["success"], false);
}

#[tokio::test]
async fn auth_configured_but_no_mechanism_offered_is_a_permanent_failure() {
    for offered in ["none", "XOAUTH9"] {
        let env = TestEnv::new();
        let server = env.server(ServerOptions {
            auth: offered,
            ..ServerOptions::default()
        });
        let mut config = env.config(&server);
        authenticate(&mut config);

        let err = env
            .dispatcher(config)
            .dispatch(&delivery("danny@example.com"))
            .await
            .unwrap_err();

        assert!(!err.retryable, "{offered}: {err:?}");
        assert!(
            err.reason.contains("neither AUTH PLAIN nor AUTH LOGIN"),
            "{offered}: {}",
            err.reason
        );
        assert!(server.messages().is_empty());
    }
}

#[tokio::test]
async fn the_password_can_come_from_a_file() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: "PLAIN",
        ..ServerOptions::default()
    });
    let file = env.dir.path().join("smtp-password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let mut config = env.config(&server);
    config.auth_username = Some("herald".into());
    config.auth_password_file = Some(file);

    env.dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap();

    let [message] = server.messages().try_into().unwrap();
    assert_eq!(message["auth_mechanism"], "PLAIN");
}

#[tokio::test]
async fn data_rejected_with_451_is_retryable() {
    let err = send_to_rejecting_server("451").await;
    assert!(err.retryable, "{err:?}");
    assert!(err.reason.contains("451"), "{}", err.reason);
}

#[tokio::test]
async fn data_rejected_with_552_is_retryable_as_it_says_nothing_about_the_recipient() {
    let err = send_to_rejecting_server("552").await;
    assert!(err.retryable, "{err:?}");
    assert!(err.reason.contains("552 to DATA"), "{}", err.reason);
}

#[tokio::test]
async fn a_554_greeting_is_retryable() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        reject_greeting: Some("554"),
        ..ServerOptions::default()
    });

    let err = env
        .dispatcher(env.config(&server))
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();

    assert!(err.retryable, "{err:?}");
    assert!(
        err.reason.contains("554 to the connection's greeting"),
        "{}",
        err.reason
    );
}

#[tokio::test]
async fn a_sender_refused_with_550_at_mail_from_is_retryable() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        reject_mail: Some("550"),
        ..ServerOptions::default()
    });

    let err = env
        .dispatcher(env.config(&server))
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();

    assert!(err.retryable, "{err:?}");
    assert!(err.reason.contains("550 to MAIL FROM"), "{}", err.reason);
    assert_eq!(server.events("rejected_mail").len(), 1);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_recipient_refused_with_550_is_permanent() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        refuse_rcpt: Some("gone@example.com"),
        ..ServerOptions::default()
    });
    let dispatcher = env.dispatcher(env.config(&server));

    let err = dispatcher
        .dispatch(&delivery("gone@example.com"))
        .await
        .unwrap_err();

    assert!(!err.retryable, "{err:?}");
    assert!(err.reason.contains("550 to RCPT TO"), "{}", err.reason);
    assert!(server.messages().is_empty());
    // The next recipient goes through: the refusal was about that address only.
    dispatcher
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_recipient_greylisted_with_450_is_retryable() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        greylist_rcpt: Some("danny@example.com"),
        ..ServerOptions::default()
    });

    let err = env
        .dispatcher(env.config(&server))
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();

    assert!(err.retryable, "{err:?}");
    assert!(err.reason.contains("450"), "{}", err.reason);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_temporary_authentication_failure_454_is_retryable() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: "PLAIN",
        auth_unavailable: true,
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    authenticate(&mut config);

    let err = env
        .dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();

    assert!(err.retryable, "{err:?}");
    assert!(err.reason.contains("454"), "{}", err.reason);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_connection_reset_mid_conversation_is_retryable_and_the_next_send_reconnects() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        reset_first_mail: true,
        ..ServerOptions::default()
    });
    let dispatcher = env.dispatcher(env.config(&server));

    let err = dispatcher
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();

    assert!(err.retryable, "{err:?}");
    assert_eq!(server.events("reset").len(), 1);
    assert!(server.messages().is_empty());
    dispatcher
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap();
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_kept_connection_is_reused_without_noop_and_one_the_server_closed_is_replaced() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        reset_second_mail: true,
        ..ServerOptions::default()
    });
    let dispatcher = env.dispatcher(env.config(&server));
    dispatcher
        .dispatch(&delivery("a@example.com"))
        .await
        .unwrap();

    // Reused at once, without a NOOP; the server drops it at MAIL FROM, before anything of
    // the message was sent: the message goes over a new connection.
    dispatcher
        .dispatch(&delivery("b@example.com"))
        .await
        .unwrap();

    assert_eq!(server.events("reset").len(), 1);
    assert!(server.events("noop").is_empty(), "checked with NOOP");
    let messages = server.messages();
    assert_eq!(messages.len(), 2);
    assert_ne!(
        messages[0]["peer_port"], messages[1]["peer_port"],
        "the second went over a new connection"
    );
}

#[tokio::test]
async fn a_non_ascii_address_to_a_server_without_smtputf8_is_permanent() {
    let env = TestEnv::new();
    // aiosmtpd does not offer SMTPUTF8 unless asked to.
    let server = env.server(ServerOptions::default());

    let err = env
        .dispatcher(env.config(&server))
        .dispatch(&delivery("dänny@example.com"))
        .await
        .unwrap_err();

    assert!(!err.retryable, "{err:?}");
    assert!(err.reason.contains("SMTPUTF8"), "{}", err.reason);
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_refused_connection_is_retryable() {
    let env = TestEnv::new();
    // A port held by a socket that never listens: connections to it are refused, and no
    // other process can start listening there meanwhile.
    let held = tokio::net::TcpSocket::new_v4().unwrap();
    held.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let config = env.config_for_port(port);

    let err = env
        .dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();

    assert!(err.retryable, "{err:?}");
    assert!(err.reason.contains("127.0.0.1"), "{}", err.reason);
    drop(held);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_retryably() {
    let env = TestEnv::new();
    // Accepts connections (the kernel does) but never sends a greeting.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = env.config_for_port(port);
    config.timeout = Duration::from_secs(1);

    let err = tokio::time::timeout(
        Duration::from_secs(20),
        env.dispatcher(config)
            .dispatch(&delivery("danny@example.com")),
    )
    .await
    .expect("the SMTP timeout did not fire")
    .unwrap_err();

    assert!(err.retryable, "{err:?}");
    drop(listener);
}

#[tokio::test]
async fn a_connection_left_mid_conversation_by_a_timeout_is_never_reused() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        hang_first_data: true,
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    config.timeout = Duration::from_secs(2);
    let dispatcher = env.dispatcher(config);

    let err = dispatcher
        .dispatch(&delivery("first@example.com"))
        .await
        .unwrap_err();
    assert!(err.retryable, "{err:?}");
    assert!(err.reason.contains("timed out"), "{}", err.reason);
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }

    // Reusing the stuck connection would wait for an answer that never comes.
    dispatcher
        .dispatch(&delivery("second@example.com"))
        .await
        .unwrap();
    let [hung] = server.events("hung_data").try_into().unwrap();
    let [message] = server.messages().try_into().unwrap();
    assert_eq!(
        message["rcpt_tos"],
        serde_json::json!(["second@example.com"])
    );
    assert_ne!(message["peer_port"], hung["peer_port"]);
}

#[tokio::test]
async fn a_bad_recipient_address_is_permanent_and_sends_nothing() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions::default());

    let err = env
        .dispatcher(env.config(&server))
        .dispatch(&delivery("not an address"))
        .await
        .unwrap_err();

    assert!(!err.retryable, "{err:?}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn the_password_never_appears_in_debug_output_or_errors() {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: "PLAIN",
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    authenticate(&mut config);

    let dispatcher = env.dispatcher(config.clone());
    dispatcher
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap();
    for debug in [
        format!("{config:?}"),
        format!("{dispatcher:?}"),
        format!("{config:#?}"),
    ] {
        assert!(!debug.contains(PASSWORD), "{debug}");
    }
    // Nor in configuration errors.
    config.auth_password_file = Some("/nonexistent/password".into());
    let err = config.validate().unwrap_err().to_string();
    assert!(!err.contains(PASSWORD), "{err}");
}

#[test]
fn unusable_tls_files_are_refused_naming_the_flag() {
    let env = TestEnv::new();
    let base = env.config_for_port(2525);
    let garbage = env.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let missing = env.dir.path().join("missing.pem");
    let check = |config: SmtpConfig, expected: &str| {
        let err = config.validate().unwrap_err().to_string();
        assert!(err.starts_with(expected), "{err}");
    };

    check(
        SmtpConfig {
            tls_ca_file: Some(garbage.clone()),
            ..base.clone()
        },
        "smtp.tls_ca_file: ",
    );
    check(
        SmtpConfig {
            tls_cert_file: Some(env.pki.client.cert.clone()),
            tls_cert_key_file: Some(missing.clone()),
            ..base.clone()
        },
        "smtp.tls_cert_key_file: cannot read ",
    );
    check(
        SmtpConfig {
            tls_cert_file: Some(env.pki.client.cert.clone()),
            // A certificate where the key should be.
            tls_cert_key_file: Some(env.pki.ca.clone()),
            ..base.clone()
        },
        "smtp.tls_cert_key_file: ",
    );
    check(
        SmtpConfig {
            tls_cert_file: Some(garbage),
            tls_cert_key_file: Some(env.pki.client.key.clone()),
            ..base.clone()
        },
        "smtp.tls_cert_file: ",
    );
    let valid = SmtpConfig {
        tls_ca_file: Some(env.pki.ca.clone()),
        tls_cert_file: Some(env.pki.client.cert.clone()),
        tls_cert_key_file: Some(env.pki.client.key.clone()),
        ..base
    };
    valid.validate().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Helpers

async fn send_with_auth(offered: &'static str) -> Value {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        auth: offered,
        ..ServerOptions::default()
    });
    let mut config = env.config(&server);
    authenticate(&mut config);
    env.dispatcher(config)
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap();
    let [message] = server.messages().try_into().unwrap();
    let [login] = server.events("auth").try_into().unwrap();
    assert_eq!(login["login"], "herald");
    assert_eq!(login["success"], true);
    message
}

async fn send_to_rejecting_server(code: &'static str) -> DeliveryError {
    let env = TestEnv::new();
    let server = env.server(ServerOptions {
        reject_data: Some(code),
        ..ServerOptions::default()
    });
    let err = env
        .dispatcher(env.config(&server))
        .dispatch(&delivery("danny@example.com"))
        .await
        .unwrap_err();
    assert!(server.messages().is_empty());
    assert_eq!(server.events("rejected_data").len(), 1);
    err
}

fn authenticate(config: &mut SmtpConfig) {
    config.auth_username = Some("herald".into());
    config.auth_password = Some(PASSWORD.into());
}

fn delivery(email: &str) -> Delivery {
    let recipient = UserId::random();
    let template_id = TemplateId::random();
    Delivery {
        message_id: MessageId::random(),
        method: Method::Smtp,
        template_id,
        recipient,
        payload: Payload {
            version: Payload::VERSION.to_owned(),
            notification_name: "Workspace Deleted".into(),
            notification_template_id: template_id,
            user_id: recipient,
            user_email: email.into(),
            user_name: "Danny Example".into(),
            user_username: "danny".into(),
            actions: vec![
                Action {
                    label: "View workspaces".into(),
                    url: format!("{ACCESS_URL}/workspaces"),
                },
                Action {
                    label: "Open <docs> & more".into(),
                    url: format!("{ACCESS_URL}/docs?a=1&b=2"),
                },
            ],
            labels: Default::default(),
            data: None,
            targets: vec![],
        },
        targets: vec![],
        rendered: RenderedMessage {
            title_markdown: "Workspace “dev” deleted".into(),
            body_markdown: "Hi Danny\n\nYour workspace **dev** was deleted.".into(),
            title: "Workspace “dev” deleted".into(),
            body: "Hi Danny\n\nYour workspace dev was deleted.".into(),
        },
    }
}

/// One test's scratch directory, certificates and unsubscribe key.
struct TestEnv {
    dir: ScratchDir,
    pki: Pki,
    key: UnsubscribeKey,
}

impl TestEnv {
    fn new() -> Self {
        let dir = ScratchDir::new();
        let pki = Pki::generate(dir.path());
        Self {
            dir,
            pki,
            key: UnsubscribeKey::generate().unwrap(),
        }
    }

    fn server(&self, options: ServerOptions) -> SmtpServer {
        SmtpServer::start(self.dir.path(), options)
    }

    fn config(&self, server: &SmtpServer) -> SmtpConfig {
        self.config_for_port(server.port())
    }

    fn config_for_port(&self, port: u16) -> SmtpConfig {
        SmtpConfig {
            from: "Herald <herald@example.com>".into(),
            smarthost: format!("127.0.0.1:{port}"),
            hello: "herald.test".into(),
            timeout: Duration::from_secs(10),
            ..SmtpConfig::default()
        }
    }

    fn dispatcher(&self, config: SmtpConfig) -> SmtpDispatcher {
        SmtpDispatcher::new(
            config.validate().unwrap(),
            ACCESS_URL,
            "Herald",
            self.key.clone(),
        )
    }
}
