//! The memory budget of one statement.
//!
//! Operators that hold rows (sorts, hash tables, DISTINCT and set-operation sets, aggregate
//! groups, window partitions, the inputs of joins and writes, materialized results) take a
//! [`Reservation`] and grow it by each row's approximate size; the reservation gives the bytes
//! back when the operator is done with them. Past the statement's limit the statement fails
//! with 53200 (out_of_memory) instead of the process running out of memory. Streamed results
//! are not held, so they do not count.

use crate::error::{Error, Result};
use crate::types::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A statement's memory gauge and its limit.
#[derive(Clone, Debug)]
pub struct Memory {
    used: Arc<AtomicUsize>,
    limit: usize,
}

impl Memory {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self { used: Arc::new(AtomicUsize::new(0)), limit }
    }

    /// A reservation of nothing yet, released when dropped.
    pub fn reserve(&self) -> Reservation {
        Reservation { memory: self.clone(), bytes: 0 }
    }

    /// Bytes held now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// Bytes an operator holds against its statement's [`Memory`].
#[derive(Debug)]
pub struct Reservation {
    memory: Memory,
    bytes: usize,
}

impl Reservation {
    /// Holds `bytes` more; 53200 if that takes the statement past its limit.
    pub fn grow(&mut self, bytes: usize) -> Result<()> {
        let used = self.memory.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.bytes += bytes;
        if used > self.memory.limit {
            return Err(Error::OutOfMemory(format!(
                "out of memory: the statement needs more than its limit of {} MB (chronos statement memory)",
                self.memory.limit >> 20
            )));
        }
        Ok(())
    }

    /// The budget this reservation draws on.
    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// Holds one more row.
    pub fn add_row(&mut self, row: &[Value]) -> Result<()> {
        self.grow(row_bytes(row))
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.memory.used.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// The approximate size of a row in memory.
pub fn row_bytes(row: &[Value]) -> usize {
    std::mem::size_of::<Vec<Value>>() + row.iter().map(Value::approx_bytes).sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_fail_past_the_limit_and_give_back_on_drop() {
        let memory = Memory::new(1000);
        let mut a = memory.reserve();
        a.grow(600).unwrap();
        let mut b = memory.reserve();
        let err = b.grow(500).unwrap_err();
        assert_eq!(err.sqlstate(), "53200");
        drop(b);
        assert_eq!(memory.used(), 600);
        drop(a);
        assert_eq!(memory.used(), 0);
        memory.reserve().grow(1000).unwrap();
    }
}
