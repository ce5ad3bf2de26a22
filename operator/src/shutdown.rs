//! The graceful-shutdown signal every long-running task watches (controllers, scheduler,
//! caches, endpoints): `run` owns the [`ShutdownTrigger`] and pulls it on SIGTERM/SIGINT or when
//! leadership ends; workers hold a [`Shutdown`] and stop when it fires.

use tokio::sync::watch;

/// The graceful-shutdown signal, shared by every task.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// Triggers a [`Shutdown`].
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

impl Shutdown {
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger { tx }, Shutdown { rx })
    }

    /// Resolves once shutdown was requested (or its trigger was dropped).
    pub async fn wait(mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    pub fn is_requested(&self) -> bool {
        *self.rx.borrow()
    }
}

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}
