//! Edge-to-cloud sync: an edge records every committed row change for the cloud, pushes the
//! changes in bounded batches, and the cloud merges them by last-writer-wins.
//!
//! - [`outbox`]: on an edge, the changes of each applied batch are captured in the same atomic
//!   write as the batch itself, at its version, on every replica (a [`crate::mvcc::Derive`]),
//!   so a crash at any instant neither loses a change nor invents one. Capture starts once the
//!   database is marked as an edge (`--edge-id`, a replicated record).
//! - [`worker`]: on the edge's leader, reads the outbox after the cursor the cloud last
//!   acknowledged, pushes it to a cloud member, and trims the outbox through the new cursor.
//! - [`cloud`]: a cloud member applies a push as one transaction committed through its Raft
//!   log: rows and index entries through the same writes as SQL, a last-writer-wins stamp per
//!   row, and the edge's cursor. A retried push skips what the cursor covers, so nothing is
//!   applied twice.
//!
//! A change is identified by its [`Position`]: the version of the edge commit that made it (an
//! HLC time, strictly increasing per edge) and its index among that commit's changes.

pub mod cloud;
pub mod outbox;
pub mod worker;

#[cfg(test)]
mod tests;

use crate::catalog::META;

/// Where a change sits in an edge's history; pushes carry changes in increasing position.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// The edge's commit version (HLC time).
    pub version: u64,
    /// The change's index among the commit's captured changes.
    pub index: u32,
}

/// One row change as pushed: the primary key (order-preserving encoded, without the table
/// prefix) and the new row (row-codec bytes), or None for a delete.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    pub position: Position,
    pub key: Vec<u8>,
    pub row: Option<Vec<u8>>,
}

/// The changes of one table in a push, with the table's definition on the edge (the JSON its
/// catalog stores), from which the cloud checks or creates the table.
#[derive(Clone, Debug, PartialEq)]
pub struct TableChanges {
    pub definition: Vec<u8>,
    pub changes: Vec<Change>,
}

/// A batch of changes pushed by an edge.
#[derive(Clone, Debug, PartialEq)]
pub struct Push {
    pub edge: String,
    /// The edge database's incarnation (see [`outbox::Edge`]).
    pub incarnation: String,
    /// The edge's clock when it sent the push; every change's version is at or below it.
    pub clock: u64,
    pub tables: Vec<TableChanges>,
    /// The last position the push covers: its changes, and before them any the edge passed
    /// over (of a table dropped since). The cloud's cursor moves to it.
    pub through: Option<Position>,
    /// The position the push starts after: the cloud's cursor as the edge last heard it (None:
    /// from the start of the outbox). A cloud whose cursor is behind it lost changes it had
    /// acknowledged (restored from an older backup) and refuses the push.
    pub after: Option<Position>,
}

/// The cloud's answer: every change of the edge at or before `cursor` is committed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ack {
    pub cursor: Position,
    /// The cloud's clock, which the edge merges into its own.
    pub clock: u64,
}

/// The [`META`] record naming the edge this database is (its value: the edge id).
pub fn edge_key() -> Vec<u8> {
    META.record("sync/edge")
}

/// The time of an HLC version (NTP64 since 1970: 32 bits of seconds, 32 of fraction) in
/// microseconds since 1970, as a timestamp holds it.
pub fn hlc_micros(version: u64) -> i64 {
    let seconds = (version >> 32) as i64;
    let fraction = ((version & 0xffff_ffff) * 1_000_000) >> 32;
    seconds * 1_000_000 + fraction as i64
}

/// The token of edge `id` under the cloud's sync secret (`CHRONOS_SYNC_SECRET`): the hex
/// HMAC-SHA256 of the id. With it an edge can push as `id`, and as no other edge.
pub fn edge_token(secret: &[u8], id: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::sign(&key, id.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks that `token` is edge `id`'s (in constant time); SQLSTATE 42501 when it is not.
pub fn check_token(secret: &[u8], id: &str, token: &str) -> crate::error::Result<()> {
    let refused = || crate::error::Error::InsufficientPrivilege(format!("the sync token is not edge \"{id}\"'s"));
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| token.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(refused)?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, id.as_bytes(), &bytes).map_err(|_| refused())
}

/// Whether `id` may name an edge: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn valid_edge_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}
