//! Online backups: the database as of one commit version in one file, taken from a running
//! node while writes go on, and a data directory built from such a file.
//!
//! A backup is the state machine's snapshot (the stream a Raft snapshot holds,
//! [`Mvcc::snapshot_into`]) between a header and a trailer:
//!
//! ```text
//! "CHRONOS\x01"  header_len: u32  header (JSON: format, version, raft_index, node_id, created_at)
//! snapshot stream (every stored version at or below `version`, in key order)
//! body_len: u64  SHA-256 of everything before it and of body_len  "CHRONEND"
//! ```
//!
//! It is written as storage is scanned and read back twice from the file, so memory stays
//! bounded whatever the size of the database. The checksum is verified before anything is
//! installed.
//!
//! A restored data directory holds the state and a marker ([`RESTORED_KEY`]). At its first
//! start the node makes that state the Raft snapshot of a new log ([`adopt_restored`]): it
//! founds a cluster of one (which members then join; they receive the state as a Raft
//! snapshot), never a cluster of several, because the others' empty logs would outvote the
//! restored state.

use crate::error::{Error, Result};
use crate::mvcc::{Mvcc, Version};
use crate::raft::{HardState, LogStore, Membership, Snapshot, SnapshotMeta};
use crate::storage::keyspace::Local;
use crate::storage::StorageBatch;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"CHRONOS\x01";
const END_MAGIC: &[u8; 8] = b"CHRONEND";
/// The trailer: body length, checksum, end magic.
const TRAILER_LEN: u64 = 8 + 32 + 8;
/// The largest header accepted.
const MAX_HEADER: u32 = 64 * 1024;
/// The format written.
const FORMAT: u64 = 1;

/// Marks a data directory restored from a backup and not yet started: its value is the
/// backup's version.
pub const RESTORED_KEY: &[u8] = Local::Restored.key();

/// What a backup says of itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackupHeader {
    pub format: u64,
    /// The commit version the backup holds the database as of.
    pub version: Version,
    /// The Raft index the node had applied when the backup began (informational).
    pub raft_index: u64,
    /// The node it was taken from.
    pub node_id: u64,
    /// When it was taken (RFC 3339, UTC).
    pub created_at: String,
}

/// Counts and hashes what passes through to `out`.
struct Hashing<'w, W: Write + ?Sized> {
    out: &'w mut W,
    digest: ring::digest::Context,
    len: u64,
}

impl<W: Write + ?Sized> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.digest.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Writes a backup of `mvcc` as of the newest version a read may see now (every write
/// acknowledged before the call is in it) to `out`; returns its header. Blocks: run it on a
/// thread of its own. Writes go on meanwhile, and garbage collection keeps what it reads.
pub fn write_backup(mvcc: &Arc<Mvcc>, node_id: u64, out: &mut (impl Write + ?Sized)) -> Result<BackupHeader> {
    let version = mvcc.begin_read()?.read_version();
    let header = BackupHeader {
        format: FORMAT,
        version,
        raft_index: mvcc.raft_applied_index()?,
        node_id,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    let json = serde_json::to_vec(&header).map_err(|e| Error::Internal(e.to_string()))?;
    let mut hashing = Hashing { out, digest: ring::digest::Context::new(&ring::digest::SHA256), len: 0 };
    hashing.write_all(MAGIC)?;
    hashing.write_all(&(json.len() as u32).to_be_bytes())?;
    hashing.write_all(&json)?;
    let body_start = hashing.len;
    mvcc.snapshot_into(version, &mut hashing)?;
    let body_len = hashing.len - body_start;
    hashing.write_all(&body_len.to_be_bytes())?;
    let Hashing { out, digest, .. } = hashing;
    out.write_all(digest.finish().as_ref())?;
    out.write_all(END_MAGIC)?;
    out.flush()?;
    Ok(header)
}

/// A backup file whose checksum has been verified.
pub struct BackupFile {
    path: std::path::PathBuf,
    pub header: BackupHeader,
    body_start: u64,
    body_len: u64,
}

fn invalid(path: &Path, what: &str) -> Error {
    Error::InvalidParameter(format!("{}: not a ChronosDB backup or damaged ({what})", path.display()))
}

impl BackupFile {
    /// Opens the backup at `path` and verifies it end to end (one pass over the file).
    pub fn open(path: &Path) -> Result<BackupFile> {
        let mut file = File::open(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
        let size = file.metadata()?.len();
        if size < MAGIC.len() as u64 + 4 + TRAILER_LEN {
            return Err(invalid(path, "too short"));
        }
        let mut trailer = [0u8; TRAILER_LEN as usize];
        file.seek(SeekFrom::Start(size - TRAILER_LEN))?;
        file.read_exact(&mut trailer)?;
        if &trailer[40..] != END_MAGIC {
            return Err(invalid(path, "no end marker: the backup was cut short"));
        }
        let body_len = u64::from_be_bytes(trailer[..8].try_into().unwrap_or_default());
        let expected_sum = &trailer[8..40];
        file.seek(SeekFrom::Start(0))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        let mut head = [0u8; 12];
        reader.read_exact(&mut head)?;
        if &head[..8] != MAGIC {
            return Err(invalid(path, "wrong magic number"));
        }
        let header_len = u32::from_be_bytes(head[8..12].try_into().unwrap_or_default());
        if header_len > MAX_HEADER {
            return Err(invalid(path, "header too long"));
        }
        let body_start = 12 + u64::from(header_len);
        if body_start.checked_add(body_len).and_then(|n| n.checked_add(TRAILER_LEN)) != Some(size) {
            return Err(invalid(path, "lengths do not add up"));
        }
        digest.update(&head);
        let mut json = vec![0u8; header_len as usize];
        reader.read_exact(&mut json)?;
        digest.update(&json);
        let mut remaining = body_len;
        let mut buf = vec![0u8; 1 << 20];
        while remaining > 0 {
            let n = reader.read(&mut buf[..remaining.min(1 << 20) as usize])?;
            if n == 0 {
                return Err(invalid(path, "cut short"));
            }
            digest.update(&buf[..n]);
            remaining -= n as u64;
        }
        digest.update(&trailer[..8]);
        if digest.finish().as_ref() != expected_sum {
            return Err(invalid(path, "checksum mismatch"));
        }
        let header: BackupHeader = serde_json::from_slice(&json).map_err(|_| invalid(path, "unreadable header"))?;
        if header.format != FORMAT {
            return Err(Error::InvalidParameter(format!(
                "{}: backup format {} is not supported (this version reads format {FORMAT})",
                path.display(),
                header.format
            )));
        }
        Ok(BackupFile { path: path.to_path_buf(), header, body_start, body_len })
    }

    /// The snapshot stream, from its beginning.
    fn body(&self) -> Result<impl Read> {
        let mut file = File::open(&self.path)?;
        file.seek(SeekFrom::Start(self.body_start))?;
        Ok(BufReader::with_capacity(1 << 20, file.take(self.body_len)))
    }
}

/// Whether `dir` exists with something in it.
fn non_empty(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::Io(format!("{}: {e}", dir.display()))),
    }
}

/// Builds the data directory `dir` from `backup`: a node started on it answers as of the
/// backup's version. Refuses a directory with anything in it unless `force` (which empties
/// it first).
pub fn restore(backup: &BackupFile, dir: &Path, force: bool) -> Result<()> {
    if non_empty(dir)? {
        if !force {
            return Err(Error::InvalidParameter(format!(
                "{} is not empty: restore into a new directory, or pass --force to replace what is there",
                dir.display()
            )));
        }
        std::fs::remove_dir_all(dir).map_err(|e| Error::Io(format!("{}: {e}", dir.display())))?;
    }
    std::fs::create_dir_all(dir)?;
    let storage: Arc<dyn crate::storage::Storage> = Arc::new(crate::storage::sled::SledStorage::open(dir)?);
    let mvcc = Mvcc::new(storage.clone())?;
    mvcc.restore_snapshot_from(&mut || backup.body(), 0)?;
    let mut marker = StorageBatch::default();
    marker.put(RESTORED_KEY.to_vec(), backup.header.version.to_be_bytes().to_vec());
    storage.apply(marker)?;
    storage.flush()?;
    Ok(())
}

/// At the start of a node on a restored data directory: makes the restored state the Raft
/// snapshot of the new log (index 1, term 1), with this node its only voter; nothing when the
/// directory was not restored. Idempotent, so a crash part-way is repaired at the next start.
pub fn adopt_restored<S: LogStore>(store: &mut S, mvcc: &Arc<Mvcc>, id: u64, voters: &[u64]) -> Result<()> {
    let Some(version) = mvcc.storage().get(RESTORED_KEY)? else { return Ok(()) };
    let version = u64::from_be_bytes(
        version.as_slice().try_into().map_err(|_| Error::Corruption("malformed restore marker".into()))?,
    );
    if voters != [id] {
        return Err(Error::InvalidParameter(
            "a restored data directory founds a cluster of one: start it with --peers listing only this node \
             (or as a single node), then add the other members"
                .into(),
        ));
    }
    let from_raft = super::driver::from_raft;
    if store.snapshot_meta().map_err(from_raft)?.is_none() {
        let meta = SnapshotMeta { index: 1, term: 1, membership: Membership::with_voters([id]) };
        match store.snapshot_writer().map_err(from_raft)? {
            Some(mut writer) => {
                mvcc.snapshot_into(version, &mut writer)?;
                let written = writer.finish().map_err(from_raft)?;
                store.save_written_snapshot(meta, written).map_err(from_raft)?;
            }
            None => {
                let data = mvcc.snapshot_at(version)?;
                store.save_snapshot(&Snapshot { meta, data }).map_err(from_raft)?;
            }
        }
        store.save_hard_state(HardState { term: 1, vote: None, commit: 1 }).map_err(from_raft)?;
        store.sync().map_err(from_raft)?;
    }
    let mut markers = StorageBatch::default();
    markers.put(crate::mvcc::RAFT_APPLIED_KEY.to_vec(), 1u64.to_be_bytes().to_vec());
    markers.delete(RESTORED_KEY.to_vec());
    mvcc.storage().apply(markers)?;
    tracing::info!(version, "restored state adopted as the first Raft snapshot");
    Ok(())
}
