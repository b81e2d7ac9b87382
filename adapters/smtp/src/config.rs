//! The email settings and their validation. Errors name the setting's key (`smtp.smarthost`,
//! the [`SmtpConfig`] field it is); the command line renames keys to its `--email-*` flags.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_application::ConfigError;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Identity, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub(crate) const FROM: &str = "smtp.from";
pub(crate) const SMARTHOST: &str = "smtp.smarthost";
pub(crate) const HELLO: &str = "smtp.hello";
pub(crate) const AUTH_USERNAME: &str = "smtp.auth_username";
pub(crate) const AUTH_PASSWORD: &str = "smtp.auth_password";
pub(crate) const AUTH_PASSWORD_FILE: &str = "smtp.auth_password_file";
pub(crate) const AUTH_IDENTITY: &str = "smtp.auth_identity";
pub(crate) const TLS_SERVER_NAME: &str = "smtp.tls_server_name";
pub(crate) const TLS_CERT_FILE: &str = "smtp.tls_cert_file";
pub(crate) const TLS_CERT_KEY_FILE: &str = "smtp.tls_cert_key_file";
pub(crate) const TLS_CA_FILE: &str = "smtp.tls_ca_file";

/// The port on which SMTP servers expect implicit TLS (RFC 8314 §3.3).
const SUBMISSIONS_PORT: u16 = 465;

/// The email options of the reference's tables, as configured (flags or `HERALD_EMAIL_*`).
///
/// Optional strings treat `Some("")` like `None`, so an empty environment variable unsets an
/// option. [`SmtpConfig::validate`] checks everything once, at start-up; the dispatcher then
/// trusts the result. `Debug` never shows the password.
#[derive(Clone)]
pub struct SmtpConfig {
    /// `--email-from`: the sender, `addr@example.com` or `Name <addr@example.com>`.
    pub from: String,
    /// `--email-smarthost`: the relay, `host:port` (`[v6 address]:port` for IPv6).
    pub smarthost: String,
    /// `--email-hello`: the name sent with `EHLO`. Default `localhost`.
    pub hello: String,
    /// `--email-auth-username`: authenticate (PLAIN, else LOGIN) when set.
    pub auth_username: Option<String>,
    /// `--email-auth-password`. Never logged, never in `Debug` or errors.
    pub auth_password: Option<String>,
    /// `--email-auth-password-file`: read the password from this file (one trailing newline
    /// is dropped). Exclusive with `auth_password`.
    pub auth_password_file: Option<PathBuf>,
    /// `--email-auth-identity`: the PLAIN authorization identity (RFC 4616 `authzid`): act as
    /// this identity, authenticated as `auth_username`. Requires the username and password.
    ///
    /// Unset, empty or equal to the username: PLAIN is sent with an empty authorization
    /// identity (which servers read as "act as the username"), and LOGIN is used when PLAIN is
    /// not offered. Any other value is sent as PLAIN's authorization identity, and PLAIN is
    /// then required: LOGIN cannot carry an identity, so a server without PLAIN fails the
    /// delivery permanently rather than authenticating as someone else.
    pub auth_identity: Option<String>,
    /// `--email-force-tls`: implicit TLS (the whole session in TLS) on any port. Port 465
    /// always uses implicit TLS.
    pub force_tls: bool,
    /// `--email-tls-starttls`: upgrade with `STARTTLS`, which is then required: a server
    /// that does not offer it fails the delivery, never a plaintext fallback. Ignored when
    /// implicit TLS applies.
    pub starttls: bool,
    /// `--email-tls-skip-verify`: accept any server certificate (**insecure**).
    pub tls_skip_verify: bool,
    /// `--email-tls-server-name`: the name to verify the server certificate against (and to
    /// send as SNI). Defaults to the smarthost's host.
    pub tls_server_name: Option<String>,
    /// `--email-tls-cert-file`: a client certificate (PEM) to present to the server.
    pub tls_cert_file: Option<PathBuf>,
    /// `--email-tls-cert-key-file`: the client certificate's private key (PEM).
    pub tls_cert_key_file: Option<PathBuf>,
    /// `--email-tls-ca-file`: extra trusted CA certificates (PEM), on top of the system's.
    pub tls_ca_file: Option<PathBuf>,
    /// The longest one network step may take: connecting, the TLS handshake, each SMTP
    /// command. The notifier's dispatch timeout bounds the whole delivery. Default 60 s.
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            from: String::new(),
            smarthost: String::new(),
            hello: "localhost".to_owned(),
            auth_username: None,
            auth_password: None,
            auth_password_file: None,
            auth_identity: None,
            force_tls: false,
            starttls: false,
            tls_skip_verify: false,
            tls_server_name: None,
            tls_cert_file: None,
            tls_cert_key_file: None,
            tls_ca_file: None,
            timeout: Duration::from_secs(60),
        }
    }
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("from", &self.from)
            .field("smarthost", &self.smarthost)
            .field("hello", &self.hello)
            .field("auth_username", &self.auth_username)
            .field(
                "auth_password",
                &set(&self.auth_password).then_some("<redacted>"),
            )
            .field("auth_password_file", &self.auth_password_file)
            .field("auth_identity", &self.auth_identity)
            .field("force_tls", &self.force_tls)
            .field("starttls", &self.starttls)
            .field("tls_skip_verify", &self.tls_skip_verify)
            .field("tls_server_name", &self.tls_server_name)
            .field("tls_cert_file", &self.tls_cert_file)
            .field("tls_cert_key_file", &self.tls_cert_key_file)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// How the session is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    Plain,
    /// Plaintext greeting, then a required `STARTTLS`.
    StartTls,
    /// TLS from the first byte.
    Implicit,
}

/// AUTH PLAIN acting as `identity`: the credentials of a configured identity other than the
/// username, which lettre's own PLAIN (always an empty identity) cannot send. `Debug` never
/// shows the password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PlainIdentity {
    /// The authorization identity (`authzid`): whom to act as.
    pub identity: String,
    /// The authentication identity (`authcid`): whose password this is.
    pub username: String,
    pub password: String,
}

impl fmt::Debug for PlainIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlainIdentity")
            .field("identity", &self.identity)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// An [`SmtpConfig`] that [`SmtpConfig::validate`] accepted (its files read): what an
/// [`SmtpDispatcher`](crate::SmtpDispatcher) is built from, so the settings are checked once.
#[derive(Debug)]
pub struct SmtpSettings(pub(crate) Settings);

/// A validated configuration, in lettre's terms.
pub(crate) struct Settings {
    pub from: Mailbox,
    pub host: String,
    pub port: u16,
    pub hello: ClientId,
    pub credentials: Option<Credentials>,
    /// Set when an identity other than the username is configured: such deliveries
    /// authenticate with AUTH PLAIN themselves (`credentials` is then unused).
    pub plain_identity: Option<PlainIdentity>,
    pub mechanisms: Vec<Mechanism>,
    pub tls: Tls,
    pub security: Security,
    pub timeout: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("from", &self.from.to_string())
            .field("host", &self.host)
            .field("port", &self.port)
            .field("hello", &self.hello)
            .field("authenticates", &self.credentials.is_some())
            .field("plain_identity", &self.plain_identity)
            .field("security", &self.security)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SmtpConfig {
    /// Checks every option (reading the password, certificate, key and CA files).
    ///
    /// `--email-auth-identity` may be any identity (without NUL) once the username and
    /// password are set; one without them is refused.
    ///
    /// # Errors
    /// The first bad setting, e.g. `smtp.smarthost: must be host:port, got "mail"`.
    pub fn validate(&self) -> Result<SmtpSettings, ConfigError> {
        self.settings().map(SmtpSettings)
    }

    pub(crate) fn settings(&self) -> Result<Settings, ConfigError> {
        let from = parse_from(&self.from)?;
        let (host, port) = parse_smarthost(&self.smarthost)?;
        let hello = parse_hello(&self.hello)?;
        let (credentials, plain_identity) = self.credentials()?;
        let security = if port == SUBMISSIONS_PORT || self.force_tls {
            Security::Implicit
        } else if self.starttls {
            Security::StartTls
        } else {
            Security::Plain
        };
        // TLS options are checked even when unused, so a typo does not wait for the day TLS
        // is switched on. Only the smarthost's host need not be a TLS name then.
        let server_name = self.server_name(&host, security != Security::Plain)?;
        let parameters = self.tls_parameters(server_name)?;
        let tls = match security {
            Security::Plain => Tls::None,
            Security::StartTls => Tls::Required(parameters),
            Security::Implicit => Tls::Wrapper(parameters),
        };
        Ok(Settings {
            from,
            host,
            port,
            hello,
            credentials,
            plain_identity,
            // PLAIN first (one round trip), LOGIN otherwise. lettre ignores mechanisms it
            // does not know (XOAUTH2 is never asked for).
            mechanisms: vec![Mechanism::Plain, Mechanism::Login],
            tls,
            security,
            timeout: self.timeout,
        })
    }

    /// The credentials, and the PLAIN identity to act as when it is not the username.
    fn credentials(&self) -> Result<(Option<Credentials>, Option<PlainIdentity>), ConfigError> {
        let username = value(&self.auth_username);
        let password = match (value(&self.auth_password), path(&self.auth_password_file)) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    AUTH_PASSWORD_FILE,
                    format!("cannot be used together with `{AUTH_PASSWORD}`"),
                ));
            }
            (Some(password), None) => Some(password.to_owned()),
            (None, Some(path)) => Some(read_password(path)?),
            (None, None) => None,
        };
        let identity = value(&self.auth_identity);
        match (username, password) {
            (None, None) => match identity {
                Some(_) => Err(ConfigError::new(
                    AUTH_IDENTITY,
                    format!("requires `{AUTH_USERNAME}`"),
                )),
                None => Ok((None, None)),
            },
            (None, Some(_)) => Err(ConfigError::new(
                AUTH_USERNAME,
                format!("required when `{AUTH_PASSWORD}` or `{AUTH_PASSWORD_FILE}` is set"),
            )),
            (Some(_), None) => Err(ConfigError::new(
                AUTH_PASSWORD,
                format!("required (or `{AUTH_PASSWORD_FILE}`) when `{AUTH_USERNAME}` is set"),
            )),
            (Some(username), Some(password)) => {
                // The username itself needs no identity: lettre's PLAIN (empty identity) means
                // just that, and LOGIN stays available.
                let plain_identity = match identity.filter(|identity| *identity != username) {
                    // RFC 4616: the fields of PLAIN's message are separated by NUL.
                    Some(identity) if identity.contains('\0') => {
                        return Err(ConfigError::new(
                            AUTH_IDENTITY,
                            "must not contain a NUL character",
                        ));
                    }
                    Some(identity) => Some(PlainIdentity {
                        identity: identity.to_owned(),
                        username: username.to_owned(),
                        password: password.clone(),
                    }),
                    None => None,
                };
                Ok((
                    Some(Credentials::new(username.to_owned(), password)),
                    plain_identity,
                ))
            }
        }
    }

    /// The name the server certificate must match: `--email-tls-server-name`, else the host.
    fn server_name(&self, host: &str, tls: bool) -> Result<String, ConfigError> {
        match value(&self.tls_server_name) {
            Some(name) => {
                check_server_name(name).map_err(|reason| {
                    ConfigError::new(TLS_SERVER_NAME, format!("{name:?} {reason}"))
                })?;
                Ok(name.to_owned())
            }
            None if tls => {
                check_server_name(host).map_err(|reason| {
                    ConfigError::new(
                        SMARTHOST,
                        format!("the host {host:?} {reason} (set `{TLS_SERVER_NAME}`)"),
                    )
                })?;
                Ok(host.to_owned())
            }
            None => Ok(host.to_owned()),
        }
    }

    fn tls_parameters(&self, server_name: String) -> Result<TlsParameters, ConfigError> {
        let mut builder = TlsParameters::builder(server_name);
        if let Some(path) = path(&self.tls_ca_file) {
            for der in read_certificates(TLS_CA_FILE, path)? {
                let certificate = Certificate::from_der(der.to_vec()).map_err(|err| {
                    ConfigError::new(
                        TLS_CA_FILE,
                        format!("{} holds an unusable certificate: {err}", path.display()),
                    )
                })?;
                builder = builder.add_root_certificate(certificate);
            }
        }
        match (path(&self.tls_cert_file), path(&self.tls_cert_key_file)) {
            (Some(cert), Some(key)) => builder = builder.identify_with(identity(cert, key)?),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    TLS_CERT_KEY_FILE,
                    format!("required when `{TLS_CERT_FILE}` is set"),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    TLS_CERT_FILE,
                    format!("required when `{TLS_CERT_KEY_FILE}` is set"),
                ));
            }
            (None, None) => {}
        }
        if self.tls_skip_verify {
            // Like Go's InsecureSkipVerify: neither the chain nor the name is checked.
            builder = builder
                .dangerous_accept_invalid_certs(true)
                .dangerous_accept_invalid_hostnames(true);
        }
        // lettre uses the process-wide rustls provider when one is installed; make it ring
        // unless the host chose already (then this fails harmlessly).
        let _ = rustls::crypto::ring::default_provider().install_default();
        builder.build_rustls().map_err(|err| {
            let flag = if path(&self.tls_cert_file).is_some() {
                TLS_CERT_FILE
            } else {
                TLS_CA_FILE
            };
            ConfigError::new(flag, format!("cannot set up TLS: {err}"))
        })
    }
}

fn set(option: &Option<String>) -> bool {
    value(option).is_some()
}

/// A set, non-empty option.
fn value(option: &Option<String>) -> Option<&str> {
    option.as_deref().filter(|value| !value.is_empty())
}

fn path(option: &Option<PathBuf>) -> Option<&Path> {
    option
        .as_deref()
        .filter(|path| !path.as_os_str().is_empty())
}

fn parse_from(raw: &str) -> Result<Mailbox, ConfigError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(ConfigError::new(
            FROM,
            "required (e.g. \"Herald <herald@example.com>\")",
        ));
    }
    raw.parse::<Mailbox>()
        .map_err(|err| ConfigError::new(FROM, format!("{raw:?} is not an email address: {err}")))
}

/// `host:port` or `[v6]:port`; the host is returned without brackets.
pub(crate) fn parse_smarthost(raw: &str) -> Result<(String, u16), ConfigError> {
    let invalid = || ConfigError::new(SMARTHOST, format!("must be host:port, got {raw:?}"));
    let (host, port) = raw.trim().rsplit_once(':').ok_or_else(invalid)?;
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.strip_suffix(']').ok_or_else(invalid)?,
        None if host.contains(':') => {
            return Err(ConfigError::new(
                SMARTHOST,
                format!("must be host:port, got {raw:?} (write an IPv6 address as [address]:port)"),
            ));
        }
        None => host,
    };
    let valid_host = !host.is_empty()
        && !host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "/@[]".contains(c));
    if !valid_host {
        return Err(invalid());
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok((host.to_owned(), port)),
        _ => Err(ConfigError::new(
            SMARTHOST,
            format!("must be host:port with a port from 1 to 65535, got {raw:?}"),
        )),
    }
}

fn parse_hello(raw: &str) -> Result<ClientId, ConfigError> {
    let hello = raw.trim();
    if hello.is_empty() || hello.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConfigError::new(
            HELLO,
            format!("must be a host name, got {raw:?}"),
        ));
    }
    Ok(ClientId::Domain(hello.to_owned()))
}

fn check_server_name(name: &str) -> Result<(), &'static str> {
    ServerName::try_from(name)
        .map(drop)
        .map_err(|_| "is not a valid TLS server name")
}

fn read_password(path: &Path) -> Result<String, ConfigError> {
    let contents = std::fs::read_to_string(path).map_err(|err| {
        ConfigError::new(
            AUTH_PASSWORD_FILE,
            format!("cannot read {}: {err}", path.display()),
        )
    })?;
    // One trailing line ending (as `echo` and editors write), nothing else: a password may
    // legitimately end in spaces.
    let password = contents
        .strip_suffix("\r\n")
        .or_else(|| contents.strip_suffix('\n'))
        .unwrap_or(&contents);
    if password.is_empty() {
        return Err(ConfigError::new(
            AUTH_PASSWORD_FILE,
            format!("{} is empty", path.display()),
        ));
    }
    Ok(password.to_owned())
}

fn read_file(flag: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|err| ConfigError::new(flag, format!("cannot read {}: {err}", path.display())))
}

fn read_certificates(
    flag: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let pem = read_file(flag, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| {
            ConfigError::new(
                flag,
                format!("{} is not a PEM certificate file: {err}", path.display()),
            )
        })?;
    if certificates.is_empty() {
        return Err(ConfigError::new(
            flag,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certificates)
}

/// The client certificate and key.
///
/// lettre's rustls `Identity::from_pem` keeps its first argument as one DER certificate
/// without decoding it, so it is handed the DER of the file's first (leaf) certificate.
/// Intermediate certificates in the file are therefore not sent; the server must know the
/// issuer of the client certificate directly.
fn identity(cert: &Path, key: &Path) -> Result<Identity, ConfigError> {
    let leaf = read_certificates(TLS_CERT_FILE, cert)?
        .into_iter()
        .next()
        .ok_or_else(|| {
            ConfigError::new(
                TLS_CERT_FILE,
                format!("{} holds no PEM certificate", cert.display()),
            )
        })?;
    let key_pem = read_file(TLS_CERT_KEY_FILE, key)?;
    PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| {
        ConfigError::new(
            TLS_CERT_KEY_FILE,
            format!("{} holds no usable PEM private key: {err}", key.display()),
        )
    })?;
    Identity::from_pem(&leaf, &key_pem).map_err(|err| {
        ConfigError::new(
            TLS_CERT_KEY_FILE,
            format!(
                "cannot use {} as the key of {}: {err}",
                key.display(),
                cert.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SmtpConfig {
        SmtpConfig {
            from: "Herald <herald@example.com>".into(),
            smarthost: "mail.example.com:587".into(),
            ..SmtpConfig::default()
        }
    }

    fn error(config: &SmtpConfig) -> String {
        config.validate().unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_config_is_valid_and_plain() {
        let settings = config().settings().unwrap();
        assert_eq!(settings.security, Security::Plain);
        assert_eq!(
            (settings.host.as_str(), settings.port),
            ("mail.example.com", 587)
        );
        assert!(settings.credentials.is_none());
        assert_eq!(settings.hello, ClientId::Domain("localhost".into()));
    }

    #[test]
    fn port_465_or_force_tls_means_implicit_tls_and_starttls_is_required_otherwise() {
        let mut config = config();
        config.smarthost = "mail.example.com:465".into();
        assert_eq!(config.settings().unwrap().security, Security::Implicit);
        config.smarthost = "mail.example.com:2465".into();
        config.force_tls = true;
        config.starttls = true;
        assert_eq!(config.settings().unwrap().security, Security::Implicit);
        config.force_tls = false;
        let settings = config.settings().unwrap();
        assert_eq!(settings.security, Security::StartTls);
        assert!(matches!(settings.tls, Tls::Required(_)));
    }

    #[test]
    fn smarthosts_must_be_host_and_port() {
        for good in [
            "mail:25",
            "10.0.0.1:2525",
            "[::1]:25",
            "smtp.example.com:465",
        ] {
            assert!(parse_smarthost(good).is_ok(), "{good}");
        }
        assert_eq!(parse_smarthost("[::1]:25").unwrap(), ("::1".to_owned(), 25));
        for bad in [
            "",
            "mail",
            "mail:",
            ":25",
            "mail:0",
            "mail:70000",
            "mail:smtp",
            "::1:25",
            "a b:25",
        ] {
            let err = parse_smarthost(bad).unwrap_err();
            assert_eq!(err.key, SMARTHOST, "{bad}");
            assert!(
                err.to_string()
                    .starts_with("smtp.smarthost: must be host:port"),
                "{err}"
            );
        }
    }

    #[test]
    fn from_must_be_an_address() {
        let mut config = config();
        config.from = "not an address".into();
        assert!(
            error(&config).starts_with("smtp.from: \"not an address\" is not an email address")
        );
        config.from = String::new();
        assert!(error(&config).starts_with("smtp.from: required"));
        config.from = "herald@example.com".into();
        assert!(config.validate().is_ok());
    }

    #[test]
    fn hello_must_be_a_name() {
        let mut config = config();
        config.hello = "two words".into();
        assert!(error(&config).starts_with("smtp.hello:"));
    }

    #[test]
    fn auth_options_must_come_together_and_exclusively() {
        let mut config = config();
        config.auth_username = Some("herald".into());
        assert!(
            error(&config).starts_with("smtp.auth_password:"),
            "{}",
            error(&config)
        );
        config.auth_password = Some("hunter2".into());
        assert!(config.validate().is_ok());
        config.auth_password_file = Some("/nonexistent".into());
        assert_eq!(
            error(&config),
            "smtp.auth_password_file: cannot be used together with `smtp.auth_password`"
        );
        config.auth_password = None;
        let err = error(&config);
        assert!(
            err.starts_with("smtp.auth_password_file: cannot read /nonexistent"),
            "{err}"
        );
        config.auth_password_file = None;
        config.auth_username = None;
        config.auth_password = Some("hunter2".into());
        assert!(error(&config).starts_with("smtp.auth_username: required"));
        // An empty value is unset.
        config.auth_password = Some(String::new());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn an_identity_other_than_the_username_is_accepted_and_sent_with_plain() {
        let mut config = config();
        config.auth_username = Some("herald".into());
        config.auth_password = Some("hunter2".into());
        // The username itself (or nothing) keeps lettre's PLAIN/LOGIN.
        for same in [None, Some(""), Some("herald")] {
            config.auth_identity = same.map(str::to_owned);
            let settings = config.settings().unwrap();
            assert!(settings.credentials.is_some(), "{same:?}");
            assert_eq!(settings.plain_identity, None, "{same:?}");
        }
        config.auth_identity = Some("someone-else".into());
        let settings = config.settings().unwrap();
        assert_eq!(
            settings.plain_identity,
            Some(PlainIdentity {
                identity: "someone-else".into(),
                username: "herald".into(),
                password: "hunter2".into(),
            })
        );
        let debug = format!("{settings:?}");
        assert!(debug.contains("someone-else"), "{debug}");
        assert!(!debug.contains("hunter2"), "{debug}");
        config.auth_identity = Some("some\0one".into());
        assert_eq!(
            error(&config),
            "smtp.auth_identity: must not contain a NUL character"
        );
    }

    #[test]
    fn an_identity_needs_a_username_and_password() {
        let mut config = config();
        config.auth_identity = Some("someone-else".into());
        assert_eq!(
            error(&config),
            "smtp.auth_identity: requires `smtp.auth_username`"
        );
        config.auth_username = Some("herald".into());
        assert!(
            error(&config).starts_with("smtp.auth_password: required"),
            "{}",
            error(&config)
        );
        config.auth_username = None;
        config.auth_password = Some("hunter2".into());
        assert!(error(&config).starts_with("smtp.auth_username: required"));
    }

    #[test]
    fn a_cert_needs_its_key_and_files_must_be_readable() {
        let mut config = config();
        config.tls_cert_file = Some("/nonexistent/cert.pem".into());
        assert_eq!(
            error(&config),
            "smtp.tls_cert_key_file: required when `smtp.tls_cert_file` is set"
        );
        config.tls_cert_key_file = Some("/nonexistent/key.pem".into());
        assert!(
            error(&config).starts_with("smtp.tls_cert_file: cannot read /nonexistent/cert.pem")
        );
        config.tls_cert_file = None;
        assert_eq!(
            error(&config),
            "smtp.tls_cert_file: required when `smtp.tls_cert_key_file` is set"
        );
        config.tls_cert_key_file = None;
        config.tls_ca_file = Some("/nonexistent/ca.pem".into());
        assert!(error(&config).starts_with("smtp.tls_ca_file: cannot read /nonexistent/ca.pem"));
    }

    #[test]
    fn the_server_name_must_be_a_name() {
        let mut config = config();
        config.tls_server_name = Some("not a name".into());
        assert!(error(&config).starts_with("smtp.tls_server_name:"));
    }

    #[test]
    fn a_host_that_is_no_tls_name_needs_a_server_name_only_with_tls() {
        let mut config = config();
        config.smarthost = "smtp relay!:25".into();
        assert!(error(&config).starts_with("smtp.smarthost:"));
        config.smarthost = "mail..example:25".into();
        assert!(config.validate().is_ok(), "plaintext needs no TLS name");
        config.starttls = true;
        let err = error(&config);
        assert!(
            err.starts_with("smtp.smarthost: the host \"mail..example\""),
            "{err}"
        );
        assert!(err.contains("`smtp.tls_server_name`"), "{err}");
        config.tls_server_name = Some("mail.example".into());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn debug_redacts_the_password() {
        let mut config = config();
        config.auth_username = Some("herald".into());
        config.auth_password = Some("correct horse battery staple".into());
        let debug = format!("{config:?}");
        assert!(!debug.contains("correct horse"), "{debug}");
        assert!(debug.contains("<redacted>"), "{debug}");
        let settings = format!("{:?}", config.settings().unwrap());
        assert!(!settings.contains("correct horse"), "{settings}");
    }
}
