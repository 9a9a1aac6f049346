//! Counters that hand out values outside the caller's transaction (sequences). A node
//! reserves a block of values from a replicated counter in a commit of its own and hands them
//! out from memory, so no value is ever handed out twice (across nodes and restarts), while a
//! rollback does not give values back and a restart skips the rest of a block: PostgreSQL's
//! sequences behave the same way.

use super::{lock, Mvcc};
use crate::error::{Error, Result};
use std::sync::Arc;

/// A block of values: `next`, `next + step`, … up to and including `last`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CounterBlock {
    pub next: i64,
    pub last: i64,
    pub step: i64,
}

impl CounterBlock {
    /// The next value of the block, if any is left.
    fn take(&mut self) -> Option<i64> {
        if self.step == 0 || (self.step > 0 && self.next > self.last) || (self.step < 0 && self.next < self.last) {
            return None;
        }
        let value = self.next;
        match value.checked_add(self.step) {
            Some(next) => self.next = next,
            // Past the end of i64: nothing is left after this value.
            None => self.step = 0,
        }
        Some(value)
    }
}

/// Computes a counter's new stored value from the stored one (None before the first), with
/// what the caller gets out of it.
pub type CounterUpdate<'a, T> = dyn Fn(Option<&[u8]>) -> Result<(T, Vec<u8>)> + 'a;

/// Reservation commits tried before giving up on conflicts.
const ATTEMPTS: usize = 20;

impl Mvcc {
    /// The next value of the counter stored at `key`, from this node's block. When the block
    /// is used up, `reserve` gets the stored counter (None before the first reservation) and
    /// returns the next block and the counter to store in its place, which a transaction of
    /// its own commits (again on a conflict with another node's reservation).
    pub fn next_counter_value(self: &Arc<Self>, key: &[u8], reserve: &CounterUpdate<CounterBlock>) -> Result<i64> {
        let mut blocks = lock(&self.counters);
        if let Some(value) = blocks.get_mut(key).and_then(CounterBlock::take) {
            return Ok(value);
        }
        let mut block = self.commit_counter(key, reserve)?;
        let value = block.take().ok_or_else(|| Error::Internal("an empty block of counter values".into()))?;
        blocks.insert(key.to_vec(), block);
        Ok(value)
    }

    /// Stores `value` as the counter at `key` in a commit of its own, and drops this node's
    /// block of it.
    pub fn set_counter(self: &Arc<Self>, key: &[u8], value: Vec<u8>) -> Result<()> {
        let mut blocks = lock(&self.counters);
        blocks.remove(key);
        self.commit_counter(key, &|_| Ok(((), value.clone())))
    }

    /// Drops this node's block of the counter at `key` (it was removed or redefined).
    pub fn forget_counter(&self, key: &[u8]) {
        lock(&self.counters).remove(key);
    }

    fn commit_counter<T>(self: &Arc<Self>, key: &[u8], update: &CounterUpdate<T>) -> Result<T> {
        for _ in 0..ATTEMPTS {
            let mut txn = self.begin_read()?;
            let stored = txn.get(key)?;
            let (out, new) = update(stored.as_deref())?;
            txn.set(key.to_vec(), new);
            match txn.commit() {
                Ok(_) => return Ok(out),
                Err(Error::Serialization(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Serialization("could not reserve counter values: too many concurrent reservations".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_hand_out_each_value_once_and_stop_at_the_end() {
        let mut up = CounterBlock { next: 1, last: 3, step: 1 };
        assert_eq!((up.take(), up.take(), up.take(), up.take()), (Some(1), Some(2), Some(3), None));
        let mut down = CounterBlock { next: -1, last: -5, step: -2 };
        assert_eq!((down.take(), down.take(), down.take(), down.take()), (Some(-1), Some(-3), Some(-5), None));
        let mut edge = CounterBlock { next: i64::MAX - 1, last: i64::MAX, step: 1 };
        assert_eq!((edge.take(), edge.take(), edge.take()), (Some(i64::MAX - 1), Some(i64::MAX), None));
    }
}
