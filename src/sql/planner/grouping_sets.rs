//! `GROUP BY ROLLUP (…)`, `CUBE (…)` and `GROUPING SETS (…)`, and `grouping(…)`.
//!
//! A query with grouping sets aggregates its input once per set and appends the results: each
//! set's aggregate groups by its own expressions, then a projection puts NULL in the place of
//! every grouping expression outside the set and adds the set's grouping id (a bit per
//! grouping expression, set when the expression is not grouped), which `grouping(…)` reads.

use super::binder::{Binder, Grouping};
use super::plan::{Aggregate, Expr, Node, SetOperator};
use crate::error::{Error, Result};
use crate::types::{DataType, Value};
use sqlparser::ast;

/// The expression standing for the grouping id among the grouping expressions: a function
/// no statement can call, so no expression of a query equals it.
pub fn grouping_id_placeholder() -> Expr {
    Expr::Function { name: "grouping_id", args: Vec::new(), return_type: DataType::Int8 }
}

/// The GROUP BY list's expressions, each once, and the grouping sets as positions among them
/// (None for a plain GROUP BY).
pub fn expand(group_by: &[ast::Expr]) -> (Vec<ast::Expr>, Option<Vec<Vec<usize>>>) {
    let plain =
        !group_by.iter().any(|e| matches!(e, ast::Expr::Rollup(_) | ast::Expr::Cube(_) | ast::Expr::GroupingSets(_)));
    if plain {
        return (group_by.to_vec(), None);
    }
    let sets = product(group_by);
    let mut exprs: Vec<ast::Expr> = Vec::new();
    let positions = sets
        .into_iter()
        .map(|set| {
            let mut out: Vec<usize> = Vec::new();
            for e in set {
                let i = match exprs.iter().position(|x| x == e) {
                    Some(i) => i,
                    None => {
                        exprs.push(e.clone());
                        exprs.len() - 1
                    }
                };
                if !out.contains(&i) {
                    out.push(i);
                }
            }
            out
        })
        .collect();
    (exprs, Some(positions))
}

/// `ROLLUP (…)` or `CUBE (…)` where the parser took it for a function call (inside GROUPING
/// SETS): its column groups.
fn rollup_or_cube_call(f: &ast::Function) -> Option<(bool, Vec<Vec<&ast::Expr>>)> {
    let name = f.name.to_string().to_ascii_lowercase();
    let cube = match name.as_str() {
        "rollup" => false,
        "cube" => true,
        _ => return None,
    };
    let ast::FunctionArguments::List(list) = &f.args else { return None };
    let groups = list
        .args
        .iter()
        .map(|a| match a {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(ast::Expr::Tuple(items))) => {
                Some(items.iter().collect())
            }
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) => Some(vec![e]),
            _ => None,
        })
        .collect::<Option<Vec<Vec<&ast::Expr>>>>()?;
    (f.over.is_none()).then_some((cube, groups))
}

/// ROLLUP (a, b): (a, b), (a), (). CUBE (a, b): (a, b), (a), (b), ().
fn rollup_or_cube<'a>(cube: bool, groups: &[Vec<&'a ast::Expr>]) -> Vec<Vec<&'a ast::Expr>> {
    let n = groups.len();
    if !cube {
        return (0..=n).rev().map(|k| groups[..k].iter().flatten().copied().collect()).collect();
    }
    (0..1usize << n)
        .map(|left_out| {
            groups
                .iter()
                .enumerate()
                .filter(|(i, _)| left_out & (1 << (n - 1 - i)) == 0)
                .flat_map(|(_, g)| g.iter().copied())
                .collect()
        })
        .collect()
}

/// The grouping sets of a list of elements: each element's sets, then their cross product
/// (in PostgreSQL's order).
fn product(elements: &[ast::Expr]) -> Vec<Vec<&ast::Expr>> {
    let mut sets: Vec<Vec<&ast::Expr>> = vec![Vec::new()];
    for e in elements {
        let element = sets_of(e);
        sets = sets
            .iter()
            .flat_map(|left| element.iter().map(move |right| left.iter().chain(right).copied().collect()))
            .collect();
    }
    sets
}

/// The grouping sets one GROUP BY element stands for.
fn sets_of(e: &ast::Expr) -> Vec<Vec<&ast::Expr>> {
    match e {
        ast::Expr::Function(f) if rollup_or_cube_call(f).is_some() => {
            let (cube, groups) = rollup_or_cube_call(f).unwrap_or_default();
            rollup_or_cube(cube, &groups)
        }
        ast::Expr::Rollup(groups) | ast::Expr::Cube(groups) => {
            let groups: Vec<Vec<&ast::Expr>> = groups.iter().map(|g| g.iter().collect()).collect();
            rollup_or_cube(matches!(e, ast::Expr::Cube(_)), &groups)
        }
        ast::Expr::GroupingSets(sets) => sets.iter().flat_map(|set| product(set)).collect(),
        // A parenthesized list inside GROUPING SETS is one set.
        ast::Expr::Tuple(items) => vec![items.iter().collect()],
        ast::Expr::Nested(inner) if matches!(**inner, ast::Expr::Tuple(_)) => sets_of(inner),
        other => vec![vec![other]],
    }
}

/// The aggregation of `source` for each grouping set, appended: rows of the grouping
/// expressions (NULL outside the set; the last one is the grouping id) and the aggregates.
pub fn aggregate(source: Node, group_exprs: &[Expr], aggregates: &[Aggregate], sets: &[Vec<usize>]) -> Node {
    let keys = group_exprs.len() - 1;
    let branches = sets.iter().map(|set| {
        let id = (0..keys).filter(|p| !set.contains(p)).fold(0i64, |id, p| id | 1 << p);
        let aggregated = Node::Aggregate {
            source: Box::new(source.clone()),
            group_by: set.iter().map(|&p| group_exprs[p].clone()).collect(),
            aggregates: aggregates.to_vec(),
        };
        let mut exprs: Vec<Expr> = (0..keys)
            .map(|p| match set.iter().position(|&q| q == p) {
                Some(i) => Expr::Column(i),
                None => Expr::Constant(Value::Null),
            })
            .collect();
        exprs.push(Expr::Constant(Value::Int8(id)));
        exprs.extend((0..aggregates.len()).map(|k| Expr::Column(set.len() + k)));
        Node::Project { source: Box::new(aggregated), exprs }
    });
    branches
        .reduce(|left, right| Node::SetOperation {
            op: SetOperator::Union,
            all: true,
            left: Box::new(left),
            right: Box::new(right),
        })
        .unwrap_or(source)
}

impl Binder<'_> {
    /// `grouping(a, b, …)`: each argument must be a grouping expression of this query.
    pub(super) fn bind_grouping(&mut self, args: &[&ast::Expr]) -> Result<(Expr, DataType)> {
        let Some(grouping) = self.grouping.take() else {
            // Before the GROUP BY is bound (the pass that finds out whether the query
            // aggregates): it does.
            self.saw_aggregate = true;
            return Ok((Expr::Constant(Value::Int4(0)), DataType::Int4));
        };
        let result = self.grouping_positions(&grouping, args);
        let id = grouping.group_exprs.iter().position(|e| *e == grouping_id_placeholder());
        self.grouping = Some(grouping);
        let positions = result?;
        Ok(match id {
            None => (Expr::Constant(Value::Int4(0)), DataType::Int4),
            Some(id) => {
                let mut call_args = vec![Expr::Column(id)];
                call_args.extend(positions.into_iter().map(|p| Expr::Constant(Value::Int8(p as i64))));
                (Expr::Function { name: "grouping_bits", args: call_args, return_type: DataType::Int4 }, DataType::Int4)
            }
        })
    }

    fn grouping_positions(&mut self, grouping: &Grouping, args: &[&ast::Expr]) -> Result<Vec<usize>> {
        if args.is_empty() || args.len() > 31 {
            return Err(Error::Syntax { message: "GROUPING takes 1 to 31 arguments".into(), position: None });
        }
        let scope = std::mem::replace(&mut self.scope, grouping.input.clone());
        let bound: Result<Vec<Expr>> = args.iter().map(|a| self.bind(a).map(|(e, _)| e)).collect();
        self.scope = scope;
        bound?
            .iter()
            .map(|e| {
                grouping.group_exprs.iter().position(|g| g == e).ok_or_else(|| {
                    Error::Grouping(
                        "arguments to GROUPING must be grouping expressions of the associated query level".into(),
                    )
                })
            })
            .collect()
    }
}
