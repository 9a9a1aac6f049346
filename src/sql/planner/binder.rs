//! The binder: resolves names and types in expressions, producing bound [`Expr`]s.

use super::aggregates::aggregate_function;
use super::plan::{Aggregate, BinaryOp, Expr, GapFillCall, Plan, SetCall, SortKey, Subquery, UnaryOp, WindowCall};
use super::scope::Scope;
use super::types::resolve_type;
use crate::error::{Error, Result};
use crate::mvcc::Transaction;
use crate::sql::functions;
use crate::types::cast::{cast_in, CastKind};
use crate::types::timezone::Zone;
use crate::types::{DataType, FieldNames, Value};
use sqlparser::ast;
use std::borrow::Cow;
use std::collections::HashMap;

/// Common table expressions visible to a query: name → (plan, columns).
pub type Ctes = HashMap<String, (super::plan::Node, Vec<super::scope::ScopeColumn>)>;

/// Grouping context: after GROUP BY, expressions may only use grouped expressions and
/// aggregates, which become columns of the aggregate node's output.
pub struct Grouping {
    pub input: Scope,
    pub group_exprs: Vec<Expr>,
    pub aggregates: Vec<Aggregate>,
}

/// Binds expressions against a scope.
pub struct Binder<'a> {
    pub txn: &'a mut Transaction,
    /// Types of `$n` parameters, inferred where the statement allows.
    pub params: &'a mut Vec<DataType>,
    pub scope: Scope,
    pub outer: Option<Scope>,
    /// Set when an expression referred to the outer scope.
    pub correlated: bool,
    pub ctes: Ctes,
    pub grouping: Option<Grouping>,
    /// Window calls found while binding, and the width of the row they are appended to.
    pub windows: Option<(usize, Vec<WindowCall>)>,
    /// Set-returning calls found in the select list (see [`super::plan::Node::ProjectSet`]); None where
    /// such calls are not allowed.
    pub set_calls: Option<Vec<SetCall>>,
    /// In a query grouped by `time_bucket_gapfill`: its `locf`/`interpolate` calls, and the
    /// width of the row they are appended to.
    pub gapfill: Option<(usize, Vec<GapFillCall>)>,
    /// Set when an aggregate call was seen outside a grouping context.
    pub saw_aggregate: bool,
    /// Windows named in the query's WINDOW clause.
    pub named_windows: HashMap<String, ast::WindowSpec>,
    pub next_subquery_id: &'a mut usize,
    /// Data-modifying statements of the top-level WITH clause, with the working table each
    /// fills (see [`Plan::WithModifications`]).
    pub modifications: &'a mut Vec<(usize, Plan)>,
    /// Planning the statement itself, not a nested query.
    pub top_level: bool,
    /// The SELECT being planned is an INSERT's source: an untyped literal or NULL in its
    /// output list stays untyped and takes the target column's type, as in PostgreSQL.
    pub untyped_outputs: bool,
    /// The session's time zone, in which literals are read.
    pub zone: Zone,
}

pub fn ident(i: &ast::Ident) -> String {
    if i.quote_style.is_some() {
        i.value.clone()
    } else {
        i.value.to_lowercase()
    }
}

/// The last part of an object name (schema prefixes like `public.` are accepted).
pub fn object_name(name: &ast::ObjectName) -> String {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => Some(ident(i)),
            _ => None,
        })
        .collect();
    parts.last().cloned().unwrap_or_default()
}

/// All parts of an object name.
pub fn object_name_parts(name: &ast::ObjectName) -> Vec<String> {
    name.0
        .iter()
        .filter_map(|p| match p {
            ast::ObjectNamePart::Identifier(i) => Some(ident(i)),
            _ => None,
        })
        .collect()
}

impl Binder<'_> {
    /// Binds a boolean condition (WHERE, ON, HAVING).
    pub fn bind_condition(&mut self, e: &ast::Expr, clause: &str) -> Result<Expr> {
        let (expr, t) = self.bind(e)?;
        match t {
            DataType::Bool => Ok(expr),
            DataType::Unknown => self.coerce((expr, t), &DataType::Bool),
            other => {
                Err(Error::DatatypeMismatch(format!("argument of {clause} must be type boolean, not type {other}")))
            }
        }
    }

    /// Coerces a bound expression to `target`: unknown literals and parameters take the type,
    /// others are cast where PostgreSQL casts implicitly.
    pub fn coerce(&mut self, (expr, t): (Expr, DataType), target: &DataType) -> Result<Expr> {
        if t == *target || *target == DataType::Unknown {
            return Ok(expr);
        }
        // A literal or parameter takes the type it meets without the type's length, precision
        // or scale: compared with a VARCHAR(3) column, 'abcd' stays 'abcd' and matches nothing.
        // (Only storing into a column applies those, in `coerce_assignment`.)
        if t == DataType::Unknown {
            return Ok(match expr {
                Expr::Constant(v) => Expr::Constant(cast_in(v, target, CastKind::Implicit, &self.zone)?),
                Expr::Param(i) => {
                    if self.params.get(i).is_some_and(|p| *p == DataType::Unknown) {
                        self.params[i] = target.clone();
                    }
                    // Parameter values arrive already converted to the parameter's type.
                    if self.params.get(i) == Some(target) {
                        Expr::Param(i)
                    } else {
                        Expr::Cast(Box::new(Expr::Param(i)), target.clone())
                    }
                }
                other => Expr::Cast(Box::new(other), target.clone()),
            });
        }
        let implicit = (t.is_numeric() && target.is_numeric())
            || (t.is_string() && target.is_string())
            || matches!((&t, target), (DataType::Date, DataType::Timestamp | DataType::TimestampTz))
            || matches!((&t, target), (DataType::Time, DataType::TimeTz))
            || matches!(
                (&t, target),
                (DataType::Timestamp, DataType::TimestampTz) | (DataType::TimestampTz, DataType::Timestamp)
            )
            || matches!((&t, target), (DataType::Array(_), DataType::Array(_)));
        if implicit {
            return Ok(match unpad_char(expr, &t, target) {
                Expr::Constant(v) => Expr::Constant(cast_in(v, target, CastKind::Implicit, &self.zone)?),
                other => Expr::Cast(Box::new(other), target.clone()),
            });
        }
        Err(Error::DatatypeMismatch(format!("cannot use a value of type {t} as type {target}")))
    }

    /// Coerces for storing into a column (INSERT/UPDATE): any type with an assignment cast.
    pub fn coerce_assignment(&mut self, bound: (Expr, DataType), target: &DataType, column: &str) -> Result<Expr> {
        let t = bound.1.clone();
        // A value of the column's type may still exceed its length, precision or scale (a
        // parameter, or an expression over one or over a literal), which storing applies.
        if t == *target && !target.has_modifier() {
            return Ok(bound.0);
        }
        let assignable = t == DataType::Unknown
            || (t.is_numeric() && target.is_numeric())
            || t.is_string() && target.is_string()
            || matches!(
                (&t, target),
                (
                    DataType::Date | DataType::Timestamp | DataType::TimestampTz,
                    DataType::Date | DataType::Timestamp | DataType::TimestampTz
                )
            )
            || matches!((&t, target), (_, DataType::Text | DataType::Varchar(_) | DataType::Char(_)))
            || matches!((&t, target), (DataType::Array(_), DataType::Array(_)))
            || matches!((&t, target), (DataType::Text, DataType::Jsonb));
        if !assignable {
            return Err(Error::DatatypeMismatch(format!(
                "column \"{column}\" is of type {target} but expression is of type {t}"
            )));
        }
        Ok(match bound.0 {
            Expr::Constant(v) if t != DataType::Unknown => {
                Expr::Constant(cast_in(v, target, CastKind::Assignment, &self.zone)?)
            }
            Expr::Constant(v) => Expr::Constant(cast_in(v, target, CastKind::Assignment, &self.zone)?),
            Expr::Param(i) => {
                if self.params.get(i).is_some_and(|p| *p == DataType::Unknown) {
                    self.params[i] = target.clone();
                }
                Expr::Function { name: "assign_cast", args: vec![Expr::Param(i)], return_type: target.clone() }
            }
            other => Expr::Function { name: "assign_cast", args: vec![other], return_type: target.clone() },
        })
    }

    /// Binds an expression, returning it with its type.
    #[recursive::recursive]
    pub fn bind(&mut self, e: &ast::Expr) -> Result<(Expr, DataType)> {
        if self.grouping.is_some() {
            if let Some(found) = self.match_group(e)? {
                return Ok(found);
            }
        }
        use ast::Expr as A;
        match e {
            A::Identifier(id) => self.bind_column(None, &ident(id)),
            A::CompoundIdentifier(parts) if parts[0].quote_style == Some(POSITION_QUOTE) => {
                let i: usize = parts[1].value.parse().unwrap_or(usize::MAX);
                // (In a grouping context the reference is to the grouping's input.)
                if let Some(grouping) = &self.grouping {
                    let name = grouping.input.columns.get(i).map(|c| c.name.as_str()).unwrap_or_default();
                    return Err(Error::Grouping(format!(
                        "column \"{name}\" must appear in the GROUP BY clause or be used in an aggregate function"
                    )));
                }
                match self.scope.columns.get(i) {
                    Some(c) => Ok((Expr::Column(i), c.data_type.clone())),
                    None => Err(Error::Internal("a column position outside its scope".into())),
                }
            }
            A::CompoundIdentifier(parts) => {
                let names: Vec<String> = parts.iter().map(ident).collect();
                match names.as_slice() {
                    [table, column] => self.bind_column(Some(table), column),
                    [_schema, table, column] => self.bind_column(Some(table), column),
                    _ => Err(Error::Syntax { message: format!("improper qualified name: {e}"), position: None }),
                }
            }
            A::Value(v) => self.bind_value(&v.value),
            A::TypedString(ts) => {
                let t = resolve_type(self.txn, &ts.data_type.to_string())?;
                let text = match &ts.value.value {
                    ast::Value::SingleQuotedString(s) => s.clone(),
                    other => other.to_string(),
                };
                Ok((Expr::Constant(cast_in(Value::Text(text), &t, CastKind::Explicit, &self.zone)?), t))
            }
            A::Interval(iv) => {
                let (inner, _) = self.bind(&iv.value)?;
                let mut text = match inner {
                    Expr::Constant(Value::Text(s)) => s,
                    Expr::Constant(v) => v.to_string(),
                    _ => return Err(Error::FeatureNotSupported("non-constant INTERVAL literal".into())),
                };
                if let Some(field) = &iv.leading_field {
                    if iv.last_field.is_none() && !text.chars().any(|c| c.is_ascii_alphabetic()) {
                        text = format!("{text} {field}");
                    }
                }
                Ok((
                    Expr::Constant(cast_in(Value::Text(text), &DataType::Interval, CastKind::Explicit, &self.zone)?),
                    DataType::Interval,
                ))
            }
            A::Nested(inner) => self.bind(inner),
            A::CompoundFieldAccess { root, access_chain } => {
                if let [ast::AccessExpr::Dot(ast::Expr::Identifier(field))] = access_chain.as_slice() {
                    // `(t).column`: a field of a table's whole row is its column.
                    if let ast::Expr::Nested(inner) = root.as_ref() {
                        if let ast::Expr::Identifier(table) = inner.as_ref() {
                            match self.bind_column(Some(&ident(table)), &ident(field)) {
                                // Not a table: a column holding a row, perhaps.
                                Err(Error::UndefinedColumn(_) | Error::MissingFromEntry(_)) => {}
                                other => return other,
                            }
                        }
                    }
                    return self.bind_field(root, &ident(field));
                }
                // `t.column[i]` arrives as `t` with the accesses `.column` and `[i]`: the leading
                // names are a column reference.
                let mut names = match root.as_ref() {
                    ast::Expr::Identifier(name) => vec![name.clone()],
                    _ => Vec::new(),
                };
                let names_end = access_chain
                    .iter()
                    .take_while(|a| matches!(a, ast::AccessExpr::Dot(ast::Expr::Identifier(_))))
                    .count()
                    .min(if names.is_empty() { 0 } else { 2 });
                for access in &access_chain[..names_end] {
                    if let ast::AccessExpr::Dot(ast::Expr::Identifier(name)) = access {
                        names.push(name.clone());
                    }
                }
                let mut value =
                    if names_end > 0 { self.bind(&ast::Expr::CompoundIdentifier(names))? } else { self.bind(root)? };
                for access in &access_chain[names_end..] {
                    value = match access {
                        ast::AccessExpr::Subscript(ast::Subscript::Index { index }) => {
                            let index = self.bind(index)?;
                            self.bind_call("array_subscript", vec![value, index])?
                        }
                        _ => return Err(Error::FeatureNotSupported(format!("expression {e}"))),
                    };
                }
                Ok(value)
            }
            // Collations: every string compares bytewise (C collation).
            A::Collate { expr, .. } => self.bind(expr),
            A::UnaryOp { op, expr } => match op {
                ast::UnaryOperator::Not => {
                    let inner = self.bind(expr)?;
                    let inner = self
                        .coerce(inner, &DataType::Bool)
                        .map_err(|_| Error::DatatypeMismatch("argument of NOT must be type boolean".into()))?;
                    Ok((Expr::Unary(UnaryOp::Not, Box::new(inner)), DataType::Bool))
                }
                ast::UnaryOperator::Minus => {
                    if let A::Value(v) = expr.as_ref() {
                        if let ast::Value::Number(n, _) = &v.value {
                            return self.bind_number(&format!("-{n}"));
                        }
                    }
                    let (inner, t) = self.bind(expr)?;
                    let t = if t == DataType::Unknown { DataType::Float8 } else { t };
                    Ok((Expr::Unary(UnaryOp::Negate, Box::new(inner)), t))
                }
                ast::UnaryOperator::Plus => self.bind(expr),
                // PostgreSQL's prefix operators: `@` (abs) of any number, `|/` (sqrt) and `||/`
                // (cbrt) of a double precision.
                ast::UnaryOperator::PGAbs => {
                    let inner = self.bind(expr)?;
                    self.bind_call("abs", vec![inner])
                }
                ast::UnaryOperator::BitwiseNot => {
                    let inner = self.bind(expr)?;
                    if !(inner.1.is_integer() || inner.1 == DataType::Unknown) {
                        return Err(Error::UndefinedFunction(format!("operator does not exist: ~ {}", inner.1)));
                    }
                    self.bind_call("int_not", vec![inner])
                }
                ast::UnaryOperator::PGSquareRoot | ast::UnaryOperator::PGCubeRoot => {
                    let function = if *op == ast::UnaryOperator::PGSquareRoot { "sqrt" } else { "cbrt" };
                    let inner = self.bind(expr)?;
                    let inner = self.coerce(inner, &DataType::Float8)?;
                    self.bind_call(function, vec![(inner, DataType::Float8)])
                }
                other => Err(Error::FeatureNotSupported(format!("unary operator {other}"))),
            },
            A::BinaryOp { left, op, right } => self.bind_binary(left, op, right),
            A::IsNull(inner) => Ok((Expr::IsNull(Box::new(self.bind(inner)?.0)), DataType::Bool)),
            A::IsNotNull(inner) => {
                let (inner, t) = self.bind(inner)?;
                // A row is NOT NULL when every field is, which is not the negation of IS NULL
                // (every field NULL).
                if matches!(t, DataType::Record(..)) {
                    let args = vec![inner];
                    return Ok((
                        Expr::Function { name: "row_is_not_null", args, return_type: DataType::Bool },
                        DataType::Bool,
                    ));
                }
                Ok((Expr::Unary(UnaryOp::Not, Box::new(Expr::IsNull(Box::new(inner)))), DataType::Bool))
            }
            A::IsTrue(inner) | A::IsNotTrue(inner) | A::IsFalse(inner) | A::IsNotFalse(inner) => {
                let bound = self.bind(inner)?;
                let b = self.coerce(bound, &DataType::Bool)?;
                let want = matches!(e, A::IsTrue(_) | A::IsNotTrue(_));
                let distinct = Expr::IsDistinct(Box::new(b), Box::new(Expr::Constant(Value::Bool(want))));
                Ok(if matches!(e, A::IsTrue(_) | A::IsFalse(_)) {
                    (Expr::Unary(UnaryOp::Not, Box::new(distinct)), DataType::Bool)
                } else {
                    (distinct, DataType::Bool)
                })
            }
            A::IsUnknown(inner) | A::IsNotUnknown(inner) => {
                let b = self.bind(inner)?.0;
                let is_null = Expr::IsNull(Box::new(b));
                Ok(if matches!(e, A::IsUnknown(_)) {
                    (is_null, DataType::Bool)
                } else {
                    (Expr::Unary(UnaryOp::Not, Box::new(is_null)), DataType::Bool)
                })
            }
            A::IsDistinctFrom(l, r) | A::IsNotDistinctFrom(l, r) => {
                let (l, r, _) = self.bind_common(l, r)?;
                let d = Expr::IsDistinct(Box::new(l), Box::new(r));
                Ok(if matches!(e, A::IsDistinctFrom(..)) {
                    (d, DataType::Bool)
                } else {
                    (Expr::Unary(UnaryOp::Not, Box::new(d)), DataType::Bool)
                })
            }
            A::Between { expr, negated, low, high } => {
                let (x1, lo, _) = self.bind_common(expr, low)?;
                let (x2, hi, _) = self.bind_common(expr, high)?;
                let both = Expr::Binary(
                    BinaryOp::And,
                    Box::new(Expr::Binary(BinaryOp::GtEq, Box::new(x1), Box::new(lo))),
                    Box::new(Expr::Binary(BinaryOp::LtEq, Box::new(x2), Box::new(hi))),
                );
                Ok((negate_if(both, *negated), DataType::Bool))
            }
            A::Like { negated, expr, pattern, escape_char, any: false }
            | A::ILike { negated, expr, pattern, escape_char, any: false } => {
                let s = self.bind(expr)?;
                let s = self.coerce_text(s)?;
                let p = self.bind(pattern)?;
                // `ESCAPE e`: the pattern with e turned into the backslash LIKE escapes with.
                let p = match escape_char {
                    Some(escape) => {
                        let escape = self.bind(escape)?;
                        self.bind_call("like_escape", vec![p, escape])?
                    }
                    None => p,
                };
                let p = self.coerce_text(p)?;
                let like = Expr::Like {
                    expr: Box::new(s),
                    pattern: Box::new(p),
                    case_insensitive: matches!(e, A::ILike { .. }),
                };
                Ok((negate_if(like, *negated), DataType::Bool))
            }
            // SIMILAR TO: a regular-expression match of the whole string, on the pattern
            // translated as PostgreSQL's similar_to_escape does.
            A::SimilarTo { negated, expr, pattern, escape_char } => {
                let s = self.bind(expr)?;
                let s = self.coerce_text(s)?;
                let mut args = vec![self.bind(pattern)?];
                if let Some(escape) = escape_char {
                    args.push(self.bind(escape)?);
                }
                let regex = self.bind_call("similar_to_escape", args)?;
                let regex = self.coerce_text(regex)?;
                let m = Expr::Binary(BinaryOp::RegexMatch { case_insensitive: false }, Box::new(s), Box::new(regex));
                Ok((negate_if(m, *negated), DataType::Bool))
            }
            A::In { expr, target: ast::InTarget::List(list), negated, .. } if row_items(expr).is_some() => {
                // (a, b) IN ((1, 2), (3, 4)): a row equality per item.
                let mut any: Option<ast::Expr> = None;
                for item in list {
                    let eq = ast::Expr::BinaryOp {
                        left: Box::new((**expr).clone()),
                        op: ast::BinaryOperator::Eq,
                        right: Box::new(item.clone()),
                    };
                    any = Some(match any {
                        None => eq,
                        Some(prev) => ast::Expr::BinaryOp {
                            left: Box::new(prev),
                            op: ast::BinaryOperator::Or,
                            right: Box::new(eq),
                        },
                    });
                }
                let any = any.ok_or_else(|| Error::Syntax { message: "empty IN list".into(), position: None })?;
                let (bound, _) = self.bind(&any)?;
                Ok((negate_if(bound, *negated), DataType::Bool))
            }
            A::In { expr, target, negated, .. } => match target {
                ast::InTarget::List(list) => {
                    let (x, xt) = self.bind(expr)?;
                    let mut t = xt.clone();
                    let mut items = Vec::with_capacity(list.len());
                    for item in list {
                        items.push(self.bind(item)?);
                    }
                    for (_, it) in &items {
                        t = DataType::common(&t, it).ok_or_else(|| mismatch_operator(&t, "=", it))?;
                    }
                    if t == DataType::Unknown {
                        t = DataType::Text;
                    }
                    let x = self.coerce((x, xt), &t)?;
                    let list = items.into_iter().map(|b| self.coerce(b, &t)).collect::<Result<Vec<_>>>()?;
                    Ok((negate_if(Expr::InList { expr: Box::new(x), list }, *negated), DataType::Bool))
                }
                ast::InTarget::Subquery(query) => {
                    let (x, t) = self.bind(expr)?;
                    let (subquery, st) = self.bind_one_column_subquery(query, "subquery has too many columns")?;
                    let common = DataType::common(&t, &st).ok_or_else(|| mismatch_operator(&t, "=", &st))?;
                    let x = self.coerce((x, t), &common)?;
                    let node = if st != common {
                        super::plan::Node::Project {
                            source: Box::new(subquery.node),
                            exprs: vec![Expr::Cast(Box::new(Expr::Column(0)), common)],
                        }
                    } else {
                        subquery.node
                    };
                    let subquery = Subquery { node, ..subquery };
                    Ok((
                        negate_if(Expr::InSubquery { expr: Box::new(x), subquery: Box::new(subquery) }, *negated),
                        DataType::Bool,
                    ))
                }
                _ => Err(Error::FeatureNotSupported(format!("IN {target}"))),
            },
            A::AnyOp { left, compare_op, right, .. } | A::AllOp { left, compare_op, right } => {
                let all = matches!(e, A::AllOp { .. });
                let op = match compare_op {
                    ast::BinaryOperator::Eq => BinaryOp::Eq,
                    ast::BinaryOperator::NotEq => BinaryOp::NotEq,
                    ast::BinaryOperator::Lt => BinaryOp::Lt,
                    ast::BinaryOperator::LtEq => BinaryOp::LtEq,
                    ast::BinaryOperator::Gt => BinaryOp::Gt,
                    ast::BinaryOperator::GtEq => BinaryOp::GtEq,
                    other => return Err(Error::FeatureNotSupported(format!("{other} ANY/ALL"))),
                };
                let (l, lt) = self.bind(left)?;
                let (r, rt) = match right.as_ref() {
                    // `x op ANY/ALL (subquery)` compares with the subquery's rows as with an
                    // array of them.
                    A::Subquery(query) => {
                        let (sq, t) = self.bind_one_column_subquery(query, "subquery has too many columns")?;
                        (Expr::ArraySubquery(Box::new(sq)), DataType::Array(Box::new(t)))
                    }
                    _ => self.bind(right)?,
                };
                let elem = match &rt {
                    DataType::Array(t) => (**t).clone(),
                    // Catalog columns that PostgreSQL types as arrays are text here.
                    _ => lt.clone(),
                };
                let t = DataType::common(&lt, &elem).ok_or_else(|| mismatch_operator(&lt, "=", &elem))?;
                let l = self.coerce((l, lt), &t)?;
                let r = if rt == DataType::Unknown { self.coerce((r, rt), &DataType::Array(Box::new(t)))? } else { r };
                let symbol = format!("{op:?}");
                let name = if all { "op_all" } else { "op_any" };
                let args = vec![l, r, Expr::Constant(Value::Text(symbol))];
                Ok((Expr::Function { name, args, return_type: DataType::Bool }, DataType::Bool))
            }
            A::Exists { subquery, negated } => {
                let (sq, _) = self.bind_subquery(subquery)?;
                Ok((negate_if(Expr::Exists(Box::new(sq)), *negated), DataType::Bool))
            }
            A::Subquery(query) => {
                let (sq, t) = self.bind_one_column_subquery(query, "subquery must return only one column")?;
                Ok((Expr::ScalarSubquery(Box::new(sq)), t))
            }
            A::Case { operand, conditions, else_result, .. } => {
                self.bind_case(operand.as_deref(), conditions, else_result.as_deref())
            }
            A::Cast { expr, data_type, .. } => {
                let type_text = data_type.to_string().to_ascii_lowercase();
                let target = resolve_type(self.txn, &type_text)?;
                let bound = self.bind(expr)?;
                if type_text.ends_with("regclass") {
                    return self.regclass(bound.0);
                }
                if type_text.ends_with("regtype")
                    || type_text.ends_with("regproc")
                    || type_text.ends_with("regnamespace")
                {
                    return Ok((bound.0, DataType::Text));
                }
                if target == bound.1 && !target.has_modifier() {
                    return Ok((bound.0, target));
                }
                Ok(match unpad_char(bound.0, &bound.1, &target) {
                    Expr::Constant(v) => (Expr::Constant(cast_in(v, &target, CastKind::Explicit, &self.zone)?), target),
                    Expr::Param(i) if bound.1 == DataType::Unknown => {
                        if self.params[i] == DataType::Unknown {
                            self.params[i] = target.clone();
                        }
                        (Expr::Cast(Box::new(Expr::Param(i)), target.clone()), target)
                    }
                    other => (Expr::Cast(Box::new(other), target.clone()), target),
                })
            }
            A::AtTimeZone { timestamp, time_zone } => {
                // `ts AT TIME ZONE z` is PostgreSQL's timezone(z, ts).
                let zone = self.bind(time_zone)?;
                let bound = self.bind(timestamp)?;
                self.bind_call("timezone", vec![zone, bound])
            }
            A::Extract { field, expr, .. } => {
                let field_name = field.to_string().to_lowercase();
                let field_name = field_name.trim_matches('\'').trim_matches('"').to_string();
                let arg = self.bind(expr)?;
                self.bind_call("extract", vec![(Expr::Constant(Value::Text(field_name)), DataType::Text), arg])
            }
            A::Ceil { expr, .. } => {
                let arg = self.bind(expr)?;
                self.bind_call("ceil", vec![arg])
            }
            A::Floor { expr, .. } => {
                let arg = self.bind(expr)?;
                self.bind_call("floor", vec![arg])
            }
            A::Position { expr, r#in } => {
                let args = vec![self.bind(r#in)?, self.bind(expr)?];
                self.bind_call("strpos", args)
            }
            A::Substring { expr, substring_from: Some(pattern), substring_for: None, .. }
                if matches!(self.bind(pattern)?.1, DataType::Text | DataType::Unknown | DataType::Varchar(_)) =>
            {
                // substring(text FROM pattern): a regular-expression match.
                let args = vec![self.bind(expr)?, self.bind(pattern)?];
                self.bind_call("substring_regex", args)
            }
            A::Substring { expr, substring_from, substring_for, .. } => {
                let mut args = vec![self.bind(expr)?];
                args.push(match substring_from {
                    Some(f) => self.bind(f)?,
                    None => (Expr::Constant(Value::Int4(1)), DataType::Int4),
                });
                if let Some(f) = substring_for {
                    args.push(self.bind(f)?);
                }
                self.bind_call("substr", args)
            }
            A::Overlay { expr, overlay_what, overlay_from, overlay_for } => {
                let mut args = vec![self.bind(expr)?, self.bind(overlay_what)?, self.bind(overlay_from)?];
                if let Some(f) = overlay_for {
                    args.push(self.bind(f)?);
                }
                self.bind_call("overlay", args)
            }
            A::Trim { expr, trim_where, trim_what, trim_characters } => {
                let name = match trim_where {
                    Some(ast::TrimWhereField::Leading) => "ltrim",
                    Some(ast::TrimWhereField::Trailing) => "rtrim",
                    _ => "btrim",
                };
                let mut args = vec![self.bind(expr)?];
                if let Some(what) = trim_what {
                    args.push(self.bind(what)?);
                } else if let Some(chars) = trim_characters.as_ref().and_then(|c| c.first()) {
                    args.push(self.bind(chars)?);
                }
                self.bind_call(name, args)
            }
            A::Function(f) => self.bind_function(f),
            A::Array(array) => {
                let mut items = Vec::new();
                let mut t = DataType::Unknown;
                for el in &array.elem {
                    let b = self.bind(el)?;
                    t = DataType::common(&t, &b.1)
                        .ok_or_else(|| Error::DatatypeMismatch("ARRAY types cannot be matched".into()))?;
                    items.push(b);
                }
                if t == DataType::Unknown {
                    t = DataType::Text;
                }
                let args = items.into_iter().map(|b| self.coerce(b, &t)).collect::<Result<Vec<_>>>()?;
                let at = DataType::Array(Box::new(t));
                Ok((Expr::Function { name: "array", args, return_type: at.clone() }, at))
            }
            A::Tuple(items) => self.bind_row(&items.iter().collect::<Vec<_>>()),
            other => Err(Error::FeatureNotSupported(format!("expression {other}"))),
        }
    }

    fn coerce_text(&mut self, bound: (Expr, DataType)) -> Result<Expr> {
        match &bound.1 {
            t if t.is_string() || *t == DataType::Unknown => self.coerce(bound, &DataType::Text),
            t => Err(Error::UndefinedFunction(format!("operator does not exist: {t} ~~ unknown"))),
        }
    }

    /// `'name'::regclass`: the table's oid.
    fn regclass(&mut self, e: Expr) -> Result<(Expr, DataType)> {
        match e {
            Expr::Constant(Value::Text(name)) => {
                let name = name.trim_matches('"').rsplit('.').next().unwrap_or_default().to_string();
                let oid = crate::sql::system::relation_oid(self.txn, &name)?
                    .ok_or_else(|| Error::UndefinedTable(name.clone()))?;
                Ok((Expr::Constant(Value::Int8(oid)), DataType::Int8))
            }
            other => Ok((other, DataType::Int8)),
        }
    }

    fn bind_value(&mut self, v: &ast::Value) -> Result<(Expr, DataType)> {
        Ok(match v {
            ast::Value::Number(n, _) => return self.bind_number(n),
            ast::Value::SingleQuotedString(s)
            | ast::Value::EscapedStringLiteral(s)
            // U&'…': its escapes are read by the tokenizer.
            | ast::Value::UnicodeStringLiteral(s)
            | ast::Value::DollarQuotedString(ast::DollarQuotedString { value: s, .. }) => {
                (Expr::Constant(Value::Text(s.clone())), DataType::Unknown)
            }
            ast::Value::Boolean(b) => (Expr::Constant(Value::Bool(*b)), DataType::Bool),
            ast::Value::Null => (Expr::Constant(Value::Null), DataType::Unknown),
            ast::Value::Placeholder(p) => {
                let n: usize = p
                    .trim_start_matches('$')
                    .parse()
                    .map_err(|_| Error::Syntax { message: format!("invalid parameter {p}"), position: None })?;
                if n == 0 || n > 65535 {
                    return Err(Error::Syntax { message: format!("invalid parameter {p}"), position: None });
                }
                if self.params.len() < n {
                    self.params.resize(n, DataType::Unknown);
                }
                (Expr::Param(n - 1), self.params[n - 1].clone())
            }
            other => return Err(Error::FeatureNotSupported(format!("literal {other}"))),
        })
    }

    fn bind_number(&mut self, n: &str) -> Result<(Expr, DataType)> {
        if let Ok(i) = n.parse::<i32>() {
            return Ok((Expr::Constant(Value::Int4(i)), DataType::Int4));
        }
        if let Ok(i) = n.parse::<i64>() {
            return Ok((Expr::Constant(Value::Int8(i)), DataType::Int8));
        }
        match crate::types::cast::to_decimal(&Value::Text(n.to_string())) {
            Ok(d) => Ok((Expr::Constant(Value::Numeric(d)), DataType::Numeric(None))),
            // Beyond NUMERIC's 28 digits: keep the value as a double rather than fail.
            Err(_) => match n.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok((Expr::Constant(Value::Float8(f)), DataType::Float8)),
                _ => Err(Error::NumericOutOfRange(format!("numeric literal {n} is out of range"))),
            },
        }
    }

    fn bind_column(&mut self, table: Option<&str>, name: &str) -> Result<(Expr, DataType)> {
        if self.grouping.is_some() {
            // Reached only when the column is not a grouped expression.
            let input = self.grouping.as_ref().map(|g| g.input.clone()).unwrap_or_default();
            if input.resolve(table, name)?.is_some() {
                let full = match table {
                    Some(t) => format!("{t}.{name}"),
                    None => name.to_string(),
                };
                return Err(Error::Grouping(format!(
                    "column \"{full}\" must appear in the GROUP BY clause or be used in an aggregate function"
                )));
            }
        }
        if let Some((i, t)) = self.scope.resolve(table, name)? {
            return Ok((Expr::Column(i), t));
        }
        if let Some(outer) = &self.outer {
            if let Some((i, t)) = outer.resolve(table, name)? {
                self.correlated = true;
                return Ok((Expr::Outer(i), t));
            }
        }
        if let Some(t) = table {
            if !self.scope.has_table(t) {
                return Err(Error::MissingFromEntry(t.to_string()));
            }
            return Err(Error::UndefinedColumn(format!("{t}.{name}")));
        }
        // SQL's parameterless functions that parse as names.
        if table.is_none() && matches!(name, "current_schema" | "current_catalog") {
            let name = if name == "current_schema" { "current_schema" } else { "current_database" };
            return Ok((Expr::Function { name, args: Vec::new(), return_type: DataType::Text }, DataType::Text));
        }
        // A table's name as a value is its whole row, as in PostgreSQL.
        if self.grouping.is_none() && self.scope.has_table(name) {
            let (args, types): (Vec<Expr>, Vec<DataType>) = (self.scope.columns.iter().enumerate())
                .filter(|(_, c)| c.table.as_deref() == Some(name))
                .map(|(i, c)| (Expr::Column(i), c.data_type.clone()))
                .unzip();
            let t = DataType::Record(types, FieldNames::default());
            return Ok((Expr::Function { name: "row", args, return_type: t.clone() }, t));
        }
        Err(Error::UndefinedColumn(name.to_string()))
    }

    /// `(row).field`: a field of a row value whose fields have names (a function's output
    /// columns, as `(_pg_expandarray(a)).n`).
    fn bind_field(&mut self, root: &ast::Expr, field: &str) -> Result<(Expr, DataType)> {
        let (row, t) = self.bind(root)?;
        let DataType::Record(types, names) = &t else {
            return Err(Error::WrongObjectType(format!(
                "column notation .{field} applied to type {t}, which is not a composite type"
            )));
        };
        let Some(i) = names.position(field) else {
            return Err(Error::UndefinedField(field.to_string()));
        };
        let field_type = types[i].clone();
        // A row built here gives its field directly.
        if let Expr::Function { name: "row" | "set_row", args, .. } = &row {
            return Ok((args[i].clone(), field_type));
        }
        let index = Expr::Constant(Value::Int4(i as i32));
        Ok((
            Expr::Function { name: "record_field", args: vec![row, index], return_type: field_type.clone() },
            field_type,
        ))
    }

    /// In a grouping context, an expression equal to a GROUP BY expression is that column.
    fn match_group(&mut self, e: &ast::Expr) -> Result<Option<(Expr, DataType)>> {
        let Some(grouping) = self.grouping.take() else { return Ok(None) };
        let saved_scope = std::mem::replace(&mut self.scope, grouping.input.clone());
        let saved_windows = self.windows.take();
        let saved_gapfill = self.gapfill.take();
        let saw_aggregate = self.saw_aggregate;
        let attempt = match e {
            ast::Expr::Value(_) => Err(Error::Internal(String::new())),
            _ => self.bind(e),
        };
        self.saw_aggregate = saw_aggregate;
        self.windows = saved_windows;
        self.gapfill = saved_gapfill;
        self.scope = saved_scope;
        self.grouping = Some(grouping);
        if let Ok((bound, t)) = attempt {
            let grouping = self.grouping.as_ref().map(|g| &g.group_exprs);
            if let Some(i) = grouping.and_then(|g| g.iter().position(|ge| *ge == bound)) {
                return Ok(Some((Expr::Column(i), t)));
            }
        }
        Ok(None)
    }

    fn bind_case(
        &mut self,
        operand: Option<&ast::Expr>,
        conditions: &[ast::CaseWhen],
        else_result: Option<&ast::Expr>,
    ) -> Result<(Expr, DataType)> {
        let operand = match operand {
            Some(o) => Some(self.bind(o)?),
            None => None,
        };
        let mut whens = Vec::new();
        let mut results = Vec::new();
        for cw in conditions {
            whens.push(self.bind(&cw.condition)?);
            results.push(self.bind(&cw.result)?);
        }
        let otherwise = match else_result {
            Some(e) => Some(self.bind(e)?),
            None => None,
        };
        let mut t = DataType::Unknown;
        for (_, rt) in results.iter().chain(otherwise.iter()) {
            t = DataType::common(&t, rt)
                .ok_or_else(|| Error::DatatypeMismatch(format!("CASE types {t} and {rt} cannot be matched")))?;
        }
        if t == DataType::Unknown {
            t = DataType::Text;
        }
        let operand_expr = match operand {
            Some((oe, ot)) => {
                let mut ct = ot.clone();
                for (_, wt) in &whens {
                    ct = DataType::common(&ct, wt).ok_or_else(|| mismatch_operator(&ot, "=", wt))?;
                }
                let oe = self.coerce((oe, ot), &ct)?;
                whens = whens.into_iter().map(|w| Ok((self.coerce(w, &ct)?, ct.clone()))).collect::<Result<_>>()?;
                Some(Box::new(oe))
            }
            None => {
                whens = whens
                    .into_iter()
                    .map(|w| Ok((self.coerce(w, &DataType::Bool)?, DataType::Bool)))
                    .collect::<Result<_>>()?;
                None
            }
        };
        let mut pairs = Vec::new();
        for ((w, _), r) in whens.into_iter().zip(results) {
            pairs.push((w, self.coerce(r, &t)?));
        }
        let otherwise = match otherwise {
            Some(o) => Some(Box::new(self.coerce(o, &t)?)),
            None => None,
        };
        Ok((Expr::Case { operand: operand_expr, whens: pairs, otherwise }, t))
    }

    /// Binds both sides and coerces them to their common type.
    pub fn bind_common(&mut self, l: &ast::Expr, r: &ast::Expr) -> Result<(Expr, Expr, DataType)> {
        let lb = self.bind(l)?;
        let rb = self.bind(r)?;
        let t = DataType::common(&lb.1, &rb.1).ok_or_else(|| mismatch_operator(&lb.1, "=", &rb.1))?;
        let t = if t == DataType::Unknown { DataType::Text } else { t };
        Ok((self.coerce(lb, &t)?, self.coerce(rb, &t)?, t))
    }

    fn bind_binary(&mut self, l: &ast::Expr, op: &ast::BinaryOperator, r: &ast::Expr) -> Result<(Expr, DataType)> {
        use ast::BinaryOperator as B;
        if let (Some(left), Some(right)) = (row_items(l), row_items(r)) {
            if *op == B::Overlaps {
                return self.bind_overlaps(left, right);
            }
            return self.bind(&row_comparison(left, op, right)?);
        }
        let comparison = |o: &B| -> Option<BinaryOp> {
            Some(match o {
                B::Eq => BinaryOp::Eq,
                B::NotEq => BinaryOp::NotEq,
                B::Lt => BinaryOp::Lt,
                B::LtEq => BinaryOp::LtEq,
                B::Gt => BinaryOp::Gt,
                B::GtEq => BinaryOp::GtEq,
                _ => return None,
            })
        };
        if let Some(cmp) = comparison(op) {
            let lb = self.bind(l)?;
            let rb = self.bind(r)?;
            let t = DataType::common(&lb.1, &rb.1).ok_or_else(|| mismatch_operator(&lb.1, &op.to_string(), &rb.1))?;
            let t = if t == DataType::Unknown { DataType::Text } else { t };
            let (mut le, mut re) = (self.coerce(lb, &t)?, self.coerce(rb, &t)?);
            if !matches!(cmp, BinaryOp::Eq | BinaryOp::NotEq) {
                (le, re) = (enum_order(le, &t), enum_order(re, &t));
            }
            return Ok((Expr::Binary(cmp, Box::new(le), Box::new(re)), DataType::Bool));
        }
        match op {
            B::And | B::Or => {
                let lb = self.bind(l)?;
                let le = self.coerce(lb, &DataType::Bool).map_err(|_| bool_operand(op))?;
                let rb = self.bind(r)?;
                let re = self.coerce(rb, &DataType::Bool).map_err(|_| bool_operand(op))?;
                let bop = if *op == B::And { BinaryOp::And } else { BinaryOp::Or };
                Ok((Expr::Binary(bop, Box::new(le), Box::new(re)), DataType::Bool))
            }
            B::StringConcat => {
                let lb = self.bind(l)?;
                let rb = self.bind(r)?;
                // With an array on either side, `||` is array concatenation.
                match (&lb.1, &rb.1) {
                    (DataType::Array(_), DataType::Array(_) | DataType::Unknown)
                    | (DataType::Unknown, DataType::Array(_)) => return self.bind_call("array_cat", vec![lb, rb]),
                    (DataType::Array(_), _) => return self.bind_call("array_append", vec![lb, rb]),
                    (_, DataType::Array(_)) => return self.bind_call("array_prepend", vec![lb, rb]),
                    _ => {}
                }
                let t = match (&lb.1, &rb.1) {
                    (DataType::Jsonb, DataType::Jsonb | DataType::Unknown) | (DataType::Unknown, DataType::Jsonb) => {
                        DataType::Jsonb
                    }
                    (DataType::Bytea, DataType::Bytea) => DataType::Bytea,
                    _ => DataType::Text,
                };
                let le = self.coerce_concat(lb, &t)?;
                let re = self.coerce_concat(rb, &t)?;
                Ok((Expr::Binary(BinaryOp::Concat, Box::new(le), Box::new(re)), t))
            }
            B::Arrow | B::LongArrow => {
                let lb = self.bind(l)?;
                let le = self.coerce(lb, &DataType::Jsonb)?;
                let (re, rt) = self.bind(r)?;
                let re = if rt == DataType::Unknown { self.coerce((re, rt), &DataType::Text)? } else { re };
                let (bop, t) = if *op == B::Arrow {
                    (BinaryOp::JsonGet, DataType::Jsonb)
                } else {
                    (BinaryOp::JsonGetText, DataType::Text)
                };
                Ok((Expr::Binary(bop, Box::new(le), Box::new(re)), t))
            }
            B::HashArrow
            | B::HashLongArrow
            | B::HashMinus
            | B::Question
            | B::QuestionPipe
            | B::QuestionAnd
            | B::AtArrow
            | B::ArrowAt => {
                let lb = self.bind(l)?;
                let rb = self.bind(r)?;
                self.bind_containment_or_json(&op.to_string(), lb, rb)
            }
            B::BitwiseAnd | B::BitwiseOr | B::PGBitwiseXor | B::PGBitwiseShiftLeft | B::PGBitwiseShiftRight => {
                let (lb, rb) = (self.bind(l)?, self.bind(r)?);
                if ![&lb.1, &rb.1].iter().all(|t| t.is_integer() || **t == DataType::Unknown) {
                    return Err(mismatch_operator(&lb.1, &op.to_string(), &rb.1));
                }
                let function = match op {
                    B::BitwiseAnd => "int_and",
                    B::BitwiseOr => "int_or",
                    B::PGBitwiseXor => "int_xor",
                    B::PGBitwiseShiftLeft => "int_shl",
                    _ => "int_shr",
                };
                self.bind_call(function, vec![lb, rb])
            }
            B::PGRegexMatch | B::PGRegexIMatch | B::PGRegexNotMatch | B::PGRegexNotIMatch => {
                let lb = self.bind(l)?;
                let le = self.coerce_text(lb)?;
                let rb = self.bind(r)?;
                let re = self.coerce_text(rb)?;
                let ci = matches!(op, B::PGRegexIMatch | B::PGRegexNotIMatch);
                let m = Expr::Binary(BinaryOp::RegexMatch { case_insensitive: ci }, Box::new(le), Box::new(re));
                Ok((negate_if(m, matches!(op, B::PGRegexNotMatch | B::PGRegexNotIMatch)), DataType::Bool))
            }
            B::PGCustomBinaryOperator(parts) => {
                let symbol = parts.last().map(String::as_str).unwrap_or("");
                let mapped = match symbol {
                    "~" => B::PGRegexMatch,
                    "~*" => B::PGRegexIMatch,
                    "!~" => B::PGRegexNotMatch,
                    "!~*" => B::PGRegexNotIMatch,
                    "=" => B::Eq,
                    "<>" => B::NotEq,
                    "<" => B::Lt,
                    ">" => B::Gt,
                    "<=" => B::LtEq,
                    ">=" => B::GtEq,
                    "~~" => {
                        let like = ast::Expr::Like {
                            negated: false,
                            any: false,
                            expr: Box::new(l.clone()),
                            pattern: Box::new(r.clone()),
                            escape_char: None,
                        };
                        return self.bind(&like);
                    }
                    other => return Err(Error::UndefinedFunction(format!("operator does not exist: {other}"))),
                };
                self.bind_binary(l, &mapped, r)
            }
            B::PGLikeMatch | B::PGILikeMatch | B::PGNotLikeMatch | B::PGNotILikeMatch => {
                let negated = matches!(op, B::PGNotLikeMatch | B::PGNotILikeMatch);
                let like = if matches!(op, B::PGLikeMatch | B::PGNotLikeMatch) {
                    ast::Expr::Like {
                        negated,
                        any: false,
                        expr: Box::new(l.clone()),
                        pattern: Box::new(r.clone()),
                        escape_char: None,
                    }
                } else {
                    ast::Expr::ILike {
                        negated,
                        any: false,
                        expr: Box::new(l.clone()),
                        pattern: Box::new(r.clone()),
                        escape_char: None,
                    }
                };
                self.bind(&like)
            }
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo | B::PGExp => {
                let bop = match op {
                    B::Plus => BinaryOp::Add,
                    B::Minus => BinaryOp::Sub,
                    B::Multiply => BinaryOp::Mul,
                    B::Divide => BinaryOp::Div,
                    B::Modulo => BinaryOp::Mod,
                    _ => BinaryOp::Pow,
                };
                let lb = self.bind(l)?;
                let rb = self.bind(r)?;
                if bop == BinaryOp::Sub && lb.1 == DataType::Jsonb {
                    return self.bind_containment_or_json("-", lb, rb);
                }
                self.bind_arithmetic(bop, lb, rb)
            }
            other => Err(Error::FeatureNotSupported(format!("operator {other}"))),
        }
    }

    /// The `jsonb` operators (and `@>`, `<@` on arrays), bound as the functions they stand for.
    fn bind_containment_or_json(
        &mut self,
        symbol: &str,
        lb: (Expr, DataType),
        rb: (Expr, DataType),
    ) -> Result<(Expr, DataType)> {
        let function = match (&lb.1, symbol) {
            (DataType::Array(_), "@>") => Some("array_contains"),
            (DataType::Array(_), "<@") => Some("array_contained"),
            (DataType::Jsonb | DataType::Unknown, _) => functions::json::operator_function(symbol),
            _ => None,
        };
        let Some(function) = function else {
            return Err(mismatch_operator(&lb.1, symbol, &rb.1));
        };
        let (lt, rt) = (lb.1.clone(), rb.1.clone());
        self.bind_call(function, vec![lb, rb]).map_err(|e| match e {
            Error::UndefinedFunction(_) => mismatch_operator(&lt, symbol, &rt),
            other => other,
        })
    }

    fn coerce_concat(&mut self, bound: (Expr, DataType), t: &DataType) -> Result<Expr> {
        if bound.1 == *t || bound.1 == DataType::Unknown || (*t == DataType::Text && bound.1.is_string()) {
            return self.coerce(bound, t);
        }
        Ok(Expr::Cast(Box::new(bound.0), t.clone()))
    }

    /// Types an arithmetic expression: numbers meet in their common type; dates, timestamps
    /// and intervals follow PostgreSQL's operator table.
    pub fn bind_arithmetic(
        &mut self,
        op: BinaryOp,
        lb: (Expr, DataType),
        rb: (Expr, DataType),
    ) -> Result<(Expr, DataType)> {
        use DataType as T;
        let (lt, rt) = (lb.1.clone(), rb.1.clone());
        let symbol = super::super::execution::arith::op_symbol(op);
        let make = |l: Expr, r: Expr| Expr::Binary(op, Box::new(l), Box::new(r));
        // Resolve unknown operands against the other side.
        let datetime = |t: &DataType| matches!(t, T::Date | T::Timestamp | T::TimestampTz);
        match (&lt, &rt) {
            (a, T::Unknown) if datetime(a) && matches!(op, BinaryOp::Add | BinaryOp::Sub) => {
                let other = if op == BinaryOp::Sub && rb_is_timestamp_text(&rb.0) { a.clone() } else { T::Interval };
                let re = self.coerce(rb, &other)?;
                return self.bind_arithmetic(op, lb, (re, other));
            }
            (T::Unknown, b) if datetime(b) && op == BinaryOp::Add => {
                let le = self.coerce(lb, &T::Interval)?;
                return self.bind_arithmetic(op, (le, T::Interval), rb);
            }
            (T::Interval, T::Unknown) => {
                let other = if matches!(op, BinaryOp::Add | BinaryOp::Sub) { T::Interval } else { T::Float8 };
                let re = self.coerce(rb, &other)?;
                return self.bind_arithmetic(op, lb, (re, other));
            }
            _ => {}
        }
        let result = match (&lt, &rt) {
            (a, b) if (a.is_numeric() || *a == T::Unknown) && (b.is_numeric() || *b == T::Unknown) => {
                let mut t = DataType::common(a, b).unwrap_or(T::Numeric(None));
                if t == T::Unknown {
                    t = T::Numeric(None);
                }
                if let T::Numeric(Some(_)) = t {
                    t = T::Numeric(None);
                }
                if op == BinaryOp::Pow && t.is_integer() {
                    t = T::Float8;
                }
                if op == BinaryOp::Pow && t == T::Float4 {
                    t = T::Float8;
                }
                // PostgreSQL has real-with-real operators only: a real meets an integer or a
                // numeric in double precision (`1 + 2.5::real` is double precision).
                if t == T::Float4 && [a, b].iter().any(|x| !matches!(x, T::Float4 | T::Unknown)) {
                    t = T::Float8;
                }
                // PostgreSQL has no `%` for floating point.
                if op == BinaryOp::Mod && matches!(t, T::Float4 | T::Float8) {
                    return Err(mismatch_operator(&lt, symbol, &rt));
                }
                let l = self.coerce(lb, &t)?;
                let r = self.coerce(rb, &t)?;
                return Ok((make(l, r), t));
            }
            (T::Timestamp, T::Interval) | (T::Interval, T::Timestamp) if op == BinaryOp::Add => T::Timestamp,
            (T::Timestamp, T::Interval) if op == BinaryOp::Sub => T::Timestamp,
            (T::TimestampTz, T::Interval) | (T::Interval, T::TimestampTz) if op == BinaryOp::Add => T::TimestampTz,
            (T::TimestampTz, T::Interval) if op == BinaryOp::Sub => T::TimestampTz,
            (T::Date, T::Interval) if matches!(op, BinaryOp::Add | BinaryOp::Sub) => T::Timestamp,
            (T::Time, T::Interval) if matches!(op, BinaryOp::Add | BinaryOp::Sub) => T::Time,
            (T::Interval, T::Time) if op == BinaryOp::Add => T::Time,
            (T::Time, T::Time) if op == BinaryOp::Sub => T::Interval,
            (T::Date, T::Time) | (T::Time, T::Date) if op == BinaryOp::Add => T::Timestamp,
            (T::TimeTz, T::Interval) if matches!(op, BinaryOp::Add | BinaryOp::Sub) => T::TimeTz,
            (T::Interval, T::TimeTz) if op == BinaryOp::Add => T::TimeTz,
            (T::Date, T::TimeTz) | (T::TimeTz, T::Date) if op == BinaryOp::Add => T::TimestampTz,
            (T::Date, b) if b.is_integer() && matches!(op, BinaryOp::Add | BinaryOp::Sub) => {
                let r = self.coerce(rb, &T::Int4)?;
                return Ok((make(lb.0, r), T::Date));
            }
            (a, T::Date) if a.is_integer() && op == BinaryOp::Add => {
                let l = self.coerce(lb, &T::Int4)?;
                return Ok((make(l, rb.0), T::Date));
            }
            (T::Date, T::Date) if op == BinaryOp::Sub => T::Int4,
            (T::Timestamp, T::Timestamp) | (T::TimestampTz, T::TimestampTz) if op == BinaryOp::Sub => T::Interval,
            (T::Timestamp, T::TimestampTz)
            | (T::TimestampTz, T::Timestamp)
            | (T::Date, T::Timestamp | T::TimestampTz)
            | (T::Timestamp | T::TimestampTz, T::Date)
                if op == BinaryOp::Sub =>
            {
                let l = self.coerce(lb, &T::TimestampTz)?;
                let r = self.coerce(rb, &T::TimestampTz)?;
                return Ok((make(l, r), T::Interval));
            }
            (T::Interval, T::Interval) if matches!(op, BinaryOp::Add | BinaryOp::Sub) => T::Interval,
            (T::Interval, n) if n.is_numeric() && matches!(op, BinaryOp::Mul | BinaryOp::Div) => T::Interval,
            (n, T::Interval) if n.is_numeric() && op == BinaryOp::Mul => T::Interval,
            _ => return Err(mismatch_operator(&lt, symbol, &rt)),
        };
        Ok((make(lb.0, rb.0), result))
    }

    /// Binds a call to a scalar function with already-bound arguments.
    /// `(start, end | length) OVERLAPS (start, end | length)`: two periods of time, each given
    /// by its ends or by its start and an interval.
    fn bind_overlaps(&mut self, left: &[ast::Expr], right: &[ast::Expr]) -> Result<(Expr, DataType)> {
        let ([ls, le], [rs, re]) = (left, right) else {
            return Err(Error::Syntax {
                message: "wrong number of parameters on left side of OVERLAPS expression".into(),
                position: None,
            });
        };
        let mut args = Vec::with_capacity(4);
        for (start, end) in [(ls, le), (rs, re)] {
            let start_bound = self.bind(start)?;
            let end_bound = self.bind(end)?;
            let end_bound = if end_bound.1 == DataType::Interval {
                let sum = ast::Expr::BinaryOp {
                    left: Box::new(start.clone()),
                    op: ast::BinaryOperator::Plus,
                    right: Box::new(end.clone()),
                };
                self.bind(&sum)?
            } else {
                end_bound
            };
            args.push(start_bound);
            args.push(end_bound);
        }
        self.bind_call("overlaps", args)
    }

    /// A row constructor, `ROW(a, b)` or `(a, b)`: a record of its items (literals of unknown
    /// type become text).
    fn bind_row(&mut self, items: &[&ast::Expr]) -> Result<(Expr, DataType)> {
        let mut args = Vec::with_capacity(items.len());
        let mut types = Vec::with_capacity(items.len());
        for item in items {
            let (e, t) = self.bind(item)?;
            let target = if t == DataType::Unknown { DataType::Text } else { t.clone() };
            args.push(self.coerce((e, t), &target)?);
            types.push(target);
        }
        let t = DataType::Record(types, FieldNames::default());
        Ok((Expr::Function { name: "row", args, return_type: t.clone() }, t))
    }

    pub fn bind_call(&mut self, name: &str, args: Vec<(Expr, DataType)>) -> Result<(Expr, DataType)> {
        let types: Vec<DataType> = args.iter().map(|(_, t)| t.clone()).collect();
        let sig = functions::resolve(name, &types)?;
        let mut bound = Vec::with_capacity(args.len());
        for (arg, target) in args.into_iter().zip(sig.arg_types.iter()) {
            bound.push(match target {
                DataType::Unknown => {
                    if arg.1 == DataType::Unknown {
                        self.coerce(arg, &DataType::Text)?
                    } else {
                        arg.0
                    }
                }
                t => {
                    let at = arg.1.clone();
                    if at == *t
                        || at == DataType::Unknown
                        || (at.is_numeric() && t.is_numeric())
                        || (at.is_string() && t.is_string())
                    {
                        self.coerce(arg, t)?
                    } else if matches!(
                        (&at, t),
                        (
                            DataType::Date | DataType::Timestamp | DataType::TimestampTz,
                            DataType::Timestamp | DataType::TimestampTz
                        ) | (DataType::Time, DataType::Interval | DataType::TimeTz)
                    ) {
                        // PostgreSQL's implicit casts between date/time types.
                        Expr::Cast(Box::new(arg.0), t.clone())
                    } else if matches!(t, DataType::Array(_)) && matches!(at, DataType::Array(_)) {
                        arg.0
                    } else {
                        return Err(Error::UndefinedFunction(format!(
                            "function {name}({}) does not exist",
                            types.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
                        )));
                    }
                }
            });
        }
        // date_trunc of a timestamptz truncates on the session zone's calendar: bound with
        // that zone, so the plan says it (and summaries, kept in UTC, do not answer it).
        if sig.name == "date_trunc"
            && bound.len() == 2
            && sig.return_type == DataType::TimestampTz
            && self.zone != Zone::UTC
        {
            bound.push(Expr::Constant(Value::Text(self.zone.name())));
        }
        Ok((Expr::Function { name: sig.name, args: bound, return_type: sig.return_type.clone() }, sig.return_type))
    }

    fn bind_function(&mut self, f: &ast::Function) -> Result<(Expr, DataType)> {
        let parts = object_name_parts(&f.name);
        let name = parts.last().cloned().unwrap_or_default();
        let (arg_list, distinct, clauses): (&[ast::FunctionArg], bool, &[ast::FunctionArgumentClause]) = match &f.args {
            ast::FunctionArguments::None => (&[], false, &[]),
            ast::FunctionArguments::List(list) => {
                (&list.args, matches!(list.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct)), &list.clauses)
            }
            ast::FunctionArguments::Subquery(query) if name == "array" => {
                let (sq, t) = self.bind_one_column_subquery(query, "subquery must return only one column")?;
                return Ok((Expr::ArraySubquery(Box::new(sq)), DataType::Array(Box::new(t))));
            }
            ast::FunctionArguments::Subquery(_) => {
                return Err(Error::FeatureNotSupported("subquery as function argument".into()))
            }
        };
        let mut agg_order = Vec::new();
        for clause in clauses {
            match clause {
                ast::FunctionArgumentClause::OrderBy(items) if aggregate_function(&name).is_some() => {
                    agg_order = items.clone();
                }
                other => return Err(Error::FeatureNotSupported(format!("{other} in a call to {name}"))),
            }
        }
        let star = matches!(arg_list, [ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Wildcard)]);
        let positional = positional_args(&name, arg_list)?;
        let mut args: Vec<&ast::Expr> = positional.iter().map(|a| a.as_ref()).collect();
        if name == "row" && !star && !distinct && f.over.is_none() && f.filter.is_none() {
            return self.bind_row(&args);
        }
        // nextval('s'::regclass), as pg_dump and ORMs write it: the sequence by name.
        if matches!(name.as_str(), "nextval" | "setval" | "currval") {
            if let Some(ast::Expr::Cast { expr, data_type, .. }) = args.first() {
                if data_type.to_string().eq_ignore_ascii_case("regclass") {
                    args[0] = expr;
                }
            }
        }
        // An ordered-set aggregate aggregates its WITHIN GROUP value, in that order; its own
        // arguments (a fraction) follow.
        let ordered_set = matches!(name.as_str(), "percentile_cont" | "percentile_disc" | "mode");
        match (&f.within_group[..], ordered_set) {
            ([], false) => {}
            (_, true) if f.over.is_some() => {
                return Err(Error::FeatureNotSupported(format!(
                    "OVER is not supported for ordered-set aggregate {name}"
                )))
            }
            ([ordered], true) => {
                args.insert(0, &ordered.expr);
                agg_order = f.within_group.clone();
            }
            ([], true) => {
                return Err(Error::UndefinedFunction(format!(
                    "function {name} without WITHIN GROUP (ORDER BY …) does not exist"
                )))
            }
            (_, true) => return Err(Error::FeatureNotSupported(format!("{name} WITHIN GROUP over several columns"))),
            (_, false) => return Err(Error::UndefinedFunction(format!("{name} is not an ordered-set aggregate"))),
        }
        if name == "grouping" && f.over.is_none() {
            return self.bind_grouping(&args);
        }
        if f.over.is_some() || aggregate_function(&name).is_some() {
            // Their arguments may not call set-returning functions.
            let set_calls = self.set_calls.take();
            let bound = match (&f.over, aggregate_function(&name)) {
                (Some(over), _) => self.bind_window(&name, &args, star, over),
                (None, Some(function)) => {
                    let window = super::aggregates::window_aggregate(&name).map(|(_, w)| w);
                    self.bind_aggregate(function, window, &args, star, distinct, f.filter.as_deref(), &agg_order)
                }
                (None, None) => Err(Error::Internal(format!("{name} is neither a window nor an aggregate"))),
            };
            self.set_calls = set_calls;
            return bound;
        }
        if distinct || f.filter.is_some() {
            return Err(Error::Syntax {
                message: format!("DISTINCT specified, but {name} is not an aggregate function"),
                position: None,
            });
        }
        if super::set_functions::is_set_returning(&name) {
            return self.bind_set_returning(&name, &args);
        }
        if matches!(name.as_str(), "locf" | "interpolate") {
            return self.bind_gapfill_call(&name, &args);
        }
        match name.as_str() {
            "coalesce" | "greatest" | "least" | "nullif" => {
                let mut bound = Vec::new();
                let mut t = DataType::Unknown;
                for a in &args {
                    let b = self.bind(a)?;
                    t = DataType::common(&t, &b.1).ok_or_else(|| {
                        Error::DatatypeMismatch(format!(
                            "{} types {t} and {} cannot be matched",
                            name.to_uppercase(),
                            b.1
                        ))
                    })?;
                    bound.push(b);
                }
                if name == "nullif" && bound.len() != 2 {
                    return Err(Error::UndefinedFunction("function nullif requires two arguments".into()));
                }
                if t == DataType::Unknown {
                    t = DataType::Text;
                }
                let result_type = if name == "nullif" { nullif_type(&bound[0].1, &bound[1].1, &t) } else { t.clone() };
                let result_type = if result_type == DataType::Unknown { DataType::Text } else { result_type };
                let args = if name == "nullif" {
                    // The first argument becomes the result; the second is compared as it is
                    // when both are numbers (comparison works across numeric types).
                    let mut bound = bound.into_iter();
                    let (a, b) = (bound.next().expect("two arguments"), bound.next().expect("two arguments"));
                    let b_type = if a.1.numeric_rank().is_some() && b.1.numeric_rank().is_some() {
                        b.1.clone()
                    } else {
                        t.clone()
                    };
                    vec![self.coerce(a, &result_type)?, self.coerce(b, &b_type)?]
                } else {
                    bound.into_iter().map(|b| self.coerce(b, &t)).collect::<Result<Vec<_>>>()?
                };
                let canonical: &'static str = match name.as_str() {
                    "coalesce" => "coalesce",
                    "greatest" => "greatest",
                    "least" => "least",
                    _ => "nullif",
                };
                Ok((Expr::Function { name: canonical, args, return_type: result_type.clone() }, result_type))
            }
            "pg_typeof" => {
                let [arg] = args.as_slice() else {
                    return Err(Error::UndefinedFunction("function pg_typeof requires one argument".into()));
                };
                let (_, t) = self.bind(arg)?;
                Ok((Expr::Constant(Value::Text(t.to_string())), DataType::Text))
            }
            "current_user" | "session_user" | "user" | "current_role" => {
                Ok((Expr::Function { name: "current_user", args: vec![], return_type: DataType::Text }, DataType::Text))
            }
            "current_database" | "current_catalog" => Ok((
                Expr::Function { name: "current_database", args: vec![], return_type: DataType::Text },
                DataType::Text,
            )),
            "current_schema" => Ok((
                Expr::Function { name: "current_schema", args: vec![], return_type: DataType::Text },
                DataType::Text,
            )),
            "version" => {
                Ok((Expr::Function { name: "version", args: vec![], return_type: DataType::Text }, DataType::Text))
            }
            "pg_backend_pid" => Ok((
                Expr::Function { name: "pg_backend_pid", args: vec![], return_type: DataType::Int4 },
                DataType::Int4,
            )),
            _ => {
                let mut bound = Vec::new();
                for a in &args {
                    bound.push(self.bind(a)?);
                }
                if let Some(found) = crate::sql::system::bind_catalog_function(&name, &mut bound)? {
                    return Ok(found);
                }
                self.bind_call(&name, bound)
            }
        }
    }

    /// Binds one ORDER BY item against the current scope.
    pub fn bind_sort_key(&mut self, o: &ast::OrderByExpr) -> Result<SortKey> {
        let (expr, t) = self.bind(&o.expr)?;
        Ok(sort_key(expr, &t, &o.options))
    }

    /// Binds a subquery with this scope as its outer scope.
    /// A subquery that must give one column (scalar, IN, ANY/ALL, ARRAY): the subquery and
    /// that column's type; `message` (PostgreSQL's wording differs by use) when it gives more.
    fn bind_one_column_subquery(&mut self, query: &ast::Query, message: &str) -> Result<(Subquery, DataType)> {
        let (subquery, columns) = self.bind_subquery(query)?;
        match columns.as_slice() {
            [column] => Ok((subquery, column.data_type.clone())),
            _ => Err(Error::Syntax { message: message.into(), position: None }),
        }
    }

    pub fn bind_subquery(&mut self, query: &ast::Query) -> Result<(Subquery, Vec<super::scope::ScopeColumn>)> {
        let outer = Some(match &self.grouping {
            // Inside a grouped query the subquery sees the grouped row: its GROUP BY columns.
            Some(grouping) => grouped_scope(grouping),
            None => self.scope.clone(),
        });
        let id = *self.next_subquery_id;
        *self.next_subquery_id += 1;
        let mut child = self.child(outer);
        let (node, columns) = child.plan_query(query)?;
        let correlated = child.correlated;
        // The optimizer walks nodes, not the plans inside expressions: optimize this one now.
        let node = super::optimizer::optimize(node);
        Ok((Subquery { id, node, correlated }, columns))
    }
}

/// The columns of a grouped row that a subquery may read: each GROUP BY expression that is a
/// plain column (the first time it appears), under its name; the rest (other expressions,
/// the aggregates) match no name.
fn grouped_scope(grouping: &Grouping) -> Scope {
    let unnamed = || super::scope::ScopeColumn {
        table: None,
        name: String::new(),
        data_type: DataType::Unknown,
        hidden: true,
        time: false,
    };
    let columns = grouping
        .group_exprs
        .iter()
        .enumerate()
        .map(|(k, e)| match e {
            Expr::Column(i) if !grouping.group_exprs[..k].contains(e) => {
                grouping.input.columns.get(*i).cloned().unwrap_or_else(unnamed)
            }
            _ => unnamed(),
        })
        .collect();
    Scope::new(columns)
}

fn rb_is_timestamp_text(e: &Expr) -> bool {
    match e {
        Expr::Constant(Value::Text(s)) => crate::types::datetime::parse_timestamp(s, true).is_ok(),
        _ => false,
    }
}

/// A sort key with PostgreSQL's defaults: NULLs last ascending, first descending. Enum values
/// sort by their declaration order.
pub fn sort_key(expr: Expr, data_type: &DataType, options: &ast::OrderByOptions) -> SortKey {
    let descending = matches!(options.sort, Some(ast::OrderBySort::Desc));
    SortKey { expr: enum_order(expr, data_type), descending, nulls_first: options.nulls_first.unwrap_or(descending) }
}

/// For an enum-typed expression, its label's position (so `<`, `>` and sorting follow the
/// declaration order); other expressions unchanged.
pub fn enum_order(expr: Expr, data_type: &DataType) -> Expr {
    match data_type {
        DataType::Enum(e) => Expr::Function {
            name: "enum_sortorder",
            args: vec![expr, Expr::Constant(Value::Array(e.labels.iter().cloned().map(Value::Text).collect()))],
            return_type: DataType::Int4,
        },
        _ => expr,
    }
}

/// The quote character of [`position_reference`]: the PostgreSQL dialect never quotes a name
/// with brackets, so no SQL text parses to it.
const POSITION_QUOTE: char = '[';

/// A reference to the column at position `i` of the current scope, for the expansion of `*`
/// over columns whose names are not unique.
pub(super) fn position_reference(i: usize) -> ast::Expr {
    ast::Expr::CompoundIdentifier(vec![
        ast::Ident::with_quote(POSITION_QUOTE, "position"),
        ast::Ident::new(i.to_string()),
    ])
}

fn negate_if(e: Expr, negated: bool) -> Expr {
    if negated {
        Expr::Unary(UnaryOp::Not, Box::new(e))
    } else {
        e
    }
}

/// The items of a row constructor `(a, b, …)` (also parenthesized again).
fn row_items(e: &ast::Expr) -> Option<&[ast::Expr]> {
    match e {
        ast::Expr::Tuple(items) => Some(items),
        ast::Expr::Nested(inner) => row_items(inner),
        _ => None,
    }
}

/// A comparison of two rows as PostgreSQL defines it, spelled out pairwise: `=` needs every
/// pair equal, `<>` one pair different, and `<`, `<=`, `>`, `>=` compare left to right
/// (`(a, b) < (x, y)` is `a < x OR (a = x AND b < y)`), so NULLs give NULL where they decide.
fn row_comparison(l: &[ast::Expr], op: &ast::BinaryOperator, r: &[ast::Expr]) -> Result<ast::Expr> {
    use ast::BinaryOperator as B;
    if l.len() != r.len() || l.is_empty() {
        return Err(Error::Syntax { message: "unequal number of entries in row expressions".into(), position: None });
    }
    let bin = |a: ast::Expr, op: B, b: ast::Expr| ast::Expr::BinaryOp { left: Box::new(a), op, right: Box::new(b) };
    let pair = |i: usize, op: B| bin(l[i].clone(), op, r[i].clone());
    let n = l.len();
    Ok(match op {
        B::Eq | B::NotEq => {
            let join = if *op == B::Eq { B::And } else { B::Or };
            (1..n).fold(pair(0, op.clone()), |acc, i| bin(acc, join.clone(), pair(i, op.clone())))
        }
        B::Lt | B::LtEq | B::Gt | B::GtEq => {
            let strict = if matches!(op, B::Lt | B::LtEq) { B::Lt } else { B::Gt };
            (0..n - 1).rev().fold(pair(n - 1, op.clone()), |acc, i| {
                bin(pair(i, strict.clone()), B::Or, bin(pair(i, B::Eq), B::And, acc))
            })
        }
        other => return Err(Error::FeatureNotSupported(format!("operator {other} on row values"))),
    })
}

fn mismatch_operator(l: &DataType, op: &str, r: &DataType) -> Error {
    Error::UndefinedFunction(format!("operator does not exist: {l} {op} {r}"))
}

fn bool_operand(op: &ast::BinaryOperator) -> Error {
    Error::DatatypeMismatch(format!("argument of {op} must be type boolean"))
}

/// Named parameters of the functions that take them, with the defaults of optional ones
/// (PostgreSQL's `pg_proc.proargnames` / `proargdefaults` for these functions).
fn named_parameters(name: &str) -> Option<&'static [(&'static str, Option<&'static str>)]> {
    Some(match name {
        "make_interval" => &[
            ("years", Some("0")),
            ("months", Some("0")),
            ("weeks", Some("0")),
            ("days", Some("0")),
            ("hours", Some("0")),
            ("mins", Some("0")),
            ("secs", Some("0.0")),
        ],
        "make_date" => &[("year", None), ("month", None), ("day", None)],
        "locf" => &[("value", None), ("prev", Some("NULL")), ("treat_null_as_missing", Some("NULL"))],
        "interpolate" => &[("value", None), ("prev", Some("NULL")), ("next", Some("NULL"))],
        "time_bucket_gapfill" => {
            &[("bucket_width", None), ("ts", None), ("start", Some("NULL")), ("finish", Some("NULL"))]
        }
        "make_timestamp" | "make_timestamptz" => {
            &[("year", None), ("month", None), ("mday", None), ("hour", None), ("min", None), ("sec", None)]
        }
        _ => return None,
    })
}

/// A call's arguments in parameter order: named arguments (`name => value`) put in place and
/// missing optional parameters filled with their defaults.
/// Arguments are borrowed from the call; only defaults are made.
fn positional_args<'a>(function: &str, list: &'a [ast::FunctionArg]) -> Result<Vec<Cow<'a, ast::Expr>>> {
    let mut positional = Vec::new();
    let mut named: Vec<(String, &ast::Expr)> = Vec::new();
    for arg in list {
        match arg {
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(e)) if named.is_empty() => {
                positional.push(Cow::Borrowed(e))
            }
            ast::FunctionArg::Unnamed(ast::FunctionArgExpr::Expr(_)) => {
                return Err(Error::Syntax {
                    message: "positional argument cannot follow named argument".into(),
                    position: None,
                })
            }
            ast::FunctionArg::Named { name, arg: ast::FunctionArgExpr::Expr(e), .. }
            | ast::FunctionArg::ExprNamed {
                name: ast::Expr::Identifier(name),
                arg: ast::FunctionArgExpr::Expr(e),
                ..
            } => {
                let name = ident(name);
                if named.iter().any(|(n, _)| *n == name) {
                    return Err(Error::Syntax {
                        message: format!("argument name \"{name}\" used more than once"),
                        position: None,
                    });
                }
                named.push((name, e));
            }
            ast::FunctionArg::ExprNamed { name, .. } => {
                return Err(Error::Syntax { message: format!("invalid argument name {name}"), position: None })
            }
            _ => {}
        }
    }
    let Some(params) = named_parameters(function) else {
        if let Some((name, _)) = named.first() {
            return Err(Error::UndefinedFunction(format!("function {function} has no parameter named \"{name}\"")));
        }
        return Ok(positional);
    };
    if positional.len() > params.len() {
        return Ok(positional); // no such signature: reported when the call is resolved
    }
    let mut slots: Vec<Option<Cow<ast::Expr>>> = params.iter().map(|_| None).collect();
    for (slot, e) in slots.iter_mut().zip(positional) {
        *slot = Some(e);
    }
    for (name, e) in named {
        let Some(i) = params.iter().position(|(p, _)| *p == name) else {
            return Err(Error::UndefinedFunction(format!("function {function} has no parameter named \"{name}\"")));
        };
        if slots[i].is_some() {
            return Err(Error::Syntax { message: format!("argument \"{name}\" is given twice"), position: None });
        }
        slots[i] = Some(Cow::Borrowed(e));
    }
    slots
        .into_iter()
        .zip(params)
        .map(|(slot, (name, default))| match (slot, default) {
            (Some(e), _) => Ok(e),
            (None, Some("NULL")) => Ok(Cow::Owned(ast::Expr::Value(ast::Value::Null.into()))),
            (None, Some(d)) => Ok(Cow::Owned(ast::Expr::Value(ast::Value::Number(d.to_string(), false).into()))),
            (None, None) => {
                Err(Error::UndefinedFunction(format!("function {function} needs an argument for \"{name}\"")))
            }
        })
        .collect()
}

/// A CHAR(n) value keeps its padding, which PostgreSQL drops (as insignificant) when the value
/// becomes text or varchar: `'ab'::char(4) || '|'` is `ab|`, `length('ab  '::char(4))` is 2.
fn unpad_char(expr: Expr, from: &DataType, to: &DataType) -> Expr {
    if !matches!(from, DataType::Char(_)) || !to.is_string() || matches!(to, DataType::Char(_)) {
        return expr;
    }
    match expr {
        Expr::Constant(Value::Text(s)) => Expr::Constant(Value::Text(s.trim_end_matches(' ').to_string())),
        Expr::Constant(v) => Expr::Constant(v),
        other => Expr::Function { name: "rtrim", args: vec![other], return_type: DataType::Text },
    }
}

/// NULLIF's result type, as PostgreSQL resolves it: the left input of the `=` operator
/// chosen for the two arguments. Between numbers that is the first argument's type where a
/// cross-type operator exists (integers with integers, a float with any number, NUMERIC
/// with an integer), NUMERIC for an integer with NUMERIC, and double precision where an
/// integer or NUMERIC meets a float; otherwise the first argument's type, or the common
/// type of two strings or of an untyped literal.
fn nullif_type(a: &DataType, b: &DataType, common: &DataType) -> DataType {
    use DataType::*;
    match (a, b) {
        (Unknown, _) => common.clone(),
        _ if a.is_string() && b.is_string() => common.clone(),
        (Float4 | Float8, _) if b.numeric_rank().is_some() => a.clone(),
        (Int2 | Int4 | Int8 | Numeric(_), Float4 | Float8) => Float8,
        (Int2 | Int4 | Int8, Numeric(_)) => Numeric(None),
        _ => a.clone(),
    }
}
