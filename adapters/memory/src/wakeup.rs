use async_trait::async_trait;
use herald_application::ports::{StoreError, Wakeup, WakeupHub, WakeupListener};

/// Wake-ups within a single process: every listener subscribed here is woken.
#[derive(Debug, Default)]
pub struct MemoryWakeup {
    hub: WakeupHub,
}

impl MemoryWakeup {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Wakeup for MemoryWakeup {
    async fn wake(&self) -> Result<(), StoreError> {
        self.hub.wake_all();
        Ok(())
    }

    async fn wake_resumed(&self) -> Result<(), StoreError> {
        self.hub.wake_all_resumed();
        Ok(())
    }

    fn subscribe(&self) -> WakeupListener {
        self.hub.subscribe()
    }
}
