//! Sealed segments: a second physical home for old row versions, compressed together.
//!
//! A segment holds, for a contiguous range of logical keys, one committed version of some of
//! them (key, value and the exact version that wrote it), encoded as one block by a
//! [`SegmentCodec`] (the time-series codec stores columns: `timeseries::segment`). Storage
//! keeps a small header ([`Local::SegmentHead`] ++ last key) and the block ([`Local::SegmentData`]
//! ++ last key); the headers of every segment stay in memory. Segments never overlap.
//!
//! To every reader a segment row is simply one more stored version of its key: reads merge
//! the row versions of storage with the rows of the segments in range, in physical-key order
//! ([`Mvcc::scan_layout`]), so visibility, own writes, reverse scans, Raft snapshots and
//! backups work on sealed data exactly as on the row layout. A row written after sealing goes
//! to the row layout as usual and, being newer, hides the sealed version from later snapshots.
//!
//! Sealing ([`Mvcc::seal`]) moves versions that no snapshot can tell apart any more, those at
//! or below the low watermark, the way garbage collection drops them: per key, the newest
//! version at or below the watermark goes into the segment when it is a value, and every
//! stored version at or below the watermark leaves the row layout. Newer versions stay where
//! they are. One atomic storage batch removes the row versions, replaces the old segments of
//! the range and writes the new ones, so a crash leaves either layout, never a mix.
//!
//! Readers hold the [`LayoutGate`] shared while they merge; a layout change swaps storage and
//! the in-memory headers only while no reader is inside, without ever making readers wait
//! (it backs off and tries again, and gives the change up after a while). Garbage collection
//! and sealing take `maintenance`, so only one of them changes what is stored below the
//! watermark at a time.

use super::{lock, physical_key, Mvcc, Version};
use crate::error::{Error, Result};
use crate::storage::keyspace::Local;
use crate::storage::{varint, Storage, StorageBatch};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// How long a layout change waits for readers to leave before it is given up.
const SWAP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// Decoded segments kept for reads, in bytes.
const DECODED_BUDGET: usize = 48 << 20;

/// The codec of segments sealed without one ([`PlainCodec`]).
pub const PLAIN_CODEC: u8 = 0;

/// One row of a segment: a logical key, its value and the version that wrote it.
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentRow {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub version: Version,
}

/// Turns the rows of a segment (in key order, keys distinct) into one block and back, exactly.
/// Decoding a damaged block is an error (XX001), never a panic.
pub trait SegmentCodec: Send + Sync {
    /// The tag naming this codec in segment headers (not [`PLAIN_CODEC`]).
    fn tag(&self) -> u8;
    fn encode(&self, rows: &[SegmentRow]) -> Result<Vec<u8>>;
    fn decode(&self, block: &[u8]) -> Result<Arc<dyn DecodedBlock>>;
}

/// A decoded block, read row by row: keys and versions at hand, each value built when asked
/// for (a read of a few rows of a block pays for those rows only).
pub trait DecodedBlock: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn key(&self, i: usize) -> &[u8];
    fn version(&self, i: usize) -> Version;
    fn value(&self, i: usize) -> Vec<u8>;
    /// Bytes held, for the cache's budget.
    fn size(&self) -> usize;
}

/// Every row of a decoded block.
pub fn block_rows(block: &dyn DecodedBlock) -> Vec<SegmentRow> {
    (0..block.len())
        .map(|i| SegmentRow { key: block.key(i).to_vec(), value: block.value(i), version: block.version(i) })
        .collect()
}

/// The first position in `block` whose physical key is not `before` (which holds for a prefix
/// of the block's rows).
fn first_not(block: &dyn DecodedBlock, before: impl Fn(&[u8]) -> bool) -> usize {
    let (mut lo, mut hi) = (0, block.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if before(&physical_key(block.key(mid), block.version(mid))) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Rows kept as they are.
struct PlainBlock(Vec<SegmentRow>);

impl DecodedBlock for PlainBlock {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn key(&self, i: usize) -> &[u8] {
        &self.0[i].key
    }
    fn version(&self, i: usize) -> Version {
        self.0[i].version
    }
    fn value(&self, i: usize) -> Vec<u8> {
        self.0[i].value.clone()
    }
    fn size(&self) -> usize {
        self.0.iter().map(|r| r.key.len() + r.value.len() + 64).sum()
    }
}

/// The codec that knows nothing of the values: length-prefixed keys and values and versions,
/// LZ4-compressed.
pub struct PlainCodec;

impl SegmentCodec for PlainCodec {
    fn tag(&self) -> u8 {
        PLAIN_CODEC
    }

    fn encode(&self, rows: &[SegmentRow]) -> Result<Vec<u8>> {
        let mut body = Vec::new();
        varint::put(&mut body, rows.len() as u64);
        for row in rows {
            varint::put(&mut body, row.key.len() as u64);
            body.extend_from_slice(&row.key);
            varint::put(&mut body, row.value.len() as u64);
            body.extend_from_slice(&row.value);
            body.extend_from_slice(&row.version.to_be_bytes());
        }
        Ok(lz4_flex::compress_prepend_size(&body))
    }

    fn decode(&self, block: &[u8]) -> Result<Arc<dyn DecodedBlock>> {
        let body = lz4_flex::decompress_size_prepended(block).map_err(|_| corrupt("a plain segment"))?;
        let mut input = body.as_slice();
        let count = varint::take(&mut input)? as usize;
        if count > input.len() {
            return Err(corrupt("a plain segment"));
        }
        let mut rows = Vec::with_capacity(count);
        for _ in 0..count {
            let key = take(&mut input)?.to_vec();
            let value = take(&mut input)?.to_vec();
            let version = take_fixed(&mut input)?;
            rows.push(SegmentRow { key, value, version });
        }
        Ok(Arc::new(PlainBlock(rows)))
    }
}

fn corrupt(what: &str) -> Error {
    Error::Corruption(format!("{what} is damaged"))
}

fn take<'a>(input: &mut &'a [u8]) -> Result<&'a [u8]> {
    let len = varint::take(input)? as usize;
    if input.len() < len {
        return Err(corrupt("a segment"));
    }
    let (head, rest) = input.split_at(len);
    *input = rest;
    Ok(head)
}

fn take_fixed(input: &mut &[u8]) -> Result<u64> {
    if input.len() < 8 {
        return Err(corrupt("a segment"));
    }
    let (head, rest) = input.split_at(8);
    *input = rest;
    Ok(u64::from_be_bytes(head.try_into().expect("eight bytes")))
}

/// A segment's header, kept in memory.
#[derive(Debug)]
pub(super) struct Meta {
    /// Unique within this process (decoded blocks are cached by it).
    id: u64,
    pub(super) first: Vec<u8>,
    pub(super) last: Vec<u8>,
    pub(super) count: usize,
    /// The newest version of its rows.
    newest: Version,
    tag: u8,
    /// The size of the stored block.
    pub(super) bytes: usize,
}

impl Meta {
    /// The header of a new segment of `rows` (in key order, not empty) encoded by `tag`'s codec.
    pub(super) fn of(rows: &[SegmentRow], tag: u8) -> Meta {
        Meta {
            id: 0,
            first: rows[0].key.clone(),
            last: rows[rows.len() - 1].key.clone(),
            count: rows.len(),
            newest: rows.iter().map(|r| r.version).max().unwrap_or(0),
            tag,
            bytes: 0,
        }
    }

    pub(super) fn head_key(last: &[u8]) -> Vec<u8> {
        [Local::SegmentHead.key(), last].concat()
    }

    pub(super) fn data_key(last: &[u8]) -> Vec<u8> {
        [Local::SegmentData.key(), last].concat()
    }

    pub(super) fn encode_head(&self) -> Vec<u8> {
        let mut out = vec![self.tag];
        varint::put(&mut out, self.count as u64);
        varint::put(&mut out, self.bytes as u64);
        out.extend_from_slice(&self.newest.to_be_bytes());
        out.extend_from_slice(&self.first);
        out
    }

    fn decode_head(id: u64, key: &[u8], value: &[u8]) -> Result<Meta> {
        let last = key.strip_prefix(Local::SegmentHead.key()).ok_or_else(|| corrupt("a segment header"))?;
        let (&tag, mut input) = value.split_first().ok_or_else(|| corrupt("a segment header"))?;
        let count = varint::take(&mut input)? as usize;
        let bytes = varint::take(&mut input)? as usize;
        let newest = take_fixed(&mut input)?;
        Ok(Meta { id, first: input.to_vec(), last: last.to_vec(), count, newest, tag, bytes })
    }

    pub(super) fn covers(&self, key: &[u8]) -> bool {
        self.first.as_slice() <= key && key <= self.last.as_slice()
    }
}

/// What segments there are, and the decoded blocks read lately.
pub(super) struct Segments {
    /// By last key.
    index: RwLock<BTreeMap<Vec<u8>, Arc<Meta>>>,
    /// Whether `index` is empty, read without a lock on every point read.
    any: AtomicBool,
    next_id: AtomicU64,
    codecs: RwLock<HashMap<u8, Arc<dyn SegmentCodec>>>,
    decoded: Mutex<Decoded>,
    pub(super) gate: LayoutGate,
    /// Held by garbage collection and sealing: one of them changes what is stored at or
    /// below the watermark at a time. (A snapshot install only adds versions above this
    /// node's watermark, or copies of older ones, which both handle.)
    pub(super) maintenance: Mutex<()>,
    /// Passes waiting for `maintenance` that must not wait long (VACUUM): a background
    /// garbage collection pass stops resting while there are any.
    pub(super) hurried: std::sync::atomic::AtomicUsize,
    /// Key ranges of segments being written by an apply, not yet in `index`: no other
    /// segment may take them. Locked after `index`.
    reserved: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
}

/// Whether a new segment may be written.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reserve {
    /// Its range is reserved for it.
    New,
    /// The very segment is there already, rows of the same version (a batch applied again
    /// after a crash).
    Exists,
    /// Another segment holds part of its range.
    Overlaps,
}

/// Whether a segment over `[first, last]` would overlap one of `index` (other than those in
/// `except`) or a reserved range.
fn overlaps(
    index: &BTreeMap<Vec<u8>, Arc<Meta>>,
    reserved: &[(Vec<u8>, Vec<u8>)],
    first: &[u8],
    last: &[u8],
    except: &[Arc<Meta>],
) -> bool {
    for (_, meta) in index.range::<[u8], _>((Bound::Included(first), Bound::Unbounded)) {
        if meta.first.as_slice() > last {
            break;
        }
        if !except.iter().any(|e| e.id == meta.id) {
            return true;
        }
    }
    reserved.iter().any(|(f, l)| f.as_slice() <= last && first <= l.as_slice())
}

#[derive(Default)]
struct Decoded {
    blocks: HashMap<u64, (Arc<dyn DecodedBlock>, usize, u64)>,
    bytes: usize,
    tick: u64,
}

impl Segments {
    /// The headers stored in `storage`.
    pub(super) fn load(storage: &dyn Storage) -> Result<Segments> {
        let segments = Segments {
            index: RwLock::new(BTreeMap::new()),
            any: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            codecs: RwLock::new(HashMap::from([(PLAIN_CODEC, Arc::new(PlainCodec) as Arc<dyn SegmentCodec>)])),
            decoded: Mutex::new(Decoded::default()),
            gate: LayoutGate::default(),
            maintenance: Mutex::new(()),
            hurried: Default::default(),
            reserved: Mutex::new(Vec::new()),
        };
        let mut index = BTreeMap::new();
        for item in storage.scan_prefix(Local::SegmentHead.key()) {
            let (key, value) = item?;
            let meta = Meta::decode_head(segments.next_id.fetch_add(1, Ordering::Relaxed), &key, &value)?;
            index.insert(meta.last.clone(), Arc::new(meta));
        }
        segments.any.store(!index.is_empty(), Ordering::SeqCst);
        *segments.index.write().unwrap_or_else(|e| e.into_inner()) = index;
        Ok(segments)
    }

    pub(super) fn add_codec(&self, codec: Arc<dyn SegmentCodec>) {
        self.codecs.write().unwrap_or_else(|e| e.into_inner()).insert(codec.tag(), codec);
    }

    fn index(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Vec<u8>, Arc<Meta>>> {
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Segments that may hold physical keys in `range`, in key order.
    pub(super) fn overlapping(&self, range: &(Bound<Vec<u8>>, Bound<Vec<u8>>)) -> Vec<Arc<Meta>> {
        if !self.any.load(Ordering::SeqCst) {
            return Vec::new();
        }
        let index = self.index();
        let start: &[u8] = match &range.0 {
            Bound::Included(s) | Bound::Excluded(s) => s,
            Bound::Unbounded => &[],
        };
        // The segment before `start` too when its last key's versions may sort after
        // `start` (the last key is a prefix of it).
        let before = index
            .range::<[u8], _>((Bound::Unbounded, Bound::Excluded(start)))
            .next_back()
            .filter(|(last, _)| start.starts_with(last));
        let from = index.range::<[u8], _>((Bound::Included(start), Bound::Unbounded));
        let mut out = Vec::new();
        for (_, meta) in before.into_iter().chain(from) {
            let beyond = match &range.1 {
                Bound::Included(e) => meta.first.as_slice() > e.as_slice(),
                Bound::Excluded(e) => meta.first.as_slice() >= e.as_slice(),
                Bound::Unbounded => false,
            };
            if beyond {
                break;
            }
            out.push(meta.clone());
        }
        out
    }

    /// The segment whose range holds `key`, if any.
    fn covering(&self, key: &[u8]) -> Option<Arc<Meta>> {
        if !self.any.load(Ordering::SeqCst) {
            return None;
        }
        let index = self.index();
        let (_, meta) = index.range::<[u8], _>((Bound::Included(key), Bound::Unbounded)).next()?;
        meta.covers(key).then(|| meta.clone())
    }

    /// The rows of a segment, from the cache or decoded from storage.
    pub(super) fn rows(&self, storage: &dyn Storage, meta: &Meta) -> Result<Arc<dyn DecodedBlock>> {
        {
            let mut decoded = lock(&self.decoded);
            decoded.tick += 1;
            let tick = decoded.tick;
            if let Some((rows, _, used)) = decoded.blocks.get_mut(&meta.id) {
                *used = tick;
                return Ok(rows.clone());
            }
        }
        let block = storage
            .get(&Meta::data_key(&meta.last))?
            .ok_or_else(|| Error::Corruption("a segment's block is missing".into()))?;
        let codec = self.codecs.read().unwrap_or_else(|e| e.into_inner()).get(&meta.tag).cloned();
        let codec = codec.ok_or_else(|| Error::Corruption(format!("a segment names an unknown codec {}", meta.tag)))?;
        let rows = codec.decode(&block)?;
        if rows.len() != meta.count {
            return Err(corrupt("a segment (its row count)"));
        }
        let size = rows.size();
        let mut decoded = lock(&self.decoded);
        let tick = decoded.tick;
        // Another reader may have decoded the same block meanwhile.
        if let Some((_, replaced, _)) = decoded.blocks.insert(meta.id, (rows.clone(), size, tick)) {
            decoded.bytes -= replaced;
        }
        decoded.bytes += size;
        while decoded.bytes > DECODED_BUDGET && decoded.blocks.len() > 1 {
            let oldest = decoded.blocks.iter().min_by_key(|(_, (_, _, used))| *used).map(|(id, _)| *id);
            let Some(oldest) = oldest else { break };
            if let Some((_, size, _)) = decoded.blocks.remove(&oldest) {
                decoded.bytes -= size;
            }
        }
        Ok(rows)
    }

    fn forget_decoded(&self, ids: impl Iterator<Item = u64>) {
        let mut decoded = lock(&self.decoded);
        for id in ids {
            if let Some((_, size, _)) = decoded.blocks.remove(&id) {
                decoded.bytes -= size;
            }
        }
    }

    /// Segments of keys under `prefix`, their stored bytes and rows.
    pub(super) fn totals(&self, prefix: &[u8]) -> (usize, usize, usize) {
        let index = self.index();
        let under = || index.values().filter(|m| m.first.starts_with(prefix));
        (under().count(), under().map(|m| m.bytes).sum(), under().map(|m| m.count).sum())
    }

    /// Writes `batch` and replaces the segments `removed` by `added` (encoded), once no reader
    /// is merging. False, with nothing written, when readers stayed inside for
    /// [`SWAP_PATIENCE`] or a segment written by an apply meanwhile takes part of the range.
    pub(super) fn swap(
        &self,
        storage: &dyn Storage,
        mut batch: StorageBatch,
        removed: &[Arc<Meta>],
        added: Vec<(Meta, Vec<u8>)>,
    ) -> Result<bool> {
        for meta in removed {
            batch.delete(Meta::head_key(&meta.last));
            batch.delete(Meta::data_key(&meta.last));
        }
        let mut metas = Vec::with_capacity(added.len());
        for (mut meta, block) in added {
            meta.id = self.next_id.fetch_add(1, Ordering::Relaxed);
            meta.bytes = block.len();
            batch.put(Meta::head_key(&meta.last), meta.encode_head());
            batch.put(Meta::data_key(&meta.last), block);
            metas.push(Arc::new(meta));
        }
        let Some(_exclusive) = self.gate.exclusive(SWAP_PATIENCE) else { return Ok(false) };
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        let reserved = lock(&self.reserved);
        if metas.iter().any(|m| overlaps(&index, &reserved, &m.first, &m.last, removed)) {
            // A batch applied meanwhile made a segment in this range: leave it be.
            return Ok(false);
        }
        drop(reserved);
        storage.apply(batch)?;
        for meta in removed {
            index.remove(&meta.last);
        }
        for meta in metas {
            index.insert(meta.last.clone(), meta);
        }
        self.any.store(!index.is_empty(), Ordering::SeqCst);
        drop(index);
        self.forget_decoded(removed.iter().map(|m| m.id));
        Ok(true)
    }

    /// Reserves the range of a segment an apply writes (see [`Reserve`]).
    pub(super) fn reserve(&self, meta: &Meta) -> Reserve {
        let index = self.index.write().unwrap_or_else(|e| e.into_inner());
        let same = |m: &Arc<Meta>| m.first == meta.first && m.count == meta.count && m.newest == meta.newest;
        if index.get(&meta.last).is_some_and(same) {
            return Reserve::Exists;
        }
        let mut reserved = lock(&self.reserved);
        if overlaps(&index, &reserved, &meta.first, &meta.last, &[]) {
            return Reserve::Overlaps;
        }
        reserved.push((meta.first.clone(), meta.last.clone()));
        Reserve::New
    }

    /// The segments of reserved ranges are stored (`written`) or will not be: adds them to
    /// the index, and releases the ranges.
    pub(super) fn settle_reserved(&self, metas: Vec<Meta>, written: bool) {
        let mut index = self.index.write().unwrap_or_else(|e| e.into_inner());
        lock(&self.reserved).retain(|(first, _)| !metas.iter().any(|m| m.first == *first));
        if written {
            for mut meta in metas {
                meta.id = self.next_id.fetch_add(1, Ordering::Relaxed);
                index.insert(meta.last.clone(), Arc::new(meta));
            }
            self.any.store(!index.is_empty(), Ordering::SeqCst);
        }
    }

    /// Every segment of a key under one of `prefixes`.
    pub(super) fn under(&self, prefixes: &[&[u8]]) -> Vec<Arc<Meta>> {
        self.index().values().filter(|m| prefixes.iter().any(|p| m.first.starts_with(p))).cloned().collect()
    }
}

/// Readers merging storage with segments enter shared; a layout change enters alone. Entering
/// shared never waits for a layout change that has not started (so a reader may enter again
/// while inside, e.g. a nested scan), and a layout change never makes readers queue behind it:
/// it announces itself, and backs off while anyone is inside.
#[derive(Default)]
pub(super) struct LayoutGate {
    readers: AtomicUsize,
    changing: AtomicBool,
}

pub(super) struct SharedGuard<'a>(&'a LayoutGate);

impl Drop for SharedGuard<'_> {
    fn drop(&mut self) {
        self.0.readers.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(super) struct ExclusiveGuard<'a>(&'a LayoutGate);

impl Drop for ExclusiveGuard<'_> {
    fn drop(&mut self) {
        self.0.changing.store(false, Ordering::SeqCst);
    }
}

impl LayoutGate {
    pub(super) fn shared(&self) -> SharedGuard<'_> {
        loop {
            self.readers.fetch_add(1, Ordering::SeqCst);
            if !self.changing.load(Ordering::SeqCst) {
                return SharedGuard(self);
            }
            self.readers.fetch_sub(1, Ordering::SeqCst);
            while self.changing.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        }
    }

    /// Enters alone, once no reader is inside; backs off (readers may enter meanwhile)
    /// between attempts. None if readers stayed inside for `patience` (a long scan: a
    /// backup, a Raft snapshot being sent): the change is given up, to be made another time.
    pub(super) fn exclusive(&self, patience: std::time::Duration) -> Option<ExclusiveGuard<'_>> {
        let deadline = std::time::Instant::now() + patience;
        let mut pause = std::time::Duration::from_micros(50);
        loop {
            if self.changing.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                if self.readers.load(Ordering::SeqCst) == 0 {
                    return Some(ExclusiveGuard(self));
                }
                self.changing.store(false, Ordering::SeqCst);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(20));
        }
    }
}

/// The rows of `metas` (in key order) whose physical keys fall in a range, as physical keys
/// and stored values, forwards or backwards.
pub(super) struct SegmentCursor<'a> {
    segments: &'a Segments,
    storage: &'a dyn Storage,
    metas: Vec<Arc<Meta>>,
    range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    reverse: bool,
    /// Whether rows come with their values (garbage collection needs only keys and versions).
    values: bool,
    /// The segment being read and the next position in it (counted from the end backwards).
    current: Option<(Arc<dyn DecodedBlock>, usize)>,
}

impl<'a> SegmentCursor<'a> {
    pub(super) fn new(
        segments: &'a Segments,
        storage: &'a dyn Storage,
        mut metas: Vec<Arc<Meta>>,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        reverse: bool,
    ) -> Self {
        if !reverse {
            metas.reverse();
        }
        SegmentCursor { segments, storage, metas, range, reverse, values: true, current: None }
    }

    fn in_range(range: &(Bound<Vec<u8>>, Bound<Vec<u8>>), physical: &[u8]) -> (bool, bool) {
        let after_start = match &range.0 {
            Bound::Included(s) => physical >= s.as_slice(),
            Bound::Excluded(s) => physical > s.as_slice(),
            Bound::Unbounded => true,
        };
        let before_end = match &range.1 {
            Bound::Included(e) => physical <= e.as_slice(),
            Bound::Excluded(e) => physical < e.as_slice(),
            Bound::Unbounded => true,
        };
        (after_start, before_end)
    }

    /// The next row in range: its physical key and stored value.
    pub(super) fn next_row(&mut self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        loop {
            if self.current.is_none() {
                // Metas are kept so that the next one to read is last.
                let Some(meta) = self.metas.pop() else { return Ok(None) };
                let rows = self.segments.rows(self.storage, &meta)?;
                // Start at the range's bound rather than walking up to it.
                let position = if self.reverse {
                    first_not(rows.as_ref(), |p| Self::in_range(&self.range, p).1)
                } else {
                    first_not(rows.as_ref(), |p| !Self::in_range(&self.range, p).0)
                };
                self.current = Some((rows, position));
            }
            let (rows, position) = self.current.as_mut().expect("set above");
            let row = if self.reverse {
                if *position == 0 {
                    None
                } else {
                    *position -= 1;
                    Some(*position)
                }
            } else {
                let row = (*position < rows.len()).then_some(*position);
                *position += 1;
                row
            };
            let Some(row) = row else {
                self.current = None;
                continue;
            };
            let physical = physical_key(rows.key(row), rows.version(row));
            let (after_start, before_end) = Self::in_range(&self.range, &physical);
            if !(after_start && before_end) {
                // Past the bound in the direction of travel: nothing further is in range.
                self.metas.clear();
                self.current = None;
                return Ok(None);
            }
            let mut stored = vec![1];
            if self.values {
                stored.extend_from_slice(&rows.value(row));
            }
            return Ok(Some((physical, stored)));
        }
    }
}

impl Mvcc {
    /// Installs a codec that segments may name (and [`Mvcc::seal`] may be given).
    pub fn add_segment_codec(&self, codec: Arc<dyn SegmentCodec>) {
        self.segments.add_codec(codec);
    }

    /// Sealed segments, their stored bytes and rows.
    pub fn segment_totals(&self) -> (usize, usize, usize) {
        self.segments.totals(&[])
    }

    /// [`Mvcc::segment_totals`] of the segments of keys under `prefix`.
    pub fn segment_totals_under(&self, prefix: &[u8]) -> (usize, usize, usize) {
        self.segments.totals(prefix)
    }

    /// Calls `f` with every stored version in the physical `range`, in key order, from the row
    /// layout and from segments (the last argument says which: true for a segment row). Where
    /// both hold the same physical key, the row layout's comes first. The caller holds the
    /// layout gate shared.
    pub(super) fn scan_layout(&self, range: (Bound<Vec<u8>>, Bound<Vec<u8>>), f: &mut LayoutVisitor) -> Result<()> {
        self.scan_layout_with(range, true, f)
    }

    /// [`Mvcc::scan_layout`], passing segment rows with an empty value unless `values`.
    pub(super) fn scan_layout_with(
        &self,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        values: bool,
        f: &mut LayoutVisitor,
    ) -> Result<()> {
        let metas = self.segments.overlapping(&range);
        if metas.is_empty() {
            return self.storage.scan_with(range, &mut |k, v| f(k, v, false));
        }
        let mut cursor = SegmentCursor::new(&self.segments, self.storage.as_ref(), metas, range.clone(), false);
        cursor.values = values;
        let mut pending = cursor.next_row()?;
        let mut stopped = false;
        self.storage.scan_with(range, &mut |physical, stored| {
            // Segment rows before this key, this key, then a segment row of the very same
            // version (a snapshot install wrote the row layout a copy of it).
            let mut passed = false;
            while let Some((key, value)) = &pending {
                let order = key.as_slice().cmp(physical);
                if order == std::cmp::Ordering::Greater {
                    break;
                }
                if order == std::cmp::Ordering::Equal && !passed {
                    passed = true;
                    if !f(physical, stored, false)? {
                        stopped = true;
                        return Ok(false);
                    }
                }
                if !f(key, value, true)? {
                    stopped = true;
                    return Ok(false);
                }
                pending = cursor.next_row()?;
            }
            if !passed && !f(physical, stored, false)? {
                stopped = true;
                return Ok(false);
            }
            Ok(true)
        })?;
        while let (false, Some((key, value))) = (stopped, &pending) {
            if !f(key, value, true)? {
                break;
            }
            pending = cursor.next_row()?;
        }
        Ok(())
    }

    /// [`Mvcc::scan_layout`] backwards, as an iterator of physical keys and stored values.
    pub(super) fn scan_layout_rev(
        &self,
        range: (Bound<Vec<u8>>, Bound<Vec<u8>>),
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_ {
        let metas = self.segments.overlapping(&range);
        let cursor = SegmentCursor::new(&self.segments, self.storage.as_ref(), metas, range.clone(), true);
        ReverseMerge { storage: self.storage.scan(range).rev().peekable(), cursor, pending: None, started: false }
    }

    /// The segment row of `key`, if a segment holds one. The caller holds the gate shared.
    pub(super) fn segment_row(&self, key: &[u8]) -> Result<Option<(Version, Vec<u8>)>> {
        let Some(meta) = self.segments.covering(key) else { return Ok(None) };
        let rows = self.segments.rows(self.storage.as_ref(), &meta)?;
        let i = first_not(rows.as_ref(), |p| p < key);
        Ok((i < rows.len() && rows.key(i) == key).then(|| (rows.version(i), rows.value(i))))
    }
}

struct ReverseMerge<'a, I: Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>> {
    storage: std::iter::Peekable<I>,
    cursor: SegmentCursor<'a>,
    pending: Option<(Vec<u8>, Vec<u8>)>,
    started: bool,
}

impl<I: Iterator<Item = Result<(Vec<u8>, Vec<u8>)>>> Iterator for ReverseMerge<'_, I> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if !self.started || self.pending.is_none() {
            self.started = true;
            match self.cursor.next_row() {
                Ok(row) => self.pending = row,
                Err(e) => return Some(Err(e)),
            }
        }
        let take_segment = match (self.storage.peek(), &self.pending) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(Err(_)), _) => false,
            // Backwards, a segment row comes before the row layout's copy of the same version.
            (Some(Ok((key, _))), Some((segment_key, _))) => segment_key >= key,
        };
        if take_segment {
            return self.pending.take().map(Ok);
        }
        self.storage.next()
    }
}

/// A visitor of [`Mvcc::scan_layout`]: physical key, stored value, whether a segment holds it;
/// returns false to stop.
pub(super) type LayoutVisitor<'a> = dyn FnMut(&[u8], &[u8], bool) -> Result<bool> + 'a;
