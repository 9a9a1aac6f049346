//! The wall clock the database reads: commit versions (the HLC's physical part), `now()`,
//! `clock_timestamp()` and TTL cutoffs all come from here, so one setting moves them together.
//!
//! `CHRONOS_CLOCK_OFFSET_MS` (signed milliseconds, read once) shifts this process's clock
//! against the system's. It exists for fault tests (`tests/chaos`): a member whose clock runs
//! seconds ahead of or behind its peers, on one machine. Leases and timeouts are measured on
//! the monotonic clock and are not affected by it.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The offset in microseconds, from `CHRONOS_CLOCK_OFFSET_MS` (0 when unset or unreadable).
fn offset_micros() -> i64 {
    static OFFSET: OnceLock<i64> = OnceLock::new();
    *OFFSET.get_or_init(|| {
        let Ok(text) = std::env::var("CHRONOS_CLOCK_OFFSET_MS") else { return 0 };
        match text.trim().parse::<i64>() {
            Ok(ms) => {
                tracing::warn!(offset_ms = ms, "the wall clock is shifted by CHRONOS_CLOCK_OFFSET_MS");
                ms.saturating_mul(1000)
            }
            Err(_) => {
                tracing::warn!(value = %text, "CHRONOS_CLOCK_OFFSET_MS is not a whole number of milliseconds; ignored");
                0
            }
        }
    })
}

/// Microseconds since the Unix epoch.
pub fn unix_micros() -> i64 {
    let system = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0);
    system.saturating_add(offset_micros()).max(0)
}

/// The time as the HLC reads it (NTP64 since the Unix epoch).
pub fn ntp64() -> uhlc::NTP64 {
    uhlc::NTP64::from(Duration::from_micros(unix_micros() as u64))
}
