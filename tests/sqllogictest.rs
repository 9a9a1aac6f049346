//! Runs the sqllogictest files against an embedded ChronosDB on sled, each file in a fresh
//! database: the PostgreSQL-15-verified corpus in `compat/pg15/` and our own files in
//! `tests/slt/`. Files listed in `tests/slt_known_failures.txt` are expected to fail (features
//! not built yet); every other file must pass, and a listed file that starts passing fails
//! the run until it is taken off the list. `SLT_FILTER=name` runs only matching files;
//! `SLT_CORPUS=dir` adds every `.test` file under `dir` (SQLite's corpus, for example).
//!
//! Every value of a result must have its column's declared type: a driver decodes binary
//! results by the declared type, so a mismatch would be wrong bytes on the wire.

use chronos::error::Error;
use chronos::sql::planner::plan::ResultColumn;
use chronos::sql::{Outcome, Session};
use chronos::types::timezone::Zone;
use chronos::types::{DataType, Value};
use sqllogictest::{DBOutput, DefaultColumnType};
use std::path::{Path, PathBuf};

struct ChronosDb {
    session: Session,
    _dir: tempfile::TempDir,
}

#[derive(Debug)]
struct SqlError(String);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for SqlError {}

/// Renders a value as the corpus expects: PostgreSQL's text form, NULL as `NULL` and the
/// empty string as `(empty)` (the runner collapses runs of blanks, such as CHAR(n) padding).
/// A value as psql shows it to a session in time zone `zone`.
fn render(v: &Value, zone: &Zone) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Text(s) if s.is_empty() => "(empty)".into(),
        other => other.in_zone(zone).to_string(),
    }
}

fn column_type(t: &DataType) -> DefaultColumnType {
    match t {
        DataType::Int2 | DataType::Int4 | DataType::Int8 => DefaultColumnType::Integer,
        DataType::Float4 | DataType::Float8 | DataType::Numeric(_) => DefaultColumnType::FloatingPoint,
        _ => DefaultColumnType::Text,
    }
}

impl sqllogictest::DB for ChronosDb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let mut last = None;
        for result in self.session.run(sql) {
            match result {
                Ok(outcome) => last = Some(outcome),
                Err(e) => return Err(SqlError(format!("{} {}", Error::sqlstate(&e), e))),
            }
        }
        Ok(match last {
            Some(Outcome::Rows { columns, rows, tag })
                if !tag.starts_with("INSERT") && !tag.starts_with("UPDATE") && !tag.starts_with("DELETE")
                    || !columns.is_empty() =>
            {
                check_declared_types(&columns, &rows)?;
                DBOutput::Rows {
                    types: columns.iter().map(|c| column_type(&c.data_type)).collect(),
                    rows: rows.iter().map(|r| r.iter().map(|v| render(v, &self.session.info.zone)).collect()).collect(),
                }
            }
            Some(Outcome::Command { tag }) | Some(Outcome::Rows { tag, .. }) => {
                let count = tag.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0);
                DBOutput::StatementComplete(count)
            }
            Some(Outcome::CopyOut { lines, .. }) => DBOutput::StatementComplete(lines.len() as u64),
            Some(Outcome::CopyIn { .. }) => return Err(SqlError("COPY FROM STDIN needs a client".into())),
            None => DBOutput::StatementComplete(0),
        })
    }
}

/// Fails when a value's type is not its column's declared type (NULL fits every column).
fn check_declared_types(columns: &[ResultColumn], rows: &[Vec<Value>]) -> Result<(), SqlError> {
    for row in rows {
        for (value, column) in row.iter().zip(columns) {
            if !column.data_type.holds(value) {
                return Err(SqlError(format!(
                    "column {} is declared {:?} but holds {value:?}",
                    column.name, column.data_type
                )));
            }
        }
    }
    Ok(())
}

fn open_db() -> ChronosDb {
    let dir = tempfile::tempdir().expect("temp dir");
    // As a single node runs: sled, committing through a Raft group of one.
    let engine = chronos::node::open_dir(dir.path()).expect("open engine");
    ChronosDb { session: engine.session("admin", "chronos"), _dir: dir }
}

fn slt_files(dir: &Path) -> Vec<PathBuf> {
    let filter = std::env::var("SLT_FILTER").unwrap_or_default();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("slt dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .filter(|p| p.to_string_lossy().contains(&filter))
        .collect();
    files.sort();
    files
}

/// Every `.test` file under `dir`, in sorted order.
fn corpus_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("corpus dir").filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    let filter = std::env::var("SLT_FILTER").unwrap_or_default();
    for path in entries {
        if path.is_dir() {
            corpus_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "test") && path.to_string_lossy().contains(&filter) {
            out.push(path);
        }
    }
}

/// Compares whole rows with runs of blanks collapsed, as the corpus was written: a cell
/// holding only CHAR(n) padding disappears into the separator instead of leaving an empty
/// field.
fn row_validator(normalizer: sqllogictest::Normalizer, actual: &[Vec<String>], expected: &[String]) -> bool {
    let expected: Vec<String> = expected.iter().map(normalizer).collect();
    let actual: Vec<String> = actual.iter().map(|row| normalizer(&row.join(" "))).collect();
    actual == expected
}

fn known_failures() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/slt_known_failures.txt");
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn sqllogictest_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = slt_files(&root.join("compat/pg15"));
    files.extend(slt_files(&root.join("tests/slt")));
    if let Ok(dir) = std::env::var("SLT_CORPUS") {
        corpus_files(Path::new(&dir), &mut files);
    }
    assert!(!files.is_empty(), "no .slt files found");
    let known = known_failures();
    let (mut passed, mut failed, mut unexpected) = (0, 0, Vec::new());
    for file in &files {
        let name = file.strip_prefix(root).unwrap_or(file).display().to_string();
        let expected_to_fail = known.contains(&name);
        let mut runner = sqllogictest::Runner::new(|| async { Ok(open_db()) });
        runner.with_validator(row_validator);
        // Conditions written for PostgreSQL apply (`skipif postgresql`, `onlyif postgresql`).
        runner.add_label("postgresql");
        match runner.run_file(file) {
            Ok(()) => {
                passed += 1;
                println!("ok   {name}");
                if expected_to_fail {
                    unexpected.push(format!("{name} passes now: remove it from tests/slt_known_failures.txt"));
                }
            }
            Err(e) => {
                failed += 1;
                println!("FAIL {name}{}\n{}", if expected_to_fail { " (known)" } else { "" }, e.display(false));
                if !expected_to_fail {
                    unexpected.push(format!("{name} fails"));
                }
            }
        }
    }
    println!("sqllogictest files: {passed} passed, {failed} failed");
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}
