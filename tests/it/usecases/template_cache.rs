//! The template cache: events read the catalogue once per TTL, changes made through the cache
//! apply at once, changes made elsewhere once the TTL has passed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use herald_application::ports::{StoreError, TemplateStore};
use herald_application::templates::TEMPLATE_CACHE_TTL;
use herald_application::{CachedTemplates, DefaultMethod, Event, EventPorts, Events, Templates};
use herald_domain::catalogue::{self, WORKSPACE_DELETED};
use herald_domain::{Method, Template, TemplateId};
use herald_memory::MemoryStore;
use tokio::sync::Semaphore;

use herald_tests::fixture::within;

use super::support::{Harness, until_idle};

/// The harness's store as a `TemplateStore` that counts its reads and can hold `list` after
/// it has read (so a change can land while a stale catalogue is on its way back).
#[derive(Debug)]
struct CountingTemplates {
    inner: MemoryStore,
    reads: AtomicUsize,
    hold_lists: bool,
    gate: Semaphore,
}

impl CountingTemplates {
    fn over(inner: MemoryStore) -> Arc<Self> {
        Self::new(inner, false)
    }

    fn holding_lists(inner: MemoryStore) -> Arc<Self> {
        Self::new(inner, true)
    }

    fn new(inner: MemoryStore, hold_lists: bool) -> Arc<Self> {
        Arc::new(Self {
            inner,
            reads: AtomicUsize::new(0),
            hold_lists,
            gate: Semaphore::new(0),
        })
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl TemplateStore for CountingTemplates {
    async fn seed(&self, catalogue: &[Template]) -> Result<(), StoreError> {
        self.inner.seed(catalogue).await
    }

    async fn list(&self) -> Result<Vec<Template>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let listed = self.inner.list().await;
        if self.hold_lists {
            self.gate.acquire().await.unwrap().forget();
        }
        listed
    }

    async fn get(&self, id: TemplateId) -> Result<Option<Template>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(id).await
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<Template>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.find_by_name(name).await
    }

    async fn set_method_override(
        &self,
        id: TemplateId,
        method: Option<Method>,
    ) -> Result<Option<bool>, StoreError> {
        self.inner.set_method_override(id, method).await
    }

    async fn set_digest_window(
        &self,
        id: TemplateId,
        window: Option<herald_domain::DigestWindow>,
    ) -> Result<Option<bool>, StoreError> {
        self.inner.set_digest_window(id, window).await
    }
}

fn cache_over(h: &Harness, store: Arc<CountingTemplates>) -> Arc<CachedTemplates> {
    Arc::new(CachedTemplates::new(
        store,
        Arc::new(h.clock.clone()),
        TEMPLATE_CACHE_TTL,
    ))
}

/// Webhook (the default) and SMTP configured, no inbox: one message per event.
fn webhook_and_smtp() -> Harness {
    Harness::with_methods(DefaultMethod::Webhook, &[Method::Webhook, Method::Smtp])
}

fn events_over(h: &Harness, templates: Arc<CachedTemplates>) -> Events {
    h.events_over(EventPorts {
        templates,
        ..h.event_ports()
    })
}

fn workspace_deleted(subject: &herald_domain::User, name: &str) -> Event {
    let mut event = Event::new(WORKSPACE_DELETED);
    event.subject = Some(subject.id);
    event.labels.insert("name".into(), name.into());
    event
}

async fn method_of_next_event(h: &Harness, events: &Events, name: &str) -> Method {
    let user = h.user(name, &[]).await;
    let queued = events
        .enqueue(workspace_deleted(&user, name))
        .await
        .unwrap();
    assert_eq!(queued.message_ids.len(), 1);
    h.message(queued.message_ids[0]).await.method
}

#[tokio::test]
async fn events_read_the_catalogue_once_per_ttl() {
    let h = webhook_and_smtp();
    let store = CountingTemplates::over(h.store.clone());
    let events = events_over(&h, cache_over(&h, store.clone()));
    let user = h.user("u", &[]).await;

    for n in 0..3 {
        events
            .enqueue(workspace_deleted(&user, &format!("ws-{n}")))
            .await
            .unwrap();
    }
    assert_eq!(store.reads(), 1, "three events, one read of the catalogue");

    h.clock.advance(ttl());
    events
        .enqueue(workspace_deleted(&user, "later"))
        .await
        .unwrap();
    assert_eq!(store.reads(), 2, "read again once the TTL has passed");
}

#[tokio::test]
async fn a_method_override_set_on_this_replica_applies_to_the_next_event() {
    let h = webhook_and_smtp();
    let cache = cache_over(&h, CountingTemplates::over(h.store.clone()));
    let events = events_over(&h, cache.clone());
    let templates = Templates::new(cache, h.services.delivery().clone());
    assert_eq!(
        method_of_next_event(&h, &events, "a").await,
        Method::Webhook
    );

    templates
        .set_method(WORKSPACE_DELETED, Some(Method::Smtp))
        .await
        .unwrap();

    assert_eq!(method_of_next_event(&h, &events, "b").await, Method::Smtp);
}

#[tokio::test]
async fn a_method_override_set_on_another_replica_applies_once_the_ttl_has_passed() {
    let h = webhook_and_smtp();
    let events = events_over(&h, cache_over(&h, CountingTemplates::over(h.store.clone())));
    assert_eq!(
        method_of_next_event(&h, &events, "a").await,
        Method::Webhook
    );

    // Another replica writes to the shared store, not through this cache.
    h.store
        .set_method_override(WORKSPACE_DELETED, Some(Method::Smtp))
        .await
        .unwrap();
    h.clock.advance(ttl() / 2);
    assert_eq!(
        method_of_next_event(&h, &events, "b").await,
        Method::Webhook,
        "within the TTL the cached catalogue answers"
    );

    h.clock.advance(ttl() / 2);
    assert_eq!(method_of_next_event(&h, &events, "c").await, Method::Smtp);
}

#[tokio::test]
async fn a_template_the_cached_catalogue_lacks_is_asked_of_the_store() {
    let h = webhook_and_smtp();
    let store = CountingTemplates::over(h.store.clone());
    let cache = cache_over(&h, store.clone());
    assert!(cache.get(WORKSPACE_DELETED).await.unwrap().is_some());

    // Seeded by a newer replica after this one read the catalogue.
    let custom = catalogue::templates()
        .into_iter()
        .find(|t| t.id == catalogue::CUSTOM_NOTIFICATION)
        .unwrap();
    let newer = Template {
        id: TemplateId::random(),
        name: "Deployment Upgraded".to_owned(),
        ..custom
    };
    h.store.seed(std::slice::from_ref(&newer)).await.unwrap();

    assert_eq!(cache.get(newer.id).await.unwrap(), Some(newer.clone()));
    assert_eq!(
        cache.find_by_name("deployment upgraded").await.unwrap(),
        Some(newer)
    );
    assert_eq!(
        cache
            .find_by_name("WORKSPACE DELETED")
            .await
            .unwrap()
            .map(|t| t.id),
        Some(WORKSPACE_DELETED),
        "names are found whatever the case, from the cache"
    );
    assert_eq!(
        store.reads(),
        3,
        "one catalogue read, then one read for each name or id it lacked"
    );
}

#[tokio::test(start_paused = true)]
async fn a_catalogue_read_while_a_change_was_made_here_is_not_kept() {
    let h = webhook_and_smtp();
    let store = CountingTemplates::holding_lists(h.store.clone());
    let cache = cache_over(&h, store.clone());

    // A read of the catalogue gets the old texts and is held on its way back…
    let reading = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.get(WORKSPACE_DELETED).await })
    };
    within("the catalogue read reaching the store", async {
        while store.reads() == 0 {
            until_idle().await;
        }
    })
    .await;
    // …while an override is set through the cache.
    cache
        .set_method_override(WORKSPACE_DELETED, Some(Method::Smtp))
        .await
        .unwrap();
    store.gate.add_permits(1);
    let read = reading.await.unwrap().unwrap().unwrap();
    assert_eq!(
        read.method_override,
        Some(Method::Smtp),
        "the stale catalogue was not used"
    );
    until_idle().await;

    store.gate.add_permits(1);
    let again = cache.get(WORKSPACE_DELETED).await.unwrap().unwrap();
    assert_eq!(
        again.method_override,
        Some(Method::Smtp),
        "nor kept for the next read"
    );
}

fn ttl() -> chrono::Duration {
    chrono::Duration::from_std(TEMPLATE_CACHE_TTL).unwrap()
}
