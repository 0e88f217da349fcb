//! Group commit for standalone log events (token grants, failed operations).
//!
//! Events that accompany a state change are written in that change's transaction by the store. The
//! others would each cost a durable commit; here concurrent requests' events are gathered and written
//! in one transaction (a few such transactions at once), and each request is answered only after its
//! event is committed — durable and cheap under load.

use roster_domain::TenantId;
use roster_domain::log::LogEvent;
use roster_store::{Store, StoreError};
use tokio::sync::{mpsc, oneshot};

type Reply = oneshot::Sender<Result<(), StoreError>>;

/// Most events written in one transaction.
const MAX_BATCH: usize = 512;

/// Most batches being written at once. One at a time, every request waited for the commit before it
/// plus its own (on PostgreSQL a network round trip and a WAL flush each); the database groups
/// concurrent commits itself (SQLite's writer thread batches what it receives).
const IN_FLIGHT: usize = 4;

#[derive(Clone)]
pub struct LogSink {
    tx: mpsc::Sender<(TenantId, LogEvent, Reply)>,
}

impl LogSink {
    pub fn start(store: Store) -> Self {
        let (tx, mut rx) = mpsc::channel::<(TenantId, LogEvent, Reply)>(4096);
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Wait for a free slot first, so that events arriving meanwhile join this batch.
                let Ok(slot) = slots.clone().acquire_owned().await else { return };
                let mut batch = Vec::with_capacity(MAX_BATCH);
                let mut replies = Vec::with_capacity(MAX_BATCH);
                let (t, ev, reply) = first;
                batch.push((t, ev));
                replies.push(reply);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok((t, ev, reply)) => {
                            batch.push((t, ev));
                            replies.push(reply);
                        }
                        Err(_) => break,
                    }
                }
                let store = store.clone();
                tokio::spawn(async move {
                    let result = store.append_logs(&batch).await;
                    drop(slot);
                    if let Err(e) = &result {
                        tracing::error!(error = ?e, events = batch.len(), "could not write log events");
                    }
                    for r in replies {
                        let _ = r.send(result.as_ref().map(|_| ()).map_err(StoreError::for_another_caller));
                    }
                });
            }
        });
        Self { tx }
    }

    /// Write one event; returns once it is committed.
    pub async fn record(&self, tenant: TenantId, event: LogEvent) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        let stopped = || StoreError::Config("log writer stopped".into());
        self.tx.send((tenant, event, reply)).await.map_err(|_| stopped())?;
        // A database that cannot be reached is told as such (503); the sink gone is a 500.
        rx.await.unwrap_or_else(|_| Err(stopped()))
    }
}
