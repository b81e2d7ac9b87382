//! [`CachedTemplates`]: the template catalogue kept in memory for a few seconds, so enqueueing
//! an event does not read its template from the store every time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use herald_domain::{DigestWindow, Method, Template, TemplateId};

use crate::ports::{Clock, StoreError, TemplateStore};

/// How long a read of the catalogue is reused without asking the store again.
///
/// On this replica, every change made through the cache (a method override, a seed) drops the
/// cached catalogue at once. Another replica's change is seen here at most this long after it
/// is made: until then an event may be queued with the method the template had before.
pub const TEMPLATE_CACHE_TTL: Duration = Duration::from_secs(5);

/// A [`TemplateStore`] that answers `get` and `find_by_name` from one read of the whole
/// catalogue (`list`), read again once it is older than the TTL. A template the cached catalogue
/// does not hold is asked of the store (it may be newer than the catalogue); writes go to the
/// store and drop the cached catalogue.
///
/// Build one per process and hand the same one to every use case that reads or changes
/// templates, so a change made here is seen here at once.
pub struct CachedTemplates {
    store: Arc<dyn TemplateStore>,
    clock: Arc<dyn Clock>,
    ttl: TimeDelta,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    catalogue: Option<Catalogue>,
    /// Moved on by every change, so a read that ran alongside one does not cache what it read
    /// before the change.
    generation: u64,
}

struct Catalogue {
    by_id: HashMap<TemplateId, Template>,
    /// Lower-cased name → id.
    by_name: HashMap<String, TemplateId>,
    read_at: DateTime<Utc>,
}

impl CachedTemplates {
    /// Caches `store`'s catalogue for `ttl` (with a zero `ttl`, every read asks the store).
    pub fn new(store: Arc<dyn TemplateStore>, clock: Arc<dyn Clock>, ttl: Duration) -> Self {
        Self {
            store,
            clock,
            ttl: TimeDelta::from_std(ttl).unwrap_or(TimeDelta::MAX),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No critical section leaves the state half-changed, so a poisoned lock's data is good.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `answer` from the cached catalogue, if it is fresh (`None` when there is none).
    fn cached<T>(&self, answer: impl FnOnce(&Catalogue) -> T) -> Option<T> {
        let now = self.clock.now();
        let state = self.lock();
        let catalogue = state.catalogue.as_ref()?;
        // A catalogue read "in the future" (the clock went back) is stale too.
        let age = now.signed_duration_since(catalogue.read_at);
        (age >= TimeDelta::zero() && age < self.ttl).then(|| answer(catalogue))
    }

    /// Reads the catalogue and caches it, unless something changed while it was read.
    async fn refresh(&self) -> Result<(), StoreError> {
        let generation = self.lock().generation;
        let read_at = self.clock.now();
        let templates = self.store.list().await?;
        let mut state = self.lock();
        if state.generation == generation {
            state.catalogue = Some(Catalogue {
                by_name: templates
                    .iter()
                    .map(|t| (t.name.to_lowercase(), t.id))
                    .collect(),
                by_id: templates.into_iter().map(|t| (t.id, t)).collect(),
                read_at,
            });
        }
        Ok(())
    }

    /// What `find` picks from a fresh catalogue (read again first if it is stale).
    async fn find_in_catalogue(
        &self,
        find: impl FnOnce(&Catalogue) -> Option<Template>,
    ) -> Result<Option<Template>, StoreError> {
        if self.cached(|_| ()).is_none() {
            self.refresh().await?;
        }
        Ok(self.cached(find).flatten())
    }

    fn forget(&self) {
        let mut state = self.lock();
        state.catalogue = None;
        state.generation += 1;
    }
}

#[async_trait]
impl TemplateStore for CachedTemplates {
    async fn seed(&self, catalogue: &[Template]) -> Result<(), StoreError> {
        let seeded = self.store.seed(catalogue).await;
        self.forget();
        seeded
    }

    async fn list(&self) -> Result<Vec<Template>, StoreError> {
        self.store.list().await
    }

    async fn get(&self, id: TemplateId) -> Result<Option<Template>, StoreError> {
        match self
            .find_in_catalogue(|catalogue| catalogue.by_id.get(&id).cloned())
            .await?
        {
            Some(template) => Ok(Some(template)),
            None => self.store.get(id).await,
        }
    }

    async fn find_by_name(&self, name: &str) -> Result<Option<Template>, StoreError> {
        let key = name.to_lowercase();
        let found = self
            .find_in_catalogue(|catalogue| {
                let id = catalogue.by_name.get(&key)?;
                catalogue.by_id.get(id).cloned()
            })
            .await?;
        match found {
            Some(template) => Ok(Some(template)),
            None => self.store.find_by_name(name).await,
        }
    }

    async fn set_method_override(
        &self,
        id: TemplateId,
        method: Option<Method>,
    ) -> Result<Option<bool>, StoreError> {
        let changed = self.store.set_method_override(id, method).await;
        self.forget();
        changed
    }

    async fn set_digest_window(
        &self,
        id: TemplateId,
        window: Option<DigestWindow>,
    ) -> Result<Option<bool>, StoreError> {
        let changed = self.store.set_digest_window(id, window).await;
        self.forget();
        changed
    }
}

impl std::fmt::Debug for CachedTemplates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedTemplates")
            .field("ttl", &self.ttl)
            .field("cached", &self.lock().catalogue.is_some())
            .finish_non_exhaustive()
    }
}
