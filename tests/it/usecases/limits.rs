//! Limits on one caller: custom notifications per user and window, open inbox watches per
//! user and per replica, and watches that end with their token. Time is the `ManualClock` (the
//! rate windows, the authentication cache) and tokio's paused clock (a watch's re-checks).

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use herald_application::limits::limit_keys;
use herald_application::ports::{MessageFilter, MessageQueue as _, NoMetrics, TokenHash};
use herald_application::tokens::AUTH_CACHE_TTL;
use herald_application::watching::WATCH_RECHECK_INTERVAL;
use herald_application::{
    CustomContent, DefaultMethod, Error, Limits, Ports, RateLimit, Services, UserInput, Watch,
    WatchEnd, WatchLimits,
};
use herald_domain::{Method, User, UserId};
use herald_memory::{ManualClock, MemoryInboxFeed, MemoryStore, MemoryWakeup};

use super::support::{ScriptedDispatcher, config};

/// One replica's services over a shared store and feed, with these limits.
fn replica(
    store: &MemoryStore,
    feed: &Arc<MemoryInboxFeed>,
    clock: &ManualClock,
    limits: Limits,
) -> Services {
    let mut config = config(DefaultMethod::Webhook);
    config.limits = limits;
    Services::build(
        Ports::over(
            Arc::new(store.clone()),
            Arc::new(MemoryWakeup::new()),
            feed.clone(),
            Arc::new(clock.clone()),
            Arc::new(NoMetrics),
        ),
        config,
        vec![ScriptedDispatcher::ok(Method::Webhook)],
    )
}

struct Setup {
    store: MemoryStore,
    feed: Arc<MemoryInboxFeed>,
    clock: ManualClock,
    services: Services,
}

impl Setup {
    fn new(limits: Limits) -> Self {
        let store = MemoryStore::new();
        let feed = Arc::new(MemoryInboxFeed::new());
        let clock = ManualClock::default();
        let services = replica(&store, &feed, &clock, limits);
        Self {
            store,
            feed,
            clock,
            services,
        }
    }

    /// Another replica over the same store and feed, with its own caches.
    fn replica(&self) -> Services {
        replica(&self.store, &self.feed, &self.clock, Limits::default())
    }

    async fn user(&self, name: &str) -> User {
        let input = UserInput::parse(
            &format!("{name}@example.com"),
            name,
            "",
            &["member".to_owned()],
            "active",
        )
        .unwrap();
        let users = self.services.users().unwrap();
        users.upsert(UserId::random(), input).await.unwrap()
    }

    /// A token of `user`'s, as a watch knows it.
    async fn token(&self, user: &User) -> TokenHash {
        let token = self.services.tokens().issue(user.id).await.unwrap();
        TokenHash::of(token.expose())
    }

    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        herald_application::ports::Clock::now(&self.clock)
    }

    async fn queued_for(&self, user: &User) -> usize {
        let filter = MessageFilter {
            status: None,
            recipient: Some(user.id),
            template_id: None,
            limit: 1_000,
        };
        self.store.list(&filter).await.unwrap().len()
    }
}

fn limits(custom: Option<RateLimit>, watchers: WatchLimits) -> Limits {
    Limits {
        watchers,
        custom_notifications: custom,
    }
}

fn three_a_minute() -> RateLimit {
    RateLimit::new(limit_keys::CUSTOM_NOTIFICATIONS, 3, Duration::from_secs(60)).unwrap()
}

/// Why `watch` ended, which it must within one re-check (tokio's clock is paused: waiting
/// costs nothing).
async fn ends_within_a_recheck(watch: &mut Watch) -> WatchEnd {
    tokio::time::timeout(WATCH_RECHECK_INTERVAL, watch.next())
        .await
        .expect("the watch went on")
        .expect_err("a notification arrived")
}

fn content() -> CustomContent {
    CustomContent::parse("Build done", "All green").unwrap()
}

#[tokio::test]
async fn custom_notifications_over_the_limit_are_refused_until_the_window_ends() {
    let setup = Setup::new(limits(Some(three_a_minute()), WatchLimits::default()));
    let events = setup.services.events();
    let (ann, bob) = (setup.user("ann").await, setup.user("bob").await);
    setup.clock.advance(TimeDelta::seconds(15));

    for _ in 0..3 {
        events.send_custom(ann.id, content()).await.unwrap();
    }
    let refused = events.send_custom(ann.id, content()).await.unwrap_err();

    let Error::Limited {
        limit,
        reason,
        retry_after,
    } = refused
    else {
        panic!("not refused at the limit: {refused:?}");
    };
    assert_eq!(limit, limit_keys::CUSTOM_NOTIFICATIONS);
    assert!(
        reason.contains("at most 3 custom notifications"),
        "{reason}"
    );
    let retry_after = retry_after.unwrap();
    assert_eq!(
        retry_after,
        Duration::from_secs(45),
        "the rest of the minute"
    );
    assert_eq!(
        setup.queued_for(&ann).await,
        3,
        "the refused one is not queued"
    );

    // Another user has a limit of their own.
    events.send_custom(bob.id, content()).await.unwrap();

    // Just before the window ends, still refused; once it ended, sent again.
    setup.clock.advance(TimeDelta::seconds(44));
    assert!(matches!(
        events.send_custom(ann.id, content()).await,
        Err(Error::Limited { .. })
    ));
    setup.clock.advance(TimeDelta::seconds(1));
    events.send_custom(ann.id, content()).await.unwrap();
    assert_eq!(setup.queued_for(&ann).await, 4);
}

#[tokio::test]
async fn the_custom_limit_holds_across_replicas() {
    let setup = Setup::new(limits(Some(three_a_minute()), WatchLimits::default()));
    let other = replica(
        &setup.store,
        &setup.feed,
        &setup.clock,
        limits(Some(three_a_minute()), WatchLimits::default()),
    );
    let ann = setup.user("ann").await;

    setup
        .services
        .events()
        .send_custom(ann.id, content())
        .await
        .unwrap();
    other.events().send_custom(ann.id, content()).await.unwrap();
    setup
        .services
        .events()
        .send_custom(ann.id, content())
        .await
        .unwrap();

    assert!(matches!(
        other.events().send_custom(ann.id, content()).await,
        Err(Error::Limited { .. })
    ));
}

#[tokio::test]
async fn without_a_limit_custom_notifications_are_not_counted() {
    let setup = Setup::new(limits(None, WatchLimits::default()));
    let ann = setup.user("ann").await;

    for _ in 0..100 {
        setup
            .services
            .events()
            .send_custom(ann.id, content())
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn watches_are_capped_per_user_and_in_all_and_a_closed_one_frees_its_slot() {
    let setup = Setup::new(limits(None, WatchLimits::new(2, 3).unwrap()));
    let watching = setup.services.watching();
    let (ann, bob, cat) = (
        setup.user("ann").await,
        setup.user("bob").await,
        setup.user("cat").await,
    );
    let (ann_token, bob_token, cat_token) = (
        setup.token(&ann).await,
        setup.token(&bob).await,
        setup.token(&cat).await,
    );

    let first = watching.open(ann.id, ann_token).await.unwrap();
    let _second = watching.open(ann.id, ann_token).await.unwrap();
    let refused = watching.open(ann.id, ann_token).await.unwrap_err();
    assert!(
        matches!(refused, Error::Limited { limit, retry_after: None, .. } if limit == limit_keys::WATCHERS_PER_USER),
        "{refused:?}"
    );

    let _bobs = watching.open(bob.id, bob_token).await.unwrap();
    assert_eq!(watching.open_count(), 3);
    let full = watching.open(cat.id, cat_token).await.unwrap_err();
    assert!(
        matches!(full, Error::AtCapacity { limit, .. } if limit == limit_keys::WATCHERS),
        "{full:?}"
    );

    drop(first);
    assert_eq!(watching.open_count(), 2);
    let _cats = watching.open(cat.id, cat_token).await.unwrap();
    drop(_cats);
    let _again = watching.open(ann.id, ann_token).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_watch_ends_within_a_recheck_once_its_token_is_revoked_here() {
    let setup = Setup::new(Limits::default());
    let ann = setup.user("ann").await;
    let token = setup.token(&ann).await;
    let mut watch = setup.services.watching().open(ann.id, token).await.unwrap();

    setup.services.tokens().revoke_all(ann.id).await.unwrap();

    assert_eq!(ends_within_a_recheck(&mut watch).await, WatchEnd::Revoked);
}

#[tokio::test(start_paused = true)]
async fn a_watch_opened_by_a_web_session_lasts_as_long_as_the_session() {
    let setup = Setup::new(Limits::default());
    let ann = setup.user("ann").await;
    let token = setup.services.tokens().issue(ann.id).await.unwrap();
    let sessions = setup.services.web_sessions();
    let (kept, ended) = (
        sessions
            .sign_in_with_token(token.expose())
            .await
            .unwrap()
            .unwrap(),
        sessions
            .sign_in_with_token(token.expose())
            .await
            .unwrap()
            .unwrap(),
    );
    let watching = setup.services.watching();
    let mut kept_watch = watching
        .open_session(ann.id, sessions.clone(), kept.hash())
        .await
        .unwrap();
    let mut ended_watch = watching
        .open_session(ann.id, sessions.clone(), ended.hash())
        .await
        .unwrap();

    sessions.sign_out(&ended).await.unwrap();

    assert_eq!(
        ends_within_a_recheck(&mut ended_watch).await,
        WatchEnd::Revoked
    );
    let still = tokio::time::timeout(WATCH_RECHECK_INTERVAL * 3, kept_watch.next()).await;
    assert!(still.is_err(), "the other session's watch ended: {still:?}");
}

#[tokio::test(start_paused = true)]
async fn a_watch_ends_once_its_user_is_deleted_or_suspended() {
    let setup = Setup::new(Limits::default());
    let users = setup.services.users().unwrap();
    let (ann, bob) = (setup.user("ann").await, setup.user("bob").await);
    let (ann_token, bob_token) = (setup.token(&ann).await, setup.token(&bob).await);
    let watching = setup.services.watching();
    let mut anns = watching.open(ann.id, ann_token).await.unwrap();
    let mut bobs = watching.open(bob.id, bob_token).await.unwrap();

    users.delete(ann.id).await.unwrap();
    let suspended = UserInput::parse(
        bob.email.as_str(),
        bob.username.as_str(),
        "",
        &["member".to_owned()],
        "suspended",
    )
    .unwrap();
    users.upsert(bob.id, suspended).await.unwrap();

    assert_eq!(ends_within_a_recheck(&mut anns).await, WatchEnd::Revoked);
    assert_eq!(ends_within_a_recheck(&mut bobs).await, WatchEnd::Suspended);
    drop((anns, bobs));
    assert_eq!(watching.open_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_watch_ends_once_another_replicas_revocation_outlives_the_authentication_cache() {
    let setup = Setup::new(Limits::default());
    let other = setup.replica();
    let ann = setup.user("ann").await;
    let token = setup.token(&ann).await;
    // Opened as the API opens it: after authenticating (which this replica caches).
    let caller = setup.services.tokens().authenticate_hash(token).await;
    assert_eq!(caller.unwrap().unwrap().id, ann.id);
    let mut watch = setup.services.watching().open(ann.id, token).await.unwrap();

    other.tokens().revoke_all(ann.id).await.unwrap();

    // This replica's cached authentication still stands: the watch goes on meanwhile.
    let waited = tokio::time::timeout(WATCH_RECHECK_INTERVAL * 3, watch.next()).await;
    assert!(waited.is_err(), "ended early: {waited:?}");
    setup
        .clock
        .advance(TimeDelta::from_std(AUTH_CACHE_TTL).unwrap());
    assert_eq!(ends_within_a_recheck(&mut watch).await, WatchEnd::Revoked);
}

#[tokio::test(start_paused = true)]
async fn a_watch_with_a_live_token_goes_on_and_receives_notifications() {
    let setup = Setup::new(Limits::default());
    let ann = setup.user("ann").await;
    let token = setup.token(&ann).await;
    let mut watch = setup.services.watching().open(ann.id, token).await.unwrap();

    // Many re-checks pass while nothing arrives.
    let waited = tokio::time::timeout(WATCH_RECHECK_INTERVAL * 10, watch.next()).await;
    assert!(waited.is_err(), "ended: {waited:?}");

    let notification = herald_tests::sample::inbox_notification(ann.id, setup.clock_now());
    herald_application::ports::InboxFeed::publish(setup.feed.as_ref(), &notification)
        .await
        .unwrap();
    assert_eq!(watch.next().await.unwrap().id, notification.id);
}
