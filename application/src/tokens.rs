//! API tokens: issued once in plaintext, stored as hashes, exchanged for the calling user.

mod cache;

use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_domain::{User, UserId};
use uuid::Uuid;

use crate::Error;
use crate::ports::{Clock, NewToken, SessionStore, TokenHash, TokenStore, UserDirectory};

use cache::Cached;
pub use cache::{AUTH_CACHE_CAPACITY, AUTH_CACHE_TTL, AuthCache};

/// Random bytes per token: 256 bits, so guessing one is hopeless.
pub const TOKEN_BYTES: usize = 32;

/// Every token starts with this: a leaked token is recognisable (secret scanners, logs), and a
/// token never starts with `-`, which command lines would take for an option.
pub const TOKEN_PREFIX: &str = "herald_";
/// How long the random part of a token is: [`TOKEN_BYTES`] in unpadded URL-safe base64.
const TOKEN_BODY_CHARS: usize = (TOKEN_BYTES * 4).div_ceil(3);

/// Whether `text` has the shape of a token [`Tokens::issue`] makes: the prefix, then exactly
/// the random part's length of URL-safe base64. Anything else is refused before it is hashed
/// or looked up, so junk in `Authorization` headers costs no database query.
pub fn is_token_shaped(text: &str) -> bool {
    text.strip_prefix(TOKEN_PREFIX).is_some_and(|body| {
        body.len() == TOKEN_BODY_CHARS
            && body
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// A token in plaintext, handed out once. Its text never appears in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// The token's text, to give to its owner. Keep it secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

/// Token use cases.
#[derive(Debug, Clone)]
pub struct Tokens {
    store: Arc<dyn TokenStore>,
    directory: Arc<dyn UserDirectory>,
    clock: Arc<dyn Clock>,
    auth_cache: AuthCache,
    /// The web sessions [`Tokens::revoke_all`] ends too.
    sessions: Option<Arc<dyn SessionStore>>,
}

impl Tokens {
    /// `auth_cache` must be the one [`crate::Users`] is given, so directory changes on this
    /// replica reach it.
    pub fn new(
        store: Arc<dyn TokenStore>,
        directory: Arc<dyn UserDirectory>,
        clock: Arc<dyn Clock>,
        auth_cache: AuthCache,
    ) -> Self {
        Self {
            store,
            directory,
            clock,
            auth_cache,
            sessions: None,
        }
    }

    /// [`Tokens::revoke_all`] also ends the user's web sessions in `sessions`.
    #[must_use]
    pub fn with_sessions(mut self, sessions: Arc<dyn SessionStore>) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// Issues a new token for `user` and returns its plaintext: the only time it is seen.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown or deleted user; [`Error::Internal`] when the OS
    /// random source fails; [`Error::Unavailable`] when the store is down.
    pub async fn issue(&self, user: UserId) -> Result<ApiToken, Error> {
        match self.directory.get(user).await? {
            Some(found) if !found.deleted => {}
            _ => return Err(Error::NotFound(format!("user {user}"))),
        }
        let mut bytes = [0; TOKEN_BYTES];
        getrandom::fill(&mut bytes)
            .map_err(|err| Error::Internal(format!("reading random bytes: {err}")))?;
        let plaintext = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let id = Uuid::new_v4();
        self.store
            .insert(&NewToken {
                id,
                user,
                name: format!("token-{}", id.simple()),
                hash: TokenHash::of(&plaintext),
                created_at: self.clock.now(),
            })
            .await?;
        tracing::info!(user_id = %user, token_id = %id, "issued an API token");
        Ok(ApiToken(plaintext))
    }

    /// Revokes every token of `user` (when the user is deleted) and ends their web sessions;
    /// returns how many tokens.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the store is down.
    pub async fn revoke_all(&self, user: UserId) -> Result<u64, Error> {
        let revoked = self.store.revoke_all(user, self.clock.now()).await;
        // Even after an error: the revocation may have been applied all the same.
        self.auth_cache.forget_user(user);
        if let Some(sessions) = &self.sessions {
            let ended = sessions.delete_sessions_of(user).await?;
            tracing::info!(user_id = %user, ended, "ended the web sessions of a user whose tokens were revoked");
        }
        Ok(revoked?)
    }

    /// The live user a token belongs to; `None` for an unknown or revoked token, or one whose
    /// user is unknown or deleted. A success is reused for [`AUTH_CACHE_TTL`] without asking
    /// the stores (see there for what that means for changes made on other replicas).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when a store is down.
    pub async fn authenticate(&self, plaintext: &str) -> Result<Option<User>, Error> {
        if !is_token_shaped(plaintext) {
            return Ok(None);
        }
        self.authenticate_hash(TokenHash::of(plaintext)).await
    }

    /// As [`Tokens::authenticate`], for a token known by its hash (one that authenticated
    /// before, checked again without keeping its plaintext).
    ///
    /// # Errors
    /// [`Error::Unavailable`] when a store is down.
    pub async fn authenticate_hash(&self, hash: TokenHash) -> Result<Option<User>, Error> {
        let now = self.clock.now();
        let since = match self.auth_cache.get(&hash, now) {
            Cached::Hit(user) => return Ok(Some(user)),
            Cached::Miss(since) => since,
        };
        // The lookup records the token's `last_used_at` (at most once a minute). A cached
        // token skips it, but one in use is looked up again at least once per TTL, well
        // within that minute.
        let Some(id) = self.store.find_user(&hash, now).await? else {
            return Ok(None);
        };
        let Some(user) = self.directory.get(id).await?.filter(|found| !found.deleted) else {
            return Ok(None);
        };
        self.auth_cache.put(since, hash, user.clone(), now);
        Ok(Some(user))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_token_never_shows_in_debug() {
        let token = ApiToken("secret-token-text".to_owned());
        assert_eq!(format!("{token:?}"), "ApiToken(<redacted>)");
    }

    #[test]
    fn hashes_are_sha256_of_the_text() {
        // SHA-256("abc"), the FIPS 180-2 test vector.
        assert_eq!(
            TokenHash::of("abc").as_bytes()[..4],
            [0xba, 0x78, 0x16, 0xbf]
        );
        assert_ne!(TokenHash::of("a"), TokenHash::of("b"));
    }
}
