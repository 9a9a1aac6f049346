//! Storage: an ordered key-value store with atomic batches and explicit durability.
//!
//! Everything ChronosDB keeps on disk goes through the [`Storage`] trait: MVCC row versions,
//! index entries, the catalog, metadata. The trait is deliberately small (point reads, ordered
//! scans, atomic batches, flush) so that engines are easy to swap and to test: [`sled::SledStorage`]
//! is the durable engine, [`memory::MemoryStorage`] serves unit tests of the layers above.
//!
//! Promises: a batch is applied atomically (all of it or none of it survives a crash), writes
//! survive a crash in the order they were made (what survives is a prefix of them), scans
//! return keys in byte order, and after [`Storage::flush`] returns every write made before it
//! is durable. Nothing is durable before a flush: callers that acknowledge writes must flush.
//!
//! [`keycode`] encodes values into byte strings whose order is the values' order, and [`rowcodec`]
//! encodes rows compactly (LZ4-compressed when that is smaller).

pub mod keycode;
pub mod keyspace;
pub mod memory;
pub mod rowcodec;
pub mod sled;
pub mod varint;

use crate::error::{Error, Result};
use std::ops::Bound;

/// One key-value pair from a scan.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// An iterator over a key range, in key order (and reversible).
pub type ScanIterator<'a> = Box<dyn DoubleEndedIterator<Item = Result<KeyValue>> + Send + 'a>;

/// A visitor of key-value pairs; returns false to stop the scan.
pub type Visitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// A set of writes applied atomically.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StorageBatch {
    /// `(key, Some(value))` puts, `(key, None)` deletes, applied in order.
    pub ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl StorageBatch {
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push((key, Some(value)));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.ops.push((key, None));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// An ordered, durable key-value store.
pub trait Storage: Send + Sync {
    /// The value of `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Pairs with keys in `range`, in key order.
    fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> ScanIterator<'_>;

    /// Applies every write of `batch`, atomically.
    fn apply(&self, batch: StorageBatch) -> Result<()>;

    /// Makes every applied batch durable.
    fn flush(&self) -> Result<()>;

    /// The error that made this storage unusable (a full disk, an I/O error, corruption),
    /// once any operation has met one; the node stops on it.
    fn failure(&self) -> Option<Error> {
        None
    }

    /// Makes `writes` in order, not atomically: after a crash a prefix of them survives. For
    /// callers that can redo a torn sequence (Raft's apply, whose log holds the batch and
    /// whose applied index is the last write); engines make it cheaper than [`Storage::apply`]
    /// where atomicity costs (sled writes out its log buffer around every atomic batch).
    fn apply_in_order(&self, writes: &mut dyn Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        self.apply(StorageBatch { ops: writes.collect() })
    }

    /// Calls `f` with each pair in `range`, in key order, until it returns false. Engines
    /// override this to hand out their own buffers instead of copies.
    fn scan_with(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>), f: &mut Visitor) -> Result<()> {
        for item in self.scan(range) {
            let (k, v) = item?;
            if !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    /// Pairs whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> ScanIterator<'_> {
        let start = Bound::Included(prefix.to_vec());
        let end = match prefix_end(prefix) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        self.scan((start, end))
    }

    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        let mut batch = StorageBatch::default();
        batch.put(key, value);
        self.apply(batch)
    }

    fn delete(&self, key: Vec<u8>) -> Result<()> {
        let mut batch = StorageBatch::default();
        batch.delete(key);
        self.apply(batch)
    }
}

/// The smallest key greater than every key with this prefix, or `None` if there is none.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The behaviour every engine must have; run against each engine.
    pub fn check_engine(storage: &dyn Storage) {
        storage.put(b"b".to_vec(), b"2".to_vec()).unwrap();
        storage.put(b"a".to_vec(), b"1".to_vec()).unwrap();
        storage.put(b"c".to_vec(), b"3".to_vec()).unwrap();
        storage.put(b"ca".to_vec(), b"4".to_vec()).unwrap();
        assert_eq!(storage.get(b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(storage.get(b"z").unwrap(), None);

        let keys: Vec<Vec<u8>> = storage.scan_prefix(b"c").map(|r| r.unwrap().0).collect();
        assert_eq!(keys, vec![b"c".to_vec(), b"ca".to_vec()]);
        let rev: Vec<Vec<u8>> = storage
            .scan((Bound::Included(b"a".to_vec()), Bound::Excluded(b"c".to_vec())))
            .rev()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(rev, vec![b"b".to_vec(), b"a".to_vec()]);

        let mut batch = StorageBatch::default();
        batch.delete(b"a".to_vec());
        batch.put(b"d".to_vec(), b"5".to_vec());
        batch.put(b"b".to_vec(), b"22".to_vec());
        storage.apply(batch).unwrap();
        storage.flush().unwrap();
        let all: Vec<KeyValue> = storage.scan((Bound::Unbounded, Bound::Unbounded)).map(|r| r.unwrap()).collect();
        assert_eq!(
            all,
            vec![
                (b"b".to_vec(), b"22".to_vec()),
                (b"c".to_vec(), b"3".to_vec()),
                (b"ca".to_vec(), b"4".to_vec()),
                (b"d".to_vec(), b"5".to_vec()),
            ]
        );
    }

    #[test]
    fn prefix_end_skips_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
