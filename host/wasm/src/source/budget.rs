//! A per-second budget for log lines about one source, so that a guest in
//! a tight loop (logging, publishing outside its prefix, connecting where
//! it may not) cannot flood the host's log. Lines over the budget are
//! counted, and the count rides on the next line that is written.

use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct LogBudget {
    per_window: u32,
    window_start: Option<Instant>,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    pub(crate) fn new(per_second: u32) -> Self {
        LogBudget {
            per_window: per_second,
            window_start: None,
            used: 0,
            suppressed: 0,
        }
    }

    /// `Some(n)` if a line may be written now, `n` being how many were
    /// suppressed since the last written one; `None` if this line must be
    /// dropped (it is counted).
    pub(crate) fn take(&mut self) -> Option<u64> {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> Option<u64> {
        match self.window_start {
            Some(start) if now.duration_since(start) < WINDOW => {}
            _ => {
                self.window_start = Some(now);
                self.used = 0;
            }
        }
        if self.used >= self.per_window {
            self.suppressed += 1;
            return None;
        }
        self.used += 1;
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_over_the_budget_are_counted_and_reported_in_the_next_window() {
        let mut b = LogBudget::new(2);
        let t0 = Instant::now();
        assert_eq!(b.take_at(t0), Some(0));
        assert_eq!(b.take_at(t0), Some(0));
        assert_eq!(b.take_at(t0), None);
        assert_eq!(b.take_at(t0 + Duration::from_millis(500)), None);
        assert_eq!(b.take_at(t0 + Duration::from_millis(1001)), Some(2));
        assert_eq!(b.take_at(t0 + Duration::from_millis(1002)), Some(0));
    }
}
