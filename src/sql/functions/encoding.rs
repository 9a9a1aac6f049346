//! Byte and character-encoding functions: `encode`/`decode` (hex, base64, escape),
//! `convert_to`/`convert_from`, and the digests `md5` and `sha256`.

use super::Signature;
use crate::error::{Error, Result};
use crate::types::cast::bytea_from_escape;
use crate::types::{DataType, Value};
use base64::Engine as _;

/// Resolves one of these functions, or None when `name` is not one of them.
pub fn resolve(name: &str, args: &[DataType]) -> Option<Signature> {
    use DataType as T;
    let sig = |name: &'static str, arg_types: Vec<DataType>, return_type: DataType| {
        Some(Signature { name, arg_types, return_type })
    };
    match (name, args) {
        ("encode", [_, _]) => sig("encode", vec![T::Bytea, T::Text], T::Text),
        ("decode", [_, _]) => sig("decode", vec![T::Text, T::Text], T::Bytea),
        ("convert_to", [_, _]) => sig("convert_to", vec![T::Text, T::Text], T::Bytea),
        ("convert_from", [_, _]) => sig("convert_from", vec![T::Bytea, T::Text], T::Text),
        ("md5", [T::Bytea]) => sig("md5", vec![T::Bytea], T::Text),
        ("md5", [_]) => sig("md5", vec![T::Text], T::Text),
        ("sha256", [_]) => sig("sha256", vec![T::Bytea], T::Bytea),
        _ => None,
    }
}

/// Evaluates a function [`resolve`] returned (arguments are never NULL here); None when
/// `name` is not one of them.
pub fn call(name: &str, args: &[Value]) -> Option<Result<Value>> {
    let bytes = |i: usize| match args.get(i) {
        Some(Value::Bytea(b)) => b.as_slice(),
        Some(Value::Text(s)) => s.as_bytes(),
        _ => &[],
    };
    let text = |i: usize| match args.get(i) {
        Some(Value::Text(s)) => s.as_str(),
        _ => "",
    };
    Some(match name {
        "encode" => encode(bytes(0), text(1)).map(Value::Text),
        "decode" => decode(text(0), text(1)).map(Value::Bytea),
        "convert_to" => utf8_encoding(text(1), "destination").map(|()| Value::Bytea(text(0).as_bytes().to_vec())),
        "convert_from" => utf8_encoding(text(1), "source").and_then(|()| {
            String::from_utf8(bytes(0).to_vec()).map(Value::Text).map_err(|e| {
                let bad = bytes(0)[e.utf8_error().valid_up_to()];
                Error::DataException("22021", format!("invalid byte sequence for encoding \"UTF8\": 0x{bad:02x}"))
            })
        }),
        "md5" => Ok(Value::Text(hex(&<md5::Md5 as md5::Digest>::digest(bytes(0))))),
        "sha256" => Ok(Value::Bytea(ring::digest::digest(&ring::digest::SHA256, bytes(0)).as_ref().to_vec())),
        _ => return None,
    })
}

/// Only UTF-8 (the server encoding) is converted to and from.
fn utf8_encoding(name: &str, role: &str) -> Result<()> {
    let normalized: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_lowercase();
    match normalized.as_str() {
        "utf8" | "unicode" => Ok(()),
        "sqlascii" | "latin1" | "latin9" | "win1252" | "euckr" | "eucjp" | "sjis" | "gbk" | "big5" | "koi8r" => {
            Err(Error::FeatureNotSupported(format!("conversion to or from encoding \"{name}\"")))
        }
        _ => Err(Error::InvalidParameter(format!("invalid {role} encoding name \"{name}\""))),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn encode(bytes: &[u8], format: &str) -> Result<String> {
    Ok(match format.to_lowercase().as_str() {
        "hex" => hex(bytes),
        "base64" => {
            // PostgreSQL breaks base64 output into lines of 76 characters.
            let flat = base64::engine::general_purpose::STANDARD.encode(bytes);
            let lines: Vec<&str> =
                flat.as_bytes().chunks(76).map(|c| std::str::from_utf8(c).unwrap_or_default()).collect();
            lines.join("\n")
        }
        "escape" => {
            let mut out = String::with_capacity(bytes.len());
            for &b in bytes {
                match b {
                    b'\\' => out.push_str("\\\\"),
                    0 | 0x80..=0xff => out.push_str(&format!("\\{b:03o}")),
                    other => out.push(other as char),
                }
            }
            out
        }
        _ => return Err(Error::InvalidParameter(format!("unrecognized encoding: \"{format}\""))),
    })
}

fn decode(text: &str, format: &str) -> Result<Vec<u8>> {
    match format.to_lowercase().as_str() {
        "hex" => {
            let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            if let Some(&bad) = digits.iter().find(|b| !b.is_ascii_hexdigit()) {
                return Err(Error::InvalidParameter(format!("invalid hexadecimal digit: \"{}\"", bad as char)));
            }
            if !digits.len().is_multiple_of(2) {
                return Err(Error::InvalidParameter("invalid hexadecimal data: odd number of digits".into()));
            }
            Ok(digits
                .chunks(2)
                .map(|pair| {
                    let digit = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                    digit(pair[0]) << 4 | digit(pair[1])
                })
                .collect())
        }
        "base64" => {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            if let Some(bad) = compact.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))) {
                return Err(Error::InvalidParameter(format!(
                    "invalid symbol \"{bad}\" found while decoding base64 sequence"
                )));
            }
            base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|_| Error::InvalidParameter("invalid base64 end sequence".into()))
        }
        "escape" => bytea_from_escape(text),
        _ => Err(Error::InvalidParameter(format!("unrecognized encoding: \"{format}\""))),
    }
}
