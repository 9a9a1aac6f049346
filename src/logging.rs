//! Where the server's log goes and in what form, from the environment:
//!
//! - `CHRONOS_LOG` (else `RUST_LOG`, else `info`): the filter, `tracing` directives such as
//!   `warn,chronos::raft=debug`.
//! - `CHRONOS_LOG_FILE`: append to this file instead of stderr, rotated by
//!   `CHRONOS_LOG_ROTATION` (`daily`, the default, at midnight UTC; `never`; or a size such as
//!   `100MB`, in MiB), keeping `CHRONOS_LOG_KEEP` rotated files (default 7).
//! - `CHRONOS_LOG_FORMAT`: `text` (default) or `json`, one object per line for collectors.
//!
//! Colour codes are written only to a terminal.

use chrono::{NaiveDate, Utc};
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::prelude::*;

/// When a log file is set aside and a new one started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    Never,
    /// At the first write of a new UTC day; the old file gets the day's date as suffix.
    Daily,
    /// Before a write that would take the file past this many bytes; the old file gets `.1`
    /// (and older ones shift up).
    Size(u64),
}

impl std::str::FromStr for Rotation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "never" => return Ok(Rotation::Never),
            "daily" => return Ok(Rotation::Daily),
            _ => {}
        }
        let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &s[digits.len()..];
        let mib = match unit.to_ascii_lowercase().as_str() {
            "mb" | "mib" => 1u64 << 20,
            "kb" | "kib" => 1 << 10,
            "gb" | "gib" => 1 << 30,
            _ => return Err(format!("log rotation {s:?}: daily, never, or a size such as 100MB")),
        };
        match digits.trim().parse::<u64>() {
            Ok(n) if n > 0 => {
                n.checked_mul(mib).map(Rotation::Size).ok_or_else(|| format!("log rotation {s:?} is too large"))
            }
            _ => Err(format!("log rotation {s:?}: daily, never, or a size such as 100MB")),
        }
    }
}

/// A log file that rotates itself. Writes go straight to the file (one `write` per event, as
/// the formatter hands them over), so a crash loses nothing already logged.
pub struct RotatingFile {
    path: PathBuf,
    rotation: Rotation,
    keep: usize,
    file: File,
    size: u64,
    day: NaiveDate,
    today: fn() -> NaiveDate,
}

impl RotatingFile {
    pub fn open(path: &Path, rotation: Rotation, keep: usize) -> std::io::Result<Self> {
        Self::open_with_clock(path, rotation, keep, || Utc::now().date_naive())
    }

    fn open_with_clock(
        path: &Path,
        rotation: Rotation,
        keep: usize,
        today: fn() -> NaiveDate,
    ) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let meta = file.metadata()?;
        // A file left from an earlier day is rotated at the first write.
        let day = meta.modified().map(|t| chrono::DateTime::<Utc>::from(t).date_naive()).unwrap_or_else(|_| today());
        Ok(RotatingFile { path: path.to_path_buf(), rotation, keep: keep.max(1), file, size: meta.len(), day, today })
    }

    fn rotated_name(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".");
        name.push(suffix);
        PathBuf::from(name)
    }

    /// Sets the current file aside and starts an empty one.
    fn rotate(&mut self, today: NaiveDate) -> std::io::Result<()> {
        self.file.flush()?;
        match self.rotation {
            Rotation::Never => return Ok(()),
            Rotation::Size(_) => {
                let _ = std::fs::remove_file(self.rotated_name(&self.keep.to_string()));
                for n in (1..self.keep).rev() {
                    let _ = std::fs::rename(self.rotated_name(&n.to_string()), self.rotated_name(&(n + 1).to_string()));
                }
                std::fs::rename(&self.path, self.rotated_name("1"))?;
            }
            Rotation::Daily => {
                std::fs::rename(&self.path, self.rotated_name(&self.day.format("%Y-%m-%d").to_string()))?;
                self.remove_old_days();
            }
        }
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        self.day = today;
        Ok(())
    }

    /// Keeps the newest `keep` dated files.
    fn remove_old_days(&self) {
        let (Some(dir), Some(base)) = (self.path.parent(), self.path.file_name().and_then(|n| n.to_str())) else {
            return;
        };
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        let prefix = format!("{base}.");
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut dated: Vec<(NaiveDate, PathBuf)> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let date = NaiveDate::parse_from_str(name.strip_prefix(&prefix)?, "%Y-%m-%d").ok()?;
                Some((date, e.path()))
            })
            .collect();
        dated.sort();
        let excess = dated.len().saturating_sub(self.keep);
        for (_, path) in dated.into_iter().take(excess) {
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Write for RotatingFile {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let today = (self.today)();
        let due = match self.rotation {
            Rotation::Never => false,
            Rotation::Daily => today != self.day,
            Rotation::Size(limit) => self.size > 0 && self.size + data.len() as u64 > limit,
        };
        if due {
            // A failed rotation (a full disk, a removed directory) must not lose the line.
            if let Err(e) = self.rotate(today) {
                let _ = writeln!(std::io::stderr(), "chronos: cannot rotate {}: {e}", self.path.display());
                self.day = today;
            }
        }
        let n = self.file.write(data)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Installs the process's subscriber from the environment (see the module's comment), or says
/// what is wrong with it.
pub fn init() -> Result<(), String> {
    let directives = env("CHRONOS_LOG").or_else(|| env("RUST_LOG")).unwrap_or_else(|| "info".into());
    let filter =
        tracing_subscriber::EnvFilter::try_new(&directives).map_err(|e| format!("log filter {directives:?}: {e}"))?;
    let json = match env("CHRONOS_LOG_FORMAT").as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => return Err(format!("CHRONOS_LOG_FORMAT={other:?}: text or json")),
    };
    let (writer, ansi) = match env("CHRONOS_LOG_FILE") {
        Some(path) => {
            let rotation: Rotation = env("CHRONOS_LOG_ROTATION").as_deref().unwrap_or("daily").parse()?;
            let keep = match env("CHRONOS_LOG_KEEP") {
                None => 7,
                Some(k) => k.trim().parse().map_err(|_| format!("CHRONOS_LOG_KEEP={k:?}: a number of files"))?,
            };
            let file =
                RotatingFile::open(Path::new(&path), rotation, keep).map_err(|e| format!("log file {path}: {e}"))?;
            (BoxMakeWriter::new(std::sync::Mutex::new(file)), false)
        }
        None => (BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal()),
    };
    let layer = if json {
        tracing_subscriber::fmt::layer().json().with_writer(writer).boxed()
    } else {
        tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(writer).boxed()
    };
    tracing_subscriber::registry().with(filter).with(layer).try_init().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_parse() {
        assert_eq!("daily".parse(), Ok(Rotation::Daily));
        assert_eq!("NEVER".parse(), Ok(Rotation::Never));
        assert_eq!("100MB".parse(), Ok(Rotation::Size(100 << 20)));
        assert_eq!("64 KiB".parse(), Ok(Rotation::Size(64 << 10)));
        assert!("0MB".parse::<Rotation>().is_err());
        assert!("100".parse::<Rotation>().is_err());
        assert!("weekly".parse::<Rotation>().is_err());
        assert!("99999999999999GB".parse::<Rotation>().is_err());
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default()
    }

    #[test]
    fn size_rotation_keeps_whole_lines_and_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chronos.log");
        let mut log = RotatingFile::open(&path, Rotation::Size(100), 2).unwrap();
        for i in 0..10 {
            log.write_all(format!("line {i:02} {}\n", "x".repeat(30)).as_bytes()).unwrap();
        }
        // 39-byte lines, at most two in a 100-byte file: 0-1, 2-3, … 8-9; two rotated kept.
        assert!(read(&path).starts_with("line 08"), "{}", read(&path));
        assert!(read(&path).contains("line 09"));
        assert!(read(&dir.path().join("chronos.log.1")).starts_with("line 06"));
        assert!(read(&dir.path().join("chronos.log.2")).starts_with("line 04"));
        assert!(!dir.path().join("chronos.log.3").exists());
        for file in ["chronos.log", "chronos.log.1", "chronos.log.2"] {
            assert!(read(&dir.path().join(file)).lines().all(|l| l.len() == 38), "only whole lines");
        }
        // A line larger than the limit still goes into a file of its own.
        log.write_all(&[b'y'; 300]).unwrap();
        assert_eq!(read(&path).len(), 300);
    }

    fn day_one() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()
    }
    fn day_two() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap()
    }

    #[test]
    fn daily_rotation_names_files_by_their_day_and_reopens_appending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        let mut log = RotatingFile::open_with_clock(&path, Rotation::Daily, 7, day_one).unwrap();
        log.day = day_one();
        log.write_all(b"first day\n").unwrap();
        drop(log);
        // Reopened the same day: appends.
        let mut log = RotatingFile::open_with_clock(&path, Rotation::Daily, 7, day_one).unwrap();
        log.day = day_one();
        log.write_all(b"still the first day\n").unwrap();
        log.today = day_two;
        log.write_all(b"second day\n").unwrap();
        assert_eq!(read(&dir.path().join("node.log.2026-03-01")), "first day\nstill the first day\n");
        assert_eq!(read(&path), "second day\n");
    }

    #[test]
    fn daily_rotation_keeps_the_newest_days() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.log");
        for day in ["2026-02-25", "2026-02-26", "2026-02-27", "2026-02-28"] {
            std::fs::write(dir.path().join(format!("node.log.{day}")), day).unwrap();
        }
        std::fs::write(dir.path().join("node.log.keep-me"), "not a day").unwrap();
        let mut log = RotatingFile::open_with_clock(&path, Rotation::Daily, 3, day_two).unwrap();
        log.day = day_one();
        log.write_all(b"x\n").unwrap();
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(
            names,
            ["node.log", "node.log.2026-02-27", "node.log.2026-02-28", "node.log.2026-03-01", "node.log.keep-me"]
        );
    }
}
