//! SQL text from a client (simple Query, Parse, column defaults) into the parser: it must
//! return Ok or Err and never panic or overflow the stack.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    let _ = chronos::sql::parser::parse(sql);
    let _ = chronos::sql::parser::parse_expr(sql);
});
