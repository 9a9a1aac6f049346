//! An in-memory [`Storage`] engine for unit tests of the layers above storage.

use super::{KeyValue, ScanIterator, Storage, StorageBatch};
use crate::error::Result;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

/// A BTreeMap behind a lock. Scans copy the range out, so they see a consistent view.
#[derive(Default)]
pub struct MemoryStorage {
    data: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.data.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned())
    }

    fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> ScanIterator<'_> {
        let data = self.data.read().unwrap_or_else(|e| e.into_inner());
        let items: Vec<Result<KeyValue>> = data.range(range).map(|(k, v)| Ok((k.clone(), v.clone()))).collect();
        Box::new(items.into_iter())
    }

    fn apply(&self, batch: StorageBatch) -> Result<()> {
        let mut data = self.data.write().unwrap_or_else(|e| e.into_inner());
        for (key, value) in batch.ops {
            match value {
                Some(v) => data.insert(key, v),
                None => data.remove(&key),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_engine_behaves() {
        super::super::tests::check_engine(&super::MemoryStorage::new());
    }
}
