//! [`MemoryStore`]: every repository and the message queue, in memory, behind one lock.
//!
//! Each concern keeps its rows in its own module (`queue`, `users`, `preferences`,
//! `templates`, `settings`, `inbox`, `tokens`, `sessions`, `rates`, `signals`, `builds`) as plain synchronous code; the port implementations there
//! take the lock through [`MemoryStore::with`], which also answers for an injected outage.

mod builds;
mod inbox;
mod preferences;
mod queue;
mod rates;
mod sessions;
mod settings;
mod signals;
mod templates;
mod tokens;
mod users;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use herald_application::ports::StoreError;
use herald_domain::catalogue;

/// Every storage port in memory: users, preferences, templates, the message queue, settings
/// and the inbox. Clones share the same data, like replicas sharing one database.
///
/// Failure injection: [`MemoryStore::set_unavailable`] makes every port method fail as an
/// unreachable database would; [`MemoryStore::hold_purge_lock`] plays another replica purging.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    unavailable: AtomicBool,
    /// How many purges (real or simulated) hold the purge lock; a purge runs only at zero.
    purge_holders: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    users: users::Users,
    preferences: preferences::Preferences,
    templates: templates::Templates,
    queue: queue::Queue,
    inbox: inbox::Inbox,
    settings: settings::Settings,
    tokens: tokens::Tokens,
    sessions: sessions::Sessions,
    rates: rates::Rates,
    signals: signals::SignalStates,
    builds: builds::Builds,
}

impl MemoryStore {
    /// The error every port method returns while the store is set unavailable.
    pub const UNAVAILABLE: &'static str = "memory store set unavailable";

    /// An empty store holding the catalogue's templates.
    pub fn new() -> Self {
        let store = Self {
            shared: Arc::default(),
        };
        store.lock().templates.seed(&catalogue::templates());
        store
    }

    /// While `true`, every port method returns [`StoreError::Unavailable`] and changes nothing.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.shared.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Holds the purge lock as another replica's purge would, until the guard is dropped:
    /// meanwhile `purge` reports [`herald_application::ports::PurgeOutcome::Skipped`].
    pub fn hold_purge_lock(&self) -> PurgeLockGuard {
        self.shared.purge_holders.fetch_add(1, Ordering::SeqCst);
        PurgeLockGuard {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Takes the purge lock unless someone holds it.
    fn try_purge_lock(&self) -> Option<PurgeLockGuard> {
        self.shared
            .purge_holders
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| PurgeLockGuard {
                shared: Arc::clone(&self.shared),
            })
    }

    /// Runs `f` on the data under the lock, unless the store is set unavailable. `f` is
    /// synchronous, so the lock is never held across an `.await`.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, StoreError> {
        self.ensure_available()?;
        Ok(f(&mut self.lock()))
    }

    fn ensure_available(&self) -> Result<(), StoreError> {
        if self.shared.unavailable.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(Self::UNAVAILABLE.to_owned()));
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

/// The purge lock, held until dropped. See [`MemoryStore::hold_purge_lock`].
#[derive(Debug)]
#[must_use = "the purge lock is released when the guard is dropped"]
pub struct PurgeLockGuard {
    shared: Arc<Shared>,
}

impl Drop for PurgeLockGuard {
    fn drop(&mut self) {
        self.shared.purge_holders.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeSet;

    use chrono::{DateTime, Duration};
    use herald_application::ports::{
        BuildStore, InboxQuery, InboxStore, LeaseRequest, MessageFilter, MessageQueue, NewToken,
        PreferenceStore, RateCounter, ReadStatus, ReportLog, SettingsStore, TemplateStore,
        TokenHash, TokenStore, UserDirectory, UserRegistry,
    };
    use herald_domain::{
        Build, BuildInitiator, BuildStatus, BuildTransition, InboxNotificationId, MessageId, Role,
        TemplateId, UserId,
    };

    use super::*;

    /// A failed build of a workspace `owner` owns, made at `at`.
    fn build(owner: UserId, at: DateTime<chrono::Utc>) -> Build {
        Build {
            workspace_id: *UserId::random().as_uuid(),
            workspace_name: "dev".to_owned(),
            owner_id: owner,
            template_id: *UserId::random().as_uuid(),
            template_name: "docker".to_owned(),
            template_display_name: "Docker".to_owned(),
            template_version: "v1".to_owned(),
            build_number: 1,
            transition: BuildTransition::Start,
            status: BuildStatus::Failed,
            initiator: BuildInitiator::Manual,
            created_at: at,
        }
    }

    /// Every port method, called once on `user`'s rows; each result is whether it failed as
    /// unavailable.
    async fn unavailable_answers(store: &MemoryStore, user: UserId) -> Vec<bool> {
        let template = catalogue::WORKSPACE_DELETED;
        let now = DateTime::UNIX_EPOCH;
        let unavailable = |err: Option<StoreError>| matches!(err, Some(StoreError::Unavailable(_)));
        let lease = LeaseRequest {
            notifier: "memory".into(),
            now,
            lease_period: Duration::minutes(1),
            count: 1,
            max_attempts: 1,
            max_lease_expiries: 1,
            skip: herald_application::ports::SkipMethods::NONE,
        };
        let query = InboxQuery {
            user,
            templates: vec![],
            targets: vec![],
            read_status: ReadStatus::All,
            starting_before: None,
            limit: 0,
        };
        vec![
            unavailable(UserDirectory::get(store, user).await.err()),
            unavailable(store.get_many(&[user]).await.err()),
            unavailable(
                store
                    .with_any_role(&BTreeSet::from([Role::Owner]))
                    .await
                    .err(),
            ),
            unavailable(store.delete(user).await.err()),
            unavailable(store.for_user(user).await.err()),
            unavailable(
                store
                    .set(
                        user,
                        &[herald_application::ports::PreferenceChange {
                            template,
                            scope: herald_domain::PreferenceScope::AllMethods,
                            disabled: Some(true),
                        }],
                        now,
                    )
                    .await
                    .err(),
            ),
            unavailable(store.lookup(&[(user, template)]).await.err()),
            unavailable(store.seed(&catalogue::templates()).await.err()),
            unavailable(TemplateStore::list(store).await.err()),
            unavailable(TemplateStore::get(store, template).await.err()),
            unavailable(store.find_by_name("Workspace Deleted").await.err()),
            unavailable(store.set_method_override(template, None).await.err()),
            unavailable(store.enqueue(&[]).await.err()),
            unavailable(store.lease(lease).await.err()),
            unavailable(store.mark_sent(&[]).await.err()),
            unavailable(store.mark_failed(&[]).await.err()),
            unavailable(store.inhibit_recipient(user, "gone", now).await.err()),
            unavailable(MessageQueue::purge(store, now).await.err()),
            unavailable(MessageQueue::get(store, MessageId::random()).await.err()),
            unavailable(
                MessageQueue::list(store, &MessageFilter::default())
                    .await
                    .err(),
            ),
            unavailable(store.notifier_paused().await.err()),
            unavailable(store.set_notifier_paused(true).await.err()),
            unavailable(InboxStore::list(store, &query).await.err()),
            unavailable(store.unread_count(user).await.err()),
            unavailable(
                store
                    .set_read(user, InboxNotificationId::random(), None)
                    .await
                    .err(),
            ),
            unavailable(store.mark_all_read(user, now).await.err()),
            unavailable(
                TokenStore::insert(
                    store,
                    &NewToken {
                        id: *UserId::random().as_uuid(),
                        user,
                        name: "t".to_owned(),
                        hash: TokenHash::of("t"),
                        created_at: now,
                    },
                )
                .await
                .err(),
            ),
            unavailable(store.find_user(&TokenHash::of("t"), now).await.err()),
            unavailable(store.revoke_all(user, now).await.err()),
            unavailable(store.count("scope", user, now).await.err()),
            unavailable(BuildStore::record(store, &build(user, now)).await.err()),
            unavailable(BuildStore::since(store, now).await.err()),
            unavailable(BuildStore::purge(store, now).await.err()),
            unavailable(
                ReportLog::claim(store, template, now, Duration::days(7))
                    .await
                    .err(),
            ),
        ]
    }

    #[tokio::test]
    async fn every_port_method_fails_while_unavailable_and_changes_nothing() {
        let store = MemoryStore::new();
        let user = UserId::random();
        store.set_unavailable(true);
        let answers = unavailable_answers(&store, user).await;
        assert!(
            answers.iter().all(|unavailable| *unavailable),
            "{answers:?}"
        );

        store.set_unavailable(false);
        assert!(!store.notifier_paused().await.unwrap());
        assert!(store.for_user(user).await.unwrap().is_empty());
        let now = DateTime::UNIX_EPOCH;
        assert_eq!(
            store.find_user(&TokenHash::of("t"), now).await.unwrap(),
            None
        );
        assert!(
            !unavailable_answers(&store, user)
                .await
                .into_iter()
                .any(|unavailable| unavailable)
        );
    }

    #[tokio::test]
    async fn a_new_store_holds_the_catalogue() {
        let store = MemoryStore::new();
        let stored = TemplateStore::list(&store).await.unwrap();
        assert_eq!(stored.len(), catalogue::templates().len());
        let unknown = TemplateId::random();
        assert_eq!(TemplateStore::get(&store, unknown).await.unwrap(), None);
    }
}
