//! The `UserDirectory` and `UserRegistry` contracts: Herald's own directory of users.

use std::collections::BTreeSet;

use herald_application::ports::{NewToken, StoreError, TokenHash};
use herald_domain::{EmailAddress, Role, User, UserId, UserStatus, Username};
use herald_tests::fixture::Backend;
use herald_tests::sample;

async fn stored(backend: &Backend, id: UserId) -> User {
    backend
        .users
        .get(id)
        .await
        .unwrap()
        .expect("the user is stored")
}

fn conflict_on(result: Result<(), StoreError>, field: &str) -> bool {
    matches!(result, Err(StoreError::Conflict(message)) if message.contains(field))
}

async fn an_upserted_user_reads_back_as_stored(backend: Backend) {
    let ann = User {
        name: "Ann Example".to_owned(),
        ..sample::user("ann", &[Role::Owner, Role::Member])
    };

    backend.users.upsert(&ann).await.unwrap();

    assert_eq!(stored(&backend, ann.id).await, ann);
    assert_eq!(backend.users.get(UserId::random()).await.unwrap(), None);
}

async fn upserting_again_replaces_the_user_with_that_id(backend: Backend) {
    let ann = sample::user("ann", &[Role::Member]);
    backend.users.upsert(&ann).await.unwrap();
    let renamed = User {
        username: Username::parse("ANN").unwrap(),
        email: EmailAddress::parse("Ann@Example.com").unwrap(),
        name: "Ann".to_owned(),
        roles: BTreeSet::from([Role::UserAdmin]),
        status: UserStatus::Suspended,
        ..ann.clone()
    };

    backend.users.upsert(&renamed).await.unwrap();

    assert_eq!(stored(&backend, ann.id).await, renamed);
}

async fn another_users_username_or_email_is_a_conflict_whatever_its_case(backend: Backend) {
    let ann = sample::user("ann", &[]);
    backend.users.upsert(&ann).await.unwrap();
    let same_username = User {
        username: Username::parse("ANN").unwrap(),
        ..sample::user("bob", &[])
    };
    let same_email = User {
        email: EmailAddress::parse("ANN@example.com").unwrap(),
        ..sample::user("bob", &[])
    };

    assert!(conflict_on(
        backend.users.upsert(&same_username).await,
        "username"
    ));
    assert!(conflict_on(
        backend.users.upsert(&same_email).await,
        "email"
    ));
    assert_eq!(backend.users.get(same_username.id).await.unwrap(), None);
    assert_eq!(backend.users.get(same_email.id).await.unwrap(), None);
    assert_eq!(stored(&backend, ann.id).await, ann);
}

async fn delete_flags_the_user_and_reports_whether_a_live_user_existed(backend: Backend) {
    let ann = sample::user("ann", &[]);
    backend.users.upsert(&ann).await.unwrap();

    assert!(backend.users.delete(ann.id).await.unwrap());
    assert!(stored(&backend, ann.id).await.deleted);
    assert!(
        !backend.users.delete(ann.id).await.unwrap(),
        "already deleted"
    );
    assert!(
        !backend.users.delete(UserId::random()).await.unwrap(),
        "never existed"
    );
}

async fn upserting_a_deleted_user_undeletes_it(backend: Backend) {
    let ann = sample::user("ann", &[Role::Owner]);
    backend.users.upsert(&ann).await.unwrap();
    backend.users.delete(ann.id).await.unwrap();

    backend.users.upsert(&ann).await.unwrap();

    assert!(!stored(&backend, ann.id).await.deleted);
    let owners = backend
        .users
        .with_any_role(&BTreeSet::from([Role::Owner]))
        .await
        .unwrap();
    assert_eq!(owners, [ann]);
}

async fn a_deleted_user_recreated_with_the_same_id_does_not_get_their_tokens_back(
    backend: Backend,
) {
    let ann = sample::user("ann", &[Role::Owner]);
    backend.users.upsert(&ann).await.unwrap();
    let hash = TokenHash::of("herald_a-token-of-anns");
    backend
        .tokens
        .insert(&NewToken {
            id: uuid::Uuid::new_v4(),
            user: ann.id,
            name: "ci".to_owned(),
            hash,
            created_at: sample::t0(),
        })
        .await
        .unwrap();
    let now = sample::t0() + chrono::Duration::minutes(5);
    assert_eq!(
        backend.tokens.find_user(&hash, now).await.unwrap(),
        Some(ann.id)
    );

    // Deleted (and nothing else: the revocation a caller may do after it is not counted on).
    backend.users.delete(ann.id).await.unwrap();
    backend.users.upsert(&ann).await.unwrap();

    assert_eq!(backend.tokens.find_user(&hash, now).await.unwrap(), None);
}

async fn a_deleted_users_username_and_email_may_be_taken_by_a_new_user(backend: Backend) {
    let old = sample::user("ann", &[]);
    backend.users.upsert(&old).await.unwrap();
    backend.users.delete(old.id).await.unwrap();
    let new = sample::user("ann", &[]);

    backend.users.upsert(&new).await.unwrap();

    assert_eq!(stored(&backend, new.id).await, new);
    assert!(stored(&backend, old.id).await.deleted);
}

async fn get_many_returns_the_known_users_with_deleted_ones_flagged(backend: Backend) {
    let (ann, bob, cat) = (
        sample::user("ann", &[]),
        sample::user("bob", &[]),
        sample::user("cat", &[]),
    );
    for user in [&ann, &bob, &cat] {
        backend.users.upsert(user).await.unwrap();
    }
    backend.users.delete(bob.id).await.unwrap();

    let found = backend
        .users
        .get_many(&[bob.id, UserId::random(), ann.id])
        .await
        .unwrap();

    let mut found: Vec<_> = found.into_iter().map(|u| (u.username, u.deleted)).collect();
    found.sort();
    assert_eq!(found, [(ann.username, false), (bob.username, true)]);
}

async fn with_any_role_returns_every_live_holder_of_any_of_the_roles(backend: Backend) {
    let owner = sample::user("owner", &[Role::Owner]);
    let admin = sample::user("admin", &[Role::UserAdmin, Role::Member]);
    let member = sample::user("member", &[Role::Member]);
    let gone = sample::user("gone", &[Role::Owner]);
    for user in [&owner, &admin, &member, &gone] {
        backend.users.upsert(user).await.unwrap();
    }
    backend.users.delete(gone.id).await.unwrap();
    let usernames = |users: Vec<User>| {
        let mut names: Vec<_> = users.into_iter().map(|u| u.username.to_string()).collect();
        names.sort();
        names
    };

    let admins = BTreeSet::from([Role::Owner, Role::UserAdmin]);
    let found = backend.users.with_any_role(&admins).await.unwrap();
    assert_eq!(usernames(found), ["admin", "owner"]);
    let found = backend.users.with_any_role(&BTreeSet::new()).await.unwrap();
    assert!(found.is_empty());
}

async fn with_any_role_page_reads_the_live_holders_a_page_at_a_time_in_id_order(backend: Backend) {
    let mut holders: Vec<User> = (0..5)
        .map(|i| sample::user(&format!("owner{i}"), &[Role::Owner]))
        .collect();
    let member = sample::user("member", &[Role::Member]);
    let gone = sample::user("gone", &[Role::Owner]);
    for user in holders.iter().chain([&member, &gone]) {
        backend.users.upsert(user).await.unwrap();
    }
    backend.users.delete(gone.id).await.unwrap();
    holders.sort_by_key(|user| user.id);
    let owners = BTreeSet::from([Role::Owner]);

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = backend
            .users
            .with_any_role_page(&owners, after, 2)
            .await
            .unwrap();
        assert!(page.len() <= 2, "a page of {}", page.len());
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        pages.push(page);
        assert!(
            pages.len() <= holders.len(),
            "the pages never end: {pages:?}"
        );
    }

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(pages.concat(), holders);
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    an_upserted_user_reads_back_as_stored,
    upserting_again_replaces_the_user_with_that_id,
    another_users_username_or_email_is_a_conflict_whatever_its_case,
    delete_flags_the_user_and_reports_whether_a_live_user_existed,
    upserting_a_deleted_user_undeletes_it,
    a_deleted_user_recreated_with_the_same_id_does_not_get_their_tokens_back,
    a_deleted_users_username_and_email_may_be_taken_by_a_new_user,
    get_many_returns_the_known_users_with_deleted_ones_flagged,
    with_any_role_returns_every_live_holder_of_any_of_the_roles,
    with_any_role_page_reads_the_live_holders_a_page_at_a_time_in_id_order,
}
