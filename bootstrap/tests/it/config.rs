//! The command line: every option of the reference's tables (and DESIGN §8's additions) with
//! its flag, default and environment variable; secrets hidden; bad configuration refused with
//! one line naming the option.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;

use clap::{CommandFactory as _, Parser as _};
use herald::config::{Cli, Command, ServerArgs};
use herald_webhook::WebhookFormat;

use crate::support;

/// (flag, environment variable, default) — the reference's tables with `CODER_` → `HERALD_`,
/// then Herald's additions.
const SERVER_OPTIONS: &[(&str, &str, Option<&str>)] = &[
    // Notifications.
    (
        "--notifications-dispatch-timeout",
        "HERALD_NOTIFICATIONS_DISPATCH_TIMEOUT",
        Some("1m"),
    ),
    (
        "--notifications-method",
        "HERALD_NOTIFICATIONS_METHOD",
        Some("smtp"),
    ),
    (
        "--notifications-max-send-attempts",
        "HERALD_NOTIFICATIONS_MAX_SEND_ATTEMPTS",
        Some("5"),
    ),
    (
        "--notifications-inbox-enabled",
        "HERALD_NOTIFICATIONS_INBOX_ENABLED",
        Some("true"),
    ),
    // SMTP server settings.
    ("--email-from", "HERALD_EMAIL_FROM", None),
    ("--email-smarthost", "HERALD_EMAIL_SMARTHOST", None),
    ("--email-hello", "HERALD_EMAIL_HELLO", Some("localhost")),
    // SMTP authentication.
    ("--email-auth-username", "HERALD_EMAIL_AUTH_USERNAME", None),
    ("--email-auth-password", "HERALD_EMAIL_AUTH_PASSWORD", None),
    (
        "--email-auth-password-file",
        "HERALD_EMAIL_AUTH_PASSWORD_FILE",
        None,
    ),
    ("--email-auth-identity", "HERALD_EMAIL_AUTH_IDENTITY", None),
    // SMTP TLS.
    ("--email-force-tls", "HERALD_EMAIL_FORCE_TLS", Some("false")),
    (
        "--email-tls-starttls",
        "HERALD_EMAIL_TLS_STARTTLS",
        Some("false"),
    ),
    (
        "--email-tls-skip-verify",
        "HERALD_EMAIL_TLS_SKIPVERIFY",
        Some("false"),
    ),
    (
        "--email-tls-server-name",
        "HERALD_EMAIL_TLS_SERVERNAME",
        None,
    ),
    ("--email-tls-cert-file", "HERALD_EMAIL_TLS_CERTFILE", None),
    (
        "--email-tls-cert-key-file",
        "HERALD_EMAIL_TLS_CERTKEYFILE",
        None,
    ),
    // Webhook.
    (
        "--notifications-webhook-endpoint",
        "HERALD_NOTIFICATIONS_WEBHOOK_ENDPOINT",
        None,
    ),
    // DESIGN §8's additions.
    (
        "--notifications-retry-interval",
        "HERALD_NOTIFICATIONS_RETRY_INTERVAL",
        Some("5m"),
    ),
    (
        "--notifications-fetch-interval",
        "HERALD_NOTIFICATIONS_FETCH_INTERVAL",
        Some("15s"),
    ),
    (
        "--notifications-lease-period",
        "HERALD_NOTIFICATIONS_LEASE_PERIOD",
        Some("2m"),
    ),
    (
        "--notifications-lease-count",
        "HERALD_NOTIFICATIONS_LEASE_COUNT",
        Some("20"),
    ),
    (
        "--notifications-store-sync-interval",
        "HERALD_NOTIFICATIONS_STORE_SYNC_INTERVAL",
        Some("2s"),
    ),
    (
        "--notifications-store-sync-buffer-size",
        "HERALD_NOTIFICATIONS_STORE_SYNC_BUFFER_SIZE",
        Some("50"),
    ),
    (
        "--notifications-max-lease-expiries",
        "HERALD_NOTIFICATIONS_MAX_LEASE_EXPIRIES",
        Some("3"),
    ),
    (
        "--notifications-webhook-secret",
        "HERALD_NOTIFICATIONS_WEBHOOK_SECRET",
        None,
    ),
    (
        "--notifications-webhook-format",
        "HERALD_NOTIFICATIONS_WEBHOOK_FORMAT",
        Some("herald"),
    ),
    ("--postgres-url", "HERALD_PG_CONNECTION_URL", None),
    (
        "--postgres-notifier-connections",
        "HERALD_POSTGRES_NOTIFIER_CONNECTIONS",
        Some("5"),
    ),
    (
        "--http-address",
        "HERALD_HTTP_ADDRESS",
        Some("127.0.0.1:3000"),
    ),
    ("--access-url", "HERALD_ACCESS_URL", None),
    ("--app-url", "HERALD_APP_URL", None),
    (
        "--http-header-read-timeout",
        "HERALD_HTTP_HEADER_READ_TIMEOUT",
        Some("10s"),
    ),
    (
        "--http-idle-timeout",
        "HERALD_HTTP_IDLE_TIMEOUT",
        Some("1m"),
    ),
    (
        "--http-request-timeout",
        "HERALD_HTTP_REQUEST_TIMEOUT",
        Some("30s"),
    ),
    (
        "--http-max-connections",
        "HERALD_HTTP_MAX_CONNECTIONS",
        None,
    ),
    ("--log-filter", "HERALD_LOG_FILTER", Some("info")),
    ("--email-tls-ca-file", "HERALD_EMAIL_TLS_CAFILE", None),
    ("--web-allowed-origins", "HERALD_WEB_ALLOWED_ORIGINS", None),
];

/// Options whose values are secrets.
const SECRET_OPTIONS: &[&str] = &[
    "--email-auth-password",
    "--notifications-webhook-secret",
    "--notifications-unsubscribe-key",
    "--postgres-url",
];

fn server_command() -> clap::Command {
    let mut cli = Cli::command();
    cli.build();
    cli.find_subcommand("server")
        .expect("herald has a server command")
        .clone()
}

fn server_args(args: &[&str]) -> Result<ServerArgs, clap::Error> {
    let argv = ["herald", "server"].iter().chain(args);
    match Cli::try_parse_from(argv)?.command {
        Command::Server(args) => Ok(*args),
        _ => unreachable!("parsed a server command"),
    }
}

#[test]
fn every_option_of_the_reference_exists_with_its_default_and_environment_variable() {
    let server = server_command();
    for (flag, env, default) in SERVER_OPTIONS {
        let long = flag.trim_start_matches("--");
        let arg = server
            .get_arguments()
            .find(|arg| arg.get_long() == Some(long))
            .unwrap_or_else(|| panic!("herald server has no {flag}"));
        assert_eq!(arg.get_env(), Some(OsStr::new(env)), "{flag}");
        let defaults: Vec<_> = arg
            .get_default_values()
            .iter()
            .map(|value| value.to_str().unwrap())
            .collect();
        assert_eq!(
            defaults,
            default.iter().copied().collect::<Vec<_>>(),
            "{flag}"
        );
    }
}

#[test]
fn help_lists_every_option_and_its_environment_variable() {
    let (status, stdout, _) = support::run(&["server", "--help"], &[]);

    assert!(status.success());
    for (flag, env, _) in SERVER_OPTIONS {
        assert!(stdout.contains(&format!("{flag} ")), "--help lacks {flag}");
        assert!(stdout.contains(env), "--help lacks {env}");
    }
}

#[test]
fn defaults_build_the_reference_configuration() {
    let config = server_args(&["--postgres-url", "postgres://localhost/herald"])
        .unwrap()
        .validate()
        .unwrap();

    assert_eq!(
        config.notifier.config(),
        &herald_application::NotifierConfig::default()
    );
    assert_eq!(
        config.default_method,
        herald_application::DefaultMethod::Smtp
    );
    assert!(config.inbox_enabled);
    assert!(config.smtp.is_none() && config.webhook.is_none());
    assert_eq!(config.access_url, "http://127.0.0.1:3000");
    assert_eq!(config.app_url, None, "links default to the access URL");
}

#[test]
fn the_app_url_is_kept_apart_from_the_access_url() {
    let config = server_args(&[
        "--access-url",
        "https://herald.example.com",
        "--app-url",
        "https://app.example.com/",
    ])
    .unwrap()
    .validate()
    .unwrap();
    assert_eq!(config.access_url, "https://herald.example.com");
    assert_eq!(config.app_url.as_deref(), Some("https://app.example.com"));
}

#[test]
fn allowed_origins_are_a_comma_separated_list_from_the_flag_or_the_environment() {
    let config = server_args(&[
        "--web-allowed-origins",
        "https://app.example.com, http://localhost:8080/",
    ])
    .unwrap()
    .validate()
    .unwrap();
    assert_eq!(
        config.web_allowed_origins.iter().collect::<Vec<_>>(),
        ["https://app.example.com", "http://localhost:8080"]
    );
    let default = server_args(&[]).unwrap().validate().unwrap();
    assert!(default.web_allowed_origins.is_empty(), "no CORS by default");

    let (status, _, stderr) = support::run(
        &["server"],
        &[(
            "HERALD_WEB_ALLOWED_ORIGINS",
            "https://app.example.com,ftp://x",
        )],
    );
    assert!(!status.success());
    assert!(
        stderr.starts_with("herald: --web-allowed-origins: \"ftp://x\" is not an origin"),
        "{stderr}"
    );
}

#[test]
fn go_style_values_and_bare_boolean_flags_are_understood() {
    let args = server_args(&[
        "--notifications-dispatch-timeout",
        "1m30s",
        "--notifications-lease-period",
        "2m",
        "--notifications-inbox-enabled=false",
        "--email-force-tls",
        "--email-tls-starttls",
        "true",
    ])
    .unwrap();

    assert_eq!(
        args.notifications.notifications_dispatch_timeout,
        std::time::Duration::from_secs(90)
    );
    assert!(!args.notifications.notifications_inbox_enabled);
    assert!(args.email.email_force_tls);
    assert!(args.email.email_tls_starttls);
    assert!(!args.email.email_tls_skip_verify);
}

#[test]
fn environment_variables_configure_the_server() {
    // A value only the environment gives, refused at validation: proves the variable is read.
    let (status, _, stderr) = support::run(
        &["server"],
        &[
            ("HERALD_NOTIFICATIONS_DISPATCH_TIMEOUT", "3m"),
            ("HERALD_NOTIFICATIONS_LEASE_PERIOD", "2m"),
        ],
    );

    assert!(!status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("herald: --notifications-dispatch-timeout:"),
        "{stderr}"
    );
}

#[test]
fn secrets_never_show_in_help() {
    let (status, stdout, _) = support::run(
        &["server", "--help"],
        &[
            ("HERALD_EMAIL_AUTH_PASSWORD", "smtp-secret-value"),
            (
                "HERALD_NOTIFICATIONS_WEBHOOK_SECRET",
                "webhook-secret-value",
            ),
            (
                "HERALD_NOTIFICATIONS_UNSUBSCRIBE_KEY",
                "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
            ),
            (
                "HERALD_PG_CONNECTION_URL",
                "postgres://herald:pg-secret-value@db/herald",
            ),
        ],
    );

    assert!(status.success());
    for secret in [
        "smtp-secret-value",
        "webhook-secret-value",
        "00112233445566778899",
        "pg-secret-value",
    ] {
        assert!(!stdout.contains(secret), "--help shows {secret}");
    }
    let server = server_command();
    for flag in SECRET_OPTIONS {
        let long = flag.trim_start_matches("--");
        let arg = server
            .get_arguments()
            .find(|arg| arg.get_long() == Some(long))
            .unwrap();
        assert!(arg.is_hide_env_values_set(), "{flag} shows its env value");
        assert!(arg.get_default_values().is_empty(), "{flag} has a default");
    }
}

#[test]
fn secrets_never_show_in_debug_output() {
    let args = server_args(&[
        "--postgres-url",
        "postgres://herald:pg-secret-value@db/herald",
        "--email-smarthost",
        "mail.example.com:587",
        "--email-from",
        "Herald <herald@example.com>",
        "--email-auth-username",
        "herald",
        "--email-auth-password",
        "smtp-secret-value",
        "--notifications-webhook-endpoint",
        "https://hooks.example.com/herald",
        "--notifications-webhook-secret",
        "webhook-secret-value",
        "--notifications-unsubscribe-key",
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    ])
    .unwrap();
    let config = args.clone().validate().unwrap();

    let shown = format!("{args:?}\n{config:?}\n{config:#?}");

    for secret in [
        "smtp-secret-value",
        "webhook-secret-value",
        "00112233445566778899",
        "pg-secret-value",
    ] {
        assert!(!shown.contains(secret), "Debug shows {secret}:\n{shown}");
    }
    assert!(shown.contains("mail.example.com:587"), "{shown}");
}

/// Each bad configuration is refused with one line naming the option.
#[test]
fn bad_configuration_is_refused_with_one_line_naming_the_option() {
    let unreadable = "/nonexistent/herald/password";
    let cases: &[(&[&str], &str)] = &[
        (
            &["--notifications-method", "inbox"],
            "--notifications-method",
        ),
        (
            &[
                "--notifications-dispatch-timeout",
                "2m",
                "--notifications-lease-period",
                "2m",
            ],
            "--notifications-dispatch-timeout",
        ),
        (
            &["--notifications-dispatch-timeout", "5m"],
            "--notifications-dispatch-timeout",
        ),
        (
            &["--notifications-max-send-attempts", "0"],
            "--notifications-max-send-attempts",
        ),
        (
            &["--notifications-max-lease-expiries", "0"],
            "--notifications-max-lease-expiries",
        ),
        (
            &[
                "--email-smarthost",
                "mail.example.com",
                "--email-from",
                "herald@example.com",
            ],
            "--email-smarthost",
        ),
        (
            &[
                "--email-smarthost",
                "mail.example.com:25",
                "--email-from",
                "not an address",
            ],
            "--email-from",
        ),
        (
            &[
                "--email-smarthost",
                "mail.example.com:25",
                "--email-from",
                "herald@example.com",
                "--email-auth-username",
                "herald",
                "--email-auth-password-file",
                unreadable,
            ],
            "--email-auth-password-file",
        ),
        (
            &["--notifications-webhook-endpoint", "not a url"],
            "--notifications-webhook-endpoint",
        ),
        (
            &[
                "--notifications-webhook-endpoint",
                "ftp://hooks.example.com/",
            ],
            "--notifications-webhook-endpoint",
        ),
        (
            &[
                "--notifications-webhook-endpoint",
                "https://hooks.example.com/",
                "--notifications-webhook-secret",
                "whsec_!!!",
            ],
            "--notifications-webhook-secret",
        ),
        (
            &["--notifications-unsubscribe-key", "abcd"],
            "--notifications-unsubscribe-key",
        ),
        (&["--postgres-url", "mysql://db/herald"], "--postgres-url"),
        (
            &["--postgres-notifier-connections", "1"],
            "--postgres-notifier-connections",
        ),
        (&["--access-url", "herald.example.com"], "--access-url"),
        (&["--app-url", "ftp://app.example.com"], "--app-url"),
        (
            &["--http-header-read-timeout", "0"],
            "--http-header-read-timeout",
        ),
        (&["--http-idle-timeout", "200h"], "--http-idle-timeout"),
        (&["--http-request-timeout", "0"], "--http-request-timeout"),
        (&["--http-max-connections", "0"], "--http-max-connections"),
        (
            &["--web-allowed-origins", "https://app.example.com/inbox"],
            "--web-allowed-origins",
        ),
        (
            &[
                "--web-allowed-origins",
                "https://app.example.com,app.example.com",
            ],
            "--web-allowed-origins",
        ),
        (&["--web-allowed-origins", "*"], "--web-allowed-origins"),
    ];
    for (args, option) in cases {
        let err = server_args(args)
            .unwrap()
            .validate()
            .expect_err(&format!("{args:?} was accepted"));
        let line = err.to_string();
        assert_eq!(line.lines().count(), 1, "{args:?}: {line}");
        assert!(line.starts_with(&format!("{option}: ")), "{args:?}: {line}");
    }
}

#[test]
fn malformed_values_are_refused_by_the_parser_naming_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--notifications-method", "fax"], "--notifications-method"),
        (
            &["--notifications-lease-period", "2 minutes"],
            "--notifications-lease-period",
        ),
        (
            &["--notifications-fetch-interval", "15"],
            "--notifications-fetch-interval",
        ),
        (
            &["--notifications-lease-count", "many"],
            "--notifications-lease-count",
        ),
        (&["--http-address", "localhost"], "--http-address"),
        (&["--email-force-tls=maybe"], "--email-force-tls"),
        (
            &["--notifications-webhook-format", "discord"],
            "--notifications-webhook-format",
        ),
    ];
    for (args, flag) in cases {
        let err = server_args(args).expect_err(&format!("{args:?} was accepted"));
        assert!(err.to_string().contains(flag), "{args:?}: {err}");
    }
}

#[test]
fn the_webhook_format_reaches_the_dispatcher_configuration() {
    let endpoint = [
        "--notifications-webhook-endpoint",
        "https://hooks.slack.example/T1",
    ];
    let default = server_args(&endpoint).unwrap().validate().unwrap();
    assert_eq!(default.webhook.unwrap().format, WebhookFormat::Herald);

    for (value, format) in [
        ("herald", WebhookFormat::Herald),
        ("slack", WebhookFormat::Slack),
        ("teams", WebhookFormat::Teams),
    ] {
        let mut args = endpoint.to_vec();
        args.extend(["--notifications-webhook-format", value]);
        let config = server_args(&args).unwrap().validate().unwrap();
        assert_eq!(config.webhook.unwrap().format, format, "{value}");
    }
}

#[test]
fn an_unknown_webhook_format_is_refused_naming_the_flag_and_the_choices() {
    let err = server_args(&["--notifications-webhook-format", "discord"])
        .expect_err("discord was accepted");
    let message = err.to_string();
    assert!(
        message.contains("--notifications-webhook-format"),
        "{message}"
    );
    assert!(
        message.contains("unknown format \"discord\"; expected herald, slack or teams"),
        "{message}"
    );
}

#[test]
fn the_binary_reports_bad_configuration_in_one_line_and_fails() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["server", "--notifications-method", "fax"],
            "--notifications-method",
        ),
        (
            &["server", "--notifications-method", "inbox"],
            "--notifications-method",
        ),
        (
            &[
                "server",
                "--email-smarthost",
                "mail.example.com",
                "--email-from",
                "herald@example.com",
            ],
            "--email-smarthost",
        ),
        (
            &["server", "--notifications-lease-period", "soon"],
            "--notifications-lease-period",
        ),
        (&["server", "--log-filter", "herald=loud"], "--log-filter"),
        (
            &["server", "--notifications-webhook-format", "discord"],
            "--notifications-webhook-format",
        ),
        (
            &["migrate", "--postgres-url", "mysql://db/x"],
            "--postgres-url",
        ),
    ];
    for (args, option) in cases {
        let (status, stdout, stderr) = support::run(args, &[]);
        assert!(!status.success(), "{args:?} succeeded");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("herald: "), "{args:?}: {stderr}");
        assert!(stderr.contains(option), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
    }
}

#[test]
fn the_cli_has_the_designed_commands() {
    let cli = Cli::command();
    let mut names: Vec<_> = cli.get_subcommands().map(|c| c.get_name()).collect();
    names.sort_unstable();

    assert_eq!(
        names,
        [
            "migrate",
            "notifications",
            "preferences",
            "server",
            "templates",
            "users"
        ]
    );
}

#[test]
fn the_user_rate_limit_is_off_by_default_and_reaches_the_notifier_as_n_per_duration() {
    let limit = |args: &[&str]| {
        server_args(args)
            .unwrap()
            .validate()
            .unwrap()
            .notifier
            .config()
            .user_rate_limit
    };
    assert_eq!(limit(&[]), None);
    assert_eq!(limit(&["--notifications-user-rate-limit", "off"]), None);
    let five_an_hour = limit(&["--notifications-user-rate-limit", "5/1h"]).unwrap();
    assert_eq!(five_an_hour.count(), 5);
    assert_eq!(five_an_hour.window(), std::time::Duration::from_secs(3_600));
}

#[test]
fn a_bad_user_rate_limit_is_refused_naming_the_flag_and_the_reason() {
    const FLAG: &str = "--notifications-user-rate-limit";
    for (value, reason) in [
        ("0/1h", "must allow at least 1 per window"),
        ("5/0s", "the window must be from 1s to 7 days"),
        ("5/200h", "the window must be from 1s to 7 days"),
    ] {
        let err = server_args(&[FLAG, value])
            .unwrap()
            .validate()
            .expect_err(&format!("{value} was accepted"))
            .to_string();
        assert!(
            err.starts_with(&format!("{FLAG}: {reason}")),
            "{value}: {err}"
        );
    }
    for (value, reason) in [
        ("x/1h", "is not a rate; expected N/DURATION"),
        ("5/abc", "is not a duration"),
        ("5", "is not a rate; expected N/DURATION"),
    ] {
        let err = server_args(&[FLAG, value])
            .expect_err(&format!("{value} was accepted"))
            .to_string();
        assert!(err.contains(FLAG) && err.contains(reason), "{value}: {err}");
    }
}
