//! DESIGN §10.2: preferences per template and per method, what enqueue and the notifier make of
//! them, and the security messages no preference turns off (§10.1).

use std::collections::{BTreeMap, BTreeSet};

use chrono::Duration;
use herald_application::notifier::REASON_DISABLED;
use herald_application::ports::{Clock as _, PreferenceChange, PreferenceStore};
use herald_application::{
    DefaultMethod, Error, Event, PreferenceUpdate, SkipReason, Skipped, TemplatePreference,
};
use herald_domain::catalogue::{
    ONE_TIME_PASSCODE, TEMPLATE_DELETED, WORKSPACE_CREATED, WORKSPACE_DELETED,
    WORKSPACE_MARKED_DORMANT,
};
use herald_domain::{MessageStatus, Method, PreferenceScope, Role, TemplateId, UserId};

use super::support::{Harness, ScriptedDispatcher, every_method, quiet_config};

fn methods(
    values: &[(TemplateId, &[(Method, bool)])],
) -> BTreeMap<TemplateId, BTreeMap<Method, bool>> {
    values
        .iter()
        .map(|(template, methods)| (*template, methods.iter().copied().collect()))
        .collect()
}

fn per_method(values: &[(TemplateId, &[(Method, bool)])]) -> PreferenceUpdate {
    PreferenceUpdate {
        methods: methods(values),
        ..PreferenceUpdate::default()
    }
}

/// (smtp, webhook, inbox) → disabled, as the list gives them.
fn disabled_methods(preference: &TemplatePreference) -> (bool, bool, bool) {
    (
        preference.methods[&Method::Smtp],
        preference.methods[&Method::Webhook],
        preference.methods[&Method::Inbox],
    )
}

fn subject_event(template: TemplateId, subject: UserId) -> Event {
    let mut event = Event::new(template);
    event.subject = Some(subject);
    event.created_by = "tests".into();
    event.labels.insert("name".into(), "ws-1".into());
    event
        .labels
        .insert("one_time_passcode".into(), "123456".into());
    event
}

/// The methods of the messages an event made.
async fn methods_of(h: &Harness, ids: &[herald_domain::MessageId]) -> BTreeSet<Method> {
    let mut methods = BTreeSet::new();
    for id in ids {
        methods.insert(h.message(*id).await.method);
    }
    methods
}

#[tokio::test]
async fn preferences_are_listed_per_template_with_every_methods_state_and_the_time_written() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    assert!(h.preferences.get(user.id).await.unwrap().is_empty());
    let written = h.clock.now();

    let list = h
        .preferences
        .update(
            user.id,
            every_method(BTreeMap::from([
                (WORKSPACE_DELETED, true),
                (WORKSPACE_CREATED, false),
            ])),
        )
        .await
        .unwrap();
    let expected = vec![
        TemplatePreference {
            template: WORKSPACE_CREATED,
            disabled: false,
            methods: Method::ALL.into_iter().map(|m| (m, false)).collect(),
            updated_at: written,
        },
        TemplatePreference {
            template: WORKSPACE_DELETED,
            disabled: true,
            methods: Method::ALL.into_iter().map(|m| (m, true)).collect(),
            updated_at: written,
        },
    ];
    let mut sorted = expected.clone();
    sorted.sort_by_key(|p| p.template);
    assert_eq!(list, sorted);
    assert_eq!(h.preferences.get(user.id).await.unwrap(), sorted);

    // A later per-method value changes that template's entry and its time only.
    h.clock.advance(Duration::minutes(5));
    let later = h.clock.now();
    let list = h
        .preferences
        .update(
            user.id,
            per_method(&[(WORKSPACE_DELETED, &[(Method::Inbox, false)])]),
        )
        .await
        .unwrap();
    let deleted = list
        .iter()
        .find(|p| p.template == WORKSPACE_DELETED)
        .unwrap();
    assert!(deleted.disabled, "the template's switch is unchanged");
    assert_eq!(disabled_methods(deleted), (true, true, false));
    assert_eq!(deleted.updated_at, later);
    let created = list
        .iter()
        .find(|p| p.template == WORKSPACE_CREATED)
        .unwrap();
    assert_eq!(created.updated_at, written);
}

#[tokio::test]
async fn a_method_value_alone_lists_the_template_with_its_default_for_the_other_methods() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let list = h
        .preferences
        .update(
            user.id,
            per_method(&[
                (WORKSPACE_DELETED, &[(Method::Smtp, true)]),
                (WORKSPACE_CREATED, &[(Method::Inbox, false)]),
            ]),
        )
        .await
        .unwrap();
    let of = |template| list.iter().find(|p| p.template == template).unwrap();
    // On by default: only email is off.
    assert!(!of(WORKSPACE_DELETED).disabled);
    assert_eq!(
        disabled_methods(of(WORKSPACE_DELETED)),
        (true, false, false)
    );
    // Off by default: only the inbox is on.
    assert!(of(WORKSPACE_CREATED).disabled);
    assert_eq!(disabled_methods(of(WORKSPACE_CREATED)), (true, true, false));
}

#[tokio::test]
async fn a_template_value_replaces_the_templates_method_values_and_both_maps_apply_in_that_order() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    h.preferences
        .update(
            user.id,
            per_method(&[(
                WORKSPACE_DELETED,
                &[(Method::Smtp, true), (Method::Inbox, true)],
            )]),
        )
        .await
        .unwrap();

    // Turning the template back on turns it on for every method.
    let list = h
        .preferences
        .update(
            user.id,
            every_method(BTreeMap::from([(WORKSPACE_DELETED, false)])),
        )
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert!(!list[0].disabled);
    assert_eq!(disabled_methods(&list[0]), (false, false, false));

    // Off, except in the inbox, in one body.
    let list = h
        .preferences
        .update(
            user.id,
            PreferenceUpdate {
                templates: BTreeMap::from([(WORKSPACE_DELETED, true)]),
                methods: methods(&[(WORKSPACE_DELETED, &[(Method::Inbox, false)])]),
            },
        )
        .await
        .unwrap();
    assert!(list[0].disabled);
    assert_eq!(disabled_methods(&list[0]), (true, true, false));
    let stored = h.store.for_user(user.id).await.unwrap()[&WORKSPACE_DELETED].stored;
    assert_eq!(
        stored.rows().collect::<Vec<_>>(),
        vec![
            (PreferenceScope::AllMethods, true),
            (PreferenceScope::Method(Method::Inbox), false),
        ]
    );
}

#[tokio::test]
async fn preferences_refuse_unknown_templates_and_users_naming_the_field() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let unknown = TemplateId::random();
    let by_template = h
        .preferences
        .update(user.id, every_method(BTreeMap::from([(unknown, true)])))
        .await
        .unwrap_err();
    let by_method = h
        .preferences
        .update(
            user.id,
            PreferenceUpdate {
                // A good template-wide value is not stored when another part is refused.
                templates: BTreeMap::from([(WORKSPACE_DELETED, true)]),
                methods: methods(&[(unknown, &[(Method::Smtp, true)])]),
            },
        )
        .await
        .unwrap_err();
    for (err, expected) in [
        (by_template, "template_disabled_map"),
        (by_method, "method_disabled_map"),
    ] {
        assert!(
            matches!(&err, Error::Invalid { field, reason } if field == expected && reason.contains(&unknown.to_string())),
            "{err:?}"
        );
    }
    assert!(
        h.preferences.get(user.id).await.unwrap().is_empty(),
        "nothing stored"
    );
    assert!(matches!(
        h.preferences.get(UserId::random()).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test]
async fn the_one_time_passcode_cannot_be_disabled_for_all_methods_or_one() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let refusals = [
        every_method(BTreeMap::from([(ONE_TIME_PASSCODE, true)])),
        per_method(&[(ONE_TIME_PASSCODE, &[(Method::Smtp, true)])]),
    ];
    for update in refusals {
        let err = h.preferences.update(user.id, update).await.unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { reason, .. }
                if reason.contains("One-Time Passcode")
                    && reason.contains("security messages cannot be disabled")),
            "{err:?}"
        );
    }
    assert!(h.preferences.get(user.id).await.unwrap().is_empty());
    let err = h
        .preferences
        .disable_method(user.id, ONE_TIME_PASSCODE, Method::Smtp)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
}

/// Every combination of no row, an enabling row and a disabling row for all methods and for
/// the webhook, on an on-by-default and an off-by-default template, enqueued to a deployment
/// sending by webhook and inbox: which methods get a message, and what is reported skipped.
#[tokio::test]
async fn enqueue_follows_the_methods_row_else_the_all_methods_row_else_the_default() {
    let h = Harness::new();
    // (template, all-methods row, webhook row) → (webhook sent, inbox sent)
    type Case = (TemplateId, Option<bool>, Option<bool>, bool, bool);
    let cases: [Case; 18] = [
        (WORKSPACE_DELETED, None, None, true, true),
        (WORKSPACE_DELETED, None, Some(false), true, true),
        (WORKSPACE_DELETED, None, Some(true), false, true),
        (WORKSPACE_DELETED, Some(false), None, true, true),
        (WORKSPACE_DELETED, Some(false), Some(false), true, true),
        (WORKSPACE_DELETED, Some(false), Some(true), false, true),
        (WORKSPACE_DELETED, Some(true), None, false, false),
        (WORKSPACE_DELETED, Some(true), Some(false), true, false),
        (WORKSPACE_DELETED, Some(true), Some(true), false, false),
        (WORKSPACE_CREATED, None, None, false, false),
        (WORKSPACE_CREATED, None, Some(false), true, false),
        (WORKSPACE_CREATED, None, Some(true), false, false),
        (WORKSPACE_CREATED, Some(false), None, true, true),
        (WORKSPACE_CREATED, Some(false), Some(false), true, true),
        (WORKSPACE_CREATED, Some(false), Some(true), false, true),
        (WORKSPACE_CREATED, Some(true), None, false, false),
        (WORKSPACE_CREATED, Some(true), Some(false), true, false),
        (WORKSPACE_CREATED, Some(true), Some(true), false, false),
    ];
    for (index, (template, all, webhook, webhook_sent, inbox_sent)) in cases.into_iter().enumerate()
    {
        let user = h.user(&format!("user-{index}"), &[]).await;
        let update = PreferenceUpdate {
            templates: all.map(|d| (template, d)).into_iter().collect(),
            methods: webhook
                .map(|d| (template, BTreeMap::from([(Method::Webhook, d)])))
                .into_iter()
                .collect(),
        };
        h.preferences.update(user.id, update).await.unwrap();

        let result = h
            .events
            .enqueue(subject_event(template, user.id))
            .await
            .unwrap();

        let case = format!("case {index}: all {all:?}, webhook {webhook:?}");
        let sent = methods_of(&h, &result.message_ids).await;
        let expected: BTreeSet<Method> =
            [(Method::Webhook, webhook_sent), (Method::Inbox, inbox_sent)]
                .into_iter()
                .filter_map(|(method, sent)| sent.then_some(method))
                .collect();
        assert_eq!(sent, expected, "{case}");
        let skipped = |method| Skipped {
            user_id: user.id,
            reason: SkipReason::Disabled,
            method,
        };
        let expected_skipped = match (webhook_sent, inbox_sent) {
            (true, true) => vec![],
            (false, false) => vec![skipped(None)],
            (true, false) => vec![skipped(Some(Method::Inbox))],
            (false, true) => vec![skipped(Some(Method::Webhook))],
        };
        assert_eq!(result.skipped, expected_skipped, "{case}");
    }
}

#[tokio::test]
async fn a_role_audience_skips_per_method_for_each_holder() {
    let h = Harness::new();
    let inbox_only = h.user("inbox-only", &[Role::TemplateAdmin]).await;
    let everything = h.user("everything", &[Role::TemplateAdmin]).await;
    h.preferences
        .update(
            inbox_only.id,
            per_method(&[(TEMPLATE_DELETED, &[(Method::Webhook, true)])]),
        )
        .await
        .unwrap();

    let mut event = Event::new(TEMPLATE_DELETED);
    event.labels.insert("name".into(), "t".into());
    let result = h.events.enqueue(event).await.unwrap();

    assert_eq!(
        result.skipped,
        vec![Skipped {
            user_id: inbox_only.id,
            reason: SkipReason::Disabled,
            method: Some(Method::Webhook),
        }]
    );
    let mut sent = BTreeSet::new();
    for id in &result.message_ids {
        let message = h.message(*id).await;
        sent.insert((message.recipient, message.method));
    }
    assert_eq!(
        sent,
        BTreeSet::from([
            (inbox_only.id, Method::Inbox),
            (everything.id, Method::Webhook),
            (everything.id, Method::Inbox),
        ])
    );
}

#[tokio::test]
async fn the_notifier_inhibits_only_the_messages_of_the_method_disabled_after_enqueue() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let ids = h
        .events
        .enqueue(subject_event(WORKSPACE_DELETED, user.id))
        .await
        .unwrap()
        .message_ids;
    assert_eq!(ids.len(), 2);
    h.preferences
        .update(
            user.id,
            per_method(&[(WORKSPACE_DELETED, &[(Method::Webhook, true)])]),
        )
        .await
        .unwrap();

    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let inbox = ScriptedDispatcher::ok(Method::Inbox);
    let mut notifier = h.notifier(quiet_config(), vec![webhook.clone(), inbox.clone()]);
    notifier.run_cycle().await.unwrap();
    notifier.flush().await;

    for id in ids {
        let message = h.message(id).await;
        match message.method {
            Method::Webhook => {
                assert_eq!(message.status, MessageStatus::Inhibited);
                assert_eq!(message.status_reason.as_deref(), Some(REASON_DISABLED));
            }
            _ => assert_eq!(message.status, MessageStatus::Sent, "{message:?}"),
        }
    }
    assert!(webhook.delivered().is_empty());
    assert_eq!(inbox.delivered().len(), 1);
}

#[tokio::test]
async fn a_stored_row_against_the_one_time_passcode_neither_skips_nor_inhibits_it() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    let ids = h
        .events
        .enqueue(subject_event(ONE_TIME_PASSCODE, user.id))
        .await
        .unwrap()
        .message_ids;
    // Rows written before security messages were refused (straight to the store).
    let off = [
        PreferenceScope::AllMethods,
        PreferenceScope::Method(Method::Webhook),
    ]
    .map(|scope| PreferenceChange {
        template: ONE_TIME_PASSCODE,
        scope,
        disabled: Some(true),
    });
    h.store.set(user.id, &off, h.clock.now()).await.unwrap();

    let mut another = subject_event(ONE_TIME_PASSCODE, user.id);
    another
        .labels
        .insert("one_time_passcode".into(), "654321".into());
    let again = h.events.enqueue(another).await.unwrap();
    assert_eq!(again.message_ids.len(), 1, "{again:?}");
    assert!(again.skipped.is_empty(), "{again:?}");

    let webhook = ScriptedDispatcher::ok(Method::Webhook);
    let mut notifier = h.notifier(quiet_config(), vec![webhook.clone()]);
    notifier.run_cycle().await.unwrap();
    notifier.flush().await;
    assert_eq!(ids.len(), 1);
    assert_eq!(h.message(ids[0]).await.status, MessageStatus::Sent);
    assert_eq!(webhook.delivered().len(), 2);
}

#[tokio::test]
async fn the_unsubscribe_link_turns_off_the_templates_email_only() {
    let h = Harness::with_methods(DefaultMethod::Smtp, &[Method::Smtp, Method::Inbox]);
    let user = h.user("u", &[]).await;
    h.preferences
        .disable_method(user.id, WORKSPACE_DELETED, Method::Smtp)
        .await
        .unwrap();

    let result = h
        .events
        .enqueue(subject_event(WORKSPACE_DELETED, user.id))
        .await
        .unwrap();

    assert_eq!(
        methods_of(&h, &result.message_ids).await,
        BTreeSet::from([Method::Inbox])
    );
    assert_eq!(
        result.skipped,
        vec![Skipped {
            user_id: user.id,
            reason: SkipReason::Disabled,
            method: Some(Method::Smtp),
        }]
    );
    // Another template's email is untouched.
    let other = h
        .events
        .enqueue(subject_event(WORKSPACE_MARKED_DORMANT, user.id))
        .await
        .unwrap();
    assert_eq!(
        methods_of(&h, &other.message_ids).await,
        BTreeSet::from([Method::Smtp, Method::Inbox])
    );
}

#[tokio::test]
async fn the_settings_list_every_template_by_catalogue_group_with_what_applies_per_method() {
    let h = Harness::new();
    let user = h.user("u", &[]).await;
    h.preferences
        .update(
            user.id,
            PreferenceUpdate {
                templates: BTreeMap::from([(WORKSPACE_DELETED, true)]),
                methods: methods(&[
                    (WORKSPACE_DELETED, &[(Method::Inbox, false)]),
                    (WORKSPACE_CREATED, &[(Method::Webhook, false)]),
                ]),
            },
        )
        .await
        .unwrap();
    // Written straight to the store, as before security messages were refused.
    let off = PreferenceChange {
        template: ONE_TIME_PASSCODE,
        scope: PreferenceScope::AllMethods,
        disabled: Some(true),
    };
    h.store.set(user.id, &[off], h.clock.now()).await.unwrap();

    let settings = h.preferences.settings(user.id).await.unwrap();
    assert_eq!(settings.len(), herald_domain::catalogue::templates().len());
    let groups: Vec<&str> = settings
        .iter()
        .map(|setting| setting.template.group.as_str())
        .collect();
    let mut in_catalogue_order = groups.clone();
    in_catalogue_order.sort_by_key(|group| {
        herald_domain::catalogue::GROUPS
            .iter()
            .position(|g| g == group)
            .unwrap()
    });
    assert_eq!(groups, in_catalogue_order);
    let names: Vec<&str> = settings
        .iter()
        .filter(|setting| setting.template.group == herald_domain::catalogue::WORKSPACE_EVENTS)
        .map(|setting| setting.template.name.as_str())
        .collect();
    assert!(names.is_sorted(), "{names:?}");

    let receives = |template| {
        let setting = settings
            .iter()
            .find(|setting| setting.template.id == template)
            .unwrap();
        Method::ALL.map(|method| setting.receives[&method])
    };
    // The method's row, else the all-methods row.
    assert_eq!(receives(WORKSPACE_DELETED), [false, false, true]);
    // The method's row, else the default (off).
    assert_eq!(receives(WORKSPACE_CREATED), [false, true, false]);
    // No row: the default.
    assert_eq!(receives(WORKSPACE_MARKED_DORMANT), [true, true, true]);
    // A security message whatever its rows.
    assert_eq!(receives(ONE_TIME_PASSCODE), [true, true, true]);

    let gone = UserId::random();
    assert!(matches!(
        h.preferences.settings(gone).await,
        Err(Error::NotFound(_))
    ));
}
