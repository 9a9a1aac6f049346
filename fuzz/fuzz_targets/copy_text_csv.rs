//! COPY … FROM STDIN data into `sql::copy::CopyParser`, text and CSV format, in arbitrary
//! CopyData splits. Must never panic; and since a split only changes where data arrives, the
//! records and the error must be the same as when the data comes in one piece.
//!
//! Input: byte 0 chooses the format (bit 0 CSV, bit 1 HEADER in CSV, bits 2-3 delimiter,
//! bits 4-5 quote, bits 6-7 escape), byte 1 the NULL string (bits 0-1) and the largest
//! CopyData size (bits 2-7: 1..=64, 0 = one piece), byte 2 seeds the split sizes; the rest is
//! the data.

#![no_main]

use chronos::sql::copy::{CopyFormat, CopyParser};
use libfuzzer_sys::fuzz_target;

type Records = Vec<Vec<Option<String>>>;

fn format(b0: u8, b1: u8) -> CopyFormat {
    let csv = b0 & 1 != 0;
    // Single characters a client can name with DELIMITER/QUOTE/ESCAPE, one of them non-ASCII.
    let delimiter = [if csv { ',' } else { '\t' }, '|', ';', '€'][(b0 >> 2 & 3) as usize];
    let quote = ['"', '\'', '|', '€'][(b0 >> 4 & 3) as usize];
    let escape = [quote, '\\', '"', '\''][(b0 >> 6 & 3) as usize];
    let null = [if csv { "" } else { "\\N" }, "NULL", "", "\\N"][(b1 & 3) as usize].to_string();
    CopyFormat { csv, delimiter, null, header: csv && b0 & 2 != 0, quote, escape }
}

/// Feeds `pieces`, then ends the data; stops at the first error, as the server does.
fn run<'a>(format: &CopyFormat, pieces: impl Iterator<Item = &'a [u8]>) -> (Records, Option<String>) {
    let mut parser = CopyParser::new(format.clone());
    let mut records = Vec::new();
    for piece in pieces {
        match parser.feed(piece) {
            Ok(r) => records.extend(r),
            Err(e) => return (records, Some(e.to_string())),
        }
    }
    match parser.finish() {
        Ok(r) => records.extend(r),
        Err(e) => return (records, Some(e.to_string())),
    }
    (records, None)
}

fuzz_target!(|input: &[u8]| {
    if input.len() < 3 {
        return;
    }
    let (b0, b1, mut seed, data) = (input[0], input[1], input[2] as u32 | 0x100, &input[3..]);
    let format = format(b0, b1);
    let max_piece = (b1 >> 2) as usize;

    // Split sizes from a small xorshift, so one input always splits the same way.
    let mut pieces = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let n = if max_piece == 0 {
            data.len()
        } else {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            1 + seed as usize % max_piece
        };
        let end = (at + n).min(data.len());
        pieces.push(&data[at..end]);
        at = end;
    }

    let (split_records, split_error) = run(&format, pieces.iter().copied());
    let (whole_records, whole_error) = run(&format, std::iter::once(data));
    assert_eq!(split_error, whole_error, "COPY error depends on how the data was split ({format:?})");
    if whole_error.is_none() {
        assert_eq!(split_records, whole_records, "COPY records depend on how the data was split ({format:?})");
    }
});
