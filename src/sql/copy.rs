//! COPY: PostgreSQL's text and CSV formats, parsed incrementally as data arrives and written
//! for COPY … TO STDOUT.

use crate::error::{Error, Result};
use crate::types::timezone::Zone;
use crate::types::Value;
use sqlparser::ast;

/// The options of one COPY statement.
#[derive(Clone, Debug, PartialEq)]
pub struct CopyFormat {
    pub csv: bool,
    pub delimiter: char,
    pub null: String,
    pub header: bool,
    pub quote: char,
    pub escape: char,
}

impl CopyFormat {
    /// The format described by a COPY statement's options (new and legacy syntax).
    pub fn from_options(options: &[ast::CopyOption], legacy: &[ast::CopyLegacyOption]) -> Result<Self> {
        let mut csv = false;
        let (mut delimiter, mut null, mut header, mut quote, mut escape) = (None, None, false, '"', None);
        for o in options {
            match o {
                ast::CopyOption::Format(f) => match f.value.to_ascii_lowercase().as_str() {
                    "csv" => csv = true,
                    "text" => csv = false,
                    other => return Err(Error::FeatureNotSupported(format!("COPY format \"{other}\""))),
                },
                ast::CopyOption::Delimiter(c) => delimiter = Some(*c),
                ast::CopyOption::Null(n) => null = Some(n.clone()),
                ast::CopyOption::Header(h) => header = *h,
                ast::CopyOption::Quote(c) => quote = *c,
                ast::CopyOption::Escape(c) => escape = Some(*c),
                ast::CopyOption::Freeze(_) => {}
                other => return Err(Error::FeatureNotSupported(format!("COPY option {other}"))),
            }
        }
        for o in legacy {
            match o {
                ast::CopyLegacyOption::Csv(csv_options) => {
                    csv = true;
                    for c in csv_options {
                        match c {
                            ast::CopyLegacyCsvOption::Header => header = true,
                            ast::CopyLegacyCsvOption::Quote(q) => quote = *q,
                            ast::CopyLegacyCsvOption::Escape(e) => escape = Some(*e),
                            other => return Err(Error::FeatureNotSupported(format!("COPY option {other}"))),
                        }
                    }
                }
                ast::CopyLegacyOption::Delimiter(c) => delimiter = Some(*c),
                ast::CopyLegacyOption::Null(n) => null = Some(n.clone()),
                ast::CopyLegacyOption::Header => header = true,
                ast::CopyLegacyOption::Binary => {
                    return Err(Error::FeatureNotSupported("COPY in binary format".into()))
                }
                other => return Err(Error::FeatureNotSupported(format!("COPY option {other}"))),
            }
        }
        if header && !csv {
            return Err(Error::FeatureNotSupported("COPY HEADER is available only in CSV mode".into()));
        }
        Ok(Self {
            csv,
            delimiter: delimiter.unwrap_or(if csv { ',' } else { '\t' }),
            null: null.unwrap_or_else(|| if csv { String::new() } else { "\\N".into() }),
            header,
            quote,
            escape: escape.unwrap_or(quote),
        })
    }

    /// One row in this format, with its line terminator; a `timestamptz` in the session's
    /// time zone `zone`.
    pub fn format_row(&self, row: &[Value], zone: &Zone) -> String {
        let mut line = String::new();
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                line.push(self.delimiter);
            }
            if v.is_null() {
                line.push_str(&self.null);
                continue;
            }
            let text = match v {
                Value::Bool(b) => (if *b { "t" } else { "f" }).to_string(),
                other => other.in_zone(zone).to_string(),
            };
            if self.csv {
                let needs_quotes = text.is_empty()
                    || text == self.null
                    || text.contains([self.delimiter, self.quote, '\n', '\r'])
                    || text.starts_with(char::is_whitespace)
                    || text.ends_with(char::is_whitespace);
                if needs_quotes {
                    line.push(self.quote);
                    for c in text.chars() {
                        if c == self.quote || c == self.escape {
                            line.push(self.escape);
                        }
                        line.push(c);
                    }
                    line.push(self.quote);
                } else {
                    line.push_str(&text);
                }
            } else {
                for c in text.chars() {
                    match c {
                        '\\' => line.push_str("\\\\"),
                        '\n' => line.push_str("\\n"),
                        '\r' => line.push_str("\\r"),
                        '\t' => line.push_str("\\t"),
                        c if c == self.delimiter => {
                            line.push('\\');
                            line.push(c);
                        }
                        c => line.push(c),
                    }
                }
            }
        }
        line.push('\n');
        line
    }
}

/// Splits incoming COPY data into records of fields (None for NULL), keeping partial records
/// across chunks.
pub struct CopyParser {
    format: CopyFormat,
    /// Bytes of the incomplete last line.
    pending: Vec<u8>,
    /// How much of `pending` has been scanned, and the quoting state there: a long line that
    /// arrives in many chunks is scanned once, not once per chunk.
    scanned: usize,
    in_quotes: bool,
    /// The previous byte was an escape inside quotes (CSV with ESCAPE other than QUOTE).
    escaped: bool,
    skip_header: bool,
    ended: bool,
    /// Lines consumed so far (for error messages).
    pub line: u64,
}

impl CopyParser {
    pub fn new(format: CopyFormat) -> Self {
        let skip_header = format.header;
        Self {
            format,
            pending: Vec::new(),
            scanned: 0,
            in_quotes: false,
            escaped: false,
            skip_header,
            ended: false,
            line: 0,
        }
    }

    /// Feeds a chunk; returns the records it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Vec<Option<String>>>> {
        self.pending.extend_from_slice(chunk);
        let mut records = Vec::new();
        let mut start = 0;
        let bytes = std::mem::take(&mut self.pending);
        let (quote, escape) = (self.format.quote as u32, self.format.escape as u32);
        let mut i = self.scanned;
        while i < bytes.len() {
            let b = bytes[i] as u32;
            if self.format.csv && self.escaped {
                self.escaped = false;
            } else if self.format.csv && self.in_quotes && b == escape && escape != quote {
                self.escaped = true;
            } else if self.format.csv && b == quote {
                self.in_quotes = !self.in_quotes;
            } else if b == u32::from(b'\n') && !self.in_quotes {
                let line = &bytes[start..i];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(record) = self.parse_line(line)? {
                    records.push(record);
                }
                start = i + 1;
            }
            i += 1;
        }
        self.pending = bytes[start..].to_vec();
        self.scanned = self.pending.len();
        Ok(records)
    }

    /// Ends the data; a final line without a newline is a record too.
    pub fn finish(&mut self) -> Result<Vec<Vec<Option<String>>>> {
        let rest = std::mem::take(&mut self.pending);
        if rest.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.parse_line(&rest)?.into_iter().collect())
    }

    fn parse_line(&mut self, line: &[u8]) -> Result<Option<Vec<Option<String>>>> {
        self.line += 1;
        if self.ended {
            return Ok(None);
        }
        if line == b"\\." {
            self.ended = true;
            return Ok(None);
        }
        if self.skip_header {
            self.skip_header = false;
            return Ok(None);
        }
        let text = std::str::from_utf8(line).map_err(|_| {
            Error::DataException("22021", format!("invalid byte sequence for encoding \"UTF8\" (line {})", self.line))
        })?;
        Ok(Some(if self.format.csv { self.csv_fields(text)? } else { self.text_fields(text)? }))
    }

    fn text_fields(&self, line: &str) -> Result<Vec<Option<String>>> {
        let mut fields = Vec::new();
        let mut raw = String::new();
        let mut field = String::new();
        let mut chars = line.chars().peekable();
        let finish = |raw: &mut String, field: &mut String, fields: &mut Vec<Option<String>>| {
            if *raw == self.format.null {
                fields.push(None);
            } else {
                fields.push(Some(std::mem::take(field)));
            }
            raw.clear();
            field.clear();
        };
        while let Some(c) = chars.next() {
            if c == self.format.delimiter {
                finish(&mut raw, &mut field, &mut fields);
                continue;
            }
            raw.push(c);
            if c != '\\' {
                field.push(c);
                continue;
            }
            let Some(n) = chars.next() else { break };
            raw.push(n);
            field.push(match n {
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                'b' => '\u{8}',
                'f' => '\u{c}',
                'v' => '\u{b}',
                other => other,
            });
        }
        finish(&mut raw, &mut field, &mut fields);
        Ok(fields)
    }

    fn csv_fields(&self, line: &str) -> Result<Vec<Option<String>>> {
        let (quote, escape, delimiter) = (self.format.quote, self.format.escape, self.format.delimiter);
        let mut fields = Vec::new();
        let mut chars = line.chars().peekable();
        loop {
            let mut field = String::new();
            let mut quoted = false;
            let mut in_quotes = false;
            while let Some(&c) = chars.peek() {
                if in_quotes {
                    chars.next();
                    if c == escape && escape != quote && matches!(chars.peek(), Some(&n) if n == quote || n == escape) {
                        field.extend(chars.next());
                    } else if c == quote {
                        if escape == quote && chars.peek() == Some(&quote) {
                            field.push(quote);
                            chars.next();
                        } else {
                            in_quotes = false;
                        }
                    } else {
                        field.push(c);
                    }
                } else if c == delimiter {
                    break;
                } else if c == quote {
                    chars.next();
                    quoted = true;
                    in_quotes = true;
                } else {
                    chars.next();
                    field.push(c);
                }
            }
            if in_quotes {
                return Err(Error::DataException(
                    "22P04",
                    format!("unterminated CSV quoted field (line {})", self.line),
                ));
            }
            fields.push(if !quoted && field == self.format.null { None } else { Some(field) });
            if chars.next().is_none() {
                return Ok(fields);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_format() -> CopyFormat {
        CopyFormat::from_options(&[], &[]).unwrap()
    }

    #[test]
    fn text_format_round_trips_escapes_and_nulls() {
        let f = text_format();
        let row = vec![Value::Text("a\tb\\c\nd".into()), Value::Null, Value::Int4(7)];
        let line = f.format_row(&row, &Zone::UTC);
        assert_eq!(line, "a\\tb\\\\c\\nd\t\\N\t7\n");
        let mut p = CopyParser::new(f);
        let mut records = p.feed(&line.as_bytes()[..5]).unwrap();
        records.extend(p.feed(&line.as_bytes()[5..]).unwrap());
        assert_eq!(records, vec![vec![Some("a\tb\\c\nd".into()), None, Some("7".into())]]);
    }

    #[test]
    fn csv_handles_quotes_newlines_and_header() {
        let format =
            CopyFormat { csv: true, delimiter: ',', null: String::new(), header: true, quote: '"', escape: '"' };
        let mut p = CopyParser::new(format.clone());
        let records = p.feed(b"id,note\n1,\"a, \"\"quoted\"\"\nline\"\n2,\n3,\"\"\n").unwrap();
        assert_eq!(
            records,
            vec![
                vec![Some("1".into()), Some("a, \"quoted\"\nline".into())],
                vec![Some("2".into()), None],
                vec![Some("3".into()), Some(String::new())],
            ]
        );
        assert_eq!(format.format_row(&[Value::Text("x,y".into()), Value::Null], &Zone::UTC), "\"x,y\",\n");
    }

    #[test]
    fn csv_escape_other_than_quote_keeps_rows_apart() {
        let format =
            CopyFormat { csv: true, delimiter: '|', null: "NULL".into(), header: false, quote: '"', escape: '\\' };
        let data = b"1|\"a\\\"b\\\\\"|x\n2|NULL|\n";
        let want = vec![
            vec![Some("1".into()), Some("a\"b\\".into()), Some("x".into())],
            vec![Some("2".into()), None, Some(String::new())],
        ];
        assert_eq!(CopyParser::new(format.clone()).feed(data).unwrap(), want);
        // However the data is split into chunks, the records are the same.
        for split in 1..data.len() {
            let mut p = CopyParser::new(format.clone());
            let mut got = p.feed(&data[..split]).unwrap();
            got.extend(p.feed(&data[split..]).unwrap());
            assert_eq!(got, want, "split at {split}");
        }
    }

    #[test]
    fn end_marker_stops_the_data() {
        let mut p = CopyParser::new(text_format());
        let records = p.feed(b"1\n\\.\n2\n").unwrap();
        assert_eq!(records.len(), 1);
    }
}
