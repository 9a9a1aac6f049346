//! Plan optimization: an ordered list of small rewrites of the node tree.
//!
//! 0. Join order: a tree of inner joins is rebuilt smallest input first, each next input
//!    joined by an equality where one exists (see [`join_order`]).
//! 1. Filter pushdown: WHERE terms move below joins to the side they read, and into scans.
//! 2. Access path selection: a scan whose filter fixes the whole primary key (`=` or `IN`)
//!    becomes a key lookup; one that fixes all columns of a secondary index becomes an index
//!    lookup. The full filter stays on the lookup, so the rewrite never changes results.
//! 3. Column use: each full table scan learns which of its columns the query reads (see
//!    [`mark_used_columns`]).

use super::join_order;
use super::plan::{BinaryOp, Expr, JoinKind, Node, Plan};
use super::select::{join_conjunction, split_conjunction};
use crate::catalog::Table;
use crate::types::DataType;
use std::collections::BTreeSet;

/// Optimizes every node tree in a plan.
pub fn optimize_plan(plan: Plan) -> Plan {
    match plan {
        Plan::Query { node, columns } => Plan::Query { node: mark_used_columns(optimize(node), None), columns },
        Plan::Insert { table, source, on_conflict, returning, checks } => {
            Plan::Insert { table, source: optimize(source), on_conflict, returning, checks }
        }
        Plan::Update { table, source, assignments, returning, checks } => {
            Plan::Update { table, source: optimize(source), assignments, returning, checks }
        }
        Plan::Delete { table, source, returning } => Plan::Delete { table, source: optimize(source), returning },
        Plan::CreateTable { table, if_not_exists, sequences, rows } => {
            Plan::CreateTable { table, if_not_exists, sequences, rows: rows.map(optimize) }
        }
        Plan::Explain(inner) => Plan::Explain(Box::new(optimize_plan(*inner))),
        Plan::WithModifications { modifications, query } => Plan::WithModifications {
            modifications: modifications.into_iter().map(|(id, p)| (id, optimize_plan(p))).collect(),
            query: Box::new(optimize_plan(*query)),
        },
        other => other,
    }
}

/// Optimizes a node tree.
pub fn optimize(node: Node) -> Node {
    let node = match join_order::reorder(node, optimize) {
        join_order::Reordered::Done(done) => return done,
        join_order::Reordered::Unchanged(node) => node,
    };
    let node = push_filter(node);
    let node = map_children(node, optimize);
    let node = select_access_path(node);
    remove_sort_on_key_order(node)
}

/// A sort over a projection of a table scan or key range is redundant when it orders by the
/// primary key columns (skipping leading columns the key range pins), all ascending or all
/// descending: storage returns rows in that order, backwards for descending. Without the
/// sort, a LIMIT above stops the scan early (`ORDER BY ts DESC LIMIT 1` reads one row).
fn remove_sort_on_key_order(node: Node) -> Node {
    let Node::Sort { source, keys } = node else { return node };
    let Node::Project { source: inner, exprs } = *source else {
        return Node::Sort { source, keys };
    };
    let (table, pinned) = match inner.as_ref() {
        Node::Scan { table, .. } => (table, 0),
        Node::KeyRange { table, prefix, reverse: false, .. } => (table, prefix.len()),
        _ => return Node::Sort { source: Box::new(Node::Project { source: inner, exprs }), keys },
    };
    // Key columns are never NULL, so NULLS FIRST/LAST does not matter.
    let descending = keys.first().is_some_and(|k| k.descending);
    let sort_columns: Option<Vec<usize>> = keys
        .iter()
        .map(|k| match (&k.expr, k.descending == descending) {
            (Expr::Column(j), true) => match exprs.get(*j) {
                Some(Expr::Column(c)) => Some(*c),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let pk = &table.primary_key;
    let in_key_order = sort_columns.is_some_and(|cols| {
        !cols.is_empty()
            && (0..=pinned.min(pk.len())).any(|a| pk.len() >= a + cols.len() && pk[a..a + cols.len()] == cols[..])
    });
    if !in_key_order {
        return Node::Sort { source: Box::new(Node::Project { source: inner, exprs }), keys };
    }
    let source = match (*inner, descending) {
        (scan, false) => scan,
        (Node::Scan { table, filter, with_key, .. }, true) => {
            Node::KeyRange { table, prefix: Vec::new(), lower: None, upper: None, filter, with_key, reverse: true }
        }
        (Node::KeyRange { table, prefix, lower, upper, filter, with_key, .. }, true) => {
            Node::KeyRange { table, prefix, lower, upper, filter, with_key, reverse: true }
        }
        (other, true) => {
            return Node::Sort { source: Box::new(Node::Project { source: Box::new(other), exprs }), keys }
        }
    };
    Node::Project { source: Box::new(source), exprs }
}

#[recursive::recursive]
fn map_children(node: Node, f: fn(Node) -> Node) -> Node {
    let b = |n: Box<Node>| Box::new(f(*n));
    match node {
        Node::Filter { source, predicate } => Node::Filter { source: b(source), predicate },
        Node::Project { source, exprs } => Node::Project { source: b(source), exprs },
        Node::Aggregate { source, group_by, aggregates } => Node::Aggregate { source: b(source), group_by, aggregates },
        Node::Window { source, calls } => Node::Window { source: b(source), calls },
        Node::GapFill { source, fill } => Node::GapFill { source: b(source), fill },
        Node::ProjectSet { source, calls } => Node::ProjectSet { source: b(source), calls },
        Node::Sort { source, keys } => Node::Sort { source: b(source), keys },
        Node::Limit { source, limit, offset } => Node::Limit { source: b(source), limit, offset },
        Node::Distinct { source, on } => Node::Distinct { source: b(source), on },
        Node::NestedLoopJoin { left, right, kind, predicate, left_width, right_width } => {
            Node::NestedLoopJoin { left: b(left), right: b(right), kind, predicate, left_width, right_width }
        }
        Node::LateralJoin { left, right, kind, predicate, left_width, right_width } => {
            Node::LateralJoin { left: b(left), right: b(right), kind, predicate, left_width, right_width }
        }
        Node::HashJoin { left, right, kind, left_keys, right_keys, residual, left_width, right_width } => {
            Node::HashJoin {
                left: b(left),
                right: b(right),
                kind,
                left_keys,
                right_keys,
                residual,
                left_width,
                right_width,
            }
        }
        Node::SetOperation { op, all, left, right } => Node::SetOperation { op, all, left: b(left), right: b(right) },
        Node::Recursive { id, anchor, recursive, distinct } => {
            Node::Recursive { id, anchor: b(anchor), recursive: b(recursive), distinct }
        }
        leaf => leaf,
    }
}

fn push_filter(node: Node) -> Node {
    let Node::Filter { source, predicate } = node else { return node };
    match *source {
        Node::Filter { source: inner, predicate: p2 } => push_filter(Node::Filter {
            source: inner,
            predicate: Expr::Binary(BinaryOp::And, Box::new(p2), Box::new(predicate)),
        }),
        Node::Scan { table, filter, with_key, .. } => {
            // A filter may read the enclosing query's row (a correlated subquery, the right
            // side of a LATERAL join): keys bound to it are looked up for each outer row.
            if has_subquery(&predicate) {
                return Node::Filter {
                    source: Box::new(Node::Scan { table, filter, with_key, columns: None }),
                    predicate,
                };
            }
            let filter = match filter {
                Some(f) => Expr::Binary(BinaryOp::And, Box::new(f), Box::new(predicate)),
                None => predicate,
            };
            Node::Scan { table, filter: Some(filter), with_key, columns: None }
        }
        join @ (Node::NestedLoopJoin { kind, left_width, .. } | Node::HashJoin { kind, left_width, .. }) => {
            let mut to_left = Vec::new();
            let mut to_right = Vec::new();
            let mut keep = Vec::new();
            for term in split_conjunction(predicate) {
                match term.join_sides(left_width) {
                    (_, false, false) if matches!(kind, JoinKind::Inner | JoinKind::Left) => to_left.push(term),
                    (false, true, false) if matches!(kind, JoinKind::Inner | JoinKind::Right) => {
                        match term.remap_columns(&|i| i.checked_sub(left_width)) {
                            Some(t) => to_right.push(t),
                            None => keep.push(term),
                        }
                    }
                    _ => keep.push(term),
                }
            }
            let wrap = |n: Box<Node>, terms: Vec<Expr>| -> Box<Node> {
                match join_conjunction(terms) {
                    Some(p) => Box::new(push_filter(Node::Filter { source: n, predicate: p })),
                    None => n,
                }
            };
            let join = match join {
                Node::NestedLoopJoin { left, right, kind, predicate, left_width, right_width } => {
                    Node::NestedLoopJoin {
                        left: wrap(left, to_left),
                        right: wrap(right, to_right),
                        kind,
                        predicate,
                        left_width,
                        right_width,
                    }
                }
                Node::HashJoin { left, right, kind, left_keys, right_keys, residual, left_width, right_width } => {
                    Node::HashJoin {
                        left: wrap(left, to_left),
                        right: wrap(right, to_right),
                        kind,
                        left_keys,
                        right_keys,
                        residual,
                        left_width,
                        right_width,
                    }
                }
                other => other,
            };
            match join_conjunction(keep) {
                Some(p) => Node::Filter { source: Box::new(join), predicate: p },
                None => join,
            }
        }
        other => Node::Filter { source: Box::new(other), predicate },
    }
}

fn has_subquery(e: &Expr) -> bool {
    let mut found = false;
    e.walk(&mut |x| {
        if matches!(x, Expr::ScalarSubquery(_) | Expr::ArraySubquery(_) | Expr::Exists(_) | Expr::InSubquery { .. }) {
            found = true;
        }
    });
    found
}

/// For a column, the lists of values the filter pins it to (`col = v` or `col IN (…)`).
fn pinned_values(terms: &[Expr], column: usize) -> Option<Vec<Expr>> {
    for term in terms {
        match term {
            Expr::Binary(BinaryOp::Eq, a, b) => {
                for (c, v) in [(a, b), (b, a)] {
                    if **c == Expr::Column(column) && v.is_key_bound() {
                        return Some(vec![(**v).clone()]);
                    }
                }
            }
            Expr::InList { expr, list } if **expr == Expr::Column(column) && list.iter().all(Expr::is_key_bound) => {
                return Some(list.clone());
            }
            _ => {}
        }
    }
    None
}

/// Every combination of pinned values for a list of columns (bounded to keep plans small).
fn key_combinations(terms: &[Expr], columns: &[usize]) -> Option<Vec<Vec<Expr>>> {
    let mut combos: Vec<Vec<Expr>> = vec![Vec::new()];
    for &c in columns {
        let values = pinned_values(terms, c)?;
        let mut next = Vec::new();
        for combo in &combos {
            for v in &values {
                let mut k = combo.clone();
                k.push(v.clone());
                next.push(k);
            }
        }
        if next.len() > 1024 {
            return None;
        }
        combos = next;
    }
    Some(combos)
}

fn select_access_path(node: Node) -> Node {
    let Node::Scan { table, filter: Some(filter), with_key, .. } = node else { return node };
    let terms = split_conjunction(filter.clone());
    if let Some(keys) = primary_key_lookup(&table, &terms) {
        return Node::KeyLookup { table, keys, filter: Some(filter), with_key };
    }
    // Without statistics, the narrowest path by its shape: two points for each column pinned
    // to values, one for each bound on the column after them, one less for a secondary index
    // (a second read per row); an equality on every column of a unique index reads at most
    // one row. Ties go to the primary key (which also keeps rows in key order for an ORDER BY
    // and LIMIT above), then to the earlier index.
    let score = |prefix: &[Expr], lower: &Bound, upper: &Bound| {
        2 * prefix.len() + usize::from(lower.is_some()) + usize::from(upper.is_some())
    };
    let mut best: Option<(usize, AccessPath)> = None;
    let mut consider = |points: usize, path: AccessPath| {
        if best.as_ref().is_none_or(|(b, _)| points > *b) {
            best = Some((points, path));
        }
    };
    if let Some((prefix, lower, upper)) = primary_key_range(&table, &terms) {
        consider(score(&prefix, &lower, &upper), AccessPath::KeyRange(prefix, lower, upper));
    }
    for (i, index) in table.indexes.iter().enumerate() {
        if let Some(values) = key_combinations(&terms, &index.columns) {
            let points = if index.unique { usize::MAX } else { 2 * index.columns.len() - 1 };
            consider(points, AccessPath::IndexLookup(i, values));
        } else if let Some((prefix, lower, upper)) = key_range(&index.columns, &terms) {
            consider(score(&prefix, &lower, &upper) - 1, AccessPath::IndexRange(i, prefix, lower, upper));
        }
    }
    let filter = Some(filter);
    match best {
        None => Node::Scan { table, filter, with_key, columns: None },
        Some((_, AccessPath::KeyRange(prefix, lower, upper))) => {
            Node::KeyRange { table, prefix, lower, upper, filter, with_key, reverse: false }
        }
        Some((_, AccessPath::IndexLookup(index, values))) => {
            Node::IndexLookup { table, index, values, filter, with_key, index_only: false }
        }
        Some((_, AccessPath::IndexRange(index, prefix, lower, upper))) => {
            Node::IndexRange { table, index, prefix, lower, upper, filter, with_key, index_only: false }
        }
    }
}

/// A way to read a table's rows other than a full scan or a lookup of whole primary keys.
enum AccessPath {
    /// Leading primary key columns pinned, bounds on the next.
    KeyRange(Vec<Expr>, Bound, Bound),
    /// Every column of index `.0` pinned to each of the value sets.
    IndexLookup(usize, Vec<Vec<Expr>>),
    /// Leading columns of index `.0` pinned, bounds on the next.
    IndexRange(usize, Vec<Expr>, Bound, Bound),
}

/// A range bound: the value and whether it is inclusive.
type Bound = Option<(Expr, bool)>;

/// Bounds on a column from `col > v`, `col >= v`, `col < v`, `col <= v` (either side).
type Bounds = (Bound, Bound);

fn column_bounds(terms: &[Expr], column: usize) -> Bounds {
    let (mut lower, mut upper) = (None, None);
    for term in terms {
        let Some((op, value)) = term.bound_on(&Expr::Column(column)) else { continue };
        match op {
            BinaryOp::Gt if lower.is_none() => lower = Some((value, false)),
            BinaryOp::GtEq if lower.is_none() => lower = Some((value, true)),
            BinaryOp::Lt if upper.is_none() => upper = Some((value, false)),
            BinaryOp::LtEq if upper.is_none() => upper = Some((value, true)),
            _ => {}
        }
    }
    (lower, upper)
}

/// A primary-key range: leading columns pinned to single values, then optional bounds on the
/// next key column (`WHERE device = $1 AND ts BETWEEN $2 AND $3` on a `(device, ts)` key).
fn primary_key_range(table: &Table, terms: &[Expr]) -> Option<(Vec<Expr>, Bound, Bound)> {
    key_range(&table.primary_key, terms)
}

/// A range over an ordered list of key columns: leading columns pinned to single values, then
/// optional bounds on the next one. None when nothing narrows the range.
fn key_range(columns: &[usize], terms: &[Expr]) -> Option<(Vec<Expr>, Bound, Bound)> {
    let mut prefix = Vec::new();
    for &c in columns {
        match pinned_values(terms, c) {
            Some(values) if values.len() == 1 => prefix.push(values.into_iter().next()?),
            _ => break,
        }
    }
    let (lower, upper) = match columns.get(prefix.len()) {
        Some(&next) => column_bounds(terms, next),
        None => (None, None),
    };
    if prefix.is_empty() && lower.is_none() && upper.is_none() {
        return None;
    }
    Some((prefix, lower, upper))
}

fn primary_key_lookup(table: &Table, terms: &[Expr]) -> Option<Vec<Vec<Expr>>> {
    if table.primary_key.is_empty() {
        return None;
    }
    key_combinations(terms, &table.primary_key)
}

/// Records on each full table scan which of its columns the nodes above read (a column
/// snapshot then materializes only those), and makes an index lookup or range index-only
/// when they are all in the index. Follows rows through the nodes that keep their shape (filter, sort,
/// limit) up to the projection or aggregate that reads them; below any other node, and
/// wherever a correlated subquery might read the row, every column counts.
fn mark_used_columns(node: Node, used: Option<BTreeSet<usize>>) -> Node {
    let with = |used: Option<BTreeSet<usize>>, exprs: &mut dyn Iterator<Item = &Expr>| {
        let mut used = used?;
        for e in exprs {
            read_columns(e, &mut used)?;
        }
        Some(used)
    };
    match node {
        Node::Scan { table, filter, with_key, .. } => {
            let columns = with(used, &mut filter.iter()).map(|set| set.into_iter().collect());
            Node::Scan { table, filter, with_key, columns }
        }
        Node::IndexLookup { table, index, values, filter, with_key, .. } => {
            let index_only =
                !with_key && with(used, &mut filter.iter()).is_some_and(|u| index_covers(&table, index, &u));
            Node::IndexLookup { table, index, values, filter, with_key, index_only }
        }
        Node::IndexRange { table, index, prefix, lower, upper, filter, with_key, .. } => {
            let index_only =
                !with_key && with(used, &mut filter.iter()).is_some_and(|u| index_covers(&table, index, &u));
            Node::IndexRange { table, index, prefix, lower, upper, filter, with_key, index_only }
        }
        Node::Filter { source, predicate } => {
            let used = with(used, &mut std::iter::once(&predicate));
            Node::Filter { source: Box::new(mark_used_columns(*source, used)), predicate }
        }
        Node::Sort { source, keys } => {
            let used = with(used, &mut keys.iter().map(|k| &k.expr));
            Node::Sort { source: Box::new(mark_used_columns(*source, used)), keys }
        }
        Node::Limit { source, limit, offset } => {
            Node::Limit { source: Box::new(mark_used_columns(*source, used)), limit, offset }
        }
        Node::Project { source, exprs } => {
            let used = with(Some(BTreeSet::new()), &mut exprs.iter());
            Node::Project { source: Box::new(mark_used_columns(*source, used)), exprs }
        }
        Node::Aggregate { source, group_by, aggregates } => {
            let inputs = aggregates
                .iter()
                .flat_map(|a| a.args.iter().chain(a.filter.iter()).chain(a.order_by.iter().map(|k| &k.expr)));
            let used = with(Some(BTreeSet::new()), &mut group_by.iter().chain(inputs));
            Node::Aggregate { source: Box::new(mark_used_columns(*source, used)), group_by, aggregates }
        }
        other => map_children(other, |child| mark_used_columns(child, None)),
    }
}

/// Whether index `index` of `table` holds every column in `used` as the row does: decoding
/// the index key gives back the stored value of exactly the column's type (not so for the
/// integer and float types narrower than 64 bits, which decode as int8 and float8, for
/// numerics, which lose trailing zeros, and for the types whose equal values differ).
fn index_covers(table: &Table, index: usize, used: &BTreeSet<usize>) -> bool {
    let Some(index) = table.indexes.get(index) else { return false };
    used.iter().all(|c| {
        index.columns.contains(c)
            && table.columns.get(*c).is_some_and(|column| {
                matches!(
                    column.data_type,
                    DataType::Bool
                        | DataType::Int8
                        | DataType::Text
                        | DataType::Varchar(_)
                        | DataType::Bytea
                        | DataType::Date
                        | DataType::Time
                        | DataType::Timestamp
                        | DataType::TimestampTz
                        | DataType::Uuid
                )
            })
    })
}

/// Adds the input columns `e` reads to `used`; None if a correlated subquery in it may read
/// any of them.
fn read_columns(e: &Expr, used: &mut BTreeSet<usize>) -> Option<()> {
    let mut correlated = false;
    e.walk(&mut |e| match e {
        Expr::Column(i) => {
            used.insert(*i);
        }
        Expr::Exists(q) | Expr::ScalarSubquery(q) | Expr::ArraySubquery(q) | Expr::InSubquery { subquery: q, .. } => {
            correlated |= q.correlated;
        }
        _ => {}
    });
    (!correlated).then_some(())
}
