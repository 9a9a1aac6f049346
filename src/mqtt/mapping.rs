//! How an MQTT message becomes rows: the topic picks a mapping (and may name the table and
//! fill columns), the payload gives the values, each converted to its column's type as a SQL
//! literal of the same text would be.

use crate::catalog::Table;
use crate::error::{Error, Result};
use crate::types::cast::{cast, CastKind};
use crate::types::{DataType, Value};
use serde::Deserialize;

/// One `[[mapping]]` of the mapping file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// A topic filter; a level `{column}` matches any one level (as `+`) and puts it in that
    /// column; `+` and a final `#` match without binding.
    pub topic: String,
    pub table: String,
    #[serde(default)]
    pub payload: PayloadFormat,
    /// The column of a plain-number (or text) payload.
    pub value_column: Option<String>,
    /// Column ← JSON path (`$.a.b[0]`); without it, the payload object's keys are the columns.
    #[serde(default)]
    pub columns: std::collections::BTreeMap<String, String>,
    /// The column the message's time goes to; default the table's first timestamp column.
    pub time_column: Option<String>,
    /// What a number in the time column counts: `s` (default), `ms`, `us`; `rfc3339` takes text only.
    #[serde(default)]
    pub time_unit: TimeUnit,
    /// Upsert on the primary key (the default when the table has one); false: plain inserts.
    pub upsert: Option<bool>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    /// A JSON object (one row) or an array of objects (a row each).
    #[default]
    Json,
    /// A plain number (`21.5`), into `value_column`.
    Number,
    /// The payload as text, into `value_column`.
    Text,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    #[default]
    S,
    Ms,
    Us,
    Rfc3339,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Level {
    Exact(String),
    /// `+`
    Any,
    /// `{column}`: any one level, into `column`.
    Bind(String),
    /// `#`: the rest, including nothing.
    Rest,
}

/// Where a mapping's rows go.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Table(String),
    /// The built-in mapping `chronos/<table>`: the table is the topic's second level.
    TopicLevel(usize),
}

/// A mapping, parsed.
#[derive(Clone, Debug)]
pub struct Mapping {
    levels: Vec<Level>,
    target: Target,
    payload: PayloadFormat,
    value_column: Option<String>,
    columns: Vec<(String, Vec<PathStep>)>,
    time_column: Option<String>,
    time_unit: TimeUnit,
    upsert: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PathStep {
    Key(String),
    Index(usize),
}

/// The rows of one message for one table: a value per target column (in the table's column
/// order, so that messages of the same shape group into one INSERT).
#[derive(Clone, Debug, PartialEq)]
pub struct Rows {
    pub table: String,
    pub targets: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub upsert: bool,
}

/// A message matched to a mapping: the table and the columns its topic fills.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    mapping: usize,
    pub table: String,
    bound: Vec<(String, String)>,
}

/// The mappings of a node, in the order they are tried: the first whose filter matches a
/// topic takes the message.
#[derive(Clone, Debug, Default)]
pub struct Mappings {
    list: Vec<Mapping>,
}

impl Mappings {
    /// `specs`, then the built-in `chronos/<table>` mapping when `default_mapping`.
    pub fn new(specs: &[MappingSpec], default_mapping: bool) -> Result<Self> {
        let mut list = specs.iter().map(Mapping::parse).collect::<Result<Vec<_>>>()?;
        if default_mapping {
            list.push(Mapping {
                levels: vec![Level::Exact("chronos".into()), Level::Any],
                target: Target::TopicLevel(1),
                payload: PayloadFormat::Json,
                value_column: None,
                columns: Vec::new(),
                time_column: None,
                time_unit: TimeUnit::S,
                upsert: None,
            });
        }
        if list.is_empty() {
            return Err(Error::InvalidParameter("MQTT ingestion without any mapping".into()));
        }
        Ok(Self { list })
    }

    /// The topic filters to subscribe to.
    pub fn filters(&self) -> Vec<String> {
        let mut filters: Vec<String> = self.list.iter().map(Mapping::filter).collect();
        filters.sort();
        filters.dedup();
        filters
    }

    /// The mapping that takes a message on `topic`, if any.
    pub fn route(&self, topic: &str) -> Option<Route> {
        let levels: Vec<&str> = topic.split('/').collect();
        self.list.iter().enumerate().find_map(|(i, m)| {
            let bound = m.matches(&levels)?;
            let table = match &m.target {
                Target::Table(t) => t.clone(),
                Target::TopicLevel(l) => levels[*l].to_string(),
            };
            Some(Route { mapping: i, table, bound })
        })
    }

    /// The rows of a message routed to `route`, for `table` (its definition), received at
    /// `received` (microseconds since the epoch: the time column's value when the message
    /// gives none).
    pub fn rows(&self, route: &Route, table: &Table, payload: &[u8], received: i64) -> Result<Rows> {
        let m = &self.list[route.mapping];
        let objects = m.fields(payload)?;
        let time_column = match &m.time_column {
            Some(c) => Some(table.column_index(c).ok_or_else(|| unknown_column(c, table))?),
            None => table.time_column(),
        };
        let upsert = m.upsert.unwrap_or(true) && !table.primary_key.is_empty();
        let mut out = Rows { table: table.name.clone(), targets: Vec::new(), rows: Vec::new(), upsert };
        for fields in objects {
            let mut values: Vec<(usize, Value)> = Vec::with_capacity(fields.len() + route.bound.len() + 1);
            let mut put = |i: usize, v: Value| -> Result<()> {
                if values.iter().any(|(j, _)| *j == i) {
                    return Err(Error::Syntax {
                        message: format!("column \"{}\" is given twice", table.columns[i].name),
                        position: None,
                    });
                }
                values.push((i, v));
                Ok(())
            };
            for (column, text) in &route.bound {
                let i = table.column_index(column).ok_or_else(|| unknown_column(column, table))?;
                put(i, column_value(serde_json::Value::String(text.clone()), &table.columns[i].data_type, column)?)?;
            }
            for (column, json) in fields {
                let i = table.column_index(&column).ok_or_else(|| unknown_column(&column, table))?;
                let value = if Some(i) == time_column {
                    time_value(json, m.time_unit, &table.columns[i].data_type, &column)?
                } else {
                    column_value(json, &table.columns[i].data_type, &column)?
                };
                put(i, value)?;
            }
            if let Some(t) = time_column {
                if !values.iter().any(|(i, _)| *i == t) {
                    let value = cast(Value::TimestampTz(received), &table.columns[t].data_type, CastKind::Assignment)?;
                    values.push((t, value));
                }
            }
            values.sort_by_key(|(i, _)| *i);
            let targets: Vec<String> = values.iter().map(|(i, _)| table.columns[*i].name.clone()).collect();
            if out.rows.is_empty() {
                out.targets = targets;
            } else if out.targets != targets {
                return Err(Error::Syntax {
                    message: "the objects of one message must all give the same columns".into(),
                    position: None,
                });
            }
            out.rows.push(values.into_iter().map(|(_, v)| v).collect());
        }
        Ok(out)
    }
}

fn unknown_column(column: &str, table: &Table) -> Error {
    Error::UndefinedColumn(format!("{column}\" of relation \"{}", table.name))
}

impl Mapping {
    fn parse(spec: &MappingSpec) -> Result<Self> {
        let bad = |why: String| Error::InvalidParameter(format!("MQTT mapping \"{}\": {why}", spec.topic));
        let parts: Vec<&str> = spec.topic.split('/').collect();
        let mut levels = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            levels.push(match *part {
                "+" => Level::Any,
                "#" if i + 1 == parts.len() => Level::Rest,
                p if p.starts_with('{') && p.ends_with('}') && p.len() > 2 => {
                    Level::Bind(p[1..p.len() - 1].to_string())
                }
                p if p.contains(['+', '#', '{', '}']) => {
                    return Err(bad(format!("level \"{p}\" is not a topic level")))
                }
                p => Level::Exact(p.to_string()),
            });
        }
        if spec.table.is_empty() {
            return Err(bad("no table".into()));
        }
        let value_column = spec.value_column.clone();
        if spec.payload != PayloadFormat::Json && value_column.is_none() {
            return Err(bad("a number or text payload needs value_column".into()));
        }
        let mut columns = Vec::new();
        for (column, path) in &spec.columns {
            columns.push((column.clone(), parse_path(path).map_err(|e| bad(format!("column {column}: {e}")))?));
        }
        Ok(Self {
            levels,
            target: Target::Table(spec.table.clone()),
            payload: spec.payload,
            value_column,
            columns,
            time_column: spec.time_column.clone(),
            time_unit: spec.time_unit,
            upsert: spec.upsert,
        })
    }

    fn filter(&self) -> String {
        let level = |l: &Level| match l {
            Level::Exact(s) => s.clone(),
            Level::Any | Level::Bind(_) => "+".to_string(),
            Level::Rest => "#".to_string(),
        };
        self.levels.iter().map(level).collect::<Vec<_>>().join("/")
    }

    /// The columns a topic's levels fill, if the topic matches (MQTT's rules: `+` is one
    /// level, `#` the rest, and a wildcard first level does not match a `$SYS/…` topic).
    fn matches(&self, topic: &[&str]) -> Option<Vec<(String, String)>> {
        if topic.first().is_some_and(|l| l.starts_with('$')) && !matches!(self.levels.first(), Some(Level::Exact(_))) {
            return None;
        }
        let mut bound = Vec::new();
        for (i, level) in self.levels.iter().enumerate() {
            match level {
                Level::Rest => return Some(bound),
                _ if i >= topic.len() => return None,
                Level::Exact(s) if s != topic[i] => return None,
                Level::Exact(_) | Level::Any => {}
                Level::Bind(column) => bound.push((column.clone(), topic[i].to_string())),
            }
        }
        (self.levels.len() == topic.len()).then_some(bound)
    }

    /// The payload as objects of column → JSON value.
    fn fields(&self, payload: &[u8]) -> Result<Vec<Vec<(String, serde_json::Value)>>> {
        let text = std::str::from_utf8(payload)
            .map_err(|_| Error::DataException("22021", "the payload is not UTF-8".into()))?;
        match self.payload {
            PayloadFormat::Text => Ok(vec![vec![(self.value_column.clone().unwrap_or_default(), text.into())]]),
            PayloadFormat::Number => {
                let number: serde_json::Number = serde_json::from_str(text.trim())
                    .map_err(|_| Error::InvalidText(format!("the payload is not a number: {}", excerpt(text))))?;
                Ok(vec![vec![(self.value_column.clone().unwrap_or_default(), number.into())]])
            }
            PayloadFormat::Json => {
                let json: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| Error::InvalidText(format!("the payload is not JSON: {e}")))?;
                let objects = match json {
                    serde_json::Value::Array(items) => items,
                    other => vec![other],
                };
                objects.into_iter().map(|o| self.object_fields(o)).collect()
            }
        }
    }

    fn object_fields(&self, json: serde_json::Value) -> Result<Vec<(String, serde_json::Value)>> {
        if !self.columns.is_empty() {
            let mut out = Vec::with_capacity(self.columns.len());
            for (column, path) in &self.columns {
                if let Some(v) = lookup(&json, path) {
                    out.push((column.clone(), v.clone()));
                }
            }
            return Ok(out);
        }
        match json {
            serde_json::Value::Object(map) => Ok(map.into_iter().collect()),
            scalar @ (serde_json::Value::Number(_) | serde_json::Value::String(_) | serde_json::Value::Bool(_))
                if self.value_column.is_some() =>
            {
                Ok(vec![(self.value_column.clone().unwrap_or_default(), scalar)])
            }
            other => Err(Error::InvalidText(format!(
                "the payload is not a JSON object (or an array of objects): {}",
                excerpt(&other.to_string())
            ))),
        }
    }
}

fn excerpt(text: &str) -> String {
    let mut end = text.len().min(60);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if end < text.len() {
        format!("{}…", &text[..end])
    } else {
        text.to_string()
    }
}

/// `$.a.b[0]`, `a.b`, `$['a b']` is not supported: keys with dots or brackets are not
/// reachable.
fn parse_path(path: &str) -> std::result::Result<Vec<PathStep>, String> {
    let rest = path.strip_prefix('$').unwrap_or(path);
    let rest = rest.strip_prefix('.').unwrap_or(rest);
    let mut steps = Vec::new();
    for part in rest.split('.') {
        let (key, mut indexes) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            steps.push(PathStep::Key(key.to_string()));
        } else if indexes.is_empty() {
            return Err(format!("empty step in path \"{path}\""));
        }
        while !indexes.is_empty() {
            let close = indexes.find(']').ok_or_else(|| format!("unclosed [ in path \"{path}\""))?;
            let n = indexes[1..close].parse::<usize>().map_err(|_| format!("bad index in path \"{path}\""))?;
            steps.push(PathStep::Index(n));
            indexes = &indexes[close + 1..];
            if !indexes.is_empty() && !indexes.starts_with('[') {
                return Err(format!("bad path \"{path}\""));
            }
        }
    }
    Ok(steps)
}

fn lookup<'a>(json: &'a serde_json::Value, path: &[PathStep]) -> Option<&'a serde_json::Value> {
    path.iter().try_fold(json, |v, step| match step {
        PathStep::Key(k) => v.get(k),
        PathStep::Index(i) => v.get(*i),
    })
}

/// A JSON value as a value of `column`'s type, as INSERT stores a literal: a string by the
/// type's input syntax, a number or boolean by assignment, an object or array only into
/// jsonb or text; text too long for a bounded column is an error, never cut short.
pub fn column_value(json: serde_json::Value, t: &DataType, column: &str) -> Result<Value> {
    use serde_json::Value as J;
    match json {
        J::Null => Ok(Value::Null),
        J::String(s) => cast(Value::Text(s), t, CastKind::Assignment),
        J::Bool(b) => match t {
            DataType::Text | DataType::Varchar(_) | DataType::Char(_) => {
                cast(Value::Text(b.to_string()), t, CastKind::Assignment)
            }
            _ => cast(Value::Bool(b), t, CastKind::Assignment),
        },
        J::Number(n) => {
            let value = match (n.as_i64(), t) {
                (Some(i), _) => Value::Int8(i),
                (None, DataType::Float4 | DataType::Float8) => Value::Float8(n.as_f64().unwrap_or(f64::NAN)),
                (None, _) => Value::Text(n.to_string()),
            };
            match (value, t) {
                (
                    Value::Text(text),
                    DataType::Numeric(_) | DataType::Text | DataType::Varchar(_) | DataType::Char(_),
                ) => cast(Value::Text(text), t, CastKind::Assignment),
                (Value::Text(text), _) => {
                    let numeric = cast(Value::Text(text), &DataType::Numeric(None), CastKind::Explicit)?;
                    cast(numeric, t, CastKind::Assignment)
                }
                (Value::Int8(i), DataType::Text | DataType::Varchar(_) | DataType::Char(_)) => {
                    cast(Value::Text(i.to_string()), t, CastKind::Assignment)
                }
                (v, _) => cast(v, t, CastKind::Assignment),
            }
            .map_err(|e| match e {
                Error::DatatypeMismatch(_) => {
                    Error::DatatypeMismatch(format!("column \"{column}\" is of type {} but the value is a number", t))
                }
                other => other,
            })
        }
        json @ (J::Object(_) | J::Array(_)) => match t {
            DataType::Jsonb => Ok(Value::Jsonb(json)),
            DataType::Text | DataType::Varchar(_) => cast(Value::Text(json.to_string()), t, CastKind::Assignment),
            _ => Err(Error::DatatypeMismatch(format!(
                "column \"{column}\" is of type {} but the value is a JSON {}",
                t,
                if json.is_object() { "object" } else { "array" }
            ))),
        },
    }
}

/// The time column's value: a number counts `unit`s since the epoch, a string is a time in
/// the column type's input syntax (RFC 3339 among them).
fn time_value(json: serde_json::Value, unit: TimeUnit, t: &DataType, column: &str) -> Result<Value> {
    let serde_json::Value::Number(n) = &json else {
        return column_value(json, t, column);
    };
    let scale = match unit {
        TimeUnit::S => 1_000_000.0,
        TimeUnit::Ms => 1_000.0,
        TimeUnit::Us => 1.0,
        TimeUnit::Rfc3339 => {
            return Err(Error::DataException(
                "22007",
                format!("column \"{column}\" takes RFC 3339 text, not the number {n}"),
            ))
        }
    };
    let micros = match (n.as_i64(), unit) {
        (Some(i), TimeUnit::Us) => Some(i),
        (Some(i), TimeUnit::Ms) => i.checked_mul(1_000),
        (Some(i), _) => i.checked_mul(1_000_000),
        (None, _) => {
            n.as_f64().map(|f| f * scale).filter(|f| f.is_finite() && f.abs() < 9.2e18).map(|f| f.round() as i64)
        }
    };
    let micros = micros.ok_or_else(|| Error::DatetimeOutOfRange(format!("timestamp out of range: {n}")))?;
    cast(Value::TimestampTz(micros), t, CastKind::Assignment)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Column;

    fn table(columns: &[(&str, DataType)], primary_key: Vec<usize>) -> Table {
        let columns = columns.iter().map(|(n, t)| Column::new(n.to_string(), t.clone())).collect();
        Table { id: 1, ..Table::new("readings".into(), columns, primary_key) }
    }

    fn spec(topic: &str) -> MappingSpec {
        MappingSpec {
            topic: topic.into(),
            table: "readings".into(),
            payload: PayloadFormat::Json,
            value_column: None,
            columns: Default::default(),
            time_column: None,
            time_unit: TimeUnit::S,
            upsert: None,
        }
    }

    #[test]
    fn topics_match_as_mqtt_filters_do() {
        let m = Mappings::new(&[spec("sensors/{device}/temp"), spec("plant/#")], true).unwrap();
        assert_eq!(m.filters(), vec!["chronos/+", "plant/#", "sensors/+/temp"]);
        let r = m.route("sensors/esp-7/temp").unwrap();
        assert_eq!(
            (r.mapping, r.table.as_str(), r.bound.clone()),
            (0, "readings", vec![("device".into(), "esp-7".into())])
        );
        assert!(m.route("sensors/esp-7/humidity").is_none());
        assert!(m.route("sensors/esp-7/temp/x").is_none());
        assert_eq!(m.route("plant").unwrap().mapping, 1, "# matches the parent level too");
        assert_eq!(m.route("plant/a/b/c").unwrap().mapping, 1);
        assert_eq!(m.route("chronos/metrics").unwrap().table, "metrics");
        assert!(m.route("chronos/a/b").is_none());
        assert!(m.route("chronos").is_none());
        let any = Mappings::new(&[spec("+/x")], false).unwrap();
        assert!(any.route("$SYS/x").is_none(), "wildcards do not match $ topics");
        assert!(Mappings::new(&[spec("a/#/b")], false).is_err());
        assert!(Mappings::new(&[spec("a/b+")], false).is_err());
        assert!(Mappings::new(&[], false).is_err());
    }

    #[test]
    fn json_objects_become_typed_rows() {
        let t = table(
            &[
                ("ts", DataType::TimestampTz),
                ("device", DataType::Text),
                ("temp", DataType::Float8),
                ("n", DataType::Int4),
            ],
            vec![1, 0],
        );
        let m = Mappings::new(&[], true).unwrap();
        let route = m.route("chronos/readings").unwrap();
        let rows = m.rows(&route, &t, br#"{"device":"a","temp":21.5,"n":"7"}"#, 5_000_000).unwrap();
        assert_eq!(rows.targets, vec!["ts", "device", "temp", "n"]);
        assert_eq!(
            rows.rows,
            vec![vec![Value::TimestampTz(5_000_000), Value::Text("a".into()), Value::Float8(21.5), Value::Int4(7)]]
        );
        assert!(rows.upsert);
        let many =
            m.rows(&route, &t, br#"[{"device":"a","ts":10},{"device":"b","ts":"1970-01-01T00:00:11Z"}]"#, 0).unwrap();
        assert_eq!(many.targets, vec!["ts", "device"]);
        assert_eq!(many.rows[0][0], Value::TimestampTz(10_000_000));
        assert_eq!(many.rows[1][0], Value::TimestampTz(11_000_000));
        let code = |payload: &[u8]| m.rows(&route, &t, payload, 0).unwrap_err().sqlstate();
        assert_eq!(code(b"not json"), "22P02");
        assert_eq!(code(br#"{"nope":1}"#), "42703");
        assert_eq!(code(br#"{"n":"x"}"#), "22P02");
        assert_eq!(code(br#"{"n":3000000000}"#), "22003");
        let n = |payload: &[u8]| m.rows(&route, &t, payload, 0).unwrap().rows[0][1].clone();
        assert_eq!(n(br#"{"n":2.5}"#), Value::Int4(3), "a fraction rounds half away from zero, as numeric does");
        assert_eq!(n(br#"{"n":-2.5}"#), Value::Int4(-3));
        assert_eq!(n(br#"{"n":7.0e0}"#), Value::Int4(7));
        assert_eq!(code(br#"{"temp":{"a":1}}"#), "42804");
        assert_eq!(code(br#"[{"device":"a"},{"temp":1}]"#), "42601");
        assert_eq!(code(b"\xff"), "22021");
        assert_eq!(code(b"42"), "22P02", "a bare number needs a value column");
        let short = DataType::Varchar(Some(3));
        let stored = |json: serde_json::Value| column_value(json, &short, "device");
        assert_eq!(stored(serde_json::json!("abc")).unwrap(), Value::Text("abc".into()));
        assert_eq!(stored(serde_json::json!("abcd")).unwrap_err().sqlstate(), "22001", "never cut short");
        assert_eq!(stored(serde_json::json!(12345)).unwrap_err().sqlstate(), "22001");
        assert_eq!(stored(serde_json::json!(true)).unwrap_err().sqlstate(), "22001");
    }

    #[test]
    fn configured_mappings_bind_levels_paths_and_times() {
        let t = table(
            &[("at", DataType::TimestampTz), ("device", DataType::Text), ("temp", DataType::Numeric(None))],
            vec![],
        );
        let mut number = spec("sensors/{device}/temp");
        number.payload = PayloadFormat::Number;
        number.value_column = Some("temp".into());
        let mut nested = spec("nested/{device}");
        nested.columns =
            [("temp".to_string(), "$.reading.values[1]".to_string()), ("at".to_string(), "$.t".to_string())]
                .into_iter()
                .collect();
        nested.time_unit = TimeUnit::Ms;
        let m = Mappings::new(&[number, nested], false).unwrap();
        let r = m.route("sensors/esp-1/temp").unwrap();
        let rows = m.rows(&r, &t, b" 21.25 ", 9).unwrap();
        assert!(!rows.upsert, "no primary key: inserts");
        assert_eq!(rows.targets, vec!["at", "device", "temp"]);
        assert_eq!(rows.rows[0][0], Value::TimestampTz(9));
        assert_eq!(rows.rows[0][1], Value::Text("esp-1".into()));
        assert_eq!(rows.rows[0][2].to_string(), "21.25");
        assert_eq!(m.rows(&r, &t, b"warm", 9).unwrap_err().sqlstate(), "22P02");
        let r = m.route("nested/esp-2").unwrap();
        let rows = m.rows(&r, &t, br#"{"reading":{"values":[1,2.5]},"t":1500}"#, 9).unwrap();
        assert_eq!(rows.rows[0][0], Value::TimestampTz(1_500_000));
        assert_eq!(rows.rows[0][2].to_string(), "2.5");
        let absent = m.rows(&r, &t, br#"{"reading":{}}"#, 9).unwrap();
        assert_eq!(absent.targets, vec!["at", "device"], "a path that finds nothing gives no value");
        assert!(parse_path("$.a[x]").is_err());
        assert_eq!(parse_path("a[0][2].b").unwrap().len(), 4);
    }
}
