//! Column snapshots: in-memory, column-major copies of a table's visible rows for full scans.
//!
//! Scanning a table through storage costs a B-tree step, a visibility check and a row decode
//! per row. When a table is scanned in full twice without a write in between, the second scan
//! also keeps what it decodes as a [`ColumnSnapshot`]: one typed vector per column (numbers and
//! times as `i64`/`f64`, text dictionary-encoded), which later full scans read instead of
//! storage. A snapshot stays correct as the table changes:
//!
//! - Every batch is shown to the cache *before* its writes reach storage ([`ColumnCache::applying`]).
//!   Rows inserted after the snapshot's last key (time-ordered keys, hidden row ids) are
//!   appended with their commit version, which readers compare with their own snapshot version;
//!   any other write to the table drops its snapshot.
//! - A snapshot records `base`, the version of the last write to the table it reflects; only
//!   transactions reading at or after it may use it, and only while they have no writes of
//!   their own in the table.
//! - A snapshot being built is installed only if no batch touched its table since the build
//!   began (a per-table generation count), and is not built at all while a write to the table is
//!   newer than the builder's snapshot.
//!
//! Snapshots together stay within a memory budget; the least recently used go first.

use super::Version;
use crate::storage::rowcodec;
use crate::types::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The default memory budget of all snapshots together.
pub const DEFAULT_BUDGET: usize = 128 << 20;

/// Dictionaries of text columns stop growing here; a column with more distinct values keeps
/// them as plain values.
const MAX_DICTIONARY: usize = 1 << 16;

/// How an integer-like column's `i64`s become values again.
#[derive(Clone, Copy, Debug, PartialEq)]
enum IntKind {
    Bool,
    Int2,
    Int4,
    Int8,
    Date,
    Timestamp,
    TimestampTz,
}

impl IntKind {
    fn of(value: &Value) -> Option<(IntKind, i64)> {
        Some(match value {
            Value::Bool(b) => (IntKind::Bool, *b as i64),
            Value::Int2(v) => (IntKind::Int2, *v as i64),
            Value::Int4(v) => (IntKind::Int4, *v as i64),
            Value::Int8(v) => (IntKind::Int8, *v),
            Value::Date(v) => (IntKind::Date, *v as i64),
            Value::Timestamp(v) => (IntKind::Timestamp, *v),
            Value::TimestampTz(v) => (IntKind::TimestampTz, *v),
            _ => return None,
        })
    }

    fn value(self, v: i64) -> Value {
        match self {
            IntKind::Bool => Value::Bool(v != 0),
            IntKind::Int2 => Value::Int2(v as i16),
            IntKind::Int4 => Value::Int4(v as i32),
            IntKind::Int8 => Value::Int8(v),
            IntKind::Date => Value::Date(v as i32),
            IntKind::Timestamp => Value::Timestamp(v),
            IntKind::TimestampTz => Value::TimestampTz(v),
        }
    }
}

/// The values of one column, one slot per row. NULLs are marked in `nulls` (allocated at the
/// first NULL) with a placeholder in the typed vector.
#[derive(Clone, Debug)]
enum Data {
    /// No non-NULL value seen yet.
    Empty,
    Int(IntKind, Vec<i64>),
    Float8(Vec<f64>),
    Text {
        codes: Vec<u32>,
        dictionary: Vec<String>,
        lookup: HashMap<String, u32>,
    },
    Values(Vec<Value>),
}

#[derive(Clone, Debug)]
struct Column {
    data: Data,
    nulls: Option<Vec<bool>>,
    /// Rows in the column.
    len: usize,
    /// Bytes held, for the budget.
    bytes: usize,
}

impl Column {
    fn new() -> Self {
        Column { data: Data::Empty, nulls: None, len: 0, bytes: 0 }
    }

    fn push(&mut self, value: &Value) {
        let row = self.len;
        self.len += 1;
        if value.is_null() {
            let nulls = self.nulls.get_or_insert_with(|| vec![false; row]);
            nulls.push(true);
            self.bytes += 1;
            self.push_placeholder();
            return;
        }
        if let Some(nulls) = &mut self.nulls {
            nulls.push(false);
            self.bytes += 1;
        }
        if matches!(self.data, Data::Empty) {
            self.data = match value {
                Value::Float8(_) => Data::Float8(Vec::with_capacity(row + 1)),
                Value::Text(_) => Data::Text { codes: Vec::new(), dictionary: Vec::new(), lookup: HashMap::new() },
                v => match IntKind::of(v) {
                    Some((kind, _)) => Data::Int(kind, Vec::new()),
                    None => Data::Values(Vec::new()),
                },
            };
            // Rows before this one were all NULL.
            for _ in 0..row {
                self.push_placeholder();
            }
        }
        let fits = match (&mut self.data, value) {
            (Data::Float8(values), Value::Float8(v)) => {
                values.push(*v);
                self.bytes += 8;
                true
            }
            (Data::Int(kind, values), v) => match IntKind::of(v) {
                Some((k, i)) if k == *kind => {
                    values.push(i);
                    self.bytes += 8;
                    true
                }
                _ => false,
            },
            (Data::Text { codes, dictionary, lookup }, Value::Text(s)) => match lookup.get(s.as_str()) {
                Some(&code) => {
                    codes.push(code);
                    self.bytes += 4;
                    true
                }
                None if dictionary.len() < MAX_DICTIONARY => {
                    let code = dictionary.len() as u32;
                    self.bytes += 4 + 2 * (s.len() + 48);
                    lookup.insert(s.clone(), code);
                    dictionary.push(s.clone());
                    codes.push(code);
                    true
                }
                None => false,
            },
            (Data::Values(values), _) => {
                self.bytes += Value::approx_bytes(value);
                values.push(value.clone());
                true
            }
            _ => false,
        };
        if !fits {
            // A value the typed vector cannot hold: keep the column as plain values.
            self.len -= 1;
            self.make_plain();
            self.len += 1;
            if let Data::Values(values) = &mut self.data {
                self.bytes += Value::approx_bytes(value);
                values.push(value.clone());
            }
        }
    }

    fn push_placeholder(&mut self) {
        match &mut self.data {
            Data::Empty => {}
            Data::Int(_, v) => v.push(0),
            Data::Float8(v) => v.push(0.0),
            Data::Text { codes, .. } => codes.push(0),
            Data::Values(v) => v.push(Value::Null),
        }
        self.bytes += 8;
    }

    /// Turns the column into plain values (`len` rows).
    fn make_plain(&mut self) {
        let values: Vec<Value> = (0..self.len).map(|row| self.get(row)).collect();
        self.bytes = values.iter().map(Value::approx_bytes).sum::<usize>() + self.nulls.as_ref().map_or(0, Vec::len);
        self.data = Data::Values(values);
    }

    fn get(&self, row: usize) -> Value {
        if self.nulls.as_ref().is_some_and(|n| n[row]) {
            return Value::Null;
        }
        match &self.data {
            Data::Empty => Value::Null,
            Data::Int(kind, values) => kind.value(values[row]),
            Data::Float8(values) => Value::Float8(values[row]),
            Data::Text { codes, dictionary, .. } => Value::Text(dictionary[codes[row] as usize].clone()),
            Data::Values(values) => values[row].clone(),
        }
    }
}

/// Rows per chunk: appending copies at most the last chunk when readers hold it.
const CHUNK_ROWS: usize = 1 << 16;

/// Up to [`CHUNK_ROWS`] consecutive rows of a snapshot, column by column.
#[derive(Clone, Debug, Default)]
pub struct Chunk {
    columns: Vec<Column>,
    rows: usize,
    /// Rows up to here were visible at the snapshot's base; each later one carries the
    /// version of the commit that appended it.
    base_rows: usize,
    versions: Vec<Version>,
}

impl Chunk {
    fn push(&mut self, values: &[Value]) -> usize {
        let before: usize = self.columns.iter().map(|c| c.bytes).sum();
        while self.columns.len() < values.len() {
            let mut column = Column::new();
            for _ in 0..self.rows {
                column.push(&Value::Null);
            }
            self.columns.push(column);
        }
        for (column, value) in self.columns.iter_mut().zip(values) {
            column.push(value);
        }
        // Rows stored before a column was added are shorter.
        for column in &mut self.columns[values.len()..] {
            column.push(&Value::Null);
        }
        self.rows += 1;
        // A column turned into plain values may hold less than before: count no less.
        self.columns.iter().map(|c| c.bytes).sum::<usize>().saturating_sub(before)
    }

    /// Rows, visible or not (see [`Chunk::visible`]).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether row `row` is visible to a transaction reading at `version`.
    pub fn visible(&self, row: usize, version: Version) -> bool {
        row < self.base_rows || self.versions[row - self.base_rows] <= version
    }

    /// The value of `column` in row `row` (NULL past the stored columns: rows may be narrower
    /// than their table when columns were added later).
    pub fn value(&self, row: usize, column: usize) -> Value {
        self.columns.get(column).map_or(Value::Null, |c| c.get(row))
    }

    /// Distinct values of `column` in this chunk when it is dictionary-encoded text, else 0.
    pub fn dictionary_len(&self, column: usize) -> usize {
        match self.columns.get(column).map(|c| &c.data) {
            Some(Data::Text { dictionary, .. }) => dictionary.len(),
            _ => 0,
        }
    }

    /// The dictionary code of `column` in row `row`: equal codes are equal values within the
    /// chunk. None for NULL and for columns that are not dictionary-encoded.
    pub fn code(&self, row: usize, column: usize) -> Option<u32> {
        let c = self.columns.get(column)?;
        match &c.data {
            Data::Text { codes, .. } if !c.nulls.as_ref().is_some_and(|n| n[row]) => Some(codes[row]),
            _ => None,
        }
    }
}

/// A table's visible rows, column by column, in key order.
#[derive(Clone, Debug, Default)]
pub struct ColumnSnapshot {
    /// The version of the table's last write before the build: readers must read at or after
    /// it (later appends carry their own versions).
    base: Version,
    chunks: Vec<Arc<Chunk>>,
    last_key: Vec<u8>,
    bytes: usize,
}

impl ColumnSnapshot {
    /// Adds a row with key `key`, greater than every key before, visible from `version` on
    /// (None: at the snapshot's base).
    fn push(&mut self, key: &[u8], values: &[Value], version: Option<Version>) {
        if self.chunks.last().is_none_or(|c| c.rows >= CHUNK_ROWS) {
            self.chunks.push(Arc::default());
        }
        let Some(last) = self.chunks.last_mut() else { return };
        let chunk = Arc::make_mut(last);
        self.bytes += chunk.push(values);
        match version {
            Some(v) => {
                chunk.versions.push(v);
                self.bytes += 8;
            }
            None => chunk.base_rows = chunk.rows,
        }
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
    }

    /// The chunks, in key order.
    pub fn chunks(&self) -> &[Arc<Chunk>] {
        &self.chunks
    }

    /// Bytes held, roughly.
    pub fn bytes(&self) -> usize {
        self.bytes + self.last_key.len()
    }
}

/// Writes to a table seen while its snapshot was being built: each batch's version, writes,
/// and the bytes held up to it.
type Pending = Vec<(Version, Vec<(Vec<u8>, Option<Vec<u8>>)>, usize)>;

/// Bytes of writes a build may have to catch up with; past this it gives up.
const MAX_PENDING: usize = if cfg!(test) { 4096 } else { 16 << 20 };

/// What the cache knows of one table (a conflict domain).
#[derive(Default)]
struct Slot {
    /// The version of the newest batch that touched it.
    last_write: Version,
    /// A full scan ran before (the next one builds).
    scanned: bool,
    /// A build gave up for being over the budget (tried again after a reset).
    too_big: bool,
    /// The build in progress: its id and the writes since it began (None: it must fail).
    building: Option<(u64, Option<Pending>)>,
    snapshot: Option<Arc<ColumnSnapshot>>,
    /// For eviction: a tick of the last use.
    used: u64,
}

#[derive(Default)]
struct State {
    slots: HashMap<Vec<u8>, Slot>,
    /// Applied version at start-up or the last reset: the last write of untouched tables.
    floor: Version,
    /// Bumped by each reset: builds begun before one are not installed.
    epoch: u64,
    tick: u64,
    bytes: usize,
    next_build: u64,
    /// A build is running (one at a time: each may hold up to the budget until it ends).
    building: bool,
}

/// The column snapshots of every table, and what they need to stay correct.
pub struct ColumnCache {
    state: Mutex<State>,
    budget: AtomicUsize,
    /// Full scans served from a snapshot since start-up.
    reads: AtomicU64,
}

/// What [`ColumnCache::lookup`] found for a full scan.
pub enum Lookup {
    /// A snapshot the reader may use.
    Ready(Arc<ColumnSnapshot>),
    /// None yet: the scan reads storage and hands each row to this builder.
    Build(Builder),
    /// Scan storage.
    Skip,
}

/// Collects a full scan's rows into a snapshot; installed by [`Builder::finish`], abandoned
/// when dropped before (a scan that stopped early or failed).
pub struct Builder {
    cache: Arc<ColumnCache>,
    domain: Vec<u8>,
    id: u64,
    epoch: u64,
    snapshot: ColumnSnapshot,
    budget: usize,
    too_big: bool,
}

impl Builder {
    /// Adds the next visible row (in key order) as stored.
    pub fn push(&mut self, key: &[u8], values: &[Value]) {
        if self.too_big {
            return;
        }
        self.snapshot.push(key, values, None);
        self.too_big = self.snapshot.bytes() > self.budget;
    }

    /// Installs the snapshot, caught up with the writes made since the build began, unless a
    /// write it cannot follow happened or it is over the budget.
    pub fn finish(mut self) {
        let mut state = super::lock(&self.cache.state);
        if state.epoch != self.epoch {
            return;
        }
        let state = &mut *state;
        let Some(slot) = state.slots.get_mut(&self.domain) else { return };
        let pending = match slot.building.take() {
            Some((id, pending)) if id == self.id => pending,
            other => {
                slot.building = other;
                return;
            }
        };
        state.building = false;
        let budget = self.cache.budget.load(Ordering::Relaxed);
        if self.too_big {
            slot.too_big = true;
            return;
        }
        // Too many writes came in meanwhile to follow: the snapshot would miss them.
        let Some(pending) = pending else { return };
        let mut snapshot = std::mem::take(&mut self.snapshot);
        for (version, writes, _) in pending {
            if !append(&mut snapshot, version, &writes) {
                return;
            }
        }
        if budget == 0 {
            return;
        }
        state.bytes += snapshot.bytes();
        if let Some(old) = slot.snapshot.replace(Arc::new(snapshot)) {
            state.bytes = state.bytes.saturating_sub(old.bytes());
        }
        evict(state, budget);
    }
}

impl Drop for Builder {
    fn drop(&mut self) {
        let mut state = super::lock(&self.cache.state);
        let state = &mut *state;
        if let Some(slot) = state.slots.get_mut(&self.domain) {
            if slot.building.as_ref().is_some_and(|(id, _)| *id == self.id) {
                slot.building = None;
                state.building = false;
            }
        }
    }
}

impl ColumnCache {
    pub fn new(floor: Version) -> Self {
        ColumnCache {
            state: Mutex::new(State { floor, ..Default::default() }),
            budget: AtomicUsize::new(DEFAULT_BUDGET),
            reads: AtomicU64::new(0),
        }
    }

    /// Sets the memory budget; 0 turns snapshots off.
    pub fn set_budget(&self, bytes: usize) {
        self.budget.store(bytes, Ordering::Relaxed);
        let mut state = super::lock(&self.state);
        for slot in state.slots.values_mut() {
            slot.too_big = false;
        }
        evict(&mut state, bytes);
    }

    /// Bytes held by snapshots now.
    pub fn bytes(&self) -> usize {
        super::lock(&self.state).bytes
    }

    /// Full scans served from a snapshot since start-up.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Follows a batch about to be applied (before any of its writes reach storage): appends
    /// rows inserted past a snapshot's last key, drops snapshots of tables written otherwise.
    pub fn applying(&self, version: Version, writes: &[(Vec<u8>, Option<Vec<u8>>)]) {
        let mut state = super::lock(&self.state);
        let state = &mut *state;
        let mut start = 0;
        while start < writes.len() {
            let domain = super::domain(&writes[start].0);
            let end = start + writes[start..].iter().take_while(|(k, _)| super::domain(k) == domain).count();
            let run = &writes[start..end];
            start = end;
            let Some(slot) = state.slots.get_mut(&domain) else {
                // Untouched so far: its last write is this one.
                state.slots.insert(domain, Slot { last_write: version, ..Default::default() });
                continue;
            };
            slot.last_write = slot.last_write.max(version);
            // A table that was too big may fit once rows are deleted.
            slot.too_big &= run.iter().all(|(_, value)| value.is_some());
            if let Some((_, pending)) = &mut slot.building {
                if let Some(list) = pending {
                    let bytes: usize = run.iter().map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len)).sum();
                    let held = bytes + list.last().map_or(0, |(_, _, held)| *held);
                    if held > MAX_PENDING {
                        *pending = None;
                    } else {
                        list.push((version, run.to_vec(), held));
                    }
                }
            }
            if let Some(shared) = slot.snapshot.take() {
                state.bytes = state.bytes.saturating_sub(shared.bytes());
                // Readers holding the snapshot keep theirs; only the last chunk is copied.
                let mut snapshot = Arc::unwrap_or_clone(shared);
                if append(&mut snapshot, version, run) {
                    state.bytes += snapshot.bytes();
                    slot.snapshot = Some(Arc::new(snapshot));
                }
            }
        }
        evict(state, self.budget.load(Ordering::Relaxed));
    }

    /// Forgets the snapshot of `domain`, whose keys are going away (a retired table's).
    pub fn forget(&self, domain: &[u8]) {
        let mut state = super::lock(&self.state);
        if let Some(slot) = state.slots.remove(domain) {
            let held = slot.snapshot.map_or(0, |s| s.bytes());
            state.bytes = state.bytes.saturating_sub(held);
            state.building &= slot.building.is_none();
        }
    }

    /// Forgets every snapshot and build: storage changed wholesale (a snapshot restore) or a
    /// batch may have been applied in part. `floor` becomes the last write of every table.
    pub fn reset(&self, floor: Version) {
        let mut state = super::lock(&self.state);
        state.slots.clear();
        state.bytes = 0;
        state.building = false;
        state.epoch += 1;
        state.floor = state.floor.max(floor);
    }

    /// What a full scan of `domain` by a transaction reading at `version`, with no writes of
    /// its own there, should do; without `build`, only whether a snapshot is ready.
    pub fn lookup(self: &Arc<Self>, domain: &[u8], version: Version, build: bool) -> Lookup {
        let budget = self.budget.load(Ordering::Relaxed);
        if budget == 0 {
            return Lookup::Skip;
        }
        let mut state = super::lock(&self.state);
        state.tick += 1;
        let (tick, floor, epoch, id, busy) = (state.tick, state.floor, state.epoch, state.next_build, state.building);
        let slot = state.slots.entry(domain.to_vec()).or_default();
        slot.used = tick;
        // Readers older than a write the snapshot reflects may not see what it holds.
        if let Some(snapshot) = &slot.snapshot {
            return match version >= snapshot.base {
                true => {
                    self.reads.fetch_add(1, Ordering::Relaxed);
                    Lookup::Ready(snapshot.clone())
                }
                false => Lookup::Skip,
            };
        }
        let base = slot.last_write.max(floor);
        if version < base {
            return Lookup::Skip;
        }
        if !build || slot.too_big || busy || !std::mem::replace(&mut slot.scanned, true) {
            return Lookup::Skip;
        }
        slot.building = Some((id, Some(Vec::new())));
        state.next_build += 1;
        state.building = true;
        Lookup::Build(Builder {
            cache: self.clone(),
            domain: domain.to_vec(),
            id,
            epoch,
            snapshot: ColumnSnapshot { base, ..Default::default() },
            budget,
            too_big: false,
        })
    }
}

/// Appends a batch's writes to one table when they are all inserts past the snapshot's last
/// key (deletes of such keys change nothing visible); false when the snapshot must go.
fn append(snapshot: &mut ColumnSnapshot, version: Version, writes: &[(Vec<u8>, Option<Vec<u8>>)]) -> bool {
    // Batches come in key order; a key at or below the last one is not an insert past it.
    if !writes.windows(2).all(|pair| pair[0].0 < pair[1].0)
        || writes.first().is_some_and(|(key, _)| key.as_slice() <= snapshot.last_key.as_slice())
    {
        return false;
    }
    for (key, value) in writes {
        let Some(value) = value else { continue };
        let Ok(values) = rowcodec::decode_row(value) else { return false };
        snapshot.push(key, &values, Some(version));
    }
    true
}

/// Drops least recently used snapshots until the total is within `budget`.
fn evict(state: &mut State, budget: usize) {
    while state.bytes > budget {
        let victim = state.slots.values_mut().filter(|slot| slot.snapshot.is_some()).min_by_key(|slot| slot.used);
        match victim.and_then(|slot| slot.snapshot.take()) {
            Some(snapshot) => state.bytes = state.bytes.saturating_sub(snapshot.bytes()),
            None => {
                state.bytes = 0;
                return;
            }
        }
    }
}
