//! Planning `time_bucket_gapfill`: a query grouped by `time_bucket_gapfill(width, ts [, start,
//! finish])` gets a [`Node::GapFill`](super::plan::Node::GapFill) over its aggregation. The
//! range to fill comes from the call's `start` and `finish`, or else from the WHERE clause's
//! bounds on `ts` (`ts >= a`, `ts > a`, `ts < b`, `ts <= b`, `ts BETWEEN a AND b`, with `a` and
//! `b` not reading the row), as TimescaleDB infers them: `a` is the first time filled and `b`
//! the end, exclusive, whether or not the comparisons are strict. `locf` and `interpolate` in the select
//! list become the node's calls (see `Binder::bind_gapfill_call`).

use super::binder::Binder;
use super::plan::{BinaryOp, Expr, GapFill, GapFillCall, GapFillFunction};
use super::select::split_conjunction;
use crate::error::{Error, Result};
use crate::types::{DataType, Value};
use sqlparser::ast;

/// The fill for a query grouped by `group_exprs`, if one of them is a `time_bucket_gapfill`
/// call; `predicate` is the WHERE clause (over the same input as the GROUP BY).
pub(super) fn plan(group_exprs: &[Expr], predicate: Option<&Expr>) -> Result<Option<GapFill>> {
    let is_gapfill = |e: &Expr| matches!(e, Expr::Function { name: "time_bucket_gapfill", .. });
    let mut nested = 0;
    for e in group_exprs {
        e.walk(&mut |x| nested += is_gapfill(x) as usize);
    }
    let mut calls = group_exprs.iter().enumerate().filter(|(_, e)| is_gapfill(e));
    let Some((bucket, Expr::Function { args, return_type, .. })) = calls.next() else {
        if nested > 0 {
            return Err(Error::FeatureNotSupported("no top level time_bucket_gapfill in group by clause".into()));
        }
        return Ok(None);
    };
    if calls.next().is_some() || nested > 1 {
        return Err(Error::FeatureNotSupported("multiple time_bucket_gapfill calls not allowed".into()));
    }
    let [width, ts, start, finish] = args.as_slice() else {
        return Err(Error::Internal("time_bucket_gapfill takes four arguments".into()));
    };
    if *ts == Expr::Constant(Value::Null) {
        return Err(invalid("ts cannot be NULL"));
    }
    let mut fill = GapFill {
        bucket,
        groups: group_exprs.len(),
        columns: group_exprs.len(),
        time_type: return_type.clone(),
        width: width.clone(),
        start: Vec::new(),
        finish: Vec::new(),
        calls: Vec::new(),
    };
    for (arg, lower) in [(start, true), (finish, false)] {
        let bounds =
            if *arg == Expr::Constant(Value::Null) { inferred(ts, predicate, lower)? } else { vec![arg.clone()] };
        if lower {
            fill.start = bounds;
        } else {
            fill.finish = bounds;
        }
    }
    Ok(Some(fill))
}

/// The WHERE clause's lower (or upper) bounds on the column `ts`.
fn inferred(ts: &Expr, predicate: Option<&Expr>, lower: bool) -> Result<Vec<Expr>> {
    let what = if lower { "start" } else { "finish" };
    let Expr::Column(_) = ts else {
        return Err(invalid(&format!("ts needs to refer to a single column if no {what} is supplied")));
    };
    let mut bounds = Vec::new();
    for term in predicate.cloned().map(split_conjunction).unwrap_or_default() {
        let Some((op, value)) = term.bound_on(ts) else { continue };
        // The value bounds the range as it is, whether or not the comparison is strict.
        if matches!((op, lower), (BinaryOp::GtEq | BinaryOp::Gt, true) | (BinaryOp::LtEq | BinaryOp::Lt, false)) {
            bounds.push(value);
        }
    }
    if bounds.is_empty() {
        return Err(invalid(&format!("could not infer {what} boundary from WHERE clause")));
    }
    Ok(bounds)
}

fn invalid(message: &str) -> Error {
    Error::FeatureNotSupported(format!("invalid time_bucket_gapfill argument: {message}"))
}

impl Binder<'_> {
    /// `locf(value [, prev [, treat_null_as_missing]])` or `interpolate(value)` in a query
    /// grouped by `time_bucket_gapfill`: the column of the fill node that computes it.
    pub(super) fn bind_gapfill_call(&mut self, name: &str, args: &[&ast::Expr]) -> Result<(Expr, DataType)> {
        let Some((offset, calls)) = self.gapfill.take() else {
            return Err(Error::FeatureNotSupported(format!(
                "{name} can only be used in an aggregation query with time_bucket_gapfill"
            )));
        };
        let bound = self.gapfill_call(name, args);
        let mut calls = calls;
        let result = bound.map(|(call, t)| {
            let i = calls.iter().position(|c| *c == call).unwrap_or_else(|| {
                calls.push(call);
                calls.len() - 1
            });
            (Expr::Column(offset + i), t)
        });
        self.gapfill = Some((offset, calls));
        result
    }

    fn gapfill_call(&mut self, name: &str, args: &[&ast::Expr]) -> Result<(GapFillCall, DataType)> {
        let undefined =
            || Error::UndefinedFunction(format!("function {name} with {} arguments does not exist", args.len()));
        let Some(value) = args.first() else { return Err(undefined()) };
        let (value, t) = self.bind(value)?;
        let null = ast::Expr::Value(ast::Value::Null.into());
        let given = |i: usize| args.get(i).copied().filter(|a| **a != null);
        if name == "interpolate" {
            if given(1).is_some() || given(2).is_some() {
                return Err(Error::FeatureNotSupported("interpolate with prev and next values".into()));
            }
            if !(t.is_integer() || matches!(t, DataType::Float4 | DataType::Float8)) {
                return Err(Error::UndefinedFunction(format!("function interpolate({t}) does not exist")));
            }
            return Ok((GapFillCall { function: GapFillFunction::Interpolate, value, prev: None }, t));
        }
        if args.len() > 3 {
            return Err(undefined());
        }
        let prev = match given(1) {
            Some(p) => {
                let bound = self.bind(p)?;
                Some(self.coerce(bound, &t)?)
            }
            None => None,
        };
        let treat_null_as_missing = match given(2) {
            None => false,
            Some(flag) => match self.bind(flag)? {
                (Expr::Constant(Value::Bool(b)), _) => b,
                (_, DataType::Bool) => {
                    return Err(Error::FeatureNotSupported(
                        "invalid locf argument: treat_null_as_missing must be a BOOL literal".into(),
                    ))
                }
                (_, t) => {
                    return Err(Error::DatatypeMismatch(format!("treat_null_as_missing must be boolean, not {t}")))
                }
            },
        };
        Ok((GapFillCall { function: GapFillFunction::Locf { treat_null_as_missing }, value, prev }, t))
    }
}
