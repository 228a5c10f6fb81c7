//! Server shutdown as a small type handed to every task, as mini-redis does:
//! the signal handler triggers it once, every connection and accept loop
//! watches it.

use tokio::sync::watch;

/// Triggers shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

/// Watches for shutdown; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A trigger and its first watcher.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Tells every watcher to stop.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

impl Shutdown {
    /// Resolves when shutdown is triggered (at once if it already was).
    pub async fn triggered(&mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
