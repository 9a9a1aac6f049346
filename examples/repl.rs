//! A line-at-a-time SQL shell over an embedded engine, for exploring the SQL layer without a
//! server: `cargo run --example repl -- [data dir]`.

use chronos::sql::{Engine, Outcome};
use chronos::storage::sled::SledStorage;
use std::io::BufRead;
use std::sync::Arc;

fn main() {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "repl-data".into());
    let storage = SledStorage::open(std::path::Path::new(&dir)).expect("open sled");
    let engine = Engine::open(Arc::new(storage)).expect("open engine");
    let mut session = engine.session("admin", "chronos");
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        for result in session.run(&line) {
            match result {
                Ok(Outcome::Rows { rows, tag, .. }) => {
                    for row in rows {
                        let cells: Vec<String> =
                            row.iter().map(|v| if v.is_null() { "NULL".into() } else { v.to_string() }).collect();
                        println!("{}", cells.join(" | "));
                    }
                    println!("{tag}");
                }
                Ok(Outcome::Command { tag }) => println!("{tag}"),
                Ok(Outcome::CopyOut { lines, .. }) => lines.iter().for_each(|l| print!("{l}")),
                Ok(Outcome::CopyIn { .. }) => println!("COPY FROM STDIN needs a client"),
                Err(e) => println!("ERROR {}: {e}", e.sqlstate()),
            }
        }
    }
}
