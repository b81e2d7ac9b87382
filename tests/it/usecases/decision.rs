//! What the notifier does with one leased message, decided by the pure `notifier::decide`
//! from the facts the cycle read: no store, clock or dispatcher involved.

use chrono::Duration;
use herald_application::notifier::{REASON_DISABLED, REASON_RECIPIENT_DELETED};
use herald_application::rendering::Renderer;
use herald_application::{Decision, Facts, decide};
use herald_domain::catalogue::{self, WORKSPACE_CREATED, WORKSPACE_DELETED};
use herald_domain::{
    Completion, Message, MessageId, MessageStatus, Method, PreferenceScope, StoredPreference,
    Template, UserId,
};
use herald_tests::sample;

use super::support::ACCESS_URL;

fn template(id: herald_domain::TemplateId) -> Template {
    catalogue::templates()
        .into_iter()
        .find(|t| t.id == id)
        .unwrap()
}

/// A leased Workspace Deleted webhook message.
fn leased(template: &Template) -> Message {
    let recipient = UserId::random();
    let mut payload = sample::payload(recipient);
    payload.notification_template_id = template.id;
    Message {
        id: MessageId::random(),
        template_id: template.id,
        recipient,
        method: Method::Webhook,
        status: MessageStatus::Leased,
        status_reason: None,
        attempt_count: 0,
        payload,
        targets: vec![],
        created_by: "tests".to_owned(),
        created_at: sample::t0(),
        updated_at: sample::t0(),
        leased_until: Some(sample::t0() + Duration::minutes(2)),
        next_retry_after: None,
        queued_seconds: 0.0,
        lease_expiries: 0,
        dedupe_hash: None,
        digest: false,
    }
}

/// Everything in order: the template exists, the recipient is live and has no preference
/// row, the method is configured.
fn deliverable(template: &Template) -> Facts<'_> {
    Facts {
        template: Some(template),
        recipient_live: true,
        stored: StoredPreference::default(),
        method_configured: true,
    }
}

fn decided(message: &Message, facts: &Facts<'_>) -> Decision {
    decide(
        message,
        facts,
        &Renderer::new("Herald", ACCESS_URL),
        sample::t0(),
    )
}

fn permanent_failure(decision: &Decision) -> &str {
    match decision {
        Decision::Complete(Completion::Failed {
            reason,
            retryable: false,
            retry_after: None,
        }) => reason,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

fn inhibited(decision: &Decision) -> &str {
    match decision {
        Decision::Complete(Completion::Inhibited { reason }) => reason,
        other => panic!("expected the message inhibited, got {other:?}"),
    }
}

#[test]
fn a_deliverable_message_is_rendered_into_a_delivery_carrying_its_id() {
    let template = template(WORKSPACE_DELETED);
    let message = leased(&template);

    let Decision::Dispatch(delivery) = decided(&message, &deliverable(&template)) else {
        panic!("expected a dispatch");
    };
    assert_eq!(delivery.message_id, message.id);
    assert_eq!(delivery.method, Method::Webhook);
    assert_eq!(delivery.recipient, message.recipient);
    assert_eq!(delivery.payload, message.payload);
    assert_eq!(
        delivery.rendered.title,
        r#"Workspace "my-workspace" deleted"#
    );
}

#[test]
fn a_template_that_does_not_exist_fails_the_message_for_good_before_anything_else() {
    let template = template(WORKSPACE_DELETED);
    let message = leased(&template);
    let facts = Facts {
        template: None,
        recipient_live: false,
        ..deliverable(&template)
    };

    let reason = permanent_failure(&decided(&message, &facts)).to_owned();
    assert_eq!(
        reason,
        format!("template {} does not exist", message.template_id)
    );
}

#[test]
fn a_deleted_recipient_is_inhibited_whatever_their_preferences() {
    let template = template(WORKSPACE_DELETED);
    let message = leased(&template);
    for stored in [None, Some(true), Some(false)] {
        let facts = Facts {
            recipient_live: false,
            stored: all_methods(stored),
            method_configured: false,
            ..deliverable(&template)
        };
        assert_eq!(
            inhibited(&decided(&message, &facts)),
            REASON_RECIPIENT_DELETED
        );
    }
}

fn all_methods(disabled: Option<bool>) -> StoredPreference {
    let mut stored = StoredPreference::default();
    stored.set(PreferenceScope::AllMethods, disabled);
    stored
}

#[test]
fn the_recipients_preference_decides_and_without_one_the_templates_default() {
    let on_by_default = template(WORKSPACE_DELETED);
    let off_by_default = template(WORKSPACE_CREATED);
    assert!(on_by_default.enabled_by_default && !off_by_default.enabled_by_default);
    let webhook = PreferenceScope::Method(Method::Webhook);
    let inbox = PreferenceScope::Method(Method::Inbox);
    let none = StoredPreference::default();

    // The message goes by webhook: the webhook's row, else the all-methods row, else the
    // default; another method's row plays no part.
    let cases = [
        (&on_by_default, none, true),
        (
            &on_by_default,
            none.with(PreferenceScope::AllMethods, true),
            false,
        ),
        (
            &on_by_default,
            none.with(PreferenceScope::AllMethods, false),
            true,
        ),
        (&on_by_default, none.with(webhook, true), false),
        (&on_by_default, none.with(inbox, true), true),
        (
            &on_by_default,
            none.with(PreferenceScope::AllMethods, true)
                .with(webhook, false),
            true,
        ),
        (&off_by_default, none, false),
        (
            &off_by_default,
            none.with(PreferenceScope::AllMethods, false),
            true,
        ),
        (&off_by_default, none.with(webhook, false), true),
        (&off_by_default, none.with(inbox, false), false),
        (
            &off_by_default,
            none.with(PreferenceScope::AllMethods, false)
                .with(webhook, true),
            false,
        ),
    ];
    for (template, stored, delivered) in cases {
        let message = leased(template);
        let facts = Facts {
            stored,
            ..deliverable(template)
        };
        let decision = decided(&message, &facts);
        if delivered {
            assert!(
                matches!(decision, Decision::Dispatch(_)),
                "{} with {stored:?}: {decision:?}",
                template.name
            );
        } else {
            assert_eq!(
                inhibited(&decision),
                REASON_DISABLED,
                "{} with {stored:?}",
                template.name
            );
        }
    }
}

#[test]
fn a_security_message_is_dispatched_whatever_its_stored_rows_say() {
    let otp = template(catalogue::ONE_TIME_PASSCODE);
    let message = leased(&otp);
    let facts = Facts {
        stored: all_methods(Some(true)).with(PreferenceScope::Method(Method::Webhook), true),
        ..deliverable(&otp)
    };
    assert!(matches!(decided(&message, &facts), Decision::Dispatch(_)));
}

#[test]
fn a_method_this_deployment_cannot_deliver_fails_the_message_for_good() {
    let template = template(WORKSPACE_DELETED);
    let message = leased(&template);
    let facts = Facts {
        method_configured: false,
        ..deliverable(&template)
    };

    assert_eq!(
        permanent_failure(&decided(&message, &facts)),
        "delivery method webhook is not configured on this deployment"
    );
}

#[test]
fn a_template_that_does_not_render_fails_the_message_for_good() {
    let mut broken = template(WORKSPACE_DELETED);
    broken.title = "{{#if labels.name}}never closed".to_owned();
    let message = leased(&broken);

    let reason = permanent_failure(&decided(&message, &deliverable(&broken))).to_owned();
    assert!(!reason.is_empty());
}
