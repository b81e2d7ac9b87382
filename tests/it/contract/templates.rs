//! The `TemplateStore` contract: the catalogue, names, and the admins' method overrides and
//! digest windows.

use herald_domain::catalogue::{self, CUSTOM_NOTIFICATION, WORKSPACE_DELETED};
use herald_domain::{DigestWindow, Method, Template, TemplateId};
use herald_tests::fixture::Backend;

async fn stored(backend: &Backend, id: TemplateId) -> Template {
    backend
        .templates
        .get(id)
        .await
        .unwrap()
        .expect("the template is stored")
}

async fn seed_catalogue(backend: &Backend) {
    backend
        .templates
        .seed(&catalogue::templates())
        .await
        .unwrap();
}

async fn the_catalogue_is_listed_by_group_then_name(backend: Backend) {
    seed_catalogue(&backend).await;

    let listed = backend.templates.list().await.unwrap();

    let mut expected = catalogue::templates();
    expected.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    assert_eq!(listed, expected);
    assert_eq!(
        backend.templates.get(TemplateId::random()).await.unwrap(),
        None
    );
}

async fn a_template_is_found_by_its_name_whatever_the_case(backend: Backend) {
    seed_catalogue(&backend).await;

    let found = backend
        .templates
        .find_by_name("workspace DELETED")
        .await
        .unwrap();

    assert_eq!(found.map(|t| t.id), Some(WORKSPACE_DELETED));
    assert_eq!(
        backend.templates.find_by_name("Workspace").await.unwrap(),
        None
    );
}

async fn a_method_override_is_set_and_cleared_reporting_each_change(backend: Backend) {
    seed_catalogue(&backend).await;
    let set = |method| {
        backend
            .templates
            .set_method_override(WORKSPACE_DELETED, method)
    };

    assert_eq!(set(Some(Method::Webhook)).await.unwrap(), Some(true));
    assert_eq!(
        stored(&backend, WORKSPACE_DELETED).await.method_override,
        Some(Method::Webhook)
    );
    assert_eq!(set(Some(Method::Webhook)).await.unwrap(), Some(false));
    assert_eq!(set(Some(Method::Inbox)).await.unwrap(), Some(true));
    assert_eq!(set(None).await.unwrap(), Some(true));
    assert_eq!(
        stored(&backend, WORKSPACE_DELETED).await.method_override,
        None
    );
    assert_eq!(set(None).await.unwrap(), Some(false));

    let unknown = backend
        .templates
        .set_method_override(TemplateId::random(), Some(Method::Smtp))
        .await
        .unwrap();
    assert_eq!(unknown, None);
}

async fn seeding_again_refreshes_the_texts_and_keeps_method_overrides(backend: Backend) {
    seed_catalogue(&backend).await;
    backend
        .templates
        .set_method_override(WORKSPACE_DELETED, Some(Method::Webhook))
        .await
        .unwrap();
    let reworded: Vec<_> = catalogue::templates()
        .into_iter()
        .map(|template| Template {
            title: format!("{} (reworded)", template.title),
            ..template
        })
        .collect();

    backend.templates.seed(&reworded).await.unwrap();

    let template = stored(&backend, WORKSPACE_DELETED).await;
    assert!(template.title.ends_with("(reworded)"), "{}", template.title);
    assert_eq!(template.method_override, Some(Method::Webhook));
}

async fn seeding_adds_templates_it_did_not_hold(backend: Backend) {
    seed_catalogue(&backend).await;
    let custom = catalogue::templates()
        .into_iter()
        .find(|t| t.id == CUSTOM_NOTIFICATION)
        .unwrap();
    let extra = Template {
        id: TemplateId::random(),
        name: "Deployment Upgraded".to_owned(),
        ..custom
    };

    backend
        .templates
        .seed(std::slice::from_ref(&extra))
        .await
        .unwrap();

    assert_eq!(stored(&backend, extra.id).await, extra);
    assert_eq!(
        backend.templates.list().await.unwrap().len(),
        catalogue::templates().len() + 1
    );
}

async fn a_digest_window_is_set_kept_across_seeds_and_cleared(backend: Backend) {
    seed_catalogue(&backend).await;
    let hour = DigestWindow::parse("1h").unwrap();
    let set = |window| {
        backend
            .templates
            .set_digest_window(WORKSPACE_DELETED, window)
    };

    assert_eq!(set(Some(hour)).await.unwrap(), Some(true));
    assert_eq!(set(Some(hour)).await.unwrap(), Some(false), "unchanged");
    seed_catalogue(&backend).await;
    assert_eq!(
        stored(&backend, WORKSPACE_DELETED).await.digest_window,
        Some(hour),
        "kept across a seed"
    );
    let listed = backend.templates.list().await.unwrap();
    let windows: Vec<_> = listed
        .iter()
        .filter(|t| t.digest_window.is_some())
        .map(|t| t.id)
        .collect();
    assert_eq!(windows, [WORKSPACE_DELETED]);
    assert_eq!(set(None).await.unwrap(), Some(true));
    assert_eq!(
        stored(&backend, WORKSPACE_DELETED).await.digest_window,
        None
    );
    assert_eq!(
        backend
            .templates
            .set_digest_window(TemplateId::random(), Some(hour))
            .await
            .unwrap(),
        None,
        "no such template"
    );
}

herald_tests::contract_suite! {
    backends: [memory, postgres, postgres_cached];
    a_digest_window_is_set_kept_across_seeds_and_cleared,
    the_catalogue_is_listed_by_group_then_name,
    a_template_is_found_by_its_name_whatever_the_case,
    a_method_override_is_set_and_cleared_reporting_each_change,
    seeding_again_refreshes_the_texts_and_keeps_method_overrides,
    seeding_adds_templates_it_did_not_hold,
}
