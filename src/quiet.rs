//! Warnings a flood repeats, at most one line a second: the first at once,
//! then one per second that says how many were left out since. A flood of
//! refused binds or connections then costs the log a line a second, not a
//! line per refusal, and the count still tells how big it was.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

/// How long after a line the next one waits, in milliseconds.
const EVERY_MS: u64 = 1000;

/// One kind of repeated warning (a `static` per call site).
pub struct Every {
    /// When the last line was written, in ms since the process's first
    /// use of this module, plus one (0: never).
    last: AtomicU64,
    /// Occurrences left out since the last line.
    left_out: AtomicU64,
}

impl Every {
    pub const fn new() -> Every {
        Every {
            last: AtomicU64::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    /// `Some(left_out)` when this occurrence gets a line (with the number
    /// of occurrences left out since the previous line), `None` when it is
    /// only counted.
    pub fn line(&self) -> Option<u64> {
        self.line_at(now_ms())
    }

    fn line_at(&self, now: u64) -> Option<u64> {
        let stamp = now.saturating_add(1);
        let last = self.last.load(Ordering::Acquire);
        let due = last == 0 || stamp.saturating_sub(last) >= EVERY_MS;
        if due
            && self
                .last
                .compare_exchange(last, stamp, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            return Some(self.left_out.swap(0, Ordering::AcqRel));
        }
        self.left_out.fetch_add(1, Ordering::AcqRel);
        None
    }
}

impl Default for Every {
    fn default() -> Every {
        Every::new()
    }
}

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = START.get_or_init(Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_with_the_count_of_the_rest() {
        let w = Every::new();
        assert_eq!(w.line_at(0), Some(0), "the first at once");
        for t in [1, 10, 500, 998] {
            assert_eq!(w.line_at(t), None, "at {t} ms");
        }
        assert_eq!(w.line_at(1000), Some(4), "a second later, with the count");
        assert_eq!(w.line_at(1500), None);
        assert_eq!(w.line_at(5000), Some(1));
        assert_eq!(w.line_at(5001), None);
    }
}
