//! MQTT ingestion: the node subscribes to a broker and writes the messages it receives into
//! tables (`docs/mqtt.md`).
//!
//! [`mapping`] turns a message into rows, [`writer`] commits a batch of them (or keeps a bad
//! message in the dead-letter table), [`client`] holds the broker session: QoS 1 messages are
//! acknowledged only after their batch commits, so a crash loses no acknowledged message.

pub mod client;
pub mod mapping;
pub mod writer;

use crate::error::{Error, Result};
use serde::Deserialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// Everything ingestion needs: the broker, the session and the mappings.
#[derive(Clone, Debug)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    pub file: MqttFile,
    /// The password (`CHRONOS_MQTT_PASSWORD`), never in the file.
    pub password: Option<String>,
}

/// The mapping file (`--mqtt-config`, TOML or JSON); every setting is optional.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttFile {
    /// The broker, when `--mqtt-url` does not give it.
    pub url: Option<String>,
    /// The MQTT client id: the broker keeps this session's subscriptions and unacknowledged
    /// messages while the node is away. Default `chronos`.
    #[serde(default = "default_client_id")]
    pub client_id: String,
    pub username: Option<String>,
    /// Rows are written with this role's privileges (default: the superuser `admin`).
    #[serde(default = "default_role")]
    pub role: String,
    /// The QoS of the subscriptions: 0 (at most once) or 1 (at least once; the default).
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// The built-in mapping `chronos/<table>` (default on).
    #[serde(default = "default_true")]
    pub default_mapping: bool,
    /// Messages written in one transaction, at most.
    #[serde(default = "default_batch")]
    pub batch_messages: usize,
    /// How long a batch waits for more messages after its first, in milliseconds.
    #[serde(default = "default_linger")]
    pub batch_wait_ms: u64,
    /// Rejected messages kept in `chronos_mqtt_rejected` (the newest).
    #[serde(default = "default_keep")]
    pub rejected_keep: u64,
    /// The largest message taken, in bytes: the broker's `message_size_limit` should not be
    /// larger, or such a message closes the connection each time it is delivered.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Keep-alive interval, in seconds.
    #[serde(default = "default_keep_alive")]
    pub keep_alive_secs: u64,
    #[serde(default)]
    pub tls: TlsFiles,
    #[serde(default, rename = "mapping")]
    pub mappings: Vec<mapping::MappingSpec>,
}

/// `[tls]`: PEM files of the CA the broker's certificate must chain to (default: the
/// system's roots) and of the node's client certificate and key, for brokers that ask for one.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

fn default_client_id() -> String {
    "chronos".into()
}
fn default_role() -> String {
    crate::catalog::roles::ADMIN.into()
}
fn default_qos() -> u8 {
    1
}
fn default_true() -> bool {
    true
}
fn default_batch() -> usize {
    5_000
}
fn default_linger() -> u64 {
    10
}
fn default_keep() -> u64 {
    10_000
}
fn default_max_message() -> usize {
    1 << 20
}
fn default_keep_alive() -> u64 {
    30
}

impl Default for MqttFile {
    fn default() -> Self {
        serde_json::from_str("{}").expect("every setting has a default")
    }
}

impl MqttFile {
    /// Reads a mapping file: JSON if it starts with `{`, TOML otherwise.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::InvalidParameter(format!("the MQTT config {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error::InvalidParameter(format!("the MQTT config {}: {e}", path.display())))
    }

    fn parse(text: &str) -> std::result::Result<Self, String> {
        let file: Self = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| e.to_string())?
        } else {
            toml::from_str(text).map_err(|e| e.to_string())?
        };
        if file.qos > 1 {
            return Err(format!("qos {} is not taken: 0 or 1", file.qos));
        }
        if file.batch_messages == 0 {
            return Err("batch_messages must be at least 1".into());
        }
        mapping::Mappings::new(&file.mappings, file.default_mapping).map_err(|e| e.to_string())?;
        Ok(file)
    }
}

/// Why a message was rejected: the label of `chronos_mqtt_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No mapping takes the topic.
    Topic,
    /// Not JSON, not a number, not UTF-8.
    Payload,
    /// The table does not exist.
    Table,
    /// A column does not exist.
    Column,
    /// A value does not fit its column's type.
    Type,
    /// NOT NULL, UNIQUE or another constraint.
    Constraint,
    /// The role may not write the table.
    Privilege,
    Other,
}

impl Reason {
    const ALL: [Reason; 8] = [
        Reason::Topic,
        Reason::Payload,
        Reason::Table,
        Reason::Column,
        Reason::Type,
        Reason::Constraint,
        Reason::Privilege,
        Reason::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reason::Topic => "topic",
            Reason::Payload => "payload",
            Reason::Table => "table",
            Reason::Column => "column",
            Reason::Type => "type",
            Reason::Constraint => "constraint",
            Reason::Privilege => "privilege",
            Reason::Other => "other",
        }
    }

    /// The reason of an error from decoding or writing a message, by its SQLSTATE.
    pub fn of(error: &Error) -> Reason {
        let state = error.sqlstate();
        match state {
            "22P02" | "22021" if error.to_string().starts_with("the payload") => Reason::Payload,
            "42P01" => Reason::Table,
            "42703" => Reason::Column,
            "42501" => Reason::Privilege,
            "42804" | "42846" | "428C9" => Reason::Type,
            _ if state.starts_with("22") => Reason::Type,
            _ if state.starts_with("23") => Reason::Constraint,
            _ => Reason::Other,
        }
    }
}

/// Counters of ingestion, for `/metrics` and `/health`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub connected: AtomicBool,
    pub received: AtomicU64,
    pub rows: AtomicU64,
    pub batches: AtomicU64,
    pub acknowledged: AtomicU64,
    pub write_errors: AtomicU64,
    pub connection_errors: AtomicU64,
    rejected: [AtomicU64; 8],
}

impl Metrics {
    fn rejected(&self, reason: Reason) {
        let i = Reason::ALL.iter().position(|r| *r == reason).unwrap_or(Reason::ALL.len() - 1);
        self.rejected[i].fetch_add(1, Relaxed);
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Adds these counters to a `/metrics` page.
    pub fn report(&self, m: &mut crate::metrics::Families) {
        m.gauge(
            "chronos_mqtt_connected",
            "1 while connected to the MQTT broker.",
            i64::from(self.connected.load(Relaxed)),
        );
        m.counter("chronos_mqtt_messages_received_total", "MQTT messages received.", self.received.load(Relaxed));
        m.counter("chronos_mqtt_rows_written_total", "Rows written from MQTT messages.", self.rows.load(Relaxed));
        m.counter("chronos_mqtt_batches_total", "Batches of MQTT messages committed.", self.batches.load(Relaxed));
        m.counter(
            "chronos_mqtt_messages_acknowledged_total",
            "QoS 1 messages acknowledged to the broker after their batch committed.",
            self.acknowledged.load(Relaxed),
        );
        m.counter(
            "chronos_mqtt_write_errors_total",
            "Batches that could not be committed (written again later; their messages stay unacknowledged).",
            self.write_errors.load(Relaxed),
        );
        m.counter(
            "chronos_mqtt_connection_errors_total",
            "Connections to the broker lost or refused.",
            self.connection_errors.load(Relaxed),
        );
        m.counter_vec(
            "chronos_mqtt_messages_rejected_total",
            "MQTT messages rejected (kept in chronos_mqtt_rejected), by reason.",
            "reason",
            Reason::ALL.iter().zip(&self.rejected).map(|(r, c)| (r.name().to_string(), c.load(Relaxed))).collect(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mapping_file_is_toml_or_json() {
        let toml = r#"
            client_id = "gw-1"
            role = "ingest"
            [[mapping]]
            topic = "sensors/{device}/temp"
            table = "readings"
            payload = "number"
            value_column = "temp"
            time_unit = "ms"
            [mapping.columns]
        "#;
        let file = MqttFile::parse(toml).unwrap();
        assert_eq!((file.client_id.as_str(), file.role.as_str(), file.qos), ("gw-1", "ingest", 1));
        assert_eq!(file.mappings[0].time_unit, mapping::TimeUnit::Ms);
        assert!(file.default_mapping);
        let json = r#"{"qos": 0, "default_mapping": false, "mapping": [{"topic": "a/#", "table": "t"}]}"#;
        let file = MqttFile::parse(json).unwrap();
        assert_eq!((file.qos, file.default_mapping, file.mappings.len()), (0, false, 1));
        assert!(MqttFile::parse("qos = 2").unwrap_err().contains("qos"));
        assert!(MqttFile::parse("colour = 1").unwrap_err().contains("colour"));
        assert!(MqttFile::parse(
            r#"[[mapping]]
topic = "a/#/b"
table = "t""#
        )
        .is_err());
        assert!(MqttFile::parse(r#"{"default_mapping": false}"#).is_err(), "no mapping at all");
        assert_eq!(MqttFile::default().batch_messages, 5_000);
    }

    #[test]
    fn reasons_follow_sqlstates() {
        assert_eq!(Reason::of(&Error::InvalidText("the payload is not JSON: x".into())), Reason::Payload);
        assert_eq!(Reason::of(&Error::InvalidText("invalid input syntax for type integer".into())), Reason::Type);
        assert_eq!(Reason::of(&Error::UndefinedColumn("x".into())), Reason::Column);
        assert_eq!(Reason::of(&Error::InsufficientPrivilege("x".into())), Reason::Privilege);
        assert_eq!(Reason::of(&Error::NumericOutOfRange("x".into())), Reason::Type);
        assert_eq!(Reason::of(&Error::NotNull { column: "a".into(), table: "t".into() }), Reason::Constraint);
    }
}
