//! DESIGN §4: audience, methods, preferences, dedupe.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use herald_application::ports::{
    self, MessageFilter, MessageQueue, PreferenceStore, StoreError, UserDirectory,
};
use herald_application::{
    CustomContent, CustomRecipients, DefaultMethod, Error, Event, EventPorts, Events,
    PreferenceUpdate, SkipReason, Skipped, TemplateRef,
};
use herald_domain::catalogue::{
    CUSTOM_NOTIFICATION, ONE_TIME_PASSCODE, TASK_IDLE, TEMPLATE_DELETED, TEST_NOTIFICATION,
    USER_ACCOUNT_SUSPENDED, WORKSPACE_AUTOBUILD_FAILED, WORKSPACE_CREATED, WORKSPACE_DELETED,
    WORKSPACE_MANUAL_BUILD_FAILED,
};
use herald_domain::{Message, Method, Role, StoredPreference, Template, TemplateId, User, UserId};
use herald_memory::MemoryStore;
use serde_json::json;

use super::support::{ACCESS_URL, Harness, every_method};

fn event(template: herald_domain::TemplateId, subject: Option<UserId>) -> Event {
    let mut event = Event::new(template);
    event.subject = subject;
    event.created_by = "tests".into();
    event.labels.insert("name".into(), "ws-1".into());
    event
}

async fn messages(h: &Harness) -> Vec<Message> {
    h.store
        .list(&MessageFilter {
            limit: 10_000,
            ..MessageFilter::default()
        })
        .await
        .unwrap()
}

/// Enqueues one Workspace Deleted event about `subject`; the methods of the messages it made.
async fn methods_of_one_event(h: &Harness, subject: UserId) -> Vec<Method> {
    let ids = h
        .events
        .enqueue(event(WORKSPACE_DELETED, Some(subject)))
        .await
        .unwrap()
        .message_ids;
    let mut methods = Vec::new();
    for id in ids {
        methods.push(h.message(id).await.method);
    }
    methods
}

fn recipients(messages: &[Message]) -> BTreeSet<UserId> {
    messages.iter().map(|m| m.recipient).collect()
}

#[tokio::test]
async fn a_role_event_fans_out_to_every_holder_of_the_roles_except_the_subject() {
    let h = Harness::new();
    let owner = h.user("owner", &[Role::Owner]).await;
    let admin = h.user("admin", &[Role::UserAdmin, Role::Member]).await;
    let both = h.user("both", &[Role::Owner, Role::UserAdmin]).await;
    let _member = h.user("member", &[Role::Member]).await;
    let _templater = h.user("templater", &[Role::TemplateAdmin]).await;
    let suspended_admin = h.user("suspended", &[Role::UserAdmin]).await;

    let result = h
        .events
        .enqueue(event(USER_ACCOUNT_SUSPENDED, Some(suspended_admin.id)))
        .await
        .unwrap();

    let stored = messages(&h).await;
    assert_eq!(
        recipients(&stored),
        BTreeSet::from([owner.id, admin.id, both.id])
    );
    // webhook (the default) and inbox for each of the three.
    assert_eq!(result.message_ids.len(), 6);
    assert_eq!(stored.len(), 6);
    assert!(result.skipped.is_empty());
}

#[tokio::test]
async fn deleted_users_get_nothing_from_a_role_event_or_as_subject() {
    let h = Harness::new();
    let kept = h.user("kept", &[Role::TemplateAdmin]).await;
    let gone = h.user("gone", &[Role::TemplateAdmin]).await;
    h.users.delete(gone.id).await.unwrap();

    h.events
        .enqueue(event(TEMPLATE_DELETED, None))
        .await
        .unwrap();
    assert_eq!(recipients(&messages(&h).await), BTreeSet::from([kept.id]));

    let result = h
        .events
        .enqueue(event(WORKSPACE_DELETED, Some(gone.id)))
        .await
        .unwrap();
    assert!(result.message_ids.is_empty());
    assert_eq!(
        result.skipped,
        vec![Skipped {
            user_id: gone.id,
            reason: SkipReason::Deleted,
            method: None
        }]
    );
}

#[tokio::test]
async fn a_disabled_preference_blocks_enqueue_for_that_user_only() {
    let h = Harness::new();
    let quiet = h.user("quiet", &[Role::TemplateAdmin]).await;
    let loud = h.user("loud", &[Role::TemplateAdmin]).await;
    h.preferences
        .update(
            quiet.id,
            every_method(BTreeMap::from([(TEMPLATE_DELETED, true)])),
        )
        .await
        .unwrap();

    let result = h
        .events
        .enqueue(event(TEMPLATE_DELETED, None))
        .await
        .unwrap();

    assert_eq!(
        result.skipped,
        vec![Skipped {
            user_id: quiet.id,
            reason: SkipReason::Disabled,
            method: None
        }]
    );
    assert_eq!(recipients(&messages(&h).await), BTreeSet::from([loud.id]));
}

#[tokio::test]
async fn an_off_by_default_event_is_sent_only_to_users_who_opted_in() {
    let h = Harness::new();
    let opted_in = h.user("opted-in", &[]).await;
    let silent = h.user("silent", &[]).await;
    h.preferences
        .update(
            opted_in.id,
            every_method(BTreeMap::from([(WORKSPACE_CREATED, false)])),
        )
        .await
        .unwrap();

    let silent_result = h
        .events
        .enqueue(event(WORKSPACE_CREATED, Some(silent.id)))
        .await
        .unwrap();
    assert!(silent_result.message_ids.is_empty());
    assert_eq!(silent_result.skipped[0].reason, SkipReason::Disabled);

    let result = h
        .events
        .enqueue(event(WORKSPACE_CREATED, Some(opted_in.id)))
        .await
        .unwrap();
    assert_eq!(result.message_ids.len(), 2);
    assert_eq!(
        recipients(&messages(&h).await),
        BTreeSet::from([opted_in.id])
    );
}

#[tokio::test]
async fn the_template_override_replaces_the_default_and_the_inbox_comes_beside_it() {
    let h = Harness::with_methods(
        DefaultMethod::Smtp,
        &[Method::Smtp, Method::Webhook, Method::Inbox],
    );
    let user = h.user("u", &[]).await;
    assert_eq!(
        methods_of_one_event(&h, user.id).await,
        vec![Method::Smtp, Method::Inbox]
    );
    assert!(
        h.templates
            .set_method(WORKSPACE_DELETED, Some(Method::Webhook))
            .await
            .unwrap()
    );
    h.clock.advance(chrono::Duration::days(1));
    assert_eq!(
        methods_of_one_event(&h, user.id).await,
        vec![Method::Webhook, Method::Inbox]
    );

    assert!(
        h.templates
            .set_method(WORKSPACE_DELETED, Some(Method::Inbox))
            .await
            .unwrap()
    );
    h.clock.advance(chrono::Duration::days(1));
    assert_eq!(
        methods_of_one_event(&h, user.id).await,
        vec![Method::Inbox],
        "the inbox once, not twice"
    );
}

#[tokio::test]
async fn one_time_passcode_never_gets_the_inbox_beside_its_override() {
    let h = Harness::with_methods(
        DefaultMethod::Smtp,
        &[Method::Smtp, Method::Webhook, Method::Inbox],
    );
    let user = h.user("u", &[]).await;
    assert!(
        h.templates
            .set_method(ONE_TIME_PASSCODE, Some(Method::Webhook))
            .await
            .unwrap()
    );
    let ids = h
        .events
        .enqueue(event(ONE_TIME_PASSCODE, Some(user.id)))
        .await
        .unwrap()
        .message_ids;
    let mut methods = Vec::new();
    for id in ids {
        methods.push(h.message(id).await.method);
    }
    assert_eq!(methods, vec![Method::Webhook]);
}

#[tokio::test]
async fn the_default_method_is_used_only_when_configured() {
    let h = Harness::with_methods(DefaultMethod::Smtp, &[Method::Webhook, Method::Inbox]);
    let user = h.user("u", &[]).await;

    let methods: Vec<_> = methods_of_one_event(&h, user.id)
        .await
        .into_iter()
        .collect();
    assert_eq!(
        methods,
        vec![Method::Inbox],
        "smtp has no smarthost: only the inbox"
    );
}

#[tokio::test]
async fn the_inbox_is_added_only_when_enabled() {
    let h = Harness::webhook_only();
    let user = h.user("u", &[]).await;
    let methods: Vec<_> = methods_of_one_event(&h, user.id)
        .await
        .into_iter()
        .collect();
    assert_eq!(methods, vec![Method::Webhook]);

    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let methods: BTreeSet<_> = methods_of_one_event(&h, user.id)
        .await
        .into_iter()
        .collect();
    assert_eq!(methods, BTreeSet::from([Method::Webhook, Method::Inbox]));
}

#[tokio::test]
async fn the_one_time_passcode_never_goes_to_the_inbox() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let mut otp = event(ONE_TIME_PASSCODE, Some(user.id));
    otp.labels
        .insert("one_time_passcode".into(), "fad9020b".into());

    h.events.enqueue(otp).await.unwrap();
    let stored = messages(&h).await;
    assert_eq!(
        stored.iter().map(|m| m.method).collect::<Vec<_>>(),
        vec![Method::Webhook]
    );
    assert_eq!(
        stored[0].payload.actions[0].url,
        format!("{ACCESS_URL}/reset-password/change?otp=fad9020b&email=u%40example.com")
    );

    let err = h
        .templates
        .set_method(ONE_TIME_PASSCODE, Some(Method::Inbox))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid { ref field, .. } if field == "method"),
        "{err:?}"
    );
}

#[tokio::test]
async fn inbox_is_refused_as_the_default_method() {
    let err = DefaultMethod::try_from(Method::Inbox).unwrap_err();
    assert_eq!(err.key, DefaultMethod::KEY);
    assert!(err.reason.contains("inbox cannot be the default"), "{err}");
}

#[tokio::test]
async fn zero_messages_is_a_valid_result() {
    let h = Harness::with_methods(DefaultMethod::Smtp, &[]);
    let user = h.user("u", &[]).await;
    let result = h
        .events
        .enqueue(event(WORKSPACE_DELETED, Some(user.id)))
        .await
        .unwrap();
    assert!(result.message_ids.is_empty() && result.skipped.is_empty());

    // A role event with no role holders is fine too.
    let h = Harness::new();
    let result = h
        .events
        .enqueue(event(TEMPLATE_DELETED, None))
        .await
        .unwrap();
    assert!(result.message_ids.is_empty());
    assert!(messages(&h).await.is_empty());
}

#[tokio::test]
async fn an_identical_enqueue_on_the_same_utc_day_is_a_duplicate_and_the_next_day_is_accepted() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;

    let first = h
        .events
        .enqueue(event(WORKSPACE_DELETED, Some(user.id)))
        .await
        .unwrap();
    assert_eq!(first.message_ids.len(), 2);

    h.clock.advance(chrono::Duration::hours(2));
    let second = h
        .events
        .enqueue(event(WORKSPACE_DELETED, Some(user.id)))
        .await
        .unwrap();
    assert!(second.message_ids.is_empty());
    assert_eq!(
        second.skipped,
        vec![Skipped {
            user_id: user.id,
            reason: SkipReason::Duplicate,
            method: None
        }]
    );

    h.clock.advance(chrono::Duration::days(1));
    let next_day = h
        .events
        .enqueue(event(WORKSPACE_DELETED, Some(user.id)))
        .await
        .unwrap();
    assert_eq!(next_day.message_ids.len(), 2);
    assert_eq!(messages(&h).await.len(), 4);
}

#[tokio::test]
async fn test_custom_and_task_events_are_never_deduplicated() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    h.preferences
        .update(user.id, every_method(BTreeMap::from([(TASK_IDLE, false)])))
        .await
        .unwrap();
    let content = CustomContent::parse("Build done", "All green").unwrap();
    for _ in 0..2 {
        assert_eq!(
            h.events.send_test(user.id).await.unwrap().message_ids.len(),
            2
        );
        assert_eq!(
            h.events
                .send_custom(user.id, content.clone())
                .await
                .unwrap()
                .message_ids
                .len(),
            2
        );
        assert_eq!(
            h.events
                .enqueue(event(TASK_IDLE, Some(user.id)))
                .await
                .unwrap()
                .message_ids
                .len(),
            2
        );
        h.clock.advance(chrono::Duration::milliseconds(1));
    }
    let stored = messages(&h).await;
    assert_eq!(stored.len(), 12);
    assert!(stored.iter().all(|m| m.dedupe_hash.is_none()));
    assert!(stored.iter().all(|m| {
        m.payload
            .data
            .as_ref()
            .is_some_and(|d| d["timestamp"].is_string())
    }));
}

#[tokio::test]
async fn workspace_deleted_is_not_sent_when_the_initiator_is_the_subject() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let mut own_act = event(WORKSPACE_DELETED, Some(user.id));
    own_act.initiator = Some(user.id);
    let result = h.events.enqueue(own_act).await.unwrap();
    assert!(result.message_ids.is_empty());
    assert_eq!(
        result.skipped,
        vec![Skipped {
            user_id: user.id,
            reason: SkipReason::Initiator,
            method: None
        }]
    );
}

#[tokio::test]
async fn caller_events_go_to_the_caller_only() {
    let h = Harness::new();
    let caller = h.user("caller", &[Role::Owner]).await;
    let _other = h.user("other", &[Role::Owner]).await;
    h.events.send_test(caller.id).await.unwrap();
    let stored = messages(&h).await;
    assert_eq!(recipients(&stored), BTreeSet::from([caller.id]));
    assert!(stored.iter().all(|m| m.template_id == TEST_NOTIFICATION));
}

#[tokio::test]
async fn the_payload_carries_the_recipient_labels_data_targets_and_absolute_actions() {
    let h = Harness::new();
    let user = h.user("ada", &[]).await;
    let target = uuid::Uuid::new_v4();
    let mut deleted = event(WORKSPACE_DELETED, Some(user.id));
    deleted.labels.insert("reason".into(), "inactivity".into());
    deleted.data = Some(json!({"k": [1, 2]}));
    deleted.targets = vec![target];
    h.events.enqueue(deleted).await.unwrap();

    let message = messages(&h).await.pop().unwrap();
    let payload = &message.payload;
    assert_eq!(payload.notification_name, "Workspace Deleted");
    assert_eq!(payload.notification_template_id, WORKSPACE_DELETED);
    assert_eq!(payload.user_id, user.id);
    assert_eq!(payload.user_email, "ada@example.com");
    assert_eq!(payload.user_name, "ada", "no display name: the username");
    assert_eq!(payload.labels["reason"], "inactivity");
    assert_eq!(payload.data, Some(json!({"k": [1, 2]})));
    assert_eq!(payload.targets, vec![target]);
    assert_eq!(message.targets, vec![target]);
    assert_eq!(message.created_by, "tests");
    let urls: Vec<_> = payload.actions.iter().map(|a| a.url.as_str()).collect();
    assert_eq!(
        urls,
        [
            format!("{ACCESS_URL}/workspaces"),
            format!("{ACCESS_URL}/templates")
        ]
    );
}

#[tokio::test]
async fn bad_events_are_refused_naming_the_field() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let field_of = |err: Error| match err {
        Error::Invalid { field, .. } => field,
        other => panic!("expected Invalid, got {other:?}"),
    };

    let unknown = Event::new(herald_domain::TemplateId::random());
    assert_eq!(
        field_of(h.events.enqueue(unknown).await.unwrap_err()),
        "template_id"
    );

    let mut by_name = Event::new(WORKSPACE_DELETED);
    by_name.template = TemplateRef::Name("No Such Event".into());
    assert_eq!(
        field_of(h.events.enqueue(by_name).await.unwrap_err()),
        "template_name"
    );

    assert_eq!(
        field_of(
            h.events
                .enqueue(event(WORKSPACE_DELETED, None))
                .await
                .unwrap_err()
        ),
        "user_id"
    );
    assert_eq!(
        field_of(
            h.events
                .enqueue(event(WORKSPACE_DELETED, Some(UserId::random())))
                .await
                .unwrap_err()
        ),
        "user_id"
    );
    assert_eq!(
        field_of(
            h.events
                .enqueue(Event::new(TEST_NOTIFICATION))
                .await
                .unwrap_err()
        ),
        "initiator_id"
    );

    let mut bad_data = event(WORKSPACE_DELETED, Some(user.id));
    bad_data.data = Some(json!([1, 2]));
    assert_eq!(
        field_of(h.events.enqueue(bad_data).await.unwrap_err()),
        "data"
    );

    let mut long_label = event(WORKSPACE_DELETED, Some(user.id));
    long_label.labels.insert("reason".into(), "x".repeat(5000));
    assert_eq!(
        field_of(h.events.enqueue(long_label).await.unwrap_err()),
        "labels.reason"
    );

    assert!(
        messages(&h).await.is_empty(),
        "nothing is queued for a refused event"
    );
}

#[tokio::test]
async fn templates_can_be_named_case_insensitively() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let mut by_name = event(WORKSPACE_DELETED, Some(user.id));
    by_name.template = TemplateRef::Name("workspace deleted".into());
    assert_eq!(
        h.events.enqueue(by_name).await.unwrap().message_ids.len(),
        2
    );
}

#[tokio::test]
async fn a_batch_is_stored_at_once_and_answers_in_event_order() {
    let h = Harness::new();
    let a = h.user("a", &[]).await;
    let b = h.user("b", &[]).await;
    let results = h
        .events
        .enqueue_batch(vec![
            event(WORKSPACE_DELETED, Some(a.id)),
            event(WORKSPACE_DELETED, Some(b.id)),
            event(WORKSPACE_DELETED, Some(a.id)),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].message_ids.len(), 2);
    assert_eq!(results[1].message_ids.len(), 2);
    assert_eq!(
        results[2].skipped,
        vec![Skipped {
            user_id: a.id,
            reason: SkipReason::Duplicate,
            method: None
        }]
    );
    for id in &results[1].message_ids {
        assert_eq!(h.message(*id).await.recipient, b.id);
    }

    let err = h
        .events
        .enqueue_batch(vec![
            event(WORKSPACE_DELETED, Some(b.id)),
            Event::new(TEST_NOTIFICATION),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidEvent { index: 1, ref field, .. } if field == "initiator_id"),
        "{err:?}"
    );
}

#[test]
fn custom_notification_content_is_validated() {
    let field = |title: &str, message: &str| match CustomContent::parse(title, message).unwrap_err()
    {
        Error::Invalid { field, reason } => (field, reason),
        other => panic!("{other:?}"),
    };
    assert_eq!(field("   ", "body").0, "content.title");
    assert_eq!(field("title", " \n ").0, "content.message");
    let (f, reason) = field(&"t".repeat(121), "body");
    assert_eq!(f, "content.title");
    assert!(reason.contains("120"), "{reason}");
    assert_eq!(field("title", &"m".repeat(2001)).0, "content.message");
    assert!(CustomContent::parse(&"t".repeat(120), &"m".repeat(2000)).is_ok());
    assert!(
        CustomContent::parse(&"é".repeat(120), "ok").is_ok(),
        "limits count characters, not bytes"
    );
}

#[tokio::test]
async fn a_custom_notification_carries_the_trimmed_title_and_message() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let content = CustomContent::parse("  Deploy done ", " it worked ").unwrap();
    h.events.send_custom(user.id, content).await.unwrap();
    let message = messages(&h).await.pop().unwrap();
    assert_eq!(message.template_id, CUSTOM_NOTIFICATION);
    assert_eq!(message.payload.labels["custom_title"], "Deploy done");
    assert_eq!(message.payload.labels["custom_message"], "it worked");
}

#[tokio::test]
async fn enqueue_wakes_the_notifiers() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let listener = herald_application::ports::Wakeup::subscribe(h.wakeup.as_ref());
    h.events
        .enqueue(event(WORKSPACE_DELETED, Some(user.id)))
        .await
        .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), listener.wait())
        .await
        .expect("enqueue must wake the notifiers");
}

#[test]
fn webhook_and_inbox_lists_both_as_available() {
    assert_eq!(
        Harness::new().services.delivery().available(),
        BTreeSet::from([Method::Webhook, Method::Inbox])
    );
}

/// The memory store behind enqueue's reads, counting the calls each port gets.
#[derive(Debug, Default)]
struct CountedReads {
    inner: MemoryStore,
    templates: AtomicUsize,
    directory: AtomicUsize,
    role_audiences: AtomicUsize,
    preferences: AtomicUsize,
    /// `get_many` answers only once a preference lookup has started (or gives up, failing).
    directory_waits_for_preferences: bool,
}

impl CountedReads {
    fn over(inner: MemoryStore) -> Arc<Self> {
        Arc::new(Self {
            inner,
            ..Self::default()
        })
    }

    /// (template, directory, role audience, preference) reads so far.
    fn counts(&self) -> (usize, usize, usize, usize) {
        (
            self.templates.load(Ordering::SeqCst),
            self.directory.load(Ordering::SeqCst),
            self.role_audiences.load(Ordering::SeqCst),
            self.preferences.load(Ordering::SeqCst),
        )
    }

    fn count(counter: &AtomicUsize) {
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl UserDirectory for CountedReads {
    async fn get(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Self::count(&self.directory);
        UserDirectory::get(&self.inner, id).await
    }

    async fn get_many(&self, ids: &[UserId]) -> Result<Vec<User>, StoreError> {
        Self::count(&self.directory);
        if self.directory_waits_for_preferences {
            let mut turns = 0;
            while self.preferences.load(Ordering::SeqCst) == 0 {
                turns += 1;
                if turns > 1_000 {
                    return Err(StoreError::Unavailable(
                        "no preference lookup ran alongside the directory read".into(),
                    ));
                }
                tokio::task::yield_now().await;
            }
        }
        UserDirectory::get_many(&self.inner, ids).await
    }

    async fn with_any_role(&self, roles: &BTreeSet<Role>) -> Result<Vec<User>, StoreError> {
        Self::count(&self.role_audiences);
        UserDirectory::with_any_role(&self.inner, roles).await
    }
}

#[async_trait]
impl PreferenceStore for CountedReads {
    async fn for_user(
        &self,
        user: UserId,
    ) -> Result<BTreeMap<TemplateId, ports::TemplatePreferences>, StoreError> {
        Self::count(&self.preferences);
        PreferenceStore::for_user(&self.inner, user).await
    }

    async fn set(
        &self,
        user: UserId,
        changes: &[ports::PreferenceChange],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        PreferenceStore::set(&self.inner, user, changes, now).await
    }

    async fn lookup(
        &self,
        pairs: &[(UserId, TemplateId)],
    ) -> Result<HashMap<(UserId, TemplateId), StoredPreference>, StoreError> {
        Self::count(&self.preferences);
        PreferenceStore::lookup(&self.inner, pairs).await
    }
}

#[async_trait]
impl ports::TemplateStore for CountedReads {
    async fn seed(&self, catalogue: &[Template]) -> Result<(), StoreError> {
        ports::TemplateStore::seed(&self.inner, catalogue).await
    }

    async fn list(&self) -> Result<Vec<Template>, StoreError> {
        Self::count(&self.templates);
        ports::TemplateStore::list(&self.inner).await
    }

    async fn get(&self, id: TemplateId) -> Result<Option<Template>, StoreError> {
        Self::count(&self.templates);
        ports::TemplateStore::get(&self.inner, id).await
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<Template>, StoreError> {
        Self::count(&self.templates);
        ports::TemplateStore::find_by_name(&self.inner, name).await
    }

    async fn set_method_override(
        &self,
        id: TemplateId,
        method: Option<Method>,
    ) -> Result<Option<bool>, StoreError> {
        ports::TemplateStore::set_method_override(&self.inner, id, method).await
    }

    async fn set_digest_window(
        &self,
        id: TemplateId,
        window: Option<herald_domain::DigestWindow>,
    ) -> Result<Option<bool>, StoreError> {
        ports::TemplateStore::set_digest_window(&self.inner, id, window).await
    }
}

/// Enqueueing over the harness's store, its reads counted.
fn counted_events(h: &Harness) -> (Events, Arc<CountedReads>) {
    let reads = CountedReads::over(h.store.clone());
    (events_reading(h, reads.clone()), reads)
}

/// Enqueueing over the harness's store, read through `reads` (no template cache in front, so
/// every template read the planning makes is counted).
fn events_reading(h: &Harness, reads: Arc<CountedReads>) -> Events {
    h.events_over(EventPorts {
        directory: reads.clone(),
        preferences: reads.clone(),
        templates: reads,
        ..h.event_ports()
    })
}

#[tokio::test]
async fn a_batch_reads_each_template_its_subjects_and_their_preferences_once() {
    let h = Harness::new();
    let mut subjects = Vec::new();
    for n in 0..50 {
        subjects.push(h.user(&format!("user-{n}"), &[]).await);
    }
    // Half the events name their template by id, half the other one by name.
    let batch: Vec<Event> = subjects
        .iter()
        .enumerate()
        .map(|(n, subject)| {
            if n % 2 == 0 {
                event(WORKSPACE_DELETED, Some(subject.id))
            } else {
                let mut by_name = event(WORKSPACE_AUTOBUILD_FAILED, Some(subject.id));
                by_name.template = TemplateRef::Name("Workspace Autobuild Failed".into());
                by_name
            }
        })
        .collect();
    let (events, reads) = counted_events(&h);

    let results = events.enqueue_batch(batch).await.unwrap();

    assert_eq!(
        reads.counts(),
        (2, 1, 0, 1),
        "(template, directory, role audience, preference) reads for 50 events"
    );
    assert_eq!(results.len(), 50);
    for (result, subject) in results.iter().zip(&subjects) {
        assert_eq!(result.message_ids.len(), 2, "webhook and inbox");
        assert!(result.skipped.is_empty());
        for id in &result.message_ids {
            let message = h.message(*id).await;
            assert_eq!(message.recipient, subject.id);
            assert_eq!(message.payload.user_username, subject.username.as_str());
        }
    }
    // Actions are still rendered for each recipient.
    let autobuild = h.message(results[1].message_ids[0]).await;
    assert_eq!(autobuild.template_id, WORKSPACE_AUTOBUILD_FAILED);
    assert_eq!(
        autobuild.payload.actions[0].url,
        format!("{ACCESS_URL}/@user-1/ws-1")
    );
}

#[tokio::test]
async fn a_batch_reads_each_role_audience_once_and_its_preferences_in_one_lookup() {
    let h = Harness::new();
    let quiet = h.user("quiet", &[Role::TemplateAdmin]).await;
    let admins = [
        h.user("admin-1", &[Role::TemplateAdmin, Role::Owner]).await,
        h.user("admin-2", &[Role::TemplateAdmin]).await,
    ];
    let suspended = h.user("suspended", &[Role::UserAdmin]).await;
    h.preferences
        .update(
            quiet.id,
            every_method(BTreeMap::from([(TEMPLATE_DELETED, true)])),
        )
        .await
        .unwrap();
    let mut batch = Vec::new();
    for n in 0..10 {
        let mut deleted = event(TEMPLATE_DELETED, None);
        deleted
            .labels
            .insert("name".into(), format!("template-{n}"));
        batch.push(deleted);
        let mut suspension = event(USER_ACCOUNT_SUSPENDED, Some(suspended.id));
        suspension
            .labels
            .insert("name".into(), format!("suspension-{n}"));
        batch.push(suspension);
    }
    let (events, reads) = counted_events(&h);

    let results = events.enqueue_batch(batch).await.unwrap();

    assert_eq!(
        reads.counts(),
        (2, 0, 2, 1),
        "(template, directory, role audience, preference) reads for 20 events"
    );
    for (n, result) in results.iter().enumerate() {
        if n % 2 == 0 {
            // Template Deleted: both template admins, the one who opted out skipped.
            assert_eq!(result.message_ids.len(), 4);
            assert_eq!(
                result.skipped,
                vec![Skipped {
                    user_id: quiet.id,
                    reason: SkipReason::Disabled,
                    method: None
                }]
            );
        } else {
            // User Account Suspended: the owner only, never the suspended user admin.
            assert_eq!(result.message_ids.len(), 2);
            for id in &result.message_ids {
                assert_eq!(h.message(*id).await.recipient, admins[0].id);
            }
        }
    }
}

#[tokio::test]
async fn the_preferences_of_named_users_are_read_alongside_the_users() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let reads = Arc::new(CountedReads {
        inner: h.store.clone(),
        directory_waits_for_preferences: true,
        ..CountedReads::default()
    });
    let events = events_reading(&h, reads.clone());

    let queued = events
        .enqueue(event(WORKSPACE_DELETED, Some(user.id)))
        .await
        .unwrap();

    assert_eq!(queued.message_ids.len(), 2);
    assert_eq!(reads.counts(), (1, 1, 0, 1));
}

#[tokio::test]
async fn a_batch_of_named_users_and_role_audiences_applies_both_their_preferences() {
    let h = Harness::new();
    let subject = h.user("subject", &[]).await;
    let admin = h.user("admin", &[Role::TemplateAdmin]).await;
    let quiet_admin = h.user("quiet-admin", &[Role::TemplateAdmin]).await;
    h.preferences
        .update(
            subject.id,
            every_method(BTreeMap::from([(WORKSPACE_DELETED, true)])),
        )
        .await
        .unwrap();
    h.preferences
        .update(
            quiet_admin.id,
            every_method(BTreeMap::from([(TEMPLATE_DELETED, true)])),
        )
        .await
        .unwrap();
    let (events, reads) = counted_events(&h);

    let results = events
        .enqueue_batch(vec![
            event(WORKSPACE_DELETED, Some(subject.id)),
            event(TEMPLATE_DELETED, None),
        ])
        .await
        .unwrap();

    let disabled = |user: &User| {
        vec![Skipped {
            user_id: user.id,
            reason: SkipReason::Disabled,
            method: None,
        }]
    };
    assert!(results[0].message_ids.is_empty());
    assert_eq!(results[0].skipped, disabled(&subject));
    assert_eq!(results[1].skipped, disabled(&quiet_admin));
    assert_eq!(results[1].message_ids.len(), 2, "webhook and inbox");
    for id in &results[1].message_ids {
        assert_eq!(h.message(*id).await.recipient, admin.id);
    }
    assert_eq!(
        reads.counts(),
        (2, 1, 1, 2),
        "the named users' preferences with the directory read, the role audience's after it"
    );
}

/// The event and field a refused batch names.
async fn refused_field(events: &Events, batch: Vec<Event>) -> (usize, String) {
    match events.enqueue_batch(batch).await.unwrap_err() {
        Error::InvalidEvent { index, field, .. } => (index, field),
        other => panic!("expected InvalidEvent, got {other:?}"),
    }
}

#[tokio::test]
async fn a_batch_is_refused_for_its_first_bad_event_whichever_step_finds_it() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let good = || event(WORKSPACE_DELETED, Some(user.id));
    let unknown_template = || Event::new(TemplateId::random());
    let unknown_user = || event(WORKSPACE_DELETED, Some(UserId::random()));
    let bad_data = || {
        let mut bad = good();
        bad.data = Some(json!("not an object"));
        bad
    };
    let refused = |batch| refused_field(&h.events, batch);

    assert_eq!(
        refused(vec![good(), unknown_user(), unknown_template()]).await,
        (1, "user_id".to_owned())
    );
    assert_eq!(
        refused(vec![good(), unknown_template(), unknown_user()]).await,
        (1, "template_id".to_owned())
    );
    assert_eq!(
        refused(vec![good(), Event::new(TEST_NOTIFICATION), bad_data()]).await,
        (1, "initiator_id".to_owned())
    );
    assert_eq!(
        refused(vec![good(), unknown_user(), event(WORKSPACE_DELETED, None)]).await,
        (1, "user_id".to_owned())
    );
    assert_eq!(
        refused(vec![unknown_user(), bad_data()]).await,
        (0, "user_id".to_owned())
    );
    assert!(
        messages(&h).await.is_empty(),
        "nothing is queued for a refused batch"
    );
}

#[tokio::test]
async fn a_batch_event_failing_its_checks_is_named_by_its_index_and_a_single_one_is_not() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let good = || event(WORKSPACE_DELETED, Some(user.id));
    let mut long_label = good();
    long_label.labels.insert("reason".into(), "x".repeat(5000));
    let mut repeated_target = good();
    let target = uuid::Uuid::new_v4();
    repeated_target.targets = vec![target, target];

    assert_eq!(
        refused_field(&h.events, vec![good(), good(), long_label.clone()]).await,
        (2, "labels.reason".to_owned())
    );
    assert_eq!(
        refused_field(&h.events, vec![good(), repeated_target.clone(), good()]).await,
        (1, "targets".to_owned())
    );
    assert_eq!(
        h.events.enqueue(repeated_target).await.unwrap_err(),
        Error::invalid("targets", "must not repeat a target")
    );
    assert!(
        messages(&h).await.is_empty(),
        "nothing is queued for a refused batch"
    );
}

#[tokio::test]
async fn a_custom_notification_to_a_role_reaches_every_holder_and_skips_opted_out_ones() {
    let h = Harness::new();
    let sender = h.user("sender", &[Role::UserAdmin]).await;
    let first = h.user("first", &[Role::TemplateAdmin]).await;
    let second = h.user("second", &[Role::TemplateAdmin, Role::Member]).await;
    let opted_out = h.user("opted-out", &[Role::TemplateAdmin]).await;
    let _member = h.user("member", &[Role::Member]).await;
    h.preferences
        .update(
            opted_out.id,
            PreferenceUpdate {
                templates: BTreeMap::from([(CUSTOM_NOTIFICATION, true)]),
                ..PreferenceUpdate::default()
            },
        )
        .await
        .unwrap();
    let content = CustomContent::parse("Maintenance", "Tonight at 22:00").unwrap();
    let to = CustomRecipients {
        user_ids: Vec::new(),
        roles: BTreeSet::from([Role::TemplateAdmin]),
    };

    let result = h
        .events
        .send_custom_to(sender.id, content, to)
        .await
        .unwrap();

    let stored = messages(&h).await;
    assert_eq!(recipients(&stored), BTreeSet::from([first.id, second.id]));
    assert_eq!(stored.len(), 4, "one message per holder and method");
    assert_eq!(result.message_ids.len(), 4);
    assert_eq!(
        result.skipped,
        vec![Skipped {
            user_id: opted_out.id,
            reason: SkipReason::Disabled,
            method: None,
        }]
    );
    assert!(stored.iter().all(|m| {
        m.template_id == CUSTOM_NOTIFICATION
            && m.payload.labels["custom_title"] == "Maintenance"
            && m.payload.data.as_ref().unwrap()["sender_id"] == json!(sender.id)
    }));
}

#[tokio::test]
async fn a_custom_notification_reports_unknown_and_deleted_users_and_reaches_the_rest() {
    let h = Harness::new();
    let sender = h.user("sender", &[Role::Owner]).await;
    let reader = h.user("reader", &[Role::Member]).await;
    let gone = h.user("gone", &[Role::Member]).await;
    h.users.delete(gone.id).await.unwrap();
    let unknown = UserId::random();
    let content = CustomContent::parse("Hello", "Hi all").unwrap();
    let to = CustomRecipients {
        user_ids: vec![unknown, reader.id, gone.id, reader.id],
        roles: BTreeSet::new(),
    };

    let result = h
        .events
        .send_custom_to(sender.id, content, to)
        .await
        .unwrap();

    assert_eq!(recipients(&messages(&h).await), BTreeSet::from([reader.id]));
    assert_eq!(result.message_ids.len(), 2, "named twice, sent once");
    assert_eq!(
        result.skipped,
        vec![
            Skipped {
                user_id: unknown,
                reason: SkipReason::Unknown,
                method: None,
            },
            Skipped {
                user_id: gone.id,
                reason: SkipReason::Deleted,
                method: None,
            },
        ]
    );
}

#[tokio::test]
async fn a_manual_build_failure_goes_to_the_workspace_owner_and_the_template_admins_once_each() {
    let h = Harness::new();
    let owner = h.user("owner", &[Role::Member]).await;
    let admin = h.user("admin", &[Role::TemplateAdmin]).await;
    let owner_and_admin = h.user("both", &[Role::TemplateAdmin]).await;
    let _member = h.user("member", &[Role::Member]).await;

    let result = h
        .events
        .enqueue(event(WORKSPACE_MANUAL_BUILD_FAILED, Some(owner.id)))
        .await
        .unwrap();
    assert_eq!(
        result.message_ids.len(),
        6,
        "three people, two methods each"
    );
    assert_eq!(
        recipients(&messages(&h).await),
        BTreeSet::from([owner.id, admin.id, owner_and_admin.id])
    );

    // A template admin's own workspace: one message per method, not two.
    h.clock.advance(chrono::Duration::days(1));
    let own = h
        .events
        .enqueue(event(
            WORKSPACE_MANUAL_BUILD_FAILED,
            Some(owner_and_admin.id),
        ))
        .await
        .unwrap();
    assert_eq!(own.message_ids.len(), 4, "{own:?}");
    let mut methods_to_subject = Vec::new();
    for id in &own.message_ids {
        let message = h.message(*id).await;
        if message.recipient == owner_and_admin.id {
            methods_to_subject.push(message.method);
        }
    }
    assert_eq!(methods_to_subject, vec![Method::Webhook, Method::Inbox]);

    let missing = h
        .events
        .enqueue(event(WORKSPACE_MANUAL_BUILD_FAILED, None))
        .await
        .unwrap_err();
    assert!(
        matches!(missing, Error::Invalid { ref field, .. } if field == "user_id"),
        "{missing:?}"
    );
}
