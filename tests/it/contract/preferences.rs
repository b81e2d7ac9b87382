//! The `PreferenceStore` contract: exactly the stored rows, per template and per method, with
//! the time each was written; and (PostgreSQL) rows written before per-method rows existed
//! keeping their meaning across the migration.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use herald_application::ports::{PreferenceChange, TemplatePreferences};
use herald_domain::catalogue::{TASK_IDLE, WORKSPACE_CREATED, WORKSPACE_DELETED};
use herald_domain::{Method, PreferenceScope, StoredPreference, TemplateId, UserId};
use herald_tests::fixture::Backend;

const ALL: PreferenceScope = PreferenceScope::AllMethods;
const SMTP: PreferenceScope = PreferenceScope::Method(Method::Smtp);
const INBOX: PreferenceScope = PreferenceScope::Method(Method::Inbox);

fn store(template: TemplateId, scope: PreferenceScope, disabled: bool) -> PreferenceChange {
    PreferenceChange {
        template,
        scope,
        disabled: Some(disabled),
    }
}

fn remove(template: TemplateId, scope: PreferenceScope) -> PreferenceChange {
    PreferenceChange {
        template,
        scope,
        disabled: None,
    }
}

/// A time PostgreSQL stores exactly (microseconds).
fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_780_000_000 + seconds, 0).unwrap()
}

async fn a_user_without_rows_has_no_preferences(backend: Backend) {
    let rows = backend
        .preferences
        .for_user(UserId::random())
        .await
        .unwrap();
    assert!(rows.is_empty());
}

async fn set_stores_all_methods_and_method_rows_and_keeps_the_others(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let first = [
        store(WORKSPACE_DELETED, ALL, true),
        store(WORKSPACE_DELETED, INBOX, false),
        store(WORKSPACE_CREATED, SMTP, false),
    ];
    backend.preferences.set(ann, &first, at(0)).await.unwrap();
    let bobs = [store(TASK_IDLE, ALL, true)];
    backend.preferences.set(bob, &bobs, at(0)).await.unwrap();

    let second = [
        store(WORKSPACE_DELETED, ALL, false),
        store(TASK_IDLE, SMTP, true),
    ];
    backend.preferences.set(ann, &second, at(60)).await.unwrap();

    let none = StoredPreference::default();
    let expected = BTreeMap::from([
        (
            WORKSPACE_DELETED,
            TemplatePreferences {
                stored: none.with(ALL, false).with(INBOX, false),
                updated_at: at(60),
            },
        ),
        (
            WORKSPACE_CREATED,
            TemplatePreferences {
                stored: none.with(SMTP, false),
                updated_at: at(0),
            },
        ),
        (
            TASK_IDLE,
            TemplatePreferences {
                stored: none.with(SMTP, true),
                updated_at: at(60),
            },
        ),
    ]);
    assert_eq!(backend.preferences.for_user(ann).await.unwrap(), expected);
    let bobs = backend.preferences.for_user(bob).await.unwrap();
    assert_eq!(
        bobs,
        BTreeMap::from([(
            TASK_IDLE,
            TemplatePreferences {
                stored: none.with(ALL, true),
                updated_at: at(0),
            }
        )])
    );
}

async fn set_removes_the_rows_it_gives_no_flag_and_forgets_a_template_left_without_rows(
    backend: Backend,
) {
    let ann = UserId::random();
    let rows = [
        store(WORKSPACE_DELETED, ALL, true),
        store(WORKSPACE_DELETED, SMTP, false),
        store(WORKSPACE_CREATED, INBOX, false),
    ];
    backend.preferences.set(ann, &rows, at(0)).await.unwrap();

    let changes = [
        remove(WORKSPACE_DELETED, SMTP),
        remove(WORKSPACE_DELETED, INBOX), // never stored: nothing happens
        remove(WORKSPACE_CREATED, INBOX),
    ];
    backend
        .preferences
        .set(ann, &changes, at(30))
        .await
        .unwrap();

    let left = backend.preferences.for_user(ann).await.unwrap();
    assert_eq!(
        left,
        BTreeMap::from([(
            WORKSPACE_DELETED,
            TemplatePreferences {
                stored: StoredPreference::default().with(ALL, true),
                updated_at: at(0),
            }
        )])
    );
    backend.preferences.set(ann, &[], at(90)).await.unwrap();
    assert_eq!(backend.preferences.for_user(ann).await.unwrap(), left);
}

async fn lookup_returns_every_row_of_the_pairs_that_have_any(backend: Backend) {
    let (ann, bob) = (UserId::random(), UserId::random());
    let rows = [
        store(WORKSPACE_DELETED, ALL, true),
        store(WORKSPACE_DELETED, SMTP, false),
        store(WORKSPACE_CREATED, INBOX, false),
    ];
    backend.preferences.set(ann, &rows, at(0)).await.unwrap();
    let bobs = [store(TASK_IDLE, ALL, false)];
    backend.preferences.set(bob, &bobs, at(0)).await.unwrap();

    let found = backend
        .preferences
        .lookup(&[
            (ann, WORKSPACE_DELETED),
            (ann, WORKSPACE_CREATED),
            (ann, TASK_IDLE),
            (bob, WORKSPACE_DELETED),
        ])
        .await
        .unwrap();

    let none = StoredPreference::default();
    let expected = HashMap::from([
        (
            (ann, WORKSPACE_DELETED),
            none.with(ALL, true).with(SMTP, false),
        ),
        ((ann, WORKSPACE_CREATED), none.with(INBOX, false)),
    ]);
    assert_eq!(found, expected);
    assert!(backend.preferences.lookup(&[]).await.unwrap().is_empty());
}

herald_tests::contract_suite! {
    backends: [memory, postgres];
    a_user_without_rows_has_no_preferences,
    set_stores_all_methods_and_method_rows_and_keeps_the_others,
    set_removes_the_rows_it_gives_no_flag_and_forgets_a_template_left_without_rows,
    lookup_returns_every_row_of_the_pairs_that_have_any,
}

/// `migrations/0008_preferences_per_method.sql` on a database holding rows of the earlier
/// shape (user, template) → disabled.
mod migration {
    use std::path::{Path, PathBuf};

    use herald_application::ports::{PreferenceStore, TemplateStore};
    use herald_domain::catalogue;
    use herald_domain::{Method, is_enabled};
    use herald_tests::postgres::TestDatabase;
    use sqlx::migrate::Migrator;

    use super::*;

    /// The first migration giving preferences a method.
    const PER_METHOD: &str = "0008_";

    /// A directory holding the migrations before [`PER_METHOD`], removed when dropped.
    struct EarlierMigrations(PathBuf);

    impl EarlierMigrations {
        fn copy() -> Self {
            let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
            let target = std::env::temp_dir().join(format!(
                "herald-migrations-{}",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::create_dir(&target).unwrap();
            let mut copied = 0;
            for entry in std::fs::read_dir(&source).unwrap() {
                let name = entry.unwrap().file_name();
                let name = name.to_str().unwrap();
                if name.ends_with(".sql") && name < PER_METHOD {
                    std::fs::copy(source.join(name), target.join(name)).unwrap();
                    copied += 1;
                }
            }
            assert_eq!(copied, 7, "migrations 0001 to 0007");
            Self(target)
        }
    }

    impl Drop for EarlierMigrations {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_written_before_per_method_preferences_keep_their_meaning() {
        let database = TestDatabase::create_empty().await;
        let earlier = EarlierMigrations::copy();
        let migrator = Migrator::new(earlier.0.as_path()).await.unwrap();
        migrator.run(database.store.pool()).await.unwrap();
        database.store.seed(&catalogue::templates()).await.unwrap();

        // The earlier shape: one row per (user, template), no method.
        let (ann, bob) = (UserId::random(), UserId::random());
        let written = at(0);
        for (user, template, disabled) in [
            (ann, WORKSPACE_DELETED, true),
            (ann, WORKSPACE_CREATED, false),
            (bob, WORKSPACE_DELETED, false),
        ] {
            sqlx::query(
                "INSERT INTO preferences (user_id, template_id, disabled, updated_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(user.as_uuid())
            .bind(template.as_uuid())
            .bind(disabled)
            .bind(written)
            .execute(database.store.pool())
            .await
            .unwrap();
        }

        database.store.migrate().await.unwrap();

        let pg = &database.store;
        let none = StoredPreference::default();
        let found = pg
            .lookup(&[
                (ann, WORKSPACE_DELETED),
                (ann, WORKSPACE_CREATED),
                (bob, WORKSPACE_DELETED),
            ])
            .await
            .unwrap();
        let expected = HashMap::from([
            ((ann, WORKSPACE_DELETED), none.with(ALL, true)),
            ((ann, WORKSPACE_CREATED), none.with(ALL, false)),
            ((bob, WORKSPACE_DELETED), none.with(ALL, false)),
        ]);
        assert_eq!(found, expected, "old rows became all-methods rows");
        let anns = pg.for_user(ann).await.unwrap();
        assert_eq!(anns[&WORKSPACE_DELETED].updated_at, written);

        // What each old row decided before, it decides for every method now.
        for ((_, template), stored) in &found {
            let template = pg.get(*template).await.unwrap().unwrap();
            let before = !stored.disabled(ALL).unwrap();
            for method in Method::ALL {
                assert_eq!(
                    is_enabled(template.enabled_by_default, stored, method),
                    before,
                    "{} by {method}",
                    template.name
                );
            }
        }

        // And a method row can now sit beside an old row.
        pg.set(ann, &[store(WORKSPACE_DELETED, INBOX, false)], at(60))
            .await
            .unwrap();
        let anns = pg.for_user(ann).await.unwrap();
        assert_eq!(
            anns[&WORKSPACE_DELETED].stored,
            none.with(ALL, true).with(INBOX, false)
        );
        assert_eq!(anns[&WORKSPACE_DELETED].updated_at, at(60));
    }
}
