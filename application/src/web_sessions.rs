//! The web pages' sign-in (DESIGN §10.6): a session begins with an API token or a one-time
//! sign-in link, and is then known by a random secret the browser keeps in a cookie.
//!
//! Only hashes of secrets are stored ([`SessionStore`]), in the shared database, so every
//! replica accepts every session. A session lasts [`SESSION_TTL`]; a sign-in link
//! [`SIGN_IN_LINK_TTL`] and one use. A session is accepted only while its user is in the
//! directory, not deleted and not suspended; finding one that is not ends all their sessions.
//! Revoking a user's tokens ([`crate::Tokens::revoke_all`]) ends them too.
//!
//! Each session has a CSRF token, derived from its secret ([`SessionSecret::csrf_token`]): the
//! pages put it in every form, and a form posted without it is refused.

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::TimeDelta;
use herald_domain::{User, UserId, UserStatus};
use sha2::{Digest as _, Sha256};

use crate::Error;
use crate::ports::{Clock, NewSession, SessionStore, TokenHash, UserDirectory};
use crate::tokens::Tokens;

/// How long a web session lasts after sign-in.
pub const SESSION_TTL: TimeDelta = TimeDelta::days(7);
/// How long a sign-in link can be redeemed after it was minted.
pub const SIGN_IN_LINK_TTL: TimeDelta = TimeDelta::minutes(10);
/// Random bytes per session or link secret: 256 bits.
const SECRET_BYTES: usize = 32;
/// The length of a secret: [`SECRET_BYTES`] in unpadded URL-safe base64.
const SECRET_CHARS: usize = (SECRET_BYTES * 4).div_ceil(3);

/// A session's or a sign-in link's secret, in plaintext. Its text never appears in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionSecret(String);

impl SessionSecret {
    /// A secret as a browser sent it, if it has the shape of one (junk costs no lookup).
    pub fn parse(text: &str) -> Option<Self> {
        let shaped = text.len() == SECRET_CHARS
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        shaped.then(|| Self(text.to_owned()))
    }

    fn random() -> Result<Self, Error> {
        let mut bytes = [0; SECRET_BYTES];
        getrandom::fill(&mut bytes)
            .map_err(|err| Error::Internal(format!("reading random bytes: {err}")))?;
        Ok(Self(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The secret's text, for the cookie or the link. Keep it secret.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// What is stored of it.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }

    /// The CSRF token of the session with this secret: a hash of the secret under its own
    /// label, so it gives nothing away of the secret and needs no storage.
    pub fn csrf_token(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"herald web csrf\0");
        hasher.update(self.0.as_bytes());
        URL_SAFE_NO_PAD.encode(hasher.finalize())
    }

    /// Whether `presented` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        let expected = self.csrf_token();
        expected.len() == presented.len()
            && expected
                .bytes()
                .zip(presented.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

/// Web session use cases.
#[derive(Debug, Clone)]
pub struct WebSessions {
    store: Arc<dyn SessionStore>,
    tokens: Tokens,
    directory: Arc<dyn UserDirectory>,
    clock: Arc<dyn Clock>,
}

impl WebSessions {
    pub fn new(
        store: Arc<dyn SessionStore>,
        tokens: Tokens,
        directory: Arc<dyn UserDirectory>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            tokens,
            directory,
            clock,
        }
    }

    /// Mints a one-time sign-in link's secret for `user`, valid [`SIGN_IN_LINK_TTL`].
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or deleted user; [`Error::Unavailable`] when the
    /// store is down.
    pub async fn mint_link(&self, user: UserId) -> Result<SessionSecret, Error> {
        match self.directory.get(user).await? {
            Some(found) if !found.deleted => {}
            _ => return Err(Error::NotFound(format!("user {user}"))),
        }
        let secret = SessionSecret::random()?;
        let now = self.clock.now();
        self.store
            .insert_link(&NewSession {
                hash: secret.hash(),
                user,
                created_at: now,
                expires_at: now + SIGN_IN_LINK_TTL,
            })
            .await?;
        tracing::info!(user_id = %user, "minted a sign-in link");
        Ok(secret)
    }

    /// Redeems a sign-in link: a new session for its user, or `None` when the link is unknown,
    /// used, expired, or its user can no longer sign in.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is down.
    pub async fn redeem_link(&self, link: &str) -> Result<Option<SessionSecret>, Error> {
        let Some(link) = SessionSecret::parse(link) else {
            return Ok(None);
        };
        let Some(user) = self.store.take_link(&link.hash(), self.clock.now()).await? else {
            return Ok(None);
        };
        match self.live_user(user).await? {
            Some(user) => self.start(user.id).await.map(Some),
            None => Ok(None),
        }
    }

    /// Signs in with an API token: a new session for its user, or `None` when the token does
    /// not authenticate or its user is suspended.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when a store is down.
    pub async fn sign_in_with_token(&self, token: &str) -> Result<Option<SessionSecret>, Error> {
        match self.tokens.authenticate(token).await? {
            Some(user) if user.status != UserStatus::Suspended => {
                self.start(user.id).await.map(Some)
            }
            _ => Ok(None),
        }
    }

    /// The user of a live session, or `None` when the session is unknown, expired or signed
    /// out, or its user deleted or suspended (then every session of theirs is ended).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when a store is down.
    pub async fn authenticate(&self, secret: &SessionSecret) -> Result<Option<User>, Error> {
        self.authenticate_hash(secret.hash()).await
    }

    /// As [`WebSessions::authenticate`], for a session known by its hash.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when a store is down.
    pub async fn authenticate_hash(&self, hash: TokenHash) -> Result<Option<User>, Error> {
        let Some(user) = self.store.find_session(&hash, self.clock.now()).await? else {
            return Ok(None);
        };
        self.live_user(user).await
    }

    /// Ends the session (sign-out).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is down.
    pub async fn sign_out(&self, secret: &SessionSecret) -> Result<(), Error> {
        self.store.delete_session(&secret.hash()).await?;
        Ok(())
    }

    /// Deletes expired sessions and links; how many.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is down.
    pub async fn purge_expired(&self) -> Result<u64, Error> {
        Ok(self.store.delete_expired(self.clock.now()).await?)
    }

    async fn start(&self, user: UserId) -> Result<SessionSecret, Error> {
        let secret = SessionSecret::random()?;
        let now = self.clock.now();
        self.store
            .insert_session(&NewSession {
                hash: secret.hash(),
                user,
                created_at: now,
                expires_at: now + SESSION_TTL,
            })
            .await?;
        tracing::info!(user_id = %user, "started a web session");
        Ok(secret)
    }

    /// The user if they may hold a session; otherwise their sessions are ended.
    async fn live_user(&self, id: UserId) -> Result<Option<User>, Error> {
        match self.directory.get(id).await? {
            Some(user) if !user.deleted && user.status != UserStatus::Suspended => Ok(Some(user)),
            _ => {
                let ended = self.store.delete_sessions_of(id).await?;
                tracing::info!(user_id = %id, ended, "ended the web sessions of a deleted or suspended user");
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_secret_never_shows_in_debug() {
        let secret = SessionSecret::random().unwrap();
        assert_eq!(format!("{secret:?}"), "SessionSecret(<redacted>)");
    }

    #[test]
    fn the_csrf_token_is_the_sessions_own() {
        let (one, other) = (
            SessionSecret::random().unwrap(),
            SessionSecret::random().unwrap(),
        );
        assert!(one.csrf_matches(&one.csrf_token()));
        assert!(!one.csrf_matches(&other.csrf_token()));
        assert!(!one.csrf_matches(""));
        assert_ne!(one.csrf_token(), one.expose());
    }

    #[test]
    fn only_secret_shaped_text_parses() {
        let secret = SessionSecret::random().unwrap();
        assert_eq!(SessionSecret::parse(secret.expose()), Some(secret));
        assert_eq!(SessionSecret::parse("short"), None);
        assert_eq!(SessionSecret::parse(&"a".repeat(42)), None);
        assert_eq!(SessionSecret::parse(&format!("{}!", "a".repeat(42))), None);
    }
}
