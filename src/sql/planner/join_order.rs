//! Join ordering for a tree of inner joins (`FROM a, b, c WHERE …` or `a JOIN b ON …`).
//!
//! The binder builds joins in the order the query names the tables, and a comma join is a
//! cross product with the WHERE clause above it. Here the tree is flattened into its inputs
//! (the leaves) and the conjunctive terms of every join condition and filter above it, then
//! rebuilt left-deep, greedily:
//!
//! 1. Each leaf gets the terms that read only it and is optimized alone (a term that fixes
//!    the primary key makes it a key lookup). Its estimated row count comes from the access
//!    path it ends up with (see [`estimate`]).
//! 2. The first leaf is the smallest; each next one is the smallest leaf that some
//!    equality term joins to those already placed, or the smallest of all when none is
//!    (a cross product that cannot be avoided). Ties keep the order the query wrote.
//! 3. Each join takes every term whose leaves are now all placed; equalities between the
//!    two sides become hash-join keys ([`make_join`]). The hash side (the right input, held
//!    in memory) is the new leaf, or what is built so far when that is expected to be
//!    smaller: an equality join is expected to keep the larger side's rows, a cross product
//!    their product.
//!
//! A projection on top restores the column order the query wrote, so nothing above the
//! joins changes. Inner joins commute and associate, and every term is still applied, so
//! the result is the same rows; only the order of unsorted output may differ. A term with
//! a subquery, an outer reference or a volatile function stays above the joins, where the
//! written row is restored.

use super::plan::{BinaryOp, Expr, JoinKind, Node};
use super::select::{join_conjunction, make_join, split_conjunction};

/// One input of the flattened join: its plan and where its columns sat in the written order.
struct Leaf {
    node: Node,
    offset: usize,
    width: usize,
}

/// What [`reorder`] did.
pub enum Reordered {
    /// The rebuilt tree, its inputs already optimized.
    Done(Node),
    /// Not a tree of inner joins: the node as it was.
    Unchanged(Node),
}

/// Reorders the inner joins under `node` if it is a filter over inner joins or an inner
/// join.
pub fn reorder(node: Node, optimize: fn(Node) -> Node) -> Reordered {
    if !is_inner_join(&node) && !matches!(&node, Node::Filter { source, .. } if is_inner_join(source)) {
        return Reordered::Unchanged(node);
    }
    let width = match &node {
        Node::Filter { source, .. } => join_width(source),
        other => join_width(other),
    };
    let (mut leaves, mut all_terms) = (Vec::new(), Vec::new());
    flatten(node, 0, width, &mut leaves, &mut all_terms);
    // A term with a subquery, an outer reference or a volatile function is evaluated above
    // the joins, on the row in the written order.
    let (staying, terms): (Vec<Expr>, Vec<Expr>) = all_terms.into_iter().partition(|t| t.join_sides(usize::MAX).2);

    // Which leaves each term reads (by index), and the leaf of each written column.
    let leaf_of = |column: usize| leaves.iter().position(|l| column >= l.offset && column < l.offset + l.width);
    let reads: Vec<Vec<usize>> = terms
        .iter()
        .map(|t| {
            let mut set = Vec::new();
            t.walk(&mut |x| {
                if let Expr::Column(c) = x {
                    if let Some(l) = leaf_of(*c) {
                        if !set.contains(&l) {
                            set.push(l);
                        }
                    }
                }
            });
            set
        })
        .collect();

    // 1. Each leaf with its own terms, optimized alone.
    let mut placed_term = vec![false; terms.len()];
    let mut ready: Vec<Option<(Node, usize, usize)>> = Vec::new();
    let mut estimates = Vec::new();
    for (i, leaf) in leaves.into_iter().enumerate() {
        let own: Vec<Expr> = terms
            .iter()
            .zip(&reads)
            .enumerate()
            .filter(|(_, (_, r))| r.len() == 1 && r[0] == i)
            .map(|(t, (e, _))| {
                placed_term[t] = true;
                e.remap_columns(&|c| c.checked_sub(leaf.offset)).expect("the term reads only this leaf")
            })
            .collect();
        let node = match join_conjunction(own) {
            Some(predicate) => Node::Filter { source: Box::new(leaf.node), predicate },
            None => leaf.node,
        };
        let node = optimize(node);
        estimates.push(estimate(&node));
        ready.push(Some((node, leaf.offset, leaf.width)));
    }

    // 2. The order: smallest first, then the smallest leaf joined by an equality.
    let joins = |t: usize, placed: &[usize], candidate: usize| {
        matches!(terms[t], Expr::Binary(BinaryOp::Eq, ..))
            && reads[t].contains(&candidate)
            && reads[t].iter().all(|l| *l == candidate || placed.contains(l))
            && reads[t].len() > 1
    };
    let mut order: Vec<usize> = Vec::new();
    while order.len() < ready.len() {
        let remaining = (0..ready.len()).filter(|i| !order.contains(i));
        let connected: Vec<usize> =
            remaining.clone().filter(|&c| (0..terms.len()).any(|t| !placed_term[t] && joins(t, &order, c))).collect();
        let pool: Vec<usize> = if connected.is_empty() { remaining.collect() } else { connected };
        let next = pool.into_iter().min_by_key(|&i| (estimates[i], i)).expect("a leaf remains");
        order.push(next);
    }

    // 3. Build left-deep, each join with the terms it completes, the smaller side hashed.
    let spans: Vec<(usize, usize)> = ready.iter().map(|r| r.as_ref().map_or((0, 0), |(_, o, w)| (*o, *w))).collect();
    // The leaves in the order their columns come in the row built so far.
    let mut layout: Vec<usize> = Vec::new();
    let mut tree: Option<(Node, u64)> = None;
    for (step, &i) in order.iter().enumerate() {
        let (node, _, width) = ready[i].take().expect("each leaf once");
        tree = Some(match tree.take() {
            None => {
                layout.push(i);
                (node, estimates[i])
            }
            Some((built, built_rows)) => {
                let built_width: usize = layout.iter().map(|&l| spans[l].1).sum();
                // A hash join holds its right input: the new leaf, unless what is built so far
                // is expected to be smaller.
                let leaf_first = estimates[i] > built_rows;
                if leaf_first {
                    layout.insert(0, i);
                } else {
                    layout.push(i);
                }
                let map = |c: usize| column_in(&layout, &spans, c);
                let placed = &order[..=step];
                let completed: Vec<usize> = (0..terms.len())
                    .filter(|&t| !placed_term[t] && !reads[t].is_empty() && reads[t].iter().all(|l| placed.contains(l)))
                    .collect();
                let joined = completed.iter().any(|&t| matches!(terms[t], Expr::Binary(BinaryOp::Eq, ..)));
                let mut predicate = Vec::new();
                for t in completed {
                    placed_term[t] = true;
                    predicate.push(terms[t].remap_columns(&map).expect("the term's leaves are placed"));
                }
                let predicate = join_conjunction(predicate);
                let rows = if joined { built_rows.max(estimates[i]) } else { built_rows.saturating_mul(estimates[i]) };
                let node = if leaf_first {
                    make_join(node, built, JoinKind::Inner, predicate, width, built_width)
                } else {
                    make_join(built, node, JoinKind::Inner, predicate, built_width, width)
                };
                (node, rows)
            }
        });
    }
    let (mut node, _) = tree.expect("at least one leaf");
    // Terms that read no column (`WHERE false`, parameters only) filter the whole result.
    let rest: Vec<Expr> = (0..terms.len()).filter(|&t| !placed_term[t]).map(|t| terms[t].clone()).collect();
    if let Some(predicate) = join_conjunction(rest) {
        node = Node::Filter { source: Box::new(node), predicate };
    }
    let total: usize = spans.iter().map(|s| s.1).sum();
    let exprs: Vec<Expr> =
        (0..total).map(|c| Expr::Column(column_in(&layout, &spans, c).expect("every column placed"))).collect();
    if exprs.iter().enumerate().any(|(i, e)| *e != Expr::Column(i)) {
        node = Node::Project { source: Box::new(node), exprs };
    }
    Reordered::Done(match join_conjunction(staying) {
        Some(predicate) => Node::Filter { source: Box::new(node), predicate },
        None => node,
    })
}

/// Where written column `c` is in a row whose leaves come in `layout` order (`spans`: each
/// leaf's written offset and width); None if its leaf is not in the row.
fn column_in(layout: &[usize], spans: &[(usize, usize)], c: usize) -> Option<usize> {
    let mut offset = 0;
    for &l in layout {
        let (written, width) = spans[l];
        if c >= written && c < written + width {
            return Some(offset + c - written);
        }
        offset += width;
    }
    None
}

fn is_inner_join(node: &Node) -> bool {
    matches!(node, Node::NestedLoopJoin { kind: JoinKind::Inner, .. } | Node::HashJoin { kind: JoinKind::Inner, .. })
}

fn join_width(node: &Node) -> usize {
    match node {
        Node::NestedLoopJoin { left_width, right_width, .. } | Node::HashJoin { left_width, right_width, .. } => {
            left_width + right_width
        }
        _ => 0,
    }
}

/// Splits an inner-join tree into its leaves and its terms, the terms' columns counted in
/// the written row (`offset` is where this node's row starts in it).
fn flatten(node: Node, offset: usize, width: usize, leaves: &mut Vec<Leaf>, terms: &mut Vec<Expr>) {
    let shift = |e: Expr| e.remap_columns(&|c| Some(c + offset)).expect("a shift maps every column");
    match node {
        Node::Filter { source, predicate } if is_inner_join(&source) => {
            terms.extend(split_conjunction(predicate).into_iter().map(shift));
            flatten(*source, offset, width, leaves, terms);
        }
        Node::NestedLoopJoin { left, right, kind: JoinKind::Inner, predicate, left_width, right_width } => {
            if let Some(p) = predicate {
                terms.extend(split_conjunction(p).into_iter().map(shift));
            }
            flatten(*left, offset, left_width, leaves, terms);
            flatten(*right, offset + left_width, right_width, leaves, terms);
        }
        Node::HashJoin {
            left,
            right,
            kind: JoinKind::Inner,
            left_keys,
            right_keys,
            residual,
            left_width,
            right_width,
        } => {
            for (l, r) in left_keys.into_iter().zip(right_keys) {
                let r = r.remap_columns(&|c| Some(c + left_width)).expect("a shift maps every column");
                terms.push(shift(Expr::Binary(BinaryOp::Eq, Box::new(l), Box::new(r))));
            }
            if let Some(p) = residual {
                terms.extend(split_conjunction(p).into_iter().map(shift));
            }
            flatten(*left, offset, left_width, leaves, terms);
            flatten(*right, offset + left_width, right_width, leaves, terms);
        }
        leaf => leaves.push(Leaf { node: leaf, offset, width }),
    }
}

/// A rough row count for an optimized leaf, from its access path and filter; the order
/// only compares these with each other.
fn estimate(node: &Node) -> u64 {
    const TABLE: u64 = 1000;
    let filtered = |filter: &Option<Expr>, base: u64| match filter {
        None => base,
        Some(f) => split_conjunction(f.clone()).iter().fold(base, |n, t| {
            let divisor = if matches!(t, Expr::Binary(BinaryOp::Eq, ..)) { 10 } else { 3 };
            (n / divisor).max(1)
        }),
    };
    match node {
        Node::KeyLookup { keys, .. } => keys.len() as u64,
        Node::IndexLookup { values, filter, .. } => filtered(filter, values.len() as u64 * 10).max(1),
        Node::KeyRange { filter, .. } | Node::IndexRange { filter, .. } => filtered(filter, TABLE / 10),
        Node::Scan { filter, .. } => filtered(filter, TABLE),
        Node::Values { rows } => rows.len() as u64,
        Node::Filter { source, predicate } => filtered(&Some(predicate.clone()), estimate(source)),
        _ => TABLE,
    }
}
