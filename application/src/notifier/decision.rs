//! What to do with one leased message, decided from what the notifier read about it: inhibit
//! it, fail it for good, or render it into a [`Delivery`] to dispatch. A pure function of the
//! message and those facts, so every rule is tested without a store, a clock or a dispatcher;
//! the notifier's cycle only reads the facts, calls [`decide`] and carries the decision out.

use chrono::{DateTime, Utc};
use herald_domain::{Completion, Message, StoredPreference, Template, receives};

use crate::ports::Delivery;
use crate::rendering::Renderer;

/// Reason recorded on messages inhibited because their recipient is gone.
pub const REASON_RECIPIENT_DELETED: &str = "inhibited: the recipient was deleted";
/// Reason recorded on messages inhibited by the recipient's preferences, in the reference's
/// words (its troubleshooting looks for them).
pub const REASON_DISABLED: &str = "disabled by user";

/// What the notifier knows about one leased message when it decides.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The message's template; `None` when no such template exists.
    pub template: Option<&'a Template>,
    /// The recipient exists and is not deleted.
    pub recipient_live: bool,
    /// The recipient's stored preference rows for the template (empty: none).
    pub stored: StoredPreference,
    /// This deployment has a dispatcher for the message's method.
    pub method_configured: bool,
}

/// What to do with a leased message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Record this outcome without dispatching (inhibited, or failed for good).
    Complete(Completion),
    /// Dispatch this.
    Dispatch(Box<Delivery>),
}

/// Decides, in this order: a template that does not exist fails the message for good; a
/// deleted recipient, or one who disabled the template for the message's method, inhibits it; a method this deployment
/// has no dispatcher for, or a template that does not render, fails it for good; anything else
/// is rendered (at `now`) for dispatch.
pub fn decide(
    message: &Message,
    facts: &Facts<'_>,
    renderer: &Renderer,
    now: DateTime<Utc>,
) -> Decision {
    let permanent = |reason: String| {
        Decision::Complete(Completion::Failed {
            reason,
            retryable: false,
            retry_after: None,
        })
    };
    let Some(template) = facts.template else {
        return permanent(format!("template {} does not exist", message.template_id));
    };
    if !facts.recipient_live {
        return Decision::Complete(Completion::Inhibited {
            reason: REASON_RECIPIENT_DELETED.to_owned(),
        });
    }
    if !receives(template, &facts.stored, message.method) {
        return Decision::Complete(Completion::Inhibited {
            reason: REASON_DISABLED.to_owned(),
        });
    }
    if !facts.method_configured {
        return permanent(format!(
            "delivery method {} is not configured on this deployment",
            message.method
        ));
    }
    let rendered = if message.digest {
        renderer.render_digest(template, &message.payload, now)
    } else {
        renderer.render_message(template, &message.payload, now)
    };
    match rendered {
        Ok(rendered) => Decision::Dispatch(Box::new(Delivery {
            message_id: message.id,
            method: message.method,
            template_id: message.template_id,
            recipient: message.recipient,
            payload: message.payload.clone(),
            targets: message.targets.clone(),
            rendered,
        })),
        Err(err) => permanent(err.to_string()),
    }
}
