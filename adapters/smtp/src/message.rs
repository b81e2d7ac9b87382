//! The email for one delivery: headers, the plain-text part and the HTML part.

use std::fmt::Write as _;

use herald_application::ports::{Delivery, DeliveryError};
use herald_application::unsubscribe::UnsubscribeKey;
use herald_domain::is_security;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue, MessageId};
use lettre::message::{Mailbox, MultiPart};

/// Where a user manages their notification preferences, under the access URL.
const SETTINGS_PATH: &str = "/settings/notifications";
/// Herald's one-click unsubscribe endpoint (DESIGN §7), under the access URL.
const UNSUBSCRIBE_PATH: &str = "/api/v2/notifications/unsubscribe/";

/// Builds messages for one deployment: its sender, access URL, app name and unsubscribe key.
#[derive(Debug, Clone)]
pub(crate) struct Composer {
    from: Mailbox,
    access_url: String,
    app_name: String,
    unsubscribe_key: UnsubscribeKey,
}

impl Composer {
    /// `access_url` without a trailing `/`.
    pub fn new(
        from: Mailbox,
        access_url: &str,
        app_name: &str,
        unsubscribe_key: UnsubscribeKey,
    ) -> Self {
        Self {
            from,
            access_url: access_url.trim().trim_end_matches('/').to_owned(),
            app_name: app_name.to_owned(),
            unsubscribe_key,
        }
    }

    pub fn settings_url(&self) -> String {
        format!("{}{SETTINGS_PATH}", self.access_url)
    }

    /// The "Stop receiving emails like this" link: the settings page, asking to turn the
    /// delivery's template off.
    pub fn stop_url(&self, delivery: &Delivery) -> String {
        format!(
            "{}{SETTINGS_PATH}?disabled={}",
            self.access_url, delivery.template_id
        )
    }

    pub fn unsubscribe_url(&self, delivery: &Delivery) -> String {
        let token = self
            .unsubscribe_key
            .token(delivery.recipient, delivery.template_id);
        format!("{}{UNSUBSCRIBE_PATH}{token}", self.access_url)
    }

    /// The complete message.
    ///
    /// # Errors
    /// A permanent [`DeliveryError`] when the recipient's address cannot be used.
    pub fn compose(&self, delivery: &Delivery) -> Result<Message, DeliveryError> {
        let payload = &delivery.payload;
        let address = payload.user_email.trim().parse().map_err(|err| {
            DeliveryError::permanent(format!(
                "the recipient address {:?} is not a valid email address: {err}",
                payload.user_email
            ))
        })?;
        let name = one_line(&payload.user_name);
        let to = Mailbox::new((!name.is_empty()).then_some(name), address);
        let message_id = format!("<{}@{}>", delivery.message_id, self.from.email.domain());
        let mut builder = Message::builder()
            .header(MessageId::from(message_id))
            .date_now()
            .from(self.from.clone())
            .to(to)
            .subject(one_line(&delivery.rendered.title));
        // A security message cannot be turned off (DESIGN §10.1), so it offers no way to.
        if !is_security(delivery.template_id) {
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{}>", self.unsubscribe_url(delivery)),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_owned(),
                ));
        }
        builder
            // RFC 3834: no vacation or out-of-office replies to a notification.
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_owned(),
            ))
            .multipart(MultiPart::alternative_plain_html(
                self.text(delivery),
                self.html(delivery),
            ))
            .map_err(|err| DeliveryError::permanent(format!("could not build the email: {err}")))
    }

    /// The plain-text part: the body, each action as `label: url`, and the settings links.
    pub fn text(&self, delivery: &Delivery) -> String {
        let mut text = delivery.rendered.body.trim_end().to_owned();
        let actions = &delivery.payload.actions;
        if !actions.is_empty() {
            text.push_str("\n\n");
            for action in actions {
                let _ = writeln!(text, "{}: {}", one_line(&action.label), action.url);
            }
            text.truncate(text.trim_end().len());
        }
        if is_security(delivery.template_id) {
            let _ = write!(
                text,
                "\n\n-- \nA security message from {}: it is sent whatever your notification settings.\n",
                self.app_name
            );
        } else {
            let _ = write!(
                text,
                "\n\n-- \nStop receiving emails like this: {}\n\
                 Manage your {} notification settings: {}\n",
                self.stop_url(delivery),
                self.app_name,
                self.settings_url()
            );
        }
        text
    }

    /// The HTML part: a single-column layout (600 px at most, full width on phones) with
    /// inline styles only, as mail clients drop `<style>` blocks and external CSS.
    pub fn html(&self, delivery: &Delivery) -> String {
        let app_name = escape(&self.app_name);
        let title = escape(&one_line(&delivery.rendered.title));
        let mut buttons = String::new();
        for action in &delivery.payload.actions {
            if !is_web_url(&action.url) {
                // The text part still lists it; a button must not carry another scheme.
                continue;
            }
            let _ = write!(
                buttons,
                r#"<a href="{url}" style="display:inline-block;margin:0 8px 8px 0;padding:10px 18px;background-color:#2563eb;border-radius:6px;color:#ffffff;font-size:14px;font-weight:600;line-height:20px;text-decoration:none;">{label}</a>"#,
                url = escape(&action.url),
                label = escape(&one_line(&action.label)),
            );
        }
        let buttons = if buttons.is_empty() {
            String::new()
        } else {
            format!(r#"<tr><td style="padding:16px 32px 8px 32px;">{buttons}</td></tr>"#)
        };
        let footer = if is_security(delivery.template_id) {
            format!(
                "A security message from {app_name}: it is sent whatever your notification settings."
            )
        } else {
            format!(
                r#"You are receiving this because of your {app_name} notification settings. <a href="{stop}" style="color:#2563eb;text-decoration:underline;">Stop receiving emails like this</a> · <a href="{settings}" style="color:#2563eb;text-decoration:underline;">Manage your notification settings</a>"#,
                stop = escape(&self.stop_url(delivery)),
                settings = escape(&self.settings_url()),
            )
        };
        format!(
            r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="x-apple-disable-message-reformatting">
<title>{title}</title>
</head>
<body style="margin:0;padding:0;background-color:#f4f4f5;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#f4f4f5;">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="max-width:600px;background-color:#ffffff;border:1px solid #e4e4e7;border-radius:8px;font-family:-apple-system,BlinkMacSystemFont,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#18181b;">
<tr><td style="padding:24px 32px 0 32px;font-size:14px;font-weight:600;line-height:20px;color:#52525b;">{app_name}</td></tr>
<tr><td style="padding:8px 32px 0 32px;"><h1 style="margin:0;font-size:20px;font-weight:600;line-height:28px;color:#18181b;">{title}</h1></td></tr>
<tr><td style="padding:16px 32px 8px 32px;font-size:15px;line-height:24px;word-break:break-word;">{body}</td></tr>
{buttons}
<tr><td style="padding:16px 32px 24px 32px;border-top:1px solid #e4e4e7;font-size:12px;line-height:18px;color:#71717a;">{footer}</td></tr>
</table>
</td></tr>
</table>
</body>
</html>
"#,
            body = delivery.rendered.body_html().trim(),
        )
    }
}

/// `value` on one line: every run of line breaks and tabs becomes one space.
fn one_line(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_web_url(url: &str) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// Escapes text for HTML content and double- or single-quoted attribute values.
fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use herald_application::rendering::RenderedMessage;
    use herald_domain::{Action, MessageId, Method, Payload, TemplateId, UserId};

    use super::*;

    fn delivery(actions: Vec<Action>) -> Delivery {
        let recipient = UserId::random();
        let template_id = TemplateId::random();
        Delivery {
            message_id: MessageId::random(),
            method: Method::Smtp,
            template_id,
            recipient,
            payload: Payload {
                version: Payload::VERSION.to_owned(),
                notification_name: "Workspace Deleted".into(),
                notification_template_id: template_id,
                user_id: recipient,
                user_email: "danny@example.com".into(),
                user_name: "Danny".into(),
                user_username: "danny".into(),
                actions,
                labels: Default::default(),
                data: None,
                targets: vec![],
            },
            targets: vec![],
            rendered: RenderedMessage {
                title: "Workspace \"dev\" deleted".into(),
                body: "Hi Danny\n\nYour workspace dev was deleted.".into(),
                body_markdown: "Hi Danny\n\nYour workspace **dev** was deleted.".into(),
                ..RenderedMessage::default()
            },
        }
    }

    fn composer() -> Composer {
        Composer::new(
            "Herald <herald@example.com>".parse().unwrap(),
            "https://herald.example.com/",
            "Herald & Co",
            UnsubscribeKey::new(vec![9; 32]).unwrap(),
        )
    }

    #[test]
    fn the_text_part_lists_actions_and_the_settings_links() {
        let delivery = delivery(vec![
            Action {
                label: "View workspaces".into(),
                url: "https://herald.example.com/workspaces".into(),
            },
            Action {
                label: "View\ntemplates".into(),
                url: "https://herald.example.com/templates".into(),
            },
        ]);
        let text = composer().text(&delivery);
        assert_eq!(
            text,
            format!(
                "Hi Danny\n\nYour workspace dev was deleted.\n\n\
             View workspaces: https://herald.example.com/workspaces\n\
             View templates: https://herald.example.com/templates\n\n\
             -- \nStop receiving emails like this: \
             https://herald.example.com/settings/notifications?disabled={}\n\
             Manage your Herald & Co notification settings: \
             https://herald.example.com/settings/notifications\n",
                delivery.template_id
            )
        );
    }

    #[test]
    fn the_html_part_escapes_labels_and_keeps_the_rendered_body() {
        let html = composer().html(&delivery(vec![
            Action {
                label: "<b>Open</b> \"it\"".into(),
                url: "https://herald.example.com/a?x=1&y=2".into(),
            },
            Action {
                label: "Sneaky".into(),
                url: "javascript:alert(1)".into(),
            },
        ]));
        assert!(html.contains("<p>Your workspace <strong>dev</strong> was deleted.</p>"));
        assert!(html.contains(r#"href="https://herald.example.com/a?x=1&amp;y=2""#));
        assert!(html.contains("&lt;b&gt;Open&lt;/b&gt; &quot;it&quot;</a>"));
        assert!(!html.contains("<b>Open"));
        assert!(!html.contains("javascript:"));
        assert!(html.contains("Herald &amp; Co"));
        assert!(html.contains(r#"href="https://herald.example.com/settings/notifications""#));
        assert!(html.contains(r#"<meta name="viewport""#));
    }

    #[test]
    fn a_notification_email_links_to_turning_its_template_off_on_the_access_url() {
        let delivery = delivery(vec![]);
        let composer = composer();
        let stop = format!(
            "https://herald.example.com/settings/notifications?disabled={}",
            delivery.template_id
        );
        assert_eq!(composer.stop_url(&delivery), stop);
        let html = composer.html(&delivery);
        assert!(html.contains(&format!(r#"<a href="{stop}" "#)), "{html}");
        assert!(
            html.contains(">Stop receiving emails like this</a>"),
            "{html}"
        );
        assert!(
            composer
                .text(&delivery)
                .contains(&format!("Stop receiving emails like this: {stop}\n"))
        );
    }

    /// A workspace notification and a One-Time Passcode, with fixed ids.
    fn golden_deliveries() -> [(&'static str, Delivery); 2] {
        let mut notification = delivery(vec![Action {
            label: "View workspaces".into(),
            url: "https://app.example.com/workspaces".into(),
        }]);
        notification.message_id = "00000000-0000-4000-8000-000000000001".parse().unwrap();
        notification.recipient = "00000000-0000-4000-8000-000000000002".parse().unwrap();
        notification.template_id = herald_domain::catalogue::WORKSPACE_DELETED;
        let mut passcode = delivery(vec![]);
        passcode.message_id = "00000000-0000-4000-8000-000000000003".parse().unwrap();
        passcode.recipient = "00000000-0000-4000-8000-000000000002".parse().unwrap();
        passcode.template_id = herald_domain::catalogue::ONE_TIME_PASSCODE;
        passcode.rendered = RenderedMessage {
            title: "Your one-time passcode".into(),
            body: "Hi Danny\n\nYour passcode is 123456.".into(),
            body_markdown: "Hi Danny\n\nYour passcode is **123456**.".into(),
            ..RenderedMessage::default()
        };
        [
            ("workspace-deleted", notification),
            ("one-time-passcode", passcode),
        ]
    }

    /// Whether this run rewrites the golden files: `HERALD_BLESS=1`, and never in CI (`CI`
    /// set), where a rewrite would make the comparison pass whatever the email became.
    fn blessing() -> bool {
        let bless = std::env::var("HERALD_BLESS").is_ok_and(|bless| bless == "1");
        let in_ci = std::env::var("CI").is_ok_and(|ci| !ci.is_empty());
        assert!(
            !(bless && in_ci),
            "HERALD_BLESS=1 is refused because CI is set: golden files are never rewritten in \
             CI; regenerate them outside CI (`cargo xtask golden`) and commit the reviewed diff"
        );
        bless
    }

    /// The text and HTML parts of each golden delivery match `tests/golden/<name>.txt` and
    /// `.html` (regenerated by `cargo xtask golden`).
    #[test]
    fn emails_match_their_golden_files() {
        // In the checkout under test: a target directory shared between checkouts can run a
        // binary another checkout built.
        let dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(
                || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
                std::path::PathBuf::from,
            )
            .join("tests/golden");
        let bless = blessing();
        let composer = composer();
        let mut failures = Vec::new();
        for (name, delivery) in golden_deliveries() {
            for (ext, part) in [
                ("txt", composer.text(&delivery)),
                ("html", composer.html(&delivery)),
            ] {
                let path = dir.join(format!("{name}.{ext}"));
                if bless {
                    std::fs::create_dir_all(&dir).unwrap();
                    std::fs::write(&path, &part).unwrap();
                    continue;
                }
                let expected = std::fs::read_to_string(&path)
                    .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
                if expected != part {
                    failures.push(format!("{}:\n{part}", path.display()));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "emails differ from their golden files (regenerate with `cargo xtask golden` and \
             review the diff):\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn a_bad_recipient_address_is_a_permanent_failure() {
        let mut delivery = delivery(vec![]);
        delivery.payload.user_email = "not an address".into();
        let err = composer().compose(&delivery).unwrap_err();
        assert!(!err.retryable);
        assert!(
            err.reason.contains("not a valid email address"),
            "{}",
            err.reason
        );
    }

    #[test]
    fn a_notification_email_offers_one_click_unsubscribe() {
        let delivery = delivery(vec![]);
        let email = composer().compose(&delivery).unwrap();
        let link = format!("<{}>", composer().unsubscribe_url(&delivery));
        assert_eq!(
            email.headers().get_raw("List-Unsubscribe"),
            Some(link.as_str())
        );
        assert_eq!(
            email.headers().get_raw("List-Unsubscribe-Post"),
            Some("List-Unsubscribe=One-Click")
        );
    }

    #[test]
    fn a_security_email_has_no_unsubscribe_header_nor_settings_link() {
        let mut delivery = delivery(vec![]);
        delivery.template_id = herald_domain::catalogue::ONE_TIME_PASSCODE;
        let composer = composer();
        let email = composer.compose(&delivery).unwrap();
        assert_eq!(email.headers().get_raw("List-Unsubscribe"), None);
        assert_eq!(email.headers().get_raw("List-Unsubscribe-Post"), None);
        let formatted = String::from_utf8(email.formatted()).unwrap();
        assert!(!formatted.contains("unsubscribe"), "{formatted}");
        let (text, html) = (composer.text(&delivery), composer.html(&delivery));
        for part in [&text, &html] {
            assert!(!part.contains("/settings/notifications"), "{part}");
            assert!(part.contains("A security message from Herald"), "{part}");
        }
    }

    #[test]
    fn the_unsubscribe_url_carries_a_token_for_the_recipient_and_template() {
        let delivery = delivery(vec![]);
        let url = composer().unsubscribe_url(&delivery);
        let token = url
            .strip_prefix("https://herald.example.com/api/v2/notifications/unsubscribe/")
            .unwrap();
        let key = UnsubscribeKey::new(vec![9; 32]).unwrap();
        assert_eq!(
            key.verify(token),
            Some((delivery.recipient, delivery.template_id))
        );
    }
}
