//! Planning of queries: FROM, WHERE, GROUP BY, HAVING, windows, SELECT list, DISTINCT,
//! ORDER BY, LIMIT, set operations and CTEs.

use super::binder::{ident, object_name_parts, sort_key, Binder, Grouping};
use super::gapfill;
use super::grouping_sets;
use super::plan::{BinaryOp, Expr, JoinKind, Node, Plan, SetOperator, SortKey};
use super::scope::{Scope, ScopeColumn};
use super::set_functions;
use crate::catalog;
use crate::error::{Error, Result};
use crate::types::DataType;
use sqlparser::ast;

impl Binder<'_> {
    /// A binder for a nested query that shares this one's transaction, parameters and CTEs.
    pub(super) fn child(&mut self, outer: Option<Scope>) -> Binder<'_> {
        Binder {
            zone: self.zone,
            txn: &mut *self.txn,
            params: &mut *self.params,
            scope: Scope::default(),
            outer,
            correlated: false,
            ctes: self.ctes.clone(),
            grouping: None,
            windows: None,
            set_calls: None,
            gapfill: None,
            saw_aggregate: false,
            named_windows: Default::default(),
            next_subquery_id: &mut *self.next_subquery_id,
            modifications: &mut *self.modifications,
            top_level: false,
            untyped_outputs: false,
        }
    }

    /// Plans `WITH name AS (INSERT/UPDATE/DELETE … [RETURNING …])`: the statement runs once
    /// before the query, which reads its RETURNING rows under `name`.
    fn plan_modifying_cte(&mut self, name: String, statement: &ast::Statement) -> Result<()> {
        if !self.top_level {
            return Err(Error::FeatureNotSupported(
                "WITH clause containing a data-modifying statement must be at the top level".into(),
            ));
        }
        let plan = self.child(None).plan_statement(statement)?;
        let columns = match &plan {
            Plan::Insert { returning, .. } | Plan::Update { returning, .. } | Plan::Delete { returning, .. } => {
                returning.as_ref().map(|(_, c)| c.clone()).unwrap_or_default()
            }
            _ => return Err(Error::Internal("a data-modifying CTE planned to something else".into())),
        };
        let id = *self.next_subquery_id;
        *self.next_subquery_id += 1;
        self.modifications.push((id, plan));
        let columns = columns
            .into_iter()
            .map(|c| ScopeColumn { table: None, name: c.name, data_type: c.data_type, hidden: false, time: false })
            .collect();
        self.ctes.insert(name, (Node::WorkingTable { id }, columns));
        Ok(())
    }

    /// Plans a query, returning its plan and output columns.
    #[recursive::recursive]
    pub fn plan_query(&mut self, query: &ast::Query) -> Result<(Node, Vec<ScopeColumn>)> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                if with.recursive {
                    if let Some(planned) = self.plan_recursive_cte(cte)? {
                        self.ctes.insert(ident(&cte.alias.name), planned);
                        continue;
                    }
                }
                let name = ident(&cte.alias.name);
                if let ast::SetExpr::Insert(statement)
                | ast::SetExpr::Update(statement)
                | ast::SetExpr::Delete(statement) = cte.query.body.as_ref()
                {
                    self.plan_modifying_cte(name, statement)?;
                    continue;
                }
                let outer = self.outer.clone();
                let mut child = self.child(outer);
                let (node, mut columns) = child.plan_query(&cte.query)?;
                let correlated = child.correlated;
                self.correlated |= correlated;
                for (c, alias) in columns.iter_mut().zip(cte.alias.columns.iter()) {
                    c.name = ident(&alias.name);
                }
                self.ctes.insert(name, (node, columns));
            }
        }
        let (mut limit, offset) = match &query.limit_clause {
            None => (None, None),
            Some(ast::LimitClause::LimitOffset { limit, offset, .. }) => {
                (limit.clone(), offset.as_ref().map(|o| o.value.clone()))
            }
            Some(ast::LimitClause::OffsetCommaLimit { offset, limit }) => (Some(limit.clone()), Some(offset.clone())),
        };
        if let Some(fetch) = &query.fetch {
            if fetch.with_ties || fetch.percent {
                return Err(Error::FeatureNotSupported("FETCH … WITH TIES / PERCENT".into()));
            }
            limit =
                Some(fetch.quantity.clone().unwrap_or_else(|| ast::Expr::value(ast::Value::Number("1".into(), false))));
        }
        let order_by: Vec<ast::OrderByExpr> = match &query.order_by {
            Some(ast::OrderBy { kind: ast::OrderByKind::Expressions(items), .. }) => items.clone(),
            Some(_) => return Err(Error::FeatureNotSupported("ORDER BY ALL".into())),
            None => Vec::new(),
        };
        match query.body.as_ref() {
            ast::SetExpr::Select(select) => self.plan_select(select, &order_by, limit.as_ref(), offset.as_ref()),
            body => {
                let (node, columns) = self.plan_set_expr(body)?;
                // ORDER BY over the output columns by name or position.
                let saved = std::mem::replace(
                    &mut self.scope,
                    Scope::new(columns.iter().map(|c| ScopeColumn { table: None, ..c.clone() }).collect()),
                );
                let mut keys = Vec::new();
                for o in &order_by {
                    let (expr, t) = match position_literal(&o.expr) {
                        Some(k) if k >= 1 && k <= columns.len() => {
                            (Expr::Column(k - 1), columns[k - 1].data_type.clone())
                        }
                        Some(k) => {
                            return Err(Error::InvalidColumnReference(format!(
                                "ORDER BY position {k} is not in select list"
                            )))
                        }
                        None => self.bind(&o.expr)?,
                    };
                    keys.push(sort_key(expr, &t, &o.options));
                }
                self.scope = saved;
                let mut node = node;
                if !keys.is_empty() {
                    node = Node::Sort { source: Box::new(node), keys };
                }
                node = self.apply_limit(node, limit.as_ref(), offset.as_ref())?;
                Ok((node, columns))
            }
        }
    }

    /// Plans `name AS (anchor UNION [ALL] recursive)`; None when the CTE does not refer to
    /// itself (then it is an ordinary CTE).
    fn plan_recursive_cte(&mut self, cte: &ast::Cte) -> Result<Option<(Node, Vec<ScopeColumn>)>> {
        let name = ident(&cte.alias.name);
        let ast::SetExpr::SetOperation { left, op: ast::SetOperator::Union, set_quantifier, right } =
            cte.query.body.as_ref()
        else {
            return Ok(None);
        };
        let outer = self.outer.clone();
        let (anchor, mut columns) = {
            let mut child = self.child(outer.clone());
            child.plan_set_expr(left)?
        };
        for (c, alias) in columns.iter_mut().zip(cte.alias.columns.iter()) {
            c.name = ident(&alias.name);
        }
        let id = *self.next_subquery_id;
        *self.next_subquery_id += 1;
        let mut child = self.child(outer);
        child.ctes.insert(name.clone(), (Node::WorkingTable { id }, columns.clone()));
        let (recursive, rcols) = child.plan_set_expr(right)?;
        if rcols.len() != columns.len() {
            return Err(Error::Syntax {
                message: format!("recursive query \"{name}\" column count does not match its non-recursive term"),
                position: None,
            });
        }
        let types: Vec<DataType> = columns.iter().map(|c| c.data_type.clone()).collect();
        let recursive = cast_columns(recursive, &rcols, &types);
        let distinct = !matches!(set_quantifier, ast::SetQuantifier::All);
        Ok(Some((Node::Recursive { id, anchor: Box::new(anchor), recursive: Box::new(recursive), distinct }, columns)))
    }

    fn apply_limit(&mut self, node: Node, limit: Option<&ast::Expr>, offset: Option<&ast::Expr>) -> Result<Node> {
        if limit.is_none() && offset.is_none() {
            return Ok(node);
        }
        let saved = std::mem::take(&mut self.scope);
        let bind_count = |b: &mut Binder, e: Option<&ast::Expr>| -> Result<Option<Expr>> {
            match e {
                None => Ok(None),
                Some(e) => {
                    let bound = b.bind(e)?;
                    Ok(Some(b.coerce(bound, &DataType::Int8)?))
                }
            }
        };
        let limit = bind_count(self, limit);
        let offset = bind_count(self, offset);
        self.scope = saved;
        Ok(Node::Limit { source: Box::new(node), limit: limit?, offset: offset? })
    }

    #[recursive::recursive]
    fn plan_set_expr(&mut self, body: &ast::SetExpr) -> Result<(Node, Vec<ScopeColumn>)> {
        match body {
            ast::SetExpr::Select(select) => {
                let outer = self.outer.clone();
                let mut child = self.child(outer);
                let out = child.plan_select(select, &[], None, None)?;
                self.correlated |= child.correlated;
                Ok(out)
            }
            ast::SetExpr::Query(query) => {
                let outer = self.outer.clone();
                let mut child = self.child(outer);
                let out = child.plan_query(query)?;
                self.correlated |= child.correlated;
                Ok(out)
            }
            ast::SetExpr::SetOperation { left, op, set_quantifier, right } => {
                let (lnode, lcols) = self.plan_set_expr(left)?;
                let (rnode, rcols) = self.plan_set_expr(right)?;
                let op_name = match op {
                    ast::SetOperator::Union => SetOperator::Union,
                    ast::SetOperator::Intersect => SetOperator::Intersect,
                    ast::SetOperator::Except | ast::SetOperator::Minus => SetOperator::Except,
                };
                if lcols.len() != rcols.len() {
                    return Err(Error::Syntax {
                        message: format!(
                            "each {} query must have the same number of columns",
                            format!("{op}").to_uppercase()
                        ),
                        position: None,
                    });
                }
                let mut types = Vec::new();
                for (l, r) in lcols.iter().zip(&rcols) {
                    let t = DataType::common(&l.data_type, &r.data_type).ok_or_else(|| {
                        Error::DatatypeMismatch(format!(
                            "{} types {} and {} cannot be matched",
                            format!("{op}").to_uppercase(),
                            l.data_type,
                            r.data_type
                        ))
                    })?;
                    types.push(if t == DataType::Unknown { DataType::Text } else { t });
                }
                let lnode = cast_columns(lnode, &lcols, &types);
                let rnode = cast_columns(rnode, &rcols, &types);
                let all = matches!(set_quantifier, ast::SetQuantifier::All);
                let columns = lcols
                    .iter()
                    .zip(types)
                    .map(|(c, t)| ScopeColumn {
                        table: None,
                        name: c.name.clone(),
                        data_type: t,
                        hidden: false,
                        time: false,
                    })
                    .collect();
                Ok((Node::SetOperation { op: op_name, all, left: Box::new(lnode), right: Box::new(rnode) }, columns))
            }
            ast::SetExpr::Values(values) => self.plan_values(values),
            other => Err(Error::FeatureNotSupported(format!("query {other}"))),
        }
    }

    /// VALUES lists: each column takes the common type of its rows.
    pub fn plan_values(&mut self, values: &ast::Values) -> Result<(Node, Vec<ScopeColumn>)> {
        let width = values.rows.first().map(|r| r.len()).unwrap_or(0);
        let mut bound_rows = Vec::new();
        let mut types = vec![DataType::Unknown; width];
        for row in &values.rows {
            if row.len() != width {
                return Err(Error::Syntax {
                    message: "VALUES lists must all be the same length".into(),
                    position: None,
                });
            }
            let mut bound = Vec::new();
            for (i, e) in row.iter().enumerate() {
                let b = self.bind(e)?;
                types[i] = DataType::common(&types[i], &b.1).ok_or_else(|| {
                    Error::DatatypeMismatch(format!("VALUES types {} and {} cannot be matched", types[i], b.1))
                })?;
                bound.push(b);
            }
            bound_rows.push(bound);
        }
        let types: Vec<DataType> =
            types.into_iter().map(|t| if t == DataType::Unknown { DataType::Text } else { t }).collect();
        let mut rows = Vec::new();
        for bound in bound_rows {
            rows.push(bound.into_iter().zip(&types).map(|(b, t)| self.coerce(b, t)).collect::<Result<Vec<_>>>()?);
        }
        let columns = types
            .into_iter()
            .enumerate()
            .map(|(i, t)| ScopeColumn {
                table: None,
                name: format!("column{}", i + 1),
                data_type: t,
                hidden: false,
                time: false,
            })
            .collect();
        Ok((Node::Values { rows }, columns))
    }

    /// Plans FROM: each item, joined by cross joins (lateral ones when an item reads the
    /// items before it).
    pub fn plan_from(&mut self, from: &[ast::TableWithJoins]) -> Result<(Node, Scope)> {
        let mut result: Option<(Node, Scope)> = None;
        for item in from {
            let left = result.as_ref().map(|(_, scope)| scope);
            let (node, scope, lateral) = self.plan_table_with_joins(item, left)?;
            result = Some(match result {
                None => (node, scope),
                Some((lnode, mut lscope)) => {
                    check_distinct_names(&lscope, &scope)?;
                    let (lw, rw) = (lscope.len(), scope.len());
                    lscope.extend(scope);
                    (join_or_lateral(lnode, node, JoinKind::Inner, None, (lw, rw), lateral), lscope)
                }
            });
        }
        Ok(result.unwrap_or_else(|| (Node::Values { rows: vec![vec![]] }, Scope::default())))
    }

    /// Plans one FROM item with its joins. `left` is the row of the items before it, which a
    /// LATERAL subquery or a function may read; the flag says whether this one does.
    fn plan_table_with_joins(
        &mut self,
        twj: &ast::TableWithJoins,
        left: Option<&Scope>,
    ) -> Result<(Node, Scope, bool)> {
        let (mut node, mut scope, lateral) = self.plan_factor(&twj.relation, left)?;
        for join in &twj.joins {
            let (rnode, rscope, reads_left) = self.plan_factor(&join.relation, Some(&scope))?;
            check_distinct_names(&scope, &rscope)?;
            use ast::JoinOperator as J;
            let (kind, constraint) = match &join.join_operator {
                J::Join(c) | J::Inner(c) => (JoinKind::Inner, Some(c)),
                J::Left(c) | J::LeftOuter(c) => (JoinKind::Left, Some(c)),
                J::Right(c) | J::RightOuter(c) => (JoinKind::Right, Some(c)),
                J::FullOuter(c) => (JoinKind::Full, Some(c)),
                J::CrossJoin(_) => (JoinKind::Inner, None),
                other => return Err(Error::FeatureNotSupported(format!("join {other:?}"))),
            };
            let (lw, rw) = (scope.len(), rscope.len());
            let mut using: Vec<String> = Vec::new();
            let mut joined = scope.clone();
            joined.extend(rscope.clone());
            let predicate = match constraint {
                Some(ast::JoinConstraint::None)
                    if kind != JoinKind::Inner || !matches!(join.join_operator, ast::JoinOperator::CrossJoin(_)) =>
                {
                    return Err(Error::Syntax {
                        message: "syntax error: JOIN requires ON or USING".into(),
                        position: None,
                    });
                }
                None | Some(ast::JoinConstraint::None) => None,
                Some(ast::JoinConstraint::On(e)) => {
                    let saved = std::mem::replace(&mut self.scope, joined.clone());
                    let p = self.bind_condition(e, "JOIN/ON");
                    self.scope = saved;
                    Some(p?)
                }
                Some(ast::JoinConstraint::Using(names)) => {
                    let names: Vec<String> =
                        names.iter().map(|n| object_name_parts(n).last().cloned().unwrap_or_default()).collect();
                    using = names.clone();
                    Some(self.using_predicate(&scope, &rscope, &mut joined, &names)?)
                }
                Some(ast::JoinConstraint::Natural) => {
                    let names: Vec<String> = scope
                        .columns
                        .iter()
                        .filter(|c| !c.hidden && rscope.columns.iter().any(|r| !r.hidden && r.name == c.name))
                        .map(|c| c.name.clone())
                        .collect();
                    if names.is_empty() {
                        None
                    } else {
                        using = names.clone();
                        Some(self.using_predicate(&scope, &rscope, &mut joined, &names)?)
                    }
                }
                Some(other) => return Err(Error::FeatureNotSupported(format!("join constraint {other:?}"))),
            };
            if reads_left && !matches!(kind, JoinKind::Inner | JoinKind::Left) {
                return Err(Error::InvalidColumnReference(
                    "the combining JOIN type must be INNER or LEFT for a LATERAL reference".into(),
                ));
            }
            node = join_or_lateral(node, rnode, kind, predicate, (lw, rw), reads_left);
            if using.is_empty() {
                scope = joined;
            } else {
                (node, scope) = self.merge_using_columns(node, &scope, &rscope, kind, &using)?;
            }
        }
        Ok((node, scope, lateral))
    }

    /// After a USING join, each join column appears once, first, unqualified: the left value
    /// for inner and left joins, the right one for right joins, the non-NULL one for full
    /// joins. Both inputs' copies stay reachable by qualified name.
    fn merge_using_columns(
        &mut self,
        node: Node,
        left: &Scope,
        right: &Scope,
        kind: JoinKind,
        names: &[String],
    ) -> Result<(Node, Scope)> {
        let lw = left.len();
        let mut exprs = Vec::new();
        let mut columns = Vec::new();
        for name in names {
            let (li, lt) = left.resolve(None, name)?.ok_or_else(|| Error::UndefinedColumn(name.clone()))?;
            let (ri, rt) = right.resolve(None, name)?.ok_or_else(|| Error::UndefinedColumn(name.clone()))?;
            let t = DataType::common(&lt, &rt).unwrap_or(lt.clone());
            let l = self.coerce((Expr::Column(li), lt), &t)?;
            let r = self.coerce((Expr::Column(lw + ri), rt), &t)?;
            exprs.push(match kind {
                JoinKind::Inner | JoinKind::Left => l,
                JoinKind::Right => r,
                JoinKind::Full => Expr::Function { name: "coalesce", args: vec![l, r], return_type: t.clone() },
            });
            columns.push(ScopeColumn { table: None, name: name.clone(), data_type: t, hidden: false, time: false });
        }
        for (i, c) in left.columns.iter().chain(right.columns.iter()).enumerate() {
            exprs.push(Expr::Column(i));
            columns.push(ScopeColumn { hidden: c.hidden || names.contains(&c.name), ..c.clone() });
        }
        Ok((Node::Project { source: Box::new(node), exprs }, Scope::new(columns)))
    }

    fn using_predicate(&mut self, left: &Scope, right: &Scope, joined: &mut Scope, names: &[String]) -> Result<Expr> {
        let mut predicate: Option<Expr> = None;
        for name in names {
            let (li, lt) = left.resolve(None, name)?.ok_or_else(|| {
                Error::UndefinedColumn(format!(
                    "{name}\" specified in USING clause does not exist in left table \"{name}"
                ))
            })?;
            let (ri, rt) = right.resolve(None, name)?.ok_or_else(|| Error::UndefinedColumn(name.clone()))?;
            let t = DataType::common(&lt, &rt)
                .ok_or_else(|| Error::DatatypeMismatch(format!("JOIN/USING types {lt} and {rt} cannot be matched")))?;
            let l = self.coerce((Expr::Column(li), lt), &t)?;
            let r = self.coerce((Expr::Column(left.len() + ri), rt), &t)?;
            joined.columns[left.len() + ri].hidden = true;
            let eq = Expr::Binary(BinaryOp::Eq, Box::new(l), Box::new(r));
            predicate = Some(match predicate {
                None => eq,
                Some(p) => Expr::Binary(BinaryOp::And, Box::new(p), Box::new(eq)),
            });
        }
        predicate.ok_or_else(|| Error::Syntax { message: "empty USING list".into(), position: None })
    }

    /// Plans one FROM factor; `left` and the flag as in [`Binder::plan_table_with_joins`].
    fn plan_factor(&mut self, factor: &ast::TableFactor, left: Option<&Scope>) -> Result<(Node, Scope, bool)> {
        match factor {
            factor if set_functions::function_factor(factor).is_some() => {
                let (calls, scope, lateral) = self.plan_function_factor(factor, left)?;
                Ok((set_functions::over_one_row(calls), scope, lateral))
            }
            ast::TableFactor::Table { name, alias, .. } => {
                let parts = object_name_parts(name);
                let table_name = parts.last().cloned().unwrap_or_default();
                let schema = if parts.len() > 1 { Some(parts[parts.len() - 2].as_str()) } else { None };
                let alias_name = alias.as_ref().map(|a| ident(&a.name)).unwrap_or_else(|| table_name.clone());
                let (node, mut columns) = if let (None, Some((node, columns))) = (schema, self.ctes.get(&table_name)) {
                    (node.clone(), columns.clone())
                } else if let Some((qualified, columns)) = crate::sql::system::schema(schema, &table_name) {
                    (Node::Virtual { name: qualified, filter: None }, columns)
                } else if let Some(view) = match schema {
                    None | Some("public") => catalog::views::get_view(self.txn, &table_name)?,
                    Some(_) => None,
                } {
                    self.plan_view(&view)?
                } else {
                    if let Some(s) = schema {
                        if s != "public" && s != "chronos" {
                            return Err(Error::UndefinedTable(format!("{s}.{table_name}")));
                        }
                    }
                    let table = catalog::must_get_table(self.txn, &table_name)?;
                    let time = table.time_column();
                    let columns = table
                        .columns
                        .iter()
                        .enumerate()
                        .map(|(i, c)| ScopeColumn {
                            table: None,
                            name: c.name.clone(),
                            data_type: c.data_type.clone(),
                            hidden: false,
                            time: time == Some(i),
                        })
                        .collect();
                    (Node::Scan { table, filter: None, with_key: false, columns: None }, columns)
                };
                for c in columns.iter_mut() {
                    c.table = Some(alias_name.clone());
                }
                if let Some(a) = alias {
                    rename_columns(&mut columns, &a.columns)?;
                }
                Ok((node, Scope::new(columns), false))
            }
            ast::TableFactor::Derived { lateral, subquery, alias, .. } => {
                if alias.is_none() {
                    // PostgreSQL 15 requires one (16 no longer does).
                    return Err(Error::Syntax {
                        message: "subquery in FROM must have an alias".into(),
                        position: None,
                    });
                }
                // A LATERAL subquery reads the items before it as its outer row.
                let mut child = self.child(if *lateral { left.cloned() } else { None });
                let (node, mut columns) = child.plan_query(subquery)?;
                let reads_left = *lateral && child.correlated;
                let alias_name = alias.as_ref().map(|a| ident(&a.name));
                for c in columns.iter_mut() {
                    c.table = alias_name.clone();
                    c.hidden = false;
                }
                if let Some(a) = alias {
                    rename_columns(&mut columns, &a.columns)?;
                }
                Ok((node, Scope::new(columns), reads_left))
            }
            ast::TableFactor::NestedJoin { table_with_joins, alias } => {
                let (node, mut scope, reads_left) = self.plan_table_with_joins(table_with_joins, left)?;
                if let Some(a) = alias {
                    let name = ident(&a.name);
                    for c in scope.columns.iter_mut() {
                        c.table = Some(name.clone());
                    }
                }
                Ok((node, scope, reads_left))
            }
            other => Err(Error::FeatureNotSupported(format!("FROM item {other}"))),
        }
    }

    /// Plans one SELECT with its ORDER BY and LIMIT.
    pub fn plan_select(
        &mut self,
        select: &ast::Select,
        order_by: &[ast::OrderByExpr],
        limit: Option<&ast::Expr>,
        offset: Option<&ast::Expr>,
    ) -> Result<(Node, Vec<ScopeColumn>)> {
        if select.into.is_some() || select.top.is_some() || select.qualify.is_some() {
            return Err(Error::FeatureNotSupported("SELECT INTO, TOP and QUALIFY".into()));
        }
        for ast::NamedWindowDefinition(name, expr) in &select.named_window {
            let spec = match expr {
                ast::NamedWindowExpr::WindowSpec(spec) => spec.clone(),
                ast::NamedWindowExpr::NamedWindow(other) => self
                    .named_windows
                    .get(&ident(other))
                    .cloned()
                    .ok_or_else(|| Error::UndefinedObject(format!("window \"{}\" does not exist", ident(other))))?,
            };
            self.named_windows.insert(ident(name), spec);
        }
        let (mut node, input_scope) = self.plan_from(&select.from)?;
        self.scope = input_scope.clone();

        let mut where_predicate = None;
        if let Some(w) = &select.selection {
            self.saw_aggregate = false;
            let predicate = self.bind_condition(w, "WHERE")?;
            if self.saw_aggregate {
                return Err(Error::Grouping("aggregate functions are not allowed in WHERE".into()));
            }
            where_predicate = Some(predicate.clone());
            node = Node::Filter { source: Box::new(node), predicate };
        }

        let group_asts: Vec<ast::Expr> = match &select.group_by {
            ast::GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(Error::FeatureNotSupported("GROUP BY modifiers".into()));
                }
                exprs.clone()
            }
            ast::GroupByExpr::All(_) => return Err(Error::FeatureNotSupported("GROUP BY ALL".into())),
        };
        let items = expand_wildcards(&select.projection, &input_scope)?;

        // Pass 1: does the query aggregate? (Gap-filling calls are allowed until that is known.)
        self.saw_aggregate = false;
        self.windows = Some((input_scope.len(), Vec::new()));
        self.set_calls = Some(Vec::new());
        self.gapfill = Some((usize::MAX / 4, Vec::new()));
        for (e, _) in &items {
            self.bind(e)?;
        }
        self.gapfill = None;
        self.set_calls = None;
        if let Some(h) = &select.having {
            self.bind(h)?;
        }
        let aggregating = self.saw_aggregate || !group_asts.is_empty() || select.having.is_some();

        let mut fill = None;
        let mut grouping_sets = None;
        if aggregating {
            let (group_asts, sets) = grouping_sets::expand(&group_asts);
            let mut group_exprs = Vec::new();
            // Each GROUP BY expression's position among the distinct bound ones.
            let mut positions = Vec::new();
            for g in &group_asts {
                let g = resolve_output_reference(g, &items, &input_scope)?;
                let bound = self.bind(&g)?.0;
                positions.push(match group_exprs.iter().position(|e| *e == bound) {
                    Some(i) => i,
                    None => {
                        group_exprs.push(bound);
                        group_exprs.len() - 1
                    }
                });
            }
            if let Some(sets) = sets {
                group_exprs.push(grouping_sets::grouping_id_placeholder());
                grouping_sets = Some(
                    sets.iter().map(|set| set.iter().map(|&i| positions[i]).collect::<Vec<_>>()).collect::<Vec<_>>(),
                );
            }
            fill = gapfill::plan(&group_exprs, where_predicate.as_ref())?;
            // The fill's calls are placed once the aggregates are known (pass 3).
            self.gapfill = fill.as_ref().map(|_| (usize::MAX / 4, Vec::new()));
            // Pass 2 collects the aggregates; pass 3 binds with the final layout.
            self.grouping = Some(Grouping { input: input_scope.clone(), group_exprs, aggregates: Vec::new() });
            self.scope = Scope::default();
            self.windows = Some((usize::MAX / 2, Vec::new()));
            self.set_calls = Some(Vec::new());
            for (e, _) in &items {
                self.bind(e)?;
            }
            self.set_calls = None;
            if let Some(h) = &select.having {
                let gapfill = self.gapfill.take();
                self.bind(h)?;
                self.gapfill = gapfill;
            }
            self.set_calls = Some(Vec::new());
            for o in order_by {
                if position_literal(&o.expr).is_none() && output_alias(&o.expr, &items).is_none() {
                    self.bind(&o.expr)?;
                }
            }
            self.set_calls = None;
        }
        let aggregated_width = match &self.grouping {
            Some(g) => g.group_exprs.len() + g.aggregates.len(),
            None => input_scope.len(),
        };
        let fill_calls = self.gapfill.take().map_or(0, |(_, calls)| calls.len());
        let width = aggregated_width + fill_calls;
        self.windows = Some((width, Vec::new()));

        let having = match &select.having {
            Some(h) => Some(self.bind_condition(h, "HAVING")?),
            None => None,
        };
        self.gapfill = fill.as_ref().map(|_| (aggregated_width, Vec::new()));
        let mut exprs = Vec::new();
        let mut columns = Vec::new();
        self.set_calls = Some(Vec::new());
        for (e, name) in &items {
            let (bound, t) = self.bind(e)?;
            exprs.push(bound);
            columns.push(ScopeColumn {
                table: None,
                name: name.clone(),
                data_type: if t == DataType::Unknown && !self.untyped_outputs { DataType::Text } else { t },
                hidden: false,
                time: false,
            });
        }
        // ORDER BY: output positions and names, else expressions over the input.
        let mut sort = Vec::new();
        for o in order_by {
            let (expr, t) = if let Some(k) = position_literal(&o.expr) {
                if k == 0 || k > exprs.len() {
                    return Err(Error::InvalidColumnReference(format!("ORDER BY position {k} is not in select list")));
                }
                (exprs[k - 1].clone(), columns[k - 1].data_type.clone())
            } else if let Some(i) = output_alias(&o.expr, &items) {
                (exprs[i].clone(), columns[i].data_type.clone())
            } else {
                self.bind(&o.expr)?
            };
            sort.push(sort_key(expr, &t, &o.options));
        }
        let mut distinct_on = match &select.distinct {
            Some(ast::Distinct::On(on)) => {
                let mut keys = Vec::new();
                for e in on {
                    keys.push(self.bind(e)?.0);
                }
                Some(keys)
            }
            _ => None,
        };
        let windows = self.windows.take().map(|(_, w)| w).unwrap_or_default();
        let set_calls = self.set_calls.take().unwrap_or_default();
        if !set_calls.is_empty() {
            let offset = width + windows.len();
            for e in exprs.iter_mut() {
                *e = set_functions::place_set_calls(e, offset);
            }
            for k in sort.iter_mut() {
                k.expr = set_functions::place_set_calls(&k.expr, offset);
            }
            if let Some(keys) = distinct_on.as_mut() {
                for k in keys.iter_mut() {
                    *k = set_functions::place_set_calls(k, offset);
                }
            }
        }
        if let Some(grouping) = self.grouping.take() {
            node = match &grouping_sets {
                Some(sets) => grouping_sets::aggregate(node, &grouping.group_exprs, &grouping.aggregates, sets),
                None => Node::Aggregate {
                    source: Box::new(node),
                    group_by: grouping.group_exprs,
                    aggregates: grouping.aggregates,
                },
            };
        }
        if let Some(predicate) = having {
            node = Node::Filter { source: Box::new(node), predicate };
        }
        if let Some(mut fill) = fill {
            fill.calls = self.gapfill.take().map(|(_, calls)| calls).unwrap_or_default();
            if fill.calls.len() != fill_calls {
                return Err(Error::Internal("gap-filling calls differ between binding passes".into()));
            }
            fill.columns = aggregated_width;
            node = Node::GapFill { source: Box::new(node), fill };
        }
        if !windows.is_empty() {
            node = Node::Window { source: Box::new(node), calls: windows };
        }
        if !set_calls.is_empty() {
            node = Node::ProjectSet { source: Box::new(node), calls: set_calls };
        }

        // Projection with hidden trailing columns for sort and DISTINCT ON keys.
        let visible = exprs.len();
        let mut projected = exprs.clone();
        let position_of = |e: &Expr, projected: &mut Vec<Expr>| -> usize {
            match projected.iter().position(|p| p == e) {
                Some(i) => i,
                None => {
                    projected.push(e.clone());
                    projected.len() - 1
                }
            }
        };
        let sort_keys: Vec<SortKey> = sort
            .iter()
            .map(|k| SortKey { expr: Expr::Column(position_of(&k.expr, &mut projected)), ..k.clone() })
            .collect();
        let plain_distinct = matches!(select.distinct, Some(ast::Distinct::Distinct));
        if plain_distinct && projected.len() > visible {
            return Err(Error::InvalidColumnReference(
                "for SELECT DISTINCT, ORDER BY expressions must appear in select list".into(),
            ));
        }
        if let Some(keys) = &distinct_on {
            // The leading ORDER BY keys must be the DISTINCT ON expressions.
            let leading: Vec<&Expr> = sort.iter().take(keys.len()).map(|k| &k.expr).collect();
            let covered = keys.iter().all(|k| leading.contains(&k));
            if !sort.is_empty() && (sort.len() < keys.len() || !covered) {
                return Err(Error::InvalidColumnReference(
                    "SELECT DISTINCT ON expressions must match initial ORDER BY expressions".into(),
                ));
            }
        }
        let on_keys = distinct_on
            .map(|keys| keys.iter().map(|k| Expr::Column(position_of(k, &mut projected))).collect::<Vec<_>>());
        let hidden = projected.len() > visible;
        node = Node::Project { source: Box::new(node), exprs: projected };
        if plain_distinct {
            node = Node::Distinct { source: Box::new(node), on: None };
        }
        if !sort_keys.is_empty() {
            node = Node::Sort { source: Box::new(node), keys: sort_keys };
        }
        if let Some(on) = on_keys {
            node = Node::Distinct { source: Box::new(node), on: Some(on) };
        }
        node = self.apply_limit(node, limit, offset)?;
        if hidden {
            node = Node::Project { source: Box::new(node), exprs: (0..visible).map(Expr::Column).collect() };
        }
        Ok((node, columns))
    }
}

/// Two FROM items may not use the same name.
fn check_distinct_names(left: &Scope, right: &Scope) -> Result<()> {
    for c in &right.columns {
        if let Some(t) = &c.table {
            if left.has_table(t) {
                return Err(Error::DuplicateAlias(format!("table name \"{t}\" specified more than once")));
            }
        }
    }
    Ok(())
}

/// Builds a join, turning equality conditions between the two sides into hash-join keys.
/// Joins `left` and `right`; a lateral right side runs once per left row (see
/// [`Node::LateralJoin`]).
fn join_or_lateral(
    left: Node,
    right: Node,
    kind: JoinKind,
    predicate: Option<Expr>,
    (left_width, right_width): (usize, usize),
    lateral: bool,
) -> Node {
    if !lateral {
        return make_join(left, right, kind, predicate, left_width, right_width);
    }
    Node::LateralJoin { left: Box::new(left), right: Box::new(right), kind, predicate, left_width, right_width }
}

pub fn make_join(
    left: Node,
    right: Node,
    kind: JoinKind,
    predicate: Option<Expr>,
    left_width: usize,
    right_width: usize,
) -> Node {
    let Some(predicate) = predicate else {
        return Node::NestedLoopJoin {
            left: Box::new(left),
            right: Box::new(right),
            kind,
            predicate: None,
            left_width,
            right_width,
        };
    };
    let mut left_keys = Vec::new();
    let mut right_keys = Vec::new();
    let mut residual = Vec::new();
    for term in split_conjunction(predicate) {
        if let Expr::Binary(BinaryOp::Eq, a, b) = &term {
            // Some(true): reads only the left input; Some(false): only the right.
            let side = |e: &Expr| match e.join_sides(left_width) {
                (true, false, false) => Some(true),
                (false, true, false) => Some(false),
                _ => None,
            };
            let shift = |e: &Expr| e.remap_columns(&|i| i.checked_sub(left_width));
            match (side(a), side(b)) {
                (Some(true), Some(false)) => {
                    if let Some(r) = shift(b) {
                        left_keys.push((**a).clone());
                        right_keys.push(r);
                        continue;
                    }
                }
                (Some(false), Some(true)) => {
                    if let Some(r) = shift(a) {
                        left_keys.push((**b).clone());
                        right_keys.push(r);
                        continue;
                    }
                }
                _ => {}
            }
        }
        residual.push(term);
    }
    let residual = join_conjunction(residual);
    if left_keys.is_empty() {
        return Node::NestedLoopJoin {
            left: Box::new(left),
            right: Box::new(right),
            kind,
            predicate: residual,
            left_width,
            right_width,
        };
    }
    Node::HashJoin {
        left: Box::new(left),
        right: Box::new(right),
        kind,
        left_keys,
        right_keys,
        residual,
        left_width,
        right_width,
    }
}

/// Splits `a AND b AND c` into its terms.
pub fn split_conjunction(e: Expr) -> Vec<Expr> {
    match e {
        Expr::Binary(BinaryOp::And, l, r) => {
            let mut out = split_conjunction(*l);
            out.extend(split_conjunction(*r));
            out
        }
        other => vec![other],
    }
}

/// Joins terms with AND.
pub fn join_conjunction(terms: Vec<Expr>) -> Option<Expr> {
    terms.into_iter().reduce(|a, b| Expr::Binary(BinaryOp::And, Box::new(a), Box::new(b)))
}

fn cast_columns(node: Node, columns: &[ScopeColumn], types: &[DataType]) -> Node {
    if columns.iter().zip(types).all(|(c, t)| c.data_type == *t) {
        return node;
    }
    let exprs = columns
        .iter()
        .zip(types)
        .enumerate()
        .map(
            |(i, (c, t))| {
                if c.data_type == *t {
                    Expr::Column(i)
                } else {
                    Expr::Cast(Box::new(Expr::Column(i)), t.clone())
                }
            },
        )
        .collect();
    Node::Project { source: Box::new(node), exprs }
}

pub(super) fn rename_columns(columns: &mut [ScopeColumn], aliases: &[ast::TableAliasColumnDef]) -> Result<()> {
    if aliases.len() > columns.len() {
        return Err(Error::InvalidColumnReference(format!(
            "table has {} columns available but {} columns specified",
            columns.len(),
            aliases.len()
        )));
    }
    for (c, a) in columns.iter_mut().zip(aliases) {
        c.name = ident(&a.name);
    }
    Ok(())
}

/// An integer literal used as a position (ORDER BY 1, GROUP BY 2).
fn position_literal(e: &ast::Expr) -> Option<usize> {
    match e {
        ast::Expr::Value(v) => match &v.value {
            ast::Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

/// The index of the select item whose output name is this bare identifier.
fn output_alias(e: &ast::Expr, items: &[(ast::Expr, String)]) -> Option<usize> {
    match e {
        ast::Expr::Identifier(id) => items.iter().position(|(_, name)| *name == ident(id)),
        _ => None,
    }
}

/// GROUP BY may name a select item by position or by output name (when no input column has
/// that name).
fn resolve_output_reference(g: &ast::Expr, items: &[(ast::Expr, String)], input: &Scope) -> Result<ast::Expr> {
    if let Some(k) = position_literal(g) {
        return items
            .get(k.wrapping_sub(1))
            .map(|(e, _)| e.clone())
            .ok_or_else(|| Error::InvalidColumnReference(format!("GROUP BY position {k} is not in select list")));
    }
    if let ast::Expr::Identifier(id) = g {
        if input.resolve(None, &ident(id))?.is_none() {
            if let Some(i) = output_alias(g, items) {
                return Ok(items[i].0.clone());
            }
        }
    }
    Ok(g.clone())
}

/// Expands `*` and `t.*` into column references, pairing every item with its output name.
fn expand_wildcards(projection: &[ast::SelectItem], scope: &Scope) -> Result<Vec<(ast::Expr, String)>> {
    let mut out = Vec::new();
    // A column by its name, or by its position where the name is not unique (`SELECT * FROM
    // (SELECT 1, 2) s` has two columns named `?column?`).
    let column_ref = |c: &ScopeColumn| -> ast::Expr {
        let same = scope.columns.iter().filter(|o| o.table == c.table && o.name == c.name).count();
        match &c.table {
            _ if same > 1 => {
                let i = scope.columns.iter().position(|o| std::ptr::eq(o, c)).unwrap_or_default();
                super::binder::position_reference(i)
            }
            Some(t) => ast::Expr::CompoundIdentifier(vec![quoted(t), quoted(&c.name)]),
            None => ast::Expr::Identifier(quoted(&c.name)),
        }
    };
    for item in projection {
        match item {
            ast::SelectItem::UnnamedExpr(e) => out.push((e.clone(), output_name(e))),
            ast::SelectItem::ExprWithAlias { expr, alias } => out.push((expr.clone(), ident(alias))),
            ast::SelectItem::Wildcard(_) => {
                if scope.is_empty() {
                    return Err(Error::Syntax {
                        message: "SELECT * with no tables specified is not valid".into(),
                        position: None,
                    });
                }
                for c in scope.columns.iter().filter(|c| !c.hidden) {
                    out.push((column_ref(c), c.name.clone()));
                }
            }
            ast::SelectItem::QualifiedWildcard(kind, _) => {
                let table = match kind {
                    ast::SelectItemQualifiedWildcardKind::ObjectName(name) => {
                        object_name_parts(name).last().cloned().unwrap_or_default()
                    }
                    ast::SelectItemQualifiedWildcardKind::Expr(e) => e.to_string(),
                };
                if !scope.has_table(&table) {
                    return Err(Error::MissingFromEntry(table));
                }
                for c in scope.columns.iter().filter(|c| c.table.as_deref() == Some(table.as_str())) {
                    out.push((column_ref(c), c.name.clone()));
                }
            }
            other => return Err(Error::FeatureNotSupported(format!("select item {other}"))),
        }
    }
    Ok(out)
}

fn quoted(name: &str) -> ast::Ident {
    ast::Ident::with_quote('"', name)
}

/// The column name PostgreSQL gives an unaliased select item.
pub fn output_name(e: &ast::Expr) -> String {
    figure_name(e).0
}

/// A column name for `e` and how strongly it names it, as PostgreSQL's `FigureColname` does:
/// 2 for a column, function or field, 1 for a type name or `case`, 0 for none (`?column?`).
/// A cast or CASE names its column by the type or `case` only when what it wraps is weaker.
fn figure_name(e: &ast::Expr) -> (String, u8) {
    use ast::Expr as A;
    let strong = |name: &str| (name.to_string(), 2);
    match e {
        A::Identifier(id) => (ident(id), 2),
        A::CompoundIdentifier(parts) => (parts.last().map(ident).unwrap_or_default(), 2),
        A::Function(f) => (object_name_parts(&f.name).last().cloned().unwrap_or_default(), 2),
        A::Cast { expr, data_type, .. } => match figure_name(expr) {
            (_, 0 | 1) => (cast_name(data_type), 1),
            named => named,
        },
        A::Nested(inner) => figure_name(inner),
        A::Case { else_result, .. } => match else_result.as_deref().map(figure_name) {
            Some(named @ (_, 2)) => named,
            _ => ("case".into(), 1),
        },
        A::Extract { .. } => strong("extract"),
        A::AtTimeZone { .. } => strong("timezone"),
        A::Substring { .. } => strong("substring"),
        A::Position { .. } => strong("position"),
        A::Trim { .. } => strong("btrim"),
        A::Ceil { .. } => strong("ceil"),
        A::Floor { .. } => strong("floor"),
        A::Exists { .. } => strong("exists"),
        A::Interval(_) => ("interval".into(), 1),
        A::Array(_) => strong("array"),
        A::Tuple(_) => strong("row"),
        // The last name in `(r).f`, `t.a[1]`, `a[1]`: subscripts do not name.
        A::CompoundFieldAccess { root, access_chain } => match access_chain.iter().rev().find_map(|a| match a {
            ast::AccessExpr::Dot(ast::Expr::Identifier(field)) => Some(field),
            _ => None,
        }) {
            Some(field) => (ident(field), 2),
            None => figure_name(root),
        },
        A::TypedString(ts) => (ts.data_type.to_string().to_lowercase(), 1),
        A::Subquery(q) => match q.body.as_ref() {
            ast::SetExpr::Select(s) => match s.projection.first() {
                Some(ast::SelectItem::UnnamedExpr(e)) => figure_name(e),
                Some(ast::SelectItem::ExprWithAlias { alias, .. }) => (ident(alias), 2),
                _ => ("?column?".into(), 0),
            },
            _ => ("?column?".into(), 0),
        },
        _ => ("?column?".into(), 0),
    }
}

/// The name a cast to `data_type` gives its column: the type's internal name (`int4`,
/// `float8`, `varchar` …) as PostgreSQL's grammar turns the written name into.
fn cast_name(data_type: &ast::DataType) -> String {
    let t = data_type.to_string().to_lowercase();
    super::types::parse_type_name(&t).map_or(t, |t| type_column_name(&t))
}

fn type_column_name(t: &DataType) -> String {
    match t {
        DataType::Int4 => "int4".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int2 => "int2".into(),
        DataType::Float8 => "float8".into(),
        DataType::Float4 => "float4".into(),
        DataType::Bool => "bool".into(),
        DataType::Varchar(_) => "varchar".into(),
        DataType::Char(_) => "bpchar".into(),
        DataType::TimestampTz => "timestamptz".into(),
        DataType::Timestamp => "timestamp".into(),
        DataType::Time => "time".into(),
        DataType::TimeTz => "timetz".into(),
        // `::int[]` names its column after the element type.
        DataType::Array(element) => type_column_name(element),
        other => other.to_string().split('(').next().unwrap_or("").to_string(),
    }
}
