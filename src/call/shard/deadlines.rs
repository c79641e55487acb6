//! [`Deadlines`]: when each call of a shard next needs its timeout handled,
//! ordered so the shard finds the due ones without looking at the rest.
//!
//! A call's deadline moves only when its media's next timeout moves, which
//! most packets leave as it is; moving one costs a removal and an
//! insertion in an ordered set.

use std::collections::BTreeSet;
use std::time::Instant;

/// See the module documentation. Calls are named by their slot.
#[derive(Debug, Default)]
pub struct Deadlines {
    order: BTreeSet<(Instant, usize)>,
    /// Each slot's deadline in `order`.
    by_slot: Vec<Option<Instant>>,
}

impl Deadlines {
    /// Sets `slot`'s deadline to `at`.
    pub fn set(&mut self, slot: usize, at: Instant) {
        if self.by_slot.len() <= slot {
            self.by_slot.resize(slot + 1, None);
        }
        match self.by_slot[slot] {
            Some(current) if current == at => return,
            Some(current) => {
                self.order.remove(&(current, slot));
            }
            None => {}
        }
        self.order.insert((at, slot));
        self.by_slot[slot] = Some(at);
    }

    /// Forgets `slot`'s deadline.
    pub fn clear(&mut self, slot: usize) {
        if let Some(current) = self.by_slot.get_mut(slot).and_then(Option::take) {
            self.order.remove(&(current, slot));
        }
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Instant> {
        self.order.first().map(|&(at, _)| at)
    }

    /// Takes the earliest slot whose deadline is at or before `now`; its
    /// deadline is cleared until set again.
    pub fn pop_due(&mut self, now: Instant) -> Option<usize> {
        let &(at, slot) = self.order.first()?;
        if at > now {
            return None;
        }
        self.order.pop_first();
        self.by_slot[slot] = None;
        Some(slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_slots_come_out_earliest_first_and_moved_deadlines_count_once() {
        let start = Instant::now();
        let ms = |n| start + Duration::from_millis(n);
        let mut deadlines = Deadlines::default();
        deadlines.set(3, ms(30));
        deadlines.set(1, ms(10));
        deadlines.set(2, ms(20));
        deadlines.set(3, ms(5));
        deadlines.set(2, ms(20));
        deadlines.clear(1);
        assert_eq!(deadlines.next(), Some(ms(5)));
        assert_eq!(deadlines.pop_due(ms(25)), Some(3));
        assert_eq!(deadlines.pop_due(ms(25)), Some(2));
        assert_eq!(deadlines.pop_due(ms(25)), None, "slot 1 was cleared");
        assert_eq!(deadlines.next(), None);
        deadlines.set(2, ms(40));
        assert_eq!(deadlines.pop_due(ms(39)), None);
        assert_eq!(deadlines.pop_due(ms(40)), Some(2));
    }
}
