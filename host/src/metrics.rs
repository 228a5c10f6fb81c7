//! Broker-wide counters: what was refused, dropped or failed, for logs and
//! for tests that want to see that a refusal was counted.
//!
//! Plain relaxed atomics: counters are statistics, not synchronisation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;

/// One named counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn incr(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Every counter the broker keeps.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connections_accepted: Counter,
    pub connections_refused: Counter,
    pub protocol_errors: Counter,
    pub messages_received: Counter,
    pub messages_delivered: Counter,
    /// Publishes refused by the authorizer (anonymous publishes among them).
    pub publishes_refused: Counter,
    /// Wills refused by the authorizer (never stored, never sent).
    pub wills_refused: Counter,
    pub subscriptions_refused: Counter,
    /// QoS 0 messages dropped because a subscriber's queue was full.
    pub qos0_dropped: Counter,
    /// QoS 1/2 messages dropped because a session's queue was full.
    pub queued_dropped: Counter,
    /// Messages not sent because they exceed the client's Maximum Packet Size.
    pub oversize_dropped: Counter,
    /// Messages whose expiry passed before they could be sent.
    pub expired_dropped: Counter,
}

/// Lets a log line through at most once per interval; counts the rest.
#[derive(Debug)]
pub struct RateLimit {
    last: Mutex<Option<Instant>>,
    every: std::time::Duration,
    suppressed: AtomicU64,
}

impl RateLimit {
    pub fn new(every: std::time::Duration) -> RateLimit {
        RateLimit {
            last: Mutex::new(None),
            every,
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be logged now, `n` being how many were
    /// suppressed since the last one; `None` when this one is suppressed.
    pub fn check(&self) -> Option<u64> {
        let now = Instant::now();
        let mut last = self.last.lock();
        match *last {
            Some(at) if now.duration_since(at) < self.every => {
                self.suppressed.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.suppressed.swap(0, Ordering::Relaxed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_lets_one_through_per_interval_and_counts_the_rest() {
        let limit = RateLimit::new(std::time::Duration::from_secs(3600));
        assert_eq!(limit.check(), Some(0));
        assert_eq!(limit.check(), None);
        assert_eq!(limit.check(), None);
        assert_eq!(limit.suppressed.load(Ordering::Relaxed), 2);
    }
}
