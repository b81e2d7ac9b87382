//! A real SMTP server process for tests: `tests/support/smtp_server.py`, an aiosmtpd server
//! (`python3 -m pip install aiosmtpd`), started by [`SmtpServer::start`] on a free port (or
//! [`SmtpServer::start_on`] a given one) and stopped when dropped. It records everything it
//! received, decoded by Python's `email` package, one JSON object per event; read them back
//! with [`SmtpServer::messages`] and [`SmtpServer::events`].
//!
//! Its modes ([`ServerOptions`]): plain, STARTTLS or implicit TLS with the certificates of a
//! [`Pki`]; AUTH mechanisms offered, accepting [`USER`] / [`PASSWORD`] (and, for PLAIN, an
//! authorization identity: none, the login, or [`ServerOptions::identity`]); rejecting DATA
//! with a code; refusing one recipient; never answering the first message. The script's docstring
//! describes each event's fields.
//!
//! Used by herald-smtp's tests (through a dev-dependency on `herald-tests`) and by the
//! end-to-end delivery tests.

// A harness that cannot set itself up fails the test using it, saying why.
#![allow(clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::Value;

/// The login the server accepts.
pub const USER: &str = "herald";
/// The password the server accepts.
pub const PASSWORD: &str = "s3cret-Pa55word!";

/// How long the server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`SmtpServer::start_on`] tries again a port that is taken.
const PORT_TAKEN_DEADLINE: Duration = Duration::from_secs(10);

/// The server script, in the checkout under test.
fn script() -> PathBuf {
    crate::checkout::workspace_root().join("tests/support/smtp_server.py")
}

/// A scratch directory of one test (certificates, the server's records), removed when dropped.
#[derive(Debug)]
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// # Panics
    /// When the directory cannot be created.
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(format!("herald-smtp-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", path.display()));
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Default for ScratchDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A certificate and its private key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test CA and the certificates the tests need, as PEM files.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (what `--email-tls-ca-file` points at).
    pub ca: PathBuf,
    /// Signed by the CA for `localhost` and `127.0.0.1`.
    pub localhost: CertFiles,
    /// Signed by the CA for `mail.herald.test` only.
    pub named: CertFiles,
    /// Self-signed for `localhost` and `127.0.0.1`: trusted by nobody.
    pub untrusted: CertFiles,
    /// A client certificate signed by the CA.
    pub client: CertFiles,
}

impl Pki {
    /// Generates the CA and every certificate into `dir`.
    ///
    /// # Panics
    /// When a certificate cannot be generated or written.
    pub fn generate(dir: &Path) -> Self {
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).expect("CA parameters are valid");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Herald Test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, key_pair()).expect("a self-signed CA");
        let ca_path = dir.join("ca.pem");
        write(&ca_path, ca.pem());

        let files = |name: &str, cert: String, key: &KeyPair| {
            let files = CertFiles {
                cert: dir.join(format!("{name}.pem")),
                key: dir.join(format!("{name}-key.pem")),
            };
            write(&files.cert, cert);
            write(&files.key, key.serialize_pem());
            files
        };
        let signed = |name: &str, names: &[&str], common_name: &str| {
            let mut params =
                CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                    .expect("certificate parameters are valid");
            params
                .distinguished_name
                .push(DnType::CommonName, common_name);
            let key = key_pair();
            let cert = params
                .signed_by(&key, &ca)
                .expect("a certificate the CA signs");
            files(name, cert.pem(), &key)
        };
        let localhost = signed("localhost", &["localhost", "127.0.0.1"], "localhost");
        let named = signed("named", &["mail.herald.test"], "mail.herald.test");
        let client = signed("client", &[], "herald-client");

        let untrusted_key = key_pair();
        let untrusted =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("certificate parameters are valid")
                .self_signed(&untrusted_key)
                .expect("a self-signed certificate");
        let untrusted = files("untrusted", untrusted.pem(), &untrusted_key);

        Self {
            ca: ca_path,
            localhost,
            named,
            untrusted,
            client,
        }
    }
}

fn key_pair() -> KeyPair {
    KeyPair::generate().expect("a fresh key pair")
}

fn write(path: &Path, contents: String) {
    std::fs::write(path, contents)
        .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
}

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// `none`, `starttls` or `implicit`.
    pub tls: &'static str,
    /// The server's certificate and key (required with TLS).
    pub cert: Option<(PathBuf, PathBuf)>,
    /// Asks for (but does not require) a client certificate signed by this CA.
    pub client_ca: Option<PathBuf>,
    /// Mechanisms offered, comma-separated (`PLAIN`, `LOGIN`, `XOAUTH9`: one Herald does not
    /// know, which always fails), or `none`.
    pub auth: &'static str,
    /// An authorization identity PLAIN may ask for, besides none (`""`) and [`USER`] itself;
    /// any other is refused with 535. Recorded as `authzid` (auth events) and `auth_authzid`
    /// (messages).
    pub identity: Option<&'static str>,
    /// Answers the end of DATA with this code.
    pub reject_data: Option<&'static str>,
    /// Greets every connection with this code instead of 220 (then answers only `QUIT`).
    pub reject_greeting: Option<&'static str>,
    /// Answers `MAIL FROM` with this code (recorded as `rejected_mail`).
    pub reject_mail: Option<&'static str>,
    /// Answers `RCPT TO` of this address with 550 (recorded as `refused_rcpt`, with the
    /// address as `rcpt`).
    pub refuse_rcpt: Option<&'static str>,
    /// Answers every `RCPT TO` with 550, recorded as [`ServerOptions::refuse_rcpt`] is.
    pub refuse_every_rcpt: bool,
    /// Answers `RCPT TO` of this address with 450 (greylisting).
    pub greylist_rcpt: Option<&'static str>,
    /// Answers AUTH PLAIN with 454 (a temporary authentication failure).
    pub auth_unavailable: bool,
    /// Drops the first connection that sends `MAIL FROM`, without a reply (recorded as
    /// `reset`).
    pub reset_first_mail: bool,
    /// Drops the connection that sends the second `MAIL FROM`, without a reply (recorded as
    /// `reset`): one a client kept after its first message.
    pub reset_second_mail: bool,
    /// Never answers the end of the first message's DATA (recorded as `hung_data`).
    pub hang_first_data: bool,
}

impl Default for ServerOptions {
    /// Plain SMTP, no AUTH, accepting everything.
    fn default() -> Self {
        Self {
            tls: "none",
            cert: None,
            client_ca: None,
            auth: "none",
            identity: None,
            reject_data: None,
            reject_greeting: None,
            reject_mail: None,
            refuse_rcpt: None,
            refuse_every_rcpt: false,
            greylist_rcpt: None,
            auth_unavailable: false,
            reset_first_mail: false,
            reset_second_mail: false,
            hang_first_data: false,
        }
    }
}

impl ServerOptions {
    /// TLS in `mode` (`starttls` or `implicit`) with the certificate `files`.
    pub fn tls(mode: &'static str, files: &CertFiles) -> Self {
        Self {
            tls: mode,
            cert: Some((files.cert.clone(), files.key.clone())),
            ..Self::default()
        }
    }
}

/// `tests/support/smtp_server.py`, running until dropped.
#[derive(Debug)]
pub struct SmtpServer {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl SmtpServer {
    /// Starts a server on a free port of 127.0.0.1, keeping its files in `dir`, and returns
    /// once it accepts connections.
    ///
    /// # Panics
    /// When the server does not start (aiosmtpd missing, bad options); the message carries
    /// its stderr.
    pub fn start(dir: &Path, options: ServerOptions) -> Self {
        Self::start_on(dir, 0, options)
    }

    /// As [`SmtpServer::start`], on `port` of 127.0.0.1 (0: a free one). A port that is
    /// taken is tried again for a while ([`PORT_TAKEN_DEADLINE`]): a port a test released may
    /// be held for a moment by another process.
    ///
    /// # Panics
    /// As [`SmtpServer::start`], and when `port` stays taken.
    pub fn start_on(dir: &Path, port: u16, options: ServerOptions) -> Self {
        let started = Instant::now();
        loop {
            match Self::try_start(dir, port, &options) {
                Ok(server) => return server,
                Err(stderr)
                    if port != 0
                        && stderr
                            .to_ascii_lowercase()
                            .contains("address already in use")
                        && started.elapsed() < PORT_TAKEN_DEADLINE =>
                {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(stderr) => panic!(
                    "the test SMTP server did not start (is aiosmtpd installed? \
                     `python3 -m pip install aiosmtpd`); stderr:\n{stderr}"
                ),
            }
        }
    }

    /// Starts the server once; its stderr when it does not start listening.
    fn try_start(dir: &Path, port: u16, options: &ServerOptions) -> Result<Self, String> {
        let id = uuid::Uuid::new_v4();
        let out = dir.join(format!("server-{id}.jsonl"));
        let stderr_path = dir.join(format!("server-{id}.stderr"));
        let stderr = std::fs::File::create(&stderr_path)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", stderr_path.display()));
        let script = script();
        let mut command = Command::new("python3");
        command
            .arg(&script)
            .args(["--port", &port.to_string()])
            .args(["--tls", options.tls, "--auth", options.auth])
            .args(["--user", USER, "--password", PASSWORD])
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        if let Some((cert, key)) = &options.cert {
            command.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some(ca) = &options.client_ca {
            command.arg("--client-ca").arg(ca);
        }
        if let Some(identity) = options.identity {
            command.args(["--identity", identity]);
        }
        if let Some(code) = options.reject_data {
            command.args(["--reject-data", code]);
        }
        if let Some(code) = options.reject_greeting {
            command.args(["--reject-greeting", code]);
        }
        if let Some(code) = options.reject_mail {
            command.args(["--reject-mail", code]);
        }
        if let Some(address) = options.refuse_rcpt {
            command.args(["--refuse-rcpt", address]);
        }
        if options.refuse_every_rcpt {
            command.arg("--refuse-every-rcpt");
        }
        if let Some(address) = options.greylist_rcpt {
            command.args(["--greylist-rcpt", address]);
        }
        if options.auth_unavailable {
            command.arg("--auth-unavailable");
        }
        if options.reset_first_mail {
            command.arg("--reset-first-mail");
        }
        if options.reset_second_mail {
            command.arg("--reset-second-mail");
        }
        if options.hang_first_data {
            command.arg("--hang-first-data");
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|err| panic!("could not start python3 {}: {err}", script.display()));

        // The script prints `READY <port>` once it listens.
        let stdout = child.stdout.take().expect("the server's stdout is piped");
        let (ready, line) = mpsc::channel();
        std::thread::spawn(move || {
            let line = BufReader::new(stdout).lines().next();
            let _ = ready.send(line.and_then(Result::ok));
        });
        let line = line.recv_timeout(START_TIMEOUT).ok().flatten();
        let listening = line
            .as_deref()
            .and_then(|line| line.strip_prefix("READY "))
            .and_then(|port| port.trim().parse::<u16>().ok());
        let Some(port) = listening else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(std::fs::read_to_string(&stderr_path).unwrap_or_default());
        };
        // And make sure the port accepts before anything is sent.
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the test SMTP server on port {port} does not accept connections"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(Self { child, port, out })
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server process's id (the benchmark reads its CPU time).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file it appends its events to, one JSON object per line (for a reader that follows
    /// it as it grows; [`SmtpServer::events`] reads it whole).
    pub fn record_path(&self) -> &Path {
        &self.out
    }

    /// Events of `kind` (`message`, `auth`, `rejected_data`, `hung_data`) so far, oldest
    /// first.
    ///
    /// # Panics
    /// When the server wrote a line that is not JSON.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        let Ok(contents) = std::fs::read_to_string(&self.out) else {
            return Vec::new();
        };
        contents
            .lines()
            .map(|line| {
                serde_json::from_str::<Value>(line)
                    .unwrap_or_else(|err| panic!("the server recorded {line:?}: {err}"))
            })
            .filter(|event| event["event"] == kind)
            .collect()
    }

    /// Messages accepted so far. The server records a message before it answers `250`, so
    /// everything a successful dispatch sent is already here.
    pub fn messages(&self) -> Vec<Value> {
        self.events("message")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one value of header `name` (case-insensitive) of a recorded message, decoded.
///
/// # Panics
/// When the message has no such header, or more than one.
pub fn header(message: &Value, name: &str) -> String {
    let headers = message["headers"]
        .as_array()
        .expect("a recorded message has headers");
    let values: Vec<&str> = headers
        .iter()
        .filter(|pair| {
            pair[0]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .filter_map(|pair| pair[1].as_str())
        .collect();
    match values.as_slice() {
        [value] => (*value).to_owned(),
        _ => panic!("expected one {name} header, got {values:?} in {headers:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_taken_for_a_moment_is_tried_again_until_it_is_free() {
        let scratch = ScratchDir::new();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = taken.local_addr().expect("a bound address").port();
        let releasing = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            drop(taken);
        });

        let server = SmtpServer::start_on(scratch.path(), port, ServerOptions::default());

        assert_eq!(server.port(), port);
        releasing.join().expect("the port is released");
    }
}
