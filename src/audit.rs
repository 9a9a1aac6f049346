//! The audit log: who did what that changes who may do what, or what exists.
//!
//! Recorded: authentication successes and failures, role and privilege changes, DDL, and
//! cluster changes (membership, leadership). Each record is one JSON line with the time, the
//! event, the user, the client address and the outcome, written to the file named by
//! `CHRONOS_AUDIT_LOG` (appended, one `write` per line), or to the tracing log (target
//! `chronos::audit`) without one. Records never hold passwords or statement text: a
//! statement is described by its command and the objects it names.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Mutex;

/// Where audit records go.
pub struct AuditLog {
    file: Option<Mutex<std::fs::File>>,
}

/// What an audit record is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Authentication,
    Role,
    Privilege,
    Ddl,
    Cluster,
}

impl Event {
    fn name(self) -> &'static str {
        match self {
            Event::Authentication => "authentication",
            Event::Role => "role",
            Event::Privilege => "privilege",
            Event::Ddl => "ddl",
            Event::Cluster => "cluster",
        }
    }
}

/// One audited action, before the log adds who and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    pub event: Event,
    /// The command and the objects it names (`CREATE TABLE readings`, `GRANT SELECT ON t TO bob`).
    pub what: String,
    /// None on success, else the SQLSTATE and message of the failure.
    pub failure: Option<(String, String)>,
}

impl AuditLog {
    /// Appends to `path`, or logs through tracing without one.
    pub fn open(path: Option<&std::path::Path>) -> std::io::Result<AuditLog> {
        let file = match path {
            Some(path) => Some(Mutex::new(std::fs::OpenOptions::new().create(true).append(true).open(path)?)),
            None => None,
        };
        Ok(AuditLog { file })
    }

    /// A log that writes to the tracing log.
    pub fn to_tracing() -> AuditLog {
        AuditLog { file: None }
    }

    /// Records `action` done by `user` from `client`.
    pub fn record(&self, action: &Action, user: &str, client: Option<SocketAddr>) {
        let (outcome, code, message) = match &action.failure {
            None => ("success", None, None),
            Some((code, message)) => ("failure", Some(code.as_str()), Some(message.as_str())),
        };
        let line = serde_json::json!({
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "event": action.event.name(),
            "user": user,
            "client": client.map(|c| c.to_string()),
            "action": action.what,
            "outcome": outcome,
            "sqlstate": code,
            "error": message,
        });
        match &self.file {
            Some(file) => {
                let mut text = line.to_string();
                text.push('\n');
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                if let Err(e) = file.write_all(text.as_bytes()) {
                    tracing::error!(error = %e, record = %line, "cannot write the audit log");
                }
            }
            None => tracing::info!(target: "chronos::audit", "{line}"),
        }
    }
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog").field("to_file", &self.file.is_some()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_json_lines_with_who_where_and_outcome() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(Some(&path)).unwrap();
        let client: SocketAddr = "10.0.0.7:5123".parse().unwrap();
        log.record(&Action { event: Event::Ddl, what: "CREATE TABLE t".into(), failure: None }, "admin", Some(client));
        let denied = Action {
            event: Event::Role,
            what: "CREATE ROLE eve".into(),
            failure: Some(("42501".into(), "permission denied to create role".into())),
        };
        log.record(&denied, "bob", None);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "ddl");
        assert_eq!(lines[0]["user"], "admin");
        assert_eq!(lines[0]["client"], "10.0.0.7:5123");
        assert_eq!(lines[0]["outcome"], "success");
        assert_eq!(lines[1]["outcome"], "failure");
        assert_eq!(lines[1]["sqlstate"], "42501");
        assert!(lines[1]["client"].is_null());
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
    }
}
