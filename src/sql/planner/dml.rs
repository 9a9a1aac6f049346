//! Planning of INSERT, UPDATE and DELETE.

use super::binder::{ident, object_name, Binder};
use super::plan::{Expr, Node, OnConflict, Plan, ResultColumn};
use super::scope::{Scope, ScopeColumn};
use super::select::output_name;
use crate::catalog::{self, Table};
use crate::error::{Error, Result};
use crate::sql::parser;
use crate::types::{DataType, Value};
use sqlparser::ast;

pub(super) fn table_scope(table: &Table, alias: &str) -> Vec<ScopeColumn> {
    table
        .columns
        .iter()
        .map(|c| ScopeColumn {
            table: Some(alias.to_string()),
            name: c.name.clone(),
            data_type: c.data_type.clone(),
            hidden: false,
            time: false,
        })
        .collect()
}

fn is_default_keyword(e: &ast::Expr) -> bool {
    matches!(e, ast::Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default"))
}

impl Binder<'_> {
    /// The bound DEFAULT of a column (NULL when it has none).
    pub fn column_default(&mut self, table: &Table, index: usize) -> Result<Expr> {
        let column = &table.columns[index];
        match &column.default {
            None => Ok(Expr::Constant(Value::Null)),
            Some(text) => {
                let ast = parser::parse_expr(text)?;
                let saved = std::mem::take(&mut self.scope);
                let bound = self.bind(&ast);
                self.scope = saved;
                let bound = bound?;
                self.coerce_assignment(bound, &column.data_type, &column.name)
            }
        }
    }

    pub fn plan_copy(
        &mut self,
        source: &ast::CopySource,
        to: bool,
        target: &ast::CopyTarget,
        options: &[ast::CopyOption],
        legacy: &[ast::CopyLegacyOption],
    ) -> Result<Plan> {
        let format = crate::sql::copy::CopyFormat::from_options(options, legacy)?;
        match (to, target, source) {
            (false, ast::CopyTarget::Stdin, ast::CopySource::Table { table_name, columns }) => {
                let table = catalog::must_get_table(self.txn, &object_name(table_name))?;
                let targets: Vec<usize> = if columns.is_empty() {
                    (0..table.columns.len()).collect()
                } else {
                    columns
                        .iter()
                        .map(|c| {
                            let name = ident(c);
                            table
                                .column_index(&name)
                                .ok_or_else(|| Error::UndefinedColumn(format!("{name}\" of relation \"{}", table.name)))
                        })
                        .collect::<Result<_>>()?
                };
                let mut defaults = Vec::new();
                for i in (0..table.columns.len()).filter(|i| !targets.contains(i)) {
                    defaults.push((i, self.column_default(&table, i)?));
                }
                let checks = self.table_checks(&table)?;
                Ok(Plan::CopyFrom { table, targets, defaults, format, checks })
            }
            (true, ast::CopyTarget::Stdout, ast::CopySource::Table { table_name, columns }) => {
                let mut sql = String::from("SELECT ");
                if columns.is_empty() {
                    sql.push('*');
                } else {
                    sql.push_str(&columns.iter().map(|c| format!("\"{}\"", ident(c))).collect::<Vec<_>>().join(", "));
                }
                sql.push_str(&format!(" FROM \"{}\"", object_name(table_name)));
                let query = match crate::sql::parser::parse(&sql)?.pop() {
                    Some(ast::Statement::Query(q)) => q,
                    _ => return Err(Error::Internal("COPY query".into())),
                };
                let (node, columns) = self.plan_query(&query)?;
                let columns =
                    columns.into_iter().map(|c| ResultColumn { name: c.name, data_type: c.data_type }).collect();
                Ok(Plan::CopyTo { node, columns, format })
            }
            (true, ast::CopyTarget::Stdout, ast::CopySource::Query(query)) => {
                let (node, columns) = self.plan_query(query)?;
                let columns =
                    columns.into_iter().map(|c| ResultColumn { name: c.name, data_type: c.data_type }).collect();
                Ok(Plan::CopyTo { node, columns, format })
            }
            _ => Err(Error::FeatureNotSupported(
                "COPY with a file or program: use COPY … FROM STDIN / TO STDOUT (psql's \\copy)".into(),
            )),
        }
    }

    pub fn plan_insert(&mut self, insert: &ast::Insert) -> Result<Plan> {
        let name = match &insert.table {
            ast::TableObject::TableName(n) => object_name(n),
            _ => return Err(Error::FeatureNotSupported("INSERT into a table function".into())),
        };
        let table = catalog::must_get_table(self.txn, &name)?;
        let alias = insert.table_alias.as_ref().map(|a| ident(&a.alias)).unwrap_or_else(|| table.name.clone());
        let implicit_targets = insert.columns.is_empty();
        let mut targets: Vec<usize> = if implicit_targets {
            (0..table.columns.len()).collect()
        } else {
            let mut out = Vec::new();
            for c in &insert.columns {
                let col = object_name(c);
                let i = table
                    .column_index(&col)
                    .ok_or_else(|| Error::UndefinedColumn(format!("{col}\" of relation \"{}", table.name)))?;
                if out.contains(&i) {
                    return Err(Error::Syntax {
                        message: format!("column \"{col}\" specified more than once"),
                        position: None,
                    });
                }
                out.push(i);
            }
            out
        };
        // A GENERATED ALWAYS identity column takes a value only with OVERRIDING SYSTEM VALUE.
        let overriding = match insert.overriding {
            None => false,
            Some(ast::InsertOverriding::System) => true,
            Some(ast::InsertOverriding::User) => {
                return Err(Error::FeatureNotSupported("OVERRIDING USER VALUE".into()))
            }
        };
        let always = |i: usize| -> Result<()> {
            let column = &table.columns[i];
            if column.generated_always && !overriding {
                return Err(Error::GeneratedAlways(format!(
                    "cannot insert a non-DEFAULT value into column \"{}\"",
                    column.name
                )));
            }
            Ok(())
        };
        let Some(source) = insert.source.as_ref() else {
            // INSERT … DEFAULT VALUES: one row of defaults.
            let mut row = Vec::with_capacity(table.columns.len());
            for i in 0..table.columns.len() {
                row.push(self.column_default(&table, i)?);
            }
            let returning =
                self.plan_returning(insert.returning.as_deref(), Scope::new(table_scope(&table, &alias)))?;
            let on_conflict = match &insert.on {
                None => OnConflict::Error,
                Some(ast::OnInsert::OnConflict(oc)) => self.plan_on_conflict(&table, &alias, oc)?,
                Some(_) => return Err(Error::FeatureNotSupported("ON DUPLICATE KEY".into())),
            };
            let checks = self.table_checks(&table)?;
            return Ok(Plan::Insert {
                table,
                source: Node::Values { rows: vec![row] },
                on_conflict,
                returning,
                checks,
            });
        };
        let node = match source.body.as_ref() {
            ast::SetExpr::Values(values)
                if source.order_by.is_none() && source.limit_clause.is_none() && source.with.is_none() =>
            {
                let mut rows = Vec::new();
                if values.rows.iter().any(|r| r.len() != values.rows[0].len()) {
                    return Err(Error::Syntax {
                        message: "VALUES lists must all be the same length".into(),
                        position: None,
                    });
                }
                // Without a column list, the values fill the first columns (defaults the rest).
                if let (true, Some(first)) = (implicit_targets, values.rows.first()) {
                    targets.truncate(first.len());
                }
                for row in &values.rows {
                    if row.len() > targets.len() {
                        return Err(Error::Syntax {
                            message: "INSERT has more expressions than target columns".into(),
                            position: None,
                        });
                    }
                    if row.len() < targets.len() {
                        return Err(Error::Syntax {
                            message: "INSERT has more target columns than expressions".into(),
                            position: None,
                        });
                    }
                    let mut full = Vec::with_capacity(table.columns.len());
                    for i in 0..table.columns.len() {
                        full.push(match targets.iter().position(|&t| t == i) {
                            Some(j) if !is_default_keyword(&row[j]) => {
                                always(i)?;
                                let bound = self.bind(&row[j])?;
                                let column = &table.columns[i];
                                self.coerce_assignment(bound, &column.data_type, &column.name)?
                            }
                            _ => self.column_default(&table, i)?,
                        });
                    }
                    rows.push(full);
                }
                Node::Values { rows }
            }
            _ => {
                self.untyped_outputs = true;
                let planned = self.plan_query(source);
                self.untyped_outputs = false;
                let (node, columns) = planned?;
                if implicit_targets {
                    targets.truncate(columns.len());
                }
                if columns.len() > targets.len() {
                    return Err(Error::Syntax {
                        message: "INSERT has more expressions than target columns".into(),
                        position: None,
                    });
                }
                if columns.len() < targets.len() {
                    return Err(Error::Syntax {
                        message: "INSERT has more target columns than expressions".into(),
                        position: None,
                    });
                }
                let mut exprs = Vec::with_capacity(table.columns.len());
                for i in 0..table.columns.len() {
                    exprs.push(match targets.iter().position(|&t| t == i) {
                        Some(j) => {
                            always(i)?;
                            let column = &table.columns[i];
                            self.coerce_assignment(
                                (Expr::Column(j), columns[j].data_type.clone()),
                                &column.data_type,
                                &column.name,
                            )?
                        }
                        None => self.column_default(&table, i)?,
                    });
                }
                Node::Project { source: Box::new(node), exprs }
            }
        };
        let on_conflict = match &insert.on {
            None => OnConflict::Error,
            Some(ast::OnInsert::OnConflict(oc)) => self.plan_on_conflict(&table, &alias, oc)?,
            Some(_) => return Err(Error::FeatureNotSupported("ON DUPLICATE KEY".into())),
        };
        let returning = self.plan_returning(insert.returning.as_deref(), Scope::new(table_scope(&table, &alias)))?;
        let checks = self.table_checks(&table)?;
        Ok(Plan::Insert { table, source: node, on_conflict, returning, checks })
    }

    /// See [`super::plan_values`].
    pub fn plan_insert_values(
        &mut self,
        name: &str,
        targets: &[String],
        rows: Vec<Vec<Value>>,
        upsert: bool,
    ) -> Result<Plan> {
        let table = catalog::must_get_table(self.txn, name)?;
        let mut positions = Vec::with_capacity(targets.len());
        for name in targets {
            let i = table
                .column_index(name)
                .ok_or_else(|| Error::UndefinedColumn(format!("{name}\" of relation \"{}", table.name)))?;
            if positions.contains(&i) {
                return Err(Error::Syntax {
                    message: format!("column \"{name}\" specified more than once"),
                    position: None,
                });
            }
            if table.columns[i].generated_always {
                return Err(Error::GeneratedAlways(format!(
                    "cannot insert a non-DEFAULT value into column \"{name}\""
                )));
            }
            positions.push(i);
        }
        let mut defaults = Vec::new();
        for i in (0..table.columns.len()).filter(|i| !positions.contains(i)) {
            defaults.push((i, self.column_default(&table, i)?));
        }
        let mut full_rows = Vec::with_capacity(rows.len());
        for row in rows {
            if row.len() != positions.len() {
                return Err(Error::Internal("a row of values does not match its columns".into()));
            }
            let mut full = vec![Expr::Constant(Value::Null); table.columns.len()];
            for (value, &i) in row.into_iter().zip(&positions) {
                let column = &table.columns[i];
                let value =
                    crate::types::cast::cast(value, &column.data_type, crate::types::cast::CastKind::Assignment)?;
                full[i] = Expr::Constant(value);
            }
            for (i, default) in &defaults {
                full[*i] = default.clone();
            }
            full_rows.push(full);
        }
        let width = table.columns.len();
        let on_conflict = match (upsert, table.primary_key.is_empty()) {
            (true, false) => {
                let assignments: Vec<(usize, Expr)> = positions
                    .iter()
                    .filter(|i| !table.primary_key.contains(i))
                    .map(|&i| (i, Expr::Column(width + i)))
                    .collect();
                if assignments.is_empty() {
                    OnConflict::DoNothing { target: Some(table.primary_key.clone()) }
                } else {
                    OnConflict::DoUpdate { target: table.primary_key.clone(), assignments, predicate: None }
                }
            }
            _ => OnConflict::Error,
        };
        let checks = self.table_checks(&table)?;
        Ok(Plan::Insert { table, source: Node::Values { rows: full_rows }, on_conflict, returning: None, checks })
    }

    fn plan_on_conflict(&mut self, table: &Table, alias: &str, oc: &ast::OnConflict) -> Result<OnConflict> {
        let target = match &oc.conflict_target {
            None => None,
            Some(ast::ConflictTarget::Columns { columns, .. }) => {
                let mut idx = Vec::new();
                for c in columns {
                    let name = ident(c);
                    idx.push(table.column_index(&name).ok_or_else(|| Error::UndefinedColumn(name.clone()))?);
                }
                let mut sorted = idx.clone();
                sorted.sort_unstable();
                let matches = |cols: &[usize]| {
                    let mut c = cols.to_vec();
                    c.sort_unstable();
                    c == sorted
                };
                let ok = (!table.primary_key.is_empty() && matches(&table.primary_key))
                    || table.indexes.iter().any(|i| i.unique && matches(&i.columns));
                if !ok {
                    return Err(Error::InvalidColumnReference(
                        "there is no unique or exclusion constraint matching the ON CONFLICT specification".into(),
                    ));
                }
                Some(idx)
            }
            Some(ast::ConflictTarget::OnConstraint(name)) => {
                let name = object_name(name);
                if name == table.pkey_name() {
                    Some(table.primary_key.clone())
                } else if let Some(ix) = table.indexes.iter().find(|i| i.name == name) {
                    Some(ix.columns.clone())
                } else {
                    return Err(Error::UndefinedObject(format!(
                        "constraint \"{name}\" for table \"{}\" does not exist",
                        table.name
                    )));
                }
            }
        };
        match &oc.action {
            ast::OnConflictAction::DoNothing => Ok(OnConflict::DoNothing { target }),
            ast::OnConflictAction::DoUpdate(update) => {
                let target = target.ok_or_else(|| Error::Syntax {
                    message: "ON CONFLICT DO UPDATE requires inference specification or constraint name".into(),
                    position: None,
                })?;
                let mut columns = table_scope(table, alias);
                columns.extend(table_scope(table, "excluded"));
                let saved = std::mem::replace(&mut self.scope, Scope::new(columns));
                let result = (|| {
                    let assignments = self.plan_assignments(table, &update.assignments)?;
                    let predicate = match &update.selection {
                        Some(p) => Some(self.bind_condition(p, "WHERE")?),
                        None => None,
                    };
                    Ok(OnConflict::DoUpdate { target, assignments, predicate })
                })();
                self.scope = saved;
                result
            }
        }
    }

    fn plan_assignments(&mut self, table: &Table, assignments: &[ast::Assignment]) -> Result<Vec<(usize, Expr)>> {
        let mut out: Vec<(usize, Expr)> = Vec::new();
        for a in assignments {
            let names = match &a.target {
                ast::AssignmentTarget::ColumnName(n) => vec![object_name(n)],
                ast::AssignmentTarget::Tuple(_) => {
                    return Err(Error::FeatureNotSupported("multiple-column assignment".into()))
                }
            };
            let name = &names[0];
            let i = table
                .column_index(name)
                .ok_or_else(|| Error::UndefinedColumn(format!("{name}\" of relation \"{}", table.name)))?;
            if out.iter().any(|(j, _)| *j == i) {
                return Err(Error::Syntax {
                    message: format!("multiple assignments to same column \"{name}\""),
                    position: None,
                });
            }
            let column = &table.columns[i];
            let expr = if is_default_keyword(&a.value) {
                self.column_default(table, i)?
            } else if column.generated_always {
                return Err(Error::GeneratedAlways(format!("column \"{name}\" can only be updated to DEFAULT")));
            } else {
                let bound = self.bind(&a.value)?;
                self.coerce_assignment(bound, &column.data_type, &column.name)?
            };
            out.push((i, expr));
        }
        Ok(out)
    }

    /// RETURNING items bound over `scope` (the written rows).
    fn plan_returning(
        &mut self,
        items: Option<&[ast::SelectItem]>,
        scope: Scope,
    ) -> Result<Option<(Vec<Expr>, Vec<ResultColumn>)>> {
        let Some(items) = items else { return Ok(None) };
        let saved = std::mem::replace(&mut self.scope, scope.clone());
        let result = (|| {
            let mut exprs = Vec::new();
            let mut columns = Vec::new();
            for item in items {
                match item {
                    ast::SelectItem::Wildcard(_) => {
                        for (i, c) in scope.columns.iter().enumerate().filter(|(_, c)| !c.hidden) {
                            exprs.push(Expr::Column(i));
                            columns.push(ResultColumn { name: c.name.clone(), data_type: c.data_type.clone() });
                        }
                    }
                    ast::SelectItem::UnnamedExpr(e) => {
                        let (b, t) = self.bind(e)?;
                        exprs.push(b);
                        columns.push(ResultColumn { name: output_name(e), data_type: text_if_unknown(t) });
                    }
                    ast::SelectItem::ExprWithAlias { expr, alias } => {
                        let (b, t) = self.bind(expr)?;
                        exprs.push(b);
                        columns.push(ResultColumn { name: ident(alias), data_type: text_if_unknown(t) });
                    }
                    other => return Err(Error::FeatureNotSupported(format!("RETURNING {other}"))),
                }
            }
            Ok(Some((exprs, columns)))
        })();
        self.scope = saved;
        result
    }

    /// The rows an UPDATE or DELETE touches: `table row ++ key ++ extra FROM/USING columns`.
    fn plan_target_rows(
        &mut self,
        relation: &ast::TableFactor,
        extra: &[ast::TableWithJoins],
        selection: Option<&ast::Expr>,
    ) -> Result<(Table, String, Node, Scope)> {
        let (name, alias) = match relation {
            ast::TableFactor::Table { name, alias, .. } => {
                let n = object_name(name);
                let a = alias.as_ref().map(|a| ident(&a.name)).unwrap_or_else(|| n.clone());
                (n, a)
            }
            other => return Err(Error::FeatureNotSupported(format!("UPDATE/DELETE of {other}"))),
        };
        let table = catalog::must_get_table(self.txn, &name)?;
        let mut columns = table_scope(&table, &alias);
        columns.push(ScopeColumn {
            table: None,
            name: String::new(),
            data_type: DataType::Bytea,
            hidden: true,
            time: false,
        });
        let mut scope = Scope::new(columns);
        let mut node = Node::Scan { table: table.clone(), filter: None, with_key: true, columns: None };
        if !extra.is_empty() {
            let (extra_node, extra_scope) = self.plan_from(extra)?;
            let (lw, rw) = (scope.len(), extra_scope.len());
            scope.extend(extra_scope);
            node = Node::NestedLoopJoin {
                left: Box::new(node),
                right: Box::new(extra_node),
                kind: super::plan::JoinKind::Inner,
                predicate: None,
                left_width: lw,
                right_width: rw,
            };
        }
        if let Some(w) = selection {
            let saved = std::mem::replace(&mut self.scope, scope.clone());
            let predicate = self.bind_condition(w, "WHERE");
            self.scope = saved;
            node = Node::Filter { source: Box::new(node), predicate: predicate? };
        }
        Ok((table, alias, node, scope))
    }

    pub fn plan_update(&mut self, update: &ast::Update) -> Result<Plan> {
        if !update.table.joins.is_empty() {
            return Err(Error::FeatureNotSupported("UPDATE with joins".into()));
        }
        let extra: Vec<ast::TableWithJoins> = match &update.from {
            None => Vec::new(),
            Some(ast::UpdateTableFromKind::BeforeSet(f)) | Some(ast::UpdateTableFromKind::AfterSet(f)) => f.clone(),
        };
        let (table, alias, source, scope) =
            self.plan_target_rows(&update.table.relation, &extra, update.selection.as_ref())?;
        let saved = std::mem::replace(&mut self.scope, scope);
        let assignments = self.plan_assignments(&table, &update.assignments);
        self.scope = saved;
        let assignments = assignments?;
        let returning = self.plan_returning(update.returning.as_deref(), Scope::new(table_scope(&table, &alias)))?;
        let checks = self.table_checks(&table)?;
        Ok(Plan::Update { table, source, assignments, returning, checks })
    }

    pub fn plan_delete(&mut self, delete: &ast::Delete) -> Result<Plan> {
        let from = match &delete.from {
            ast::FromTable::WithFromKeyword(f) | ast::FromTable::WithoutKeyword(f) => f,
        };
        let [target] = from.as_slice() else {
            return Err(Error::FeatureNotSupported("DELETE from several tables".into()));
        };
        if !target.joins.is_empty() {
            return Err(Error::FeatureNotSupported("DELETE with joins".into()));
        }
        let extra = delete.using.clone().unwrap_or_default();
        let (table, alias, source, _) = self.plan_target_rows(&target.relation, &extra, delete.selection.as_ref())?;
        let returning = self.plan_returning(delete.returning.as_deref(), Scope::new(table_scope(&table, &alias)))?;
        Ok(Plan::Delete { table, source, returning })
    }
}

fn text_if_unknown(t: DataType) -> DataType {
    if t == DataType::Unknown {
        DataType::Text
    } else {
        t
    }
}
