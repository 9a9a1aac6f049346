//! The durable [`Storage`] engine, on sled 0.34.
//!
//! All keys live in sled's default tree so that one `apply_batch` is atomic across rows, index
//! entries and catalog records. sled does not make a write durable by itself: [`Storage::flush`]
//! fsyncs, and the MVCC layer calls it (once for many commits) before acknowledging.

use super::{ScanIterator, Storage, StorageBatch};
use crate::error::{Error, Result};
use std::ops::Bound;
use std::path::Path;

/// A sled database.
pub struct SledStorage {
    db: sled::Db,
    /// The first I/O error or corruption any operation met. sled stops writing after one (its
    /// log buffer could not be written), so the database is unusable from then on.
    failure: std::sync::Mutex<Option<Error>>,
}

fn io(err: sled::Error) -> Error {
    match err {
        sled::Error::Io(e) => Error::from(e),
        sled::Error::Corruption { .. } => Error::Corruption(err.to_string()),
        other => Error::Io(other.to_string()),
    }
}

impl SledStorage {
    /// Opens (or creates) the database in `dir` with a 256 MiB page cache.
    pub fn open(dir: &Path) -> Result<Self> {
        Self::open_with_cache(dir, 256 << 20)
    }

    /// Opens (or creates) the database in `dir` with a page cache of `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(io)?;
        Ok(Self { db, failure: std::sync::Mutex::new(None) })
    }

    /// Converts a sled error, remembering the first that means the storage failed.
    fn failed(&self, err: sled::Error) -> Error {
        let fatal = matches!(err, sled::Error::Io(_) | sled::Error::Corruption { .. });
        let err = io(err);
        if fatal {
            self.failure.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| err.clone());
        }
        err
    }

    /// A named tree beside the default one, for data with its own lifecycle (e.g. a log).
    pub fn tree(&self, name: &str) -> Result<sled::Tree> {
        self.db.open_tree(name).map_err(|e| self.failed(e))
    }
}

impl Storage for SledStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key).map_err(|e| self.failed(e))?.map(|v| v.to_vec()))
    }

    fn scan(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>)) -> ScanIterator<'_> {
        Box::new(self.db.range(range).map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(|e| self.failed(e))))
    }

    fn scan_with(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>), f: &mut super::Visitor) -> Result<()> {
        for item in self.db.range(range) {
            let (k, v) = item.map_err(|e| self.failed(e))?;
            if !f(&k, &v)? {
                break;
            }
        }
        Ok(())
    }

    fn apply(&self, batch: StorageBatch) -> Result<()> {
        let mut sled_batch = sled::Batch::default();
        for (key, value) in batch.ops {
            match value {
                Some(v) => sled_batch.insert(key, v),
                None => sled_batch.remove(key),
            }
        }
        self.db.apply_batch(sled_batch).map_err(|e| self.failed(e))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(|e| self.failed(e))
    }

    fn failure(&self) -> Option<Error> {
        self.failure.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Plain inserts and removes: sled recovers its log up to the first tear, so a prefix of
    /// them survives a crash, and none forces a write of the log buffer.
    fn apply_in_order(&self, writes: &mut dyn Iterator<Item = (Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        for (key, value) in writes {
            match value {
                Some(v) => self.db.insert(key, v).map(|_| ()),
                None => self.db.remove(key).map(|_| ()),
            }
            .map_err(|e| self.failed(e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sled_engine_behaves_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        {
            let storage = SledStorage::open(dir.path()).unwrap();
            crate::storage::tests::check_engine(&storage);
        }
        // sled's flusher thread can hold the directory's lock for a moment after the database
        // is dropped; a reopen in the same process waits for it.
        let reopened = (0..50).find_map(|_| {
            SledStorage::open(dir.path()).ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(20));
                None
            })
        });
        let storage = reopened.expect("reopen");
        assert_eq!(storage.get(b"d").unwrap(), Some(b"5".to_vec()));
        assert_eq!(storage.get(b"a").unwrap(), None);
    }
}
