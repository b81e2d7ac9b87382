//! Embedding Herald in a Rust host: the host keeps its own users (a [`UserDirectory`] it
//! implements) and its own PostgreSQL pool, and Herald runs in-process — enqueue, notifier,
//! inbox.
//!
//! ```text
//! HERALD_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!     cargo run -p herald --example embedded
//! ```
//!
//! Without `HERALD_TEST_DATABASE_URL` it runs against a built-in PostgreSQL cluster in a
//! temporary directory (PostgreSQL must be installed).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use async_trait::async_trait;
use herald::{BuiltinOptions, Herald};
use herald_application::ports::{StoreError, UserDirectory};
use herald_application::{Event, InboxFilter};
use herald_domain::{
    EmailAddress, InboxNotification, Role, User, UserId, UserStatus, Username, catalogue,
};
use sqlx::postgres::PgPoolOptions;

/// The host's users, as the host keeps them (here: in memory).
#[derive(Debug, Default)]
pub struct HostDirectory {
    users: HashMap<UserId, User>,
}

impl HostDirectory {
    pub fn new(users: impl IntoIterator<Item = User>) -> Self {
        Self {
            users: users.into_iter().map(|user| (user.id, user)).collect(),
        }
    }
}

#[async_trait]
impl UserDirectory for HostDirectory {
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.users.get(&id).cloned())
    }

    async fn get_many(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        Ok(ids
            .iter()
            .filter_map(|id| self.users.get(id).cloned())
            .collect())
    }

    async fn with_any_role(&self, roles: &BTreeSet<Role>) -> Result<Vec<User>, StoreError> {
        Ok(self
            .users
            .values()
            .filter(|user| !user.deleted && user.has_any_role(roles))
            .cloned()
            .collect())
    }
}

/// Starts Herald inside the host (on the host's pool at `database_url`, else a built-in
/// PostgreSQL in `builtin_dir`), sends the host's user a Test Notification, and returns it
/// once the notifier has delivered it to the user's inbox.
///
/// # Errors
/// When Herald cannot start, or the notification is not delivered within 15 seconds.
pub async fn run(
    database_url: Option<&str>,
    builtin_dir: &std::path::Path,
) -> Result<InboxNotification> {
    let ada = User {
        id: UserId::random(),
        email: EmailAddress::parse("ada@host.example.com")?,
        username: Username::parse("ada")?,
        name: "Ada Lovelace".to_owned(),
        roles: BTreeSet::from([Role::Owner]),
        status: UserStatus::Active,
        deleted: false,
    };
    let directory = Arc::new(HostDirectory::new([ada.clone()]));

    let builder = Herald::builder()
        .user_directory(directory)
        .app_name("Example Host")
        .access_url("https://host.example.com");
    let (builder, host_pool) = match database_url {
        Some(url) => {
            // The host's own pool: Herald shares it and never closes it.
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .connect(url)
                .await
                .context("connecting the host's pool")?;
            (builder.pool(pool.clone()), Some(pool))
        }
        None => (
            builder.builtin_postgres(BuiltinOptions {
                data_dir: builtin_dir.to_path_buf(),
                port: None,
            }),
            None,
        ),
    };
    let herald = builder.build().await?;
    ensure!(herald.users().is_none(), "the host's directory is used");

    let delivered = async {
        let mut watcher = herald.inbox_feed().subscribe(ada.id).await?;
        let mut event = Event::new(catalogue::TEST_NOTIFICATION);
        event.initiator = Some(ada.id);
        event.created_by = "embedded-example".to_owned();
        let enqueued = herald.events().enqueue(event).await?;
        ensure!(
            enqueued.message_ids.len() == 1,
            "expected one inbox message, got {enqueued:?}"
        );

        let notification = tokio::time::timeout(Duration::from_secs(15), watcher.next())
            .await
            .context("the notification did not reach the inbox within 15 seconds")?
            .context("the inbox feed closed")?;
        let page = herald.inbox().list(ada.id, InboxFilter::default()).await?;
        ensure!(
            page.notifications.iter().any(|n| n.id == notification.id),
            "the delivered notification is not in the inbox listing"
        );
        ensure!(page.unread_count == 1, "one unread notification");
        Ok(notification)
    }
    .await;

    herald.shutdown().await?;
    if let Some(pool) = host_pool {
        pool.close().await;
    }
    delivered
}

#[tokio::main]
async fn main() -> Result<()> {
    let url = std::env::var("HERALD_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let dir = std::env::temp_dir().join(format!("herald-embedded-{}", std::process::id()));
    let result = run(url.as_deref(), &dir).await;
    if url.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    let notification = result?;
    println!(
        "delivered to the inbox: {:?} ({})",
        notification.title, notification.id
    );
    Ok(())
}
