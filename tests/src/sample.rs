//! Sample domain values for tests, at a fixed time.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use herald_application::ports::{Clock, Delivery, LeaseRequest, NewMessage};
use herald_application::rendering::RenderedMessage;
use herald_domain::{
    Build, BuildInitiator, BuildStatus, BuildTransition, DedupeHash, EmailAddress,
    InboxNotification, InboxNotificationId, Labels, MessageId, Method, Payload, Role, TemplateId,
    User, UserId, UserStatus, Username, catalogue,
};
use herald_memory::ManualClock;
use uuid::Uuid;

/// How long the samples' leases last.
pub const LEASE_PERIOD: Duration = Duration::minutes(2);
/// How many send attempts the samples' leases allow.
pub const MAX_ATTEMPTS: u32 = 3;
/// The lease expiry at which the samples' leases give a message up.
pub const MAX_LEASE_EXPIRIES: u32 = 3;

/// A lease of up to `count` messages at `now`, for [`LEASE_PERIOD`], of messages tried fewer
/// than [`MAX_ATTEMPTS`] times, giving up on one at its [`MAX_LEASE_EXPIRIES`]th expired lease.
pub fn lease_request(now: DateTime<Utc>, count: usize) -> LeaseRequest {
    LeaseRequest {
        notifier: "tests".into(),
        now,
        lease_period: LEASE_PERIOD,
        count,
        max_attempts: MAX_ATTEMPTS,
        max_lease_expiries: MAX_LEASE_EXPIRIES,
        skip: herald_application::ports::SkipMethods::NONE,
    }
}

/// The time tests start at: 2026-11-28T09:00:00Z, where a default [`ManualClock`] starts.
pub fn t0() -> DateTime<Utc> {
    ManualClock::default().now()
}

/// An active user named `username`, at `username@example.com`, with a fresh id.
///
/// # Panics
/// When `username` is not a valid username.
#[allow(clippy::expect_used)] // A test's sample username is a literal; a bad one is the test's bug.
pub fn user(username: &str, roles: &[Role]) -> User {
    User {
        id: UserId::random(),
        email: EmailAddress::parse(&format!("{username}@example.com"))
            .expect("a sample username makes a valid address"),
        username: Username::parse(username).expect("a sample username is valid"),
        name: String::new(),
        roles: roles.iter().copied().collect::<BTreeSet<_>>(),
        status: UserStatus::Active,
        deleted: false,
    }
}

/// The payload of a Workspace Deleted message to `recipient`.
pub fn payload(recipient: UserId) -> Payload {
    Payload {
        version: Payload::VERSION.to_owned(),
        notification_name: "Workspace Deleted".to_owned(),
        notification_template_id: catalogue::WORKSPACE_DELETED,
        user_id: recipient,
        user_email: "someone@example.com".to_owned(),
        user_name: "someone".to_owned(),
        user_username: "someone".to_owned(),
        actions: vec![],
        labels: Labels::from([("name".to_owned(), "my-workspace".to_owned())]),
        data: None,
        targets: vec![],
    }
}

/// A Workspace Deleted email to `recipient`, created at `created_at`, never deduplicated.
pub fn new_message(recipient: UserId, created_at: DateTime<Utc>) -> NewMessage {
    NewMessage {
        id: MessageId::random(),
        template_id: catalogue::WORKSPACE_DELETED,
        recipient,
        method: Method::Smtp,
        payload: payload(recipient),
        targets: vec![],
        created_by: "tests".to_owned(),
        created_at,
        dedupe_hash: None,
        send_after: None,
        digest: false,
    }
}

/// A rendered Workspace Deleted message going out by `method` to a fresh recipient at
/// `someone@example.com`, with a fresh message id.
pub fn delivery(method: Method) -> Delivery {
    let recipient = UserId::random();
    Delivery {
        message_id: MessageId::random(),
        method,
        template_id: catalogue::WORKSPACE_DELETED,
        recipient,
        payload: payload(recipient),
        targets: vec![],
        rendered: RenderedMessage {
            title_markdown: r#"Workspace "my\-workspace" deleted"#.to_owned(),
            body_markdown: "Your workspace **my\\-workspace** was deleted.".to_owned(),
            title: r#"Workspace "my-workspace" deleted"#.to_owned(),
            body: "Your workspace my-workspace was deleted.".to_owned(),
        },
    }
}

/// A dedupe hash no other call returns.
pub fn dedupe_hash() -> DedupeHash {
    let recipient = UserId::random();
    DedupeHash::compute(
        catalogue::WORKSPACE_DELETED,
        recipient,
        Method::Smtp,
        &payload(recipient),
        &[],
        t0().date_naive(),
    )
}

/// An unread Workspace Deleted notification in `user`'s inbox, created at `created_at`.
pub fn inbox_notification(user: UserId, created_at: DateTime<Utc>) -> InboxNotification {
    inbox_notification_of(user, catalogue::WORKSPACE_DELETED, created_at, vec![])
}

/// An unread notification of `template` in `user`'s inbox, carrying `targets`.
pub fn inbox_notification_of(
    user: UserId,
    template: TemplateId,
    created_at: DateTime<Utc>,
    targets: Vec<Uuid>,
) -> InboxNotification {
    InboxNotification {
        id: InboxNotificationId::random(),
        user_id: user,
        template_id: template,
        targets,
        title: "Workspace \"my-workspace\" deleted".to_owned(),
        content: "Your workspace my-workspace has been deleted.".to_owned(),
        title_markdown: "Workspace \"my-workspace\" deleted".to_owned(),
        content_markdown: "Your workspace **my-workspace** has been deleted.".to_owned(),
        actions: vec![],
        read_at: None,
        created_at,
    }
}

/// A build of the workspace `workspace` (its id derived from the name) owned by `owner`, of
/// the host template `template` (its id derived from the name) at `version`, numbered
/// `number`, `failed` or succeeded, made at `at`: a manual start.
pub fn build(
    workspace: &str,
    owner: UserId,
    template: &str,
    version: &str,
    number: u32,
    failed: bool,
    at: DateTime<Utc>,
) -> Build {
    Build {
        workspace_id: id_of(workspace),
        workspace_name: workspace.to_owned(),
        owner_id: owner,
        template_id: id_of(template),
        template_name: template.to_owned(),
        template_display_name: template.to_uppercase(),
        template_version: version.to_owned(),
        build_number: number,
        transition: BuildTransition::Start,
        status: if failed {
            BuildStatus::Failed
        } else {
            BuildStatus::Succeeded
        },
        initiator: BuildInitiator::Manual,
        created_at: at,
    }
}

/// A UUID made from `name` alone: the same name, the same id.
pub fn id_of(name: &str) -> Uuid {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut hasher);
    let hash = hasher.finish();
    Uuid::from_u64_pair(hash, hash.rotate_left(17))
}
