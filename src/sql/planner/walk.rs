//! Read-only traversals of plans: every node, every expression a node evaluates, and every
//! subquery inside those expressions. Passes that must see the whole plan (privilege checks,
//! "does this plan write") use these, so a new node kind is added in one place.

use super::plan::{Expr, Node, OnConflict, Plan};

impl Node {
    /// The nodes this node reads rows from.
    pub fn children(&self) -> Vec<&Node> {
        match self {
            Node::Scan { .. }
            | Node::KeyLookup { .. }
            | Node::KeyRange { .. }
            | Node::IndexLookup { .. }
            | Node::IndexRange { .. }
            | Node::Values { .. }
            | Node::Virtual { .. }
            | Node::WorkingTable { .. } => Vec::new(),
            Node::Filter { source, .. }
            | Node::Project { source, .. }
            | Node::Aggregate { source, .. }
            | Node::Window { source, .. }
            | Node::GapFill { source, .. }
            | Node::Sort { source, .. }
            | Node::Limit { source, .. }
            | Node::Distinct { source, .. }
            | Node::ProjectSet { source, .. } => vec![source],
            Node::NestedLoopJoin { left, right, .. }
            | Node::LateralJoin { left, right, .. }
            | Node::HashJoin { left, right, .. }
            | Node::SetOperation { left, right, .. } => vec![left, right],
            Node::Recursive { anchor, recursive, .. } => vec![anchor, recursive],
        }
    }

    /// Calls `f` with each expression this node evaluates itself (not those of its children).
    pub fn for_each_expr(&self, f: &mut impl FnMut(&Expr)) {
        let bound = |b: &Option<(Expr, bool)>, f: &mut dyn FnMut(&Expr)| {
            if let Some((e, _)) = b {
                f(e)
            }
        };
        match self {
            Node::Scan { filter, .. } | Node::Virtual { filter, .. } => filter.iter().for_each(f),
            Node::KeyLookup { keys: rows, filter, .. } | Node::IndexLookup { values: rows, filter, .. } => {
                rows.iter().flatten().for_each(&mut *f);
                filter.iter().for_each(f);
            }
            Node::KeyRange { prefix, lower, upper, filter, .. }
            | Node::IndexRange { prefix, lower, upper, filter, .. } => {
                prefix.iter().for_each(&mut *f);
                bound(lower, f);
                bound(upper, f);
                filter.iter().for_each(f);
            }
            Node::Values { rows } => rows.iter().flatten().for_each(f),
            Node::Filter { predicate, .. } => f(predicate),
            Node::Project { exprs, .. } => exprs.iter().for_each(f),
            Node::Aggregate { group_by, aggregates, .. } => {
                group_by.iter().for_each(&mut *f);
                for a in aggregates {
                    a.args.iter().for_each(&mut *f);
                    a.filter.iter().for_each(&mut *f);
                    a.order_by.iter().for_each(|k| f(&k.expr));
                }
            }
            Node::Window { calls, .. } => {
                for c in calls {
                    c.args.iter().for_each(&mut *f);
                    c.partition_by.iter().for_each(&mut *f);
                    c.order_by.iter().for_each(|k| f(&k.expr));
                }
            }
            Node::GapFill { fill, .. } => {
                f(&fill.width);
                fill.start.iter().chain(&fill.finish).for_each(&mut *f);
                for c in &fill.calls {
                    f(&c.value);
                    c.prev.iter().for_each(&mut *f);
                }
            }
            Node::Sort { keys, .. } => keys.iter().for_each(|k| f(&k.expr)),
            Node::Limit { limit, offset, .. } => {
                limit.iter().for_each(&mut *f);
                offset.iter().for_each(f);
            }
            Node::Distinct { on, .. } => on.iter().flatten().for_each(f),
            Node::NestedLoopJoin { predicate, .. } | Node::LateralJoin { predicate, .. } => {
                predicate.iter().for_each(f)
            }
            Node::HashJoin { left_keys, right_keys, residual, .. } => {
                left_keys.iter().chain(right_keys).for_each(&mut *f);
                residual.iter().for_each(f);
            }
            Node::ProjectSet { calls, .. } => calls.iter().flat_map(|c| &c.args).for_each(f),
            Node::SetOperation { .. } | Node::Recursive { .. } | Node::WorkingTable { .. } => {}
        }
    }

    /// Visits this node and every node below it, subqueries inside expressions included.
    #[recursive::recursive]
    pub fn visit(&self, visit: &mut impl FnMut(&Node)) {
        visit(self);
        self.for_each_expr(&mut |e| e.visit_subqueries(&mut |node| node.visit(visit)));
        for child in self.children() {
            child.visit(visit);
        }
    }
}

impl Expr {
    /// Calls `f` with the plan of each subquery in this expression (not nested deeper).
    pub fn visit_subqueries(&self, f: &mut impl FnMut(&Node)) {
        self.walk(&mut |e| match e {
            Expr::Exists(s) | Expr::ScalarSubquery(s) | Expr::ArraySubquery(s) => f(&s.node),
            Expr::InSubquery { subquery, .. } => f(&subquery.node),
            _ => {}
        });
    }
}

impl Plan {
    /// Calls `f` with each expression the plan evaluates outside its nodes (RETURNING lists,
    /// assignments, ON CONFLICT, COPY defaults, CHECK constraints).
    pub fn for_each_expr(&self, f: &mut impl FnMut(&Expr)) {
        let returning = |r: &Option<(Vec<Expr>, _)>, f: &mut dyn FnMut(&Expr)| {
            r.iter().flat_map(|(e, _)| e).for_each(f);
        };
        match self {
            Plan::Insert { on_conflict, returning: r, checks, .. } => {
                if let OnConflict::DoUpdate { assignments, predicate, .. } = on_conflict {
                    assignments.iter().for_each(|(_, e)| f(e));
                    predicate.iter().for_each(&mut *f);
                }
                checks.iter().for_each(|c| f(&c.expr));
                returning(r, f);
            }
            Plan::Update { assignments, returning: r, checks, .. } => {
                assignments.iter().for_each(|(_, e)| f(e));
                checks.iter().for_each(|c| f(&c.expr));
                returning(r, f);
            }
            Plan::Delete { returning: r, .. } => returning(r, f),
            Plan::CopyFrom { defaults, checks, .. } => {
                defaults.iter().for_each(|(_, e)| f(e));
                checks.iter().for_each(|c| f(&c.expr));
            }
            _ => {}
        }
    }

    /// The row sources of the plan: the query of SELECT, COPY TO and the sources of INSERT,
    /// UPDATE and DELETE.
    pub fn nodes(&self) -> Vec<&Node> {
        match self {
            Plan::Query { node, .. } | Plan::CopyTo { node, .. } => vec![node],
            Plan::Insert { source, .. } | Plan::Update { source, .. } | Plan::Delete { source, .. } => vec![source],
            Plan::CreateTable { rows: Some(rows), .. } => vec![rows],
            _ => Vec::new(),
        }
    }

    /// True for a query that reads stored rows only by key or index (lookups and ranges, no
    /// full scans, joins or system views), through filters, projections, aggregates, sorts,
    /// DISTINCT and limits, subqueries included, and waits for nothing: it writes nothing and
    /// calls no `pg_sleep`. Such a query can start on the connection's task under a limit on
    /// the entries it reads ([`crate::mvcc::Transaction::limit_reads`]), and run again
    /// elsewhere if it reaches the limit.
    pub fn is_short_read(&self) -> bool {
        let Plan::Query { node, .. } = self else { return false };
        if self.writes() {
            return false;
        }
        let mut short = true;
        node.visit(&mut |n| {
            short &= matches!(
                n,
                Node::KeyLookup { .. }
                    | Node::KeyRange { .. }
                    | Node::IndexLookup { .. }
                    | Node::IndexRange { .. }
                    | Node::Values { .. }
                    | Node::Project { .. }
                    | Node::Filter { .. }
                    | Node::Aggregate { .. }
                    | Node::Sort { .. }
                    | Node::Distinct { .. }
                    | Node::Limit { .. }
            );
            n.for_each_expr(&mut |e| {
                e.walk(&mut |x| {
                    if let Expr::Function { name, .. } = x {
                        short &= *name != "pg_sleep";
                    }
                })
            });
        });
        short
    }

    /// True when running the plan changes data or the catalog. EXPLAIN runs nothing;
    /// `nextval`/`setval` in a query write their sequence.
    pub fn writes(&self) -> bool {
        match self {
            Plan::Query { .. } | Plan::CopyTo { .. } => {
                let mut writes = false;
                for node in self.nodes() {
                    node.visit(&mut |n| {
                        n.for_each_expr(&mut |e| {
                            e.walk(&mut |x| {
                                if let Expr::Function { name, .. } = x {
                                    writes |= matches!(*name, "nextval" | "setval");
                                }
                            })
                        })
                    });
                }
                writes
            }
            Plan::Explain(_) | Plan::Set { .. } | Plan::Show { .. } | Plan::Noop { .. } | Plan::Vacuum { .. } => false,
            Plan::WithModifications { modifications, query } => !modifications.is_empty() || query.writes(),
            _ => true,
        }
    }
}
