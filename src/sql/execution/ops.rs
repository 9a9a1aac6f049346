//! Executors of the plan nodes.

use super::eval::{eval, truth};
use super::{aggregate, gapfill, window, Context, Row, Sink};
use crate::catalog::Table;
use crate::error::{Error, Result};
use crate::mvcc::columns::{Chunk, ColumnSnapshot, Lookup};
use crate::sql::planner::plan::{Expr, JoinKind, Node, SetOperator, SortKey};
use crate::storage::{keycode, rowcodec};
use crate::types::Value;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// Rows fetched from storage per page of a scan.
const SCAN_PAGE: usize = 1024;

/// The encoded primary key an index entry points at: its value for a unique entry, else the
/// key's tail after the indexed values.
fn index_entry_pk(entry_key: &[u8], entry_value: &[u8], prefix_len: usize, columns: usize) -> Result<Vec<u8>> {
    if !entry_value.is_empty() {
        return Ok(entry_value.to_vec());
    }
    let mut rest = &entry_key[prefix_len..];
    for _ in 0..columns {
        keycode::decode_value(&mut rest)?;
    }
    Ok(rest.to_vec())
}

/// A key range: the first key, and the end (exclusive; None: to the end of the keyspace).
type KeyRangeBounds = (Vec<u8>, Option<Vec<u8>>);

/// The key range `[lower, end)` of a key prefix followed by pinned values and bounds on the
/// next column; None when a pinned value or bound is NULL (nothing matches).
fn range_keys(
    mut start: Vec<u8>,
    prefix: &[Expr],
    lower: &Option<(Expr, bool)>,
    upper: &Option<(Expr, bool)>,
    ctx: &mut Context,
) -> Result<Option<KeyRangeBounds>> {
    for e in prefix {
        let v = eval(e, &[], ctx)?;
        if v.is_null() {
            return Ok(None);
        }
        keycode::encode_value(&v, &mut start);
    }
    // The key of the next column's bound value; None (nothing matches) for NULL.
    let value_key = |e: &Expr, ctx: &mut Context| -> Result<Option<Vec<u8>>> {
        let v = eval(e, &[], ctx)?;
        if v.is_null() {
            return Ok(None);
        }
        let mut k = start.clone();
        keycode::encode_value(&v, &mut k);
        Ok(Some(k))
    };
    let lower_key = match lower {
        None => start.clone(),
        Some((e, inclusive)) => match value_key(e, ctx)? {
            None => return Ok(None),
            Some(k) if *inclusive => k,
            // Past every key with this value; nothing is past the last possible key.
            Some(k) => match crate::storage::prefix_end(&k) {
                Some(after) => after,
                None => return Ok(None),
            },
        },
    };
    let end = match upper {
        None => crate::storage::prefix_end(&start),
        Some((e, inclusive)) => match value_key(e, ctx)? {
            None => return Ok(None),
            Some(k) if *inclusive => crate::storage::prefix_end(&k),
            Some(k) => Some(k),
        },
    };
    Ok(Some((lower_key, end)))
}

#[recursive::recursive]
pub fn execute(node: &Node, ctx: &mut Context, sink: &mut Sink) -> Result<()> {
    match node {
        Node::Scan { table, filter, with_key, columns } => {
            let access = Access { columns: columns.as_deref(), ..Access::default() };
            scan(table, access, filter.as_ref(), *with_key, ctx, sink)
        }
        Node::KeyRange { table, prefix, lower, upper, filter, with_key, reverse } => {
            let Some((lower_key, end)) = range_keys(table.row_prefix(), prefix, lower, upper, ctx)? else {
                return Ok(());
            };
            let access = Access { lower: Some(lower_key), upper: end, reverse: *reverse, columns: None };
            scan(table, access, filter.as_ref(), *with_key, ctx, sink)
        }
        Node::IndexRange { table, index, prefix, lower, upper, filter, with_key, index_only } => {
            let index_def = table.indexes.get(*index).ok_or_else(|| Error::Internal("index gone".into()))?;
            let index_prefix = table.index_prefix(index_def);
            let Some((lower_key, end)) = range_keys(index_prefix.clone(), prefix, lower, upper, ctx)? else {
                return Ok(());
            };
            let upper_key = end.as_deref();
            let read = IndexRead {
                table,
                index: index_def,
                prefix_len: index_prefix.len(),
                index_only: *index_only,
                filter: filter.as_ref(),
                with_key: *with_key,
            };
            let bounds = (Some(lower_key.as_slice()), upper_key);
            index_entries(ctx, &index_prefix, bounds, &mut |ctx, key, value| read.emit(key, value, ctx, sink))?;
            Ok(())
        }
        Node::KeyLookup { table, keys, filter, with_key } => {
            // A key listed twice (`k IN (1, 1)`, or two parameters of one value) is read once.
            let mut seen = std::collections::HashSet::new();
            for key_exprs in keys {
                let mut key = table.row_prefix();
                let mut has_null = false;
                for e in key_exprs {
                    let v = eval(e, &[], ctx)?;
                    has_null |= v.is_null();
                    keycode::encode_value(&v, &mut key);
                }
                if has_null || !seen.insert(key.clone()) {
                    continue;
                }
                if let Some(bytes) = ctx.txn.get(&key)? {
                    if !emit_stored(table, key, &bytes, filter.as_ref(), *with_key, ctx, sink)? {
                        return Ok(());
                    }
                }
            }
            Ok(())
        }
        Node::IndexLookup { table, index, values, filter, with_key, index_only } => {
            let index_def = table.indexes.get(*index).ok_or_else(|| Error::Internal("index gone".into()))?;
            let read = IndexRead {
                table,
                index: index_def,
                prefix_len: table.index_prefix(index_def).len(),
                index_only: *index_only,
                filter: filter.as_ref(),
                with_key: *with_key,
            };
            let mut seen = std::collections::HashSet::new();
            for value_exprs in values {
                let mut prefix = table.index_prefix(index_def);
                let mut has_null = false;
                for e in value_exprs {
                    let v = eval(e, &[], ctx)?;
                    has_null |= v.is_null();
                    keycode::encode_value(&v, &mut prefix);
                }
                if has_null || !seen.insert(prefix.clone()) {
                    continue;
                }
                let more =
                    index_entries(ctx, &prefix, (None, None), &mut |ctx, key, value| read.emit(key, value, ctx, sink))?;
                if !more {
                    return Ok(());
                }
            }
            Ok(())
        }
        Node::Values { rows } => {
            for exprs in rows {
                let mut row = Vec::with_capacity(exprs.len());
                for e in exprs {
                    row.push(eval(e, &[], ctx)?);
                }
                if !sink(ctx, row)? {
                    break;
                }
            }
            Ok(())
        }
        Node::Filter { source, predicate } => execute(source, ctx, &mut |ctx, row| {
            if truth(eval(predicate, &row, ctx)?)? == Some(true) {
                sink(ctx, row)
            } else {
                Ok(true)
            }
        }),
        Node::Project { source, exprs } => execute(source, ctx, &mut |ctx, row| {
            let mut out = Vec::with_capacity(exprs.len());
            for e in exprs {
                out.push(eval(e, &row, ctx)?);
            }
            sink(ctx, out)
        }),
        Node::Aggregate { source, group_by, aggregates } => aggregate::execute(source, group_by, aggregates, ctx, sink),
        Node::Window { source, calls } => window::execute(source, calls, ctx, sink),
        Node::GapFill { source, fill } => gapfill::execute(source, fill, ctx, sink),
        Node::Sort { source, keys } => {
            let mut keyed: Vec<(Vec<Value>, Row)> = Vec::new();
            let mut held = ctx.memory.reserve();
            execute(source, ctx, &mut |ctx, row| {
                let mut k = Vec::with_capacity(keys.len());
                for key in keys {
                    k.push(eval(&key.expr, &row, ctx)?);
                }
                held.grow(super::memory::row_bytes(&k) + super::memory::row_bytes(&row))?;
                keyed.push((k, row));
                Ok(true)
            })?;
            keyed.sort_by(|a, b| compare_keys(&a.0, &b.0, keys));
            for (_, row) in keyed {
                if !sink(ctx, row)? {
                    break;
                }
            }
            Ok(())
        }
        Node::Limit { source, limit, offset } => {
            let limit = count_value(limit.as_ref(), "LIMIT", ctx)?;
            let mut skip = count_value(offset.as_ref(), "OFFSET", ctx)?.unwrap_or(0);
            if limit == Some(0) {
                return Ok(());
            }
            let mut emitted = 0u64;
            execute(source, ctx, &mut |ctx, row| {
                if skip > 0 {
                    skip -= 1;
                    return Ok(true);
                }
                emitted += 1;
                Ok(sink(ctx, row)? && limit.is_none_or(|l| emitted < l))
            })
        }
        Node::Distinct { source, on } => {
            let mut seen: HashSet<Row> = HashSet::new();
            let mut held = ctx.memory.reserve();
            execute(source, ctx, &mut |ctx, row| {
                let key = match on {
                    Some(exprs) => {
                        let mut k = Vec::with_capacity(exprs.len());
                        for e in exprs {
                            k.push(eval(e, &row, ctx)?);
                        }
                        k
                    }
                    None => row.clone(),
                };
                held.add_row(&key)?;
                if seen.insert(key) {
                    sink(ctx, row)
                } else {
                    Ok(true)
                }
            })
        }
        Node::NestedLoopJoin { left, right, kind, predicate, left_width, right_width } => {
            let mut held = ctx.memory.reserve();
            let right_rows = super::collect_held(right, ctx, &mut held)?;
            let shape = JoinShape { kind: *kind, left_width: *left_width, right_width: *right_width };
            join(left, &right_rows, shape, predicate.as_ref(), ctx, sink, &mut |_, _| Ok(None))
        }
        Node::LateralJoin { left, right, kind, predicate, right_width, .. } => execute(left, ctx, &mut |ctx, lrow| {
            ctx.outer.push(lrow.clone());
            let right_rows = super::collect(right, ctx);
            ctx.outer.pop();
            let mut matched = false;
            for rrow in right_rows? {
                let mut out = Vec::with_capacity(lrow.len() + rrow.len());
                out.extend(lrow.iter().cloned());
                out.extend(rrow);
                if let Some(p) = predicate {
                    if truth(eval(p, &out, ctx)?)? != Some(true) {
                        continue;
                    }
                }
                matched = true;
                if !sink(ctx, out)? {
                    return Ok(false);
                }
            }
            if !matched && *kind == JoinKind::Left {
                let mut out = lrow;
                out.extend(std::iter::repeat_n(Value::Null, *right_width));
                return sink(ctx, out);
            }
            Ok(true)
        }),
        Node::HashJoin { left, right, kind, left_keys, right_keys, residual, left_width, right_width } => {
            let mut held = ctx.memory.reserve();
            let right_rows = super::collect_held(right, ctx, &mut held)?;
            let mut table: HashMap<Vec<Value>, Vec<usize>> = HashMap::new();
            for (i, row) in right_rows.iter().enumerate() {
                let mut key = Vec::with_capacity(right_keys.len());
                for e in right_keys {
                    key.push(eval(e, row, ctx)?);
                }
                held.add_row(&key)?;
                // NULL never equals anything: such rows can only appear unmatched.
                if !key.iter().any(Value::is_null) {
                    table.entry(key).or_default().push(i);
                }
            }
            let shape = JoinShape { kind: *kind, left_width: *left_width, right_width: *right_width };
            join(left, &right_rows, shape, residual.as_ref(), ctx, sink, &mut |ctx, lrow| {
                let mut key = Vec::with_capacity(left_keys.len());
                for e in left_keys {
                    key.push(eval(e, lrow, ctx)?);
                }
                Ok(Some(table.get(&key).cloned().unwrap_or_default()))
            })
        }
        Node::SetOperation { op, all, left, right } => set_operation(*op, *all, left, right, ctx, sink),
        Node::ProjectSet { source, calls } => super::table_functions::project_set(source, calls, ctx, sink),
        Node::Recursive { id, anchor, recursive, distinct } => {
            let mut seen: HashSet<Row> = HashSet::new();
            let mut round: Vec<Row> = Vec::new();
            // Rows seen stay held for the whole query; each round's rows while they are used.
            let mut seen_held = ctx.memory.reserve();
            for row in super::collect(anchor, ctx)? {
                if !*distinct || seen.insert(row.clone()) {
                    if *distinct {
                        seen_held.add_row(&row)?;
                    }
                    round.push(row);
                }
            }
            while !round.is_empty() {
                ctx.check_cancel()?;
                for row in &round {
                    if !sink(ctx, row.clone())? {
                        return Ok(());
                    }
                }
                ctx.working_tables.insert(*id, std::sync::Arc::new(std::mem::take(&mut round)));
                let mut round_held = ctx.memory.reserve();
                for row in super::collect_held(recursive, ctx, &mut round_held)? {
                    if !*distinct || seen.insert(row.clone()) {
                        if *distinct {
                            seen_held.add_row(&row)?;
                        }
                        round.push(row);
                    }
                }
            }
            ctx.working_tables.remove(id);
            Ok(())
        }
        Node::WorkingTable { id } => {
            let rows = ctx.working_tables.get(id).cloned().unwrap_or_default();
            for row in rows.iter() {
                if !sink(ctx, row.clone())? {
                    break;
                }
            }
            Ok(())
        }
        Node::Virtual { name, filter } => {
            let rows = crate::sql::system::rows(name, ctx)?;
            for row in rows {
                if let Some(f) = filter {
                    if truth(eval(f, &row, ctx)?)? != Some(true) {
                        continue;
                    }
                }
                if !sink(ctx, row)? {
                    break;
                }
            }
            Ok(())
        }
    }
}

/// Finds the right rows that may join a left row: their positions, or None for all of them.
type Candidates<'a> = dyn FnMut(&mut Context, &Row) -> Result<Option<Vec<usize>>> + 'a;

/// The kind and input widths of a join.
#[derive(Clone, Copy)]
struct JoinShape {
    kind: JoinKind,
    left_width: usize,
    right_width: usize,
}

/// Runs a join: for each left row, the right rows `candidates` names (None: every right row)
/// are tested with `predicate`; outer joins add NULL-extended rows for the unmatched sides.
fn join(
    left: &Node,
    right_rows: &[Row],
    shape: JoinShape,
    predicate: Option<&Expr>,
    ctx: &mut Context,
    sink: &mut Sink,
    candidates: &mut Candidates,
) -> Result<()> {
    let mut right_matched = vec![false; right_rows.len()];
    let mut go_on = true;
    execute(left, ctx, &mut |ctx, lrow| {
        let mut matched = false;
        let probe = candidates(ctx, &lrow)?;
        let indexes: Box<dyn Iterator<Item = usize>> = match &probe {
            Some(list) => Box::new(list.iter().copied()),
            None => Box::new(0..right_rows.len()),
        };
        for i in indexes {
            let mut joined = lrow.clone();
            joined.extend_from_slice(&right_rows[i]);
            let ok = match predicate {
                Some(p) => truth(eval(p, &joined, ctx)?)? == Some(true),
                None => true,
            };
            if ok {
                matched = true;
                right_matched[i] = true;
                if !sink(ctx, joined)? {
                    go_on = false;
                    return Ok(false);
                }
            }
        }
        if !matched && matches!(shape.kind, JoinKind::Left | JoinKind::Full) {
            let mut joined = lrow;
            joined.extend(std::iter::repeat_n(Value::Null, shape.right_width));
            if !sink(ctx, joined)? {
                go_on = false;
                return Ok(false);
            }
        }
        Ok(true)
    })?;
    if go_on && matches!(shape.kind, JoinKind::Right | JoinKind::Full) {
        emit_unmatched_right(right_rows, &right_matched, shape.left_width, ctx, sink)?;
    }
    Ok(())
}

fn emit_unmatched_right(
    rows: &[Row],
    matched: &[bool],
    left_width: usize,
    ctx: &mut Context,
    sink: &mut Sink,
) -> Result<()> {
    for (row, hit) in rows.iter().zip(matched) {
        if !hit {
            let mut joined: Row = std::iter::repeat_n(Value::Null, left_width).collect();
            joined.extend_from_slice(row);
            if !sink(ctx, joined)? {
                break;
            }
        }
    }
    Ok(())
}

/// Which rows of a table a scan reads, and which of their columns.
#[derive(Default)]
struct Access<'a> {
    /// Keys in `[lower, upper)`; all without bounds.
    lower: Option<Vec<u8>>,
    upper: Option<Vec<u8>>,
    reverse: bool,
    /// The columns read, ascending (None: all); a column snapshot leaves the others NULL.
    columns: Option<&'a [usize]>,
}

/// Streams a table's visible rows with keys in `[lower, upper)`, page by page.
fn scan(
    table: &Table,
    access: Access,
    filter: Option<&Expr>,
    with_key: bool,
    ctx: &mut Context,
    sink: &mut Sink,
) -> Result<()> {
    let prefix = table.row_prefix();
    let width = table.columns.len();
    // A full scan reads the table's column snapshot, or builds one as it goes.
    let Access { lower, upper, reverse, columns } = access;
    let mut builder = None;
    if lower.is_none() && upper.is_none() && !reverse && !with_key {
        match ctx.txn.column_lookup(&prefix) {
            Lookup::Ready(snapshot) => return scan_snapshot(&snapshot, width, columns, filter, ctx, sink),
            Lookup::Build(b) => builder = Some(b),
            Lookup::Skip => {}
        }
    }
    let mut after: Option<Vec<u8>> = None;
    let mut page: Vec<Row> = Vec::with_capacity(SCAN_PAGE);
    loop {
        ctx.check_cancel()?;
        // Decode a page of rows while the storage iterator is open, then evaluate them with the
        // context free again (filters may run subqueries).
        let mut last = Vec::new();
        let visit = |key: &[u8], value: &[u8]| {
            let mut row = rowcodec::decode_row(value)?;
            if let Some(builder) = &mut builder {
                builder.push(key, &row);
            }
            row.resize(width, Value::Null);
            if with_key {
                row.push(Value::Bytea(key.to_vec()));
            }
            page.push(row);
            if page.len() == SCAN_PAGE {
                last.extend_from_slice(key);
                return Ok(false);
            }
            Ok(true)
        };
        // `after` is where the previous page stopped: above it going forward, below it
        // going backwards.
        if reverse {
            ctx.txn.for_each_range_rev(&prefix, after.as_deref(), lower.as_deref(), upper.as_deref(), visit)?;
        } else {
            ctx.txn.for_each_range(&prefix, after.as_deref(), lower.as_deref(), upper.as_deref(), visit)?;
        }
        let full = page.len() == SCAN_PAGE;
        for row in page.drain(..) {
            if let Some(f) = filter {
                if truth(eval(f, &row, ctx)?)? != Some(true) {
                    continue;
                }
            }
            if !sink(ctx, row)? {
                return Ok(());
            }
        }
        if !full {
            if let Some(builder) = builder {
                builder.finish();
            }
            return Ok(());
        }
        after = Some(last);
    }
}

/// Rows per cancel check when reading a column snapshot.
const SNAPSHOT_STRIDE: usize = 4096;

/// Streams the rows of a table's column snapshot visible to the transaction.
fn scan_snapshot(
    snapshot: &ColumnSnapshot,
    width: usize,
    columns: Option<&[usize]>,
    filter: Option<&Expr>,
    ctx: &mut Context,
    sink: &mut Sink,
) -> Result<()> {
    let version = ctx.txn.read_version();
    let mut read = vec![columns.is_none(); width];
    for &column in columns.unwrap_or_default().iter().filter(|&&c| c < width) {
        read[column] = true;
    }
    // The filter runs first on a probe row where it can, and rows are built only for those
    // that pass; otherwise it runs on each built row.
    let mut probe = filter.and_then(|f| ProbeFilter::new(f, columns, width));
    for chunk in snapshot.chunks() {
        for row in 0..chunk.rows() {
            if row % SNAPSHOT_STRIDE == 0 {
                ctx.check_cancel()?;
            }
            if !chunk.visible(row, version) {
                continue;
            }
            if let Some(probe) = &mut probe {
                if !probe.passes(chunk, row, ctx)? {
                    continue;
                }
            }
            let mut values: Row = Vec::with_capacity(width);
            for (column, &read) in read.iter().enumerate() {
                values.push(if read { chunk.value(row, column) } else { Value::Null });
            }
            if let (Some(f), None) = (filter, &probe) {
                if truth(eval(f, &values, ctx)?)? != Some(true) {
                    continue;
                }
            }
            if !sink(ctx, values)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A scan's filter evaluated on one reused row that holds only the columns the filter reads,
/// so that rows of a column snapshot are built (or aggregated) only when they pass.
pub(super) struct ProbeFilter<'e> {
    filter: &'e Expr,
    columns: Vec<usize>,
    row: Row,
}

impl<'e> ProbeFilter<'e> {
    /// None without the scan's list of the columns read: a correlated subquery in the filter
    /// may read any column, so the filter needs whole rows.
    pub(super) fn new(filter: &'e Expr, read: Option<&[usize]>, width: usize) -> Option<Self> {
        read?;
        let mut columns = std::collections::BTreeSet::new();
        filter.walk(&mut |e| {
            if let Expr::Column(c) = e {
                if *c < width {
                    columns.insert(*c);
                }
            }
        });
        Some(ProbeFilter { filter, columns: columns.into_iter().collect(), row: vec![Value::Null; width] })
    }

    /// Whether row `row` of `chunk` passes the filter.
    pub(super) fn passes(&mut self, chunk: &Chunk, row: usize, ctx: &mut Context) -> Result<bool> {
        for &c in &self.columns {
            self.row[c] = chunk.value(row, c);
        }
        Ok(truth(eval(self.filter, &self.row, ctx)?)? == Some(true))
    }
}

/// Decodes a stored row, applies the filter and pushes it (with its key when asked).
fn emit_stored(
    table: &Table,
    key: Vec<u8>,
    bytes: &[u8],
    filter: Option<&Expr>,
    with_key: bool,
    ctx: &mut Context,
    sink: &mut Sink,
) -> Result<bool> {
    let mut row = table.decode_row(bytes)?;
    if with_key {
        row.push(Value::Bytea(key));
    }
    emit_filtered(row, filter, ctx, sink)
}

/// Pushes `row` if it passes `filter`; false when the consumer wants no more.
fn emit_filtered(row: Row, filter: Option<&Expr>, ctx: &mut Context, sink: &mut Sink) -> Result<bool> {
    if let Some(f) = filter {
        if truth(eval(f, &row, ctx)?)? != Some(true) {
            return Ok(true);
        }
    }
    sink(ctx, row)
}

/// A visitor of index entries (key, value); returns false to stop.
type EntryVisitor<'v> = dyn FnMut(&mut Context, &[u8], &[u8]) -> Result<bool> + 'v;

/// Calls `each` with the visible index entries under `prefix` within `bounds`, a page of
/// [`SCAN_PAGE`] at a time, so that memory does not grow with the number of entries and a
/// cancel is seen between pages. Returns false if `each` stopped.
fn index_entries(
    ctx: &mut Context,
    prefix: &[u8],
    (lower, upper): (Option<&[u8]>, Option<&[u8]>),
    each: &mut EntryVisitor,
) -> Result<bool> {
    let mut after: Option<Vec<u8>> = None;
    let mut page: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(64);
    loop {
        ctx.check_cancel()?;
        page.clear();
        ctx.txn.for_each_range(prefix, after.as_deref(), lower, upper, |key, value| {
            page.push((key.to_vec(), value.to_vec()));
            Ok(page.len() < SCAN_PAGE)
        })?;
        for (key, value) in &page {
            if !each(ctx, key, value)? {
                return Ok(false);
            }
        }
        if page.len() < SCAN_PAGE {
            return Ok(true);
        }
        after = page.pop().map(|(key, _)| key);
    }
}

/// How the entries of one index are turned into rows.
struct IndexRead<'a> {
    table: &'a Table,
    index: &'a crate::catalog::Index,
    /// The length of the index's key prefix.
    prefix_len: usize,
    /// The index covers the query: rows are built from the entries alone.
    index_only: bool,
    filter: Option<&'a Expr>,
    with_key: bool,
}

impl IndexRead<'_> {
    /// Emits the row an index entry stands for, built from the entry or read by the primary
    /// key it holds. Returns false to stop.
    fn emit(&self, entry_key: &[u8], entry_value: &[u8], ctx: &mut Context, sink: &mut Sink) -> Result<bool> {
        let (table, index) = (self.table, self.index);
        if self.index_only {
            let row = index_row(table, index, entry_key, self.prefix_len)?;
            return emit_filtered(row, self.filter, ctx, sink);
        }
        let pk = index_entry_pk(entry_key, entry_value, self.prefix_len, index.columns.len())?;
        let mut row_key = table.row_prefix();
        row_key.extend_from_slice(&pk);
        match ctx.txn.get(&row_key)? {
            Some(bytes) => emit_stored(table, row_key, &bytes, self.filter, self.with_key, ctx, sink),
            None => Ok(true),
        }
    }
}

/// The row an index entry stands for, as an index-only lookup reads it: the indexed columns
/// decoded from the entry's key, every other column NULL.
fn index_row(table: &Table, index: &crate::catalog::Index, entry_key: &[u8], prefix_len: usize) -> Result<Row> {
    let mut row = vec![Value::Null; table.columns.len()];
    let mut rest = entry_key.get(prefix_len..).ok_or_else(|| Error::Corruption("index entry too short".into()))?;
    for &column in &index.columns {
        let value = keycode::decode_value(&mut rest)?;
        if let Some(slot) = row.get_mut(column) {
            *slot = value;
        }
    }
    Ok(row)
}

/// Orders two sort keys by `keys`' directions and NULL placement.
pub fn compare_keys(a: &[Value], b: &[Value], keys: &[SortKey]) -> Ordering {
    for ((x, y), key) in a.iter().zip(b.iter()).zip(keys) {
        let ord = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if key.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (false, true) => {
                if key.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            _ => {
                let o = x.sort_cmp(y);
                if key.descending {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

fn count_value(expr: Option<&Expr>, what: &str, ctx: &mut Context) -> Result<Option<u64>> {
    let Some(e) = expr else { return Ok(None) };
    match eval(e, &[], ctx)? {
        Value::Null => Ok(None),
        v => match v.as_i64() {
            Some(n) if n < 0 => Err(Error::DataException(
                if what == "LIMIT" { "2201W" } else { "2201X" },
                format!("{what} must not be negative"),
            )),
            Some(n) => Ok(Some(n as u64)),
            None => Err(Error::DatatypeMismatch(format!("argument of {what} must be type bigint"))),
        },
    }
}

/// Hands a row to the consumer of a set operation. A chain of set operations (`SELECT …
/// UNION ALL SELECT … UNION ALL …`) nests one consumer per operation, and every row of the
/// innermost passes through all of them: this keeps that chain on a stack with room.
#[recursive::recursive]
fn forward(sink: &mut Sink, ctx: &mut Context, row: Row) -> Result<bool> {
    sink(ctx, row)
}

fn set_operation(
    op: SetOperator,
    all: bool,
    left: &Node,
    right: &Node,
    ctx: &mut Context,
    sink: &mut Sink,
) -> Result<()> {
    match op {
        SetOperator::Union if all => {
            let mut go_on = true;
            execute(left, ctx, &mut |ctx, row| {
                go_on = forward(sink, ctx, row)?;
                Ok(go_on)
            })?;
            if go_on {
                execute(right, ctx, sink)?;
            }
            Ok(())
        }
        SetOperator::Union => {
            let mut seen: HashSet<Row> = HashSet::new();
            let mut held = ctx.memory.reserve();
            let mut go_on = true;
            for side in [left, right] {
                if !go_on {
                    break;
                }
                execute(side, ctx, &mut |ctx, row| {
                    if seen.insert(row.clone()) {
                        held.add_row(&row)?;
                        go_on = forward(sink, ctx, row)?;
                    }
                    Ok(go_on)
                })?;
            }
            Ok(())
        }
        SetOperator::Intersect | SetOperator::Except => {
            let mut counts: HashMap<Row, usize> = HashMap::new();
            let mut held = ctx.memory.reserve();
            for row in super::collect_held(right, ctx, &mut held)? {
                *counts.entry(row).or_insert(0) += 1;
            }
            let mut emitted: HashSet<Row> = HashSet::new();
            execute(left, ctx, &mut |ctx, row| {
                let count = counts.get_mut(&row);
                let keep = match (op, all) {
                    (SetOperator::Intersect, true) => match count {
                        Some(c) if *c > 0 => {
                            *c -= 1;
                            true
                        }
                        _ => false,
                    },
                    (SetOperator::Intersect, false) => count.is_some() && emitted.insert(row.clone()),
                    (_, true) => match count {
                        Some(c) if *c > 0 => {
                            *c -= 1;
                            false
                        }
                        _ => true,
                    },
                    (_, false) => count.is_none() && emitted.insert(row.clone()),
                };
                if keep {
                    forward(sink, ctx, row)
                } else {
                    Ok(true)
                }
            })
        }
    }
}
