//! A validating framing layer in front of pgwire's message decoders.
//!
//! pgwire's decoders read a message's fields from the read buffer without checking that the
//! message holds them (see `fuzz/regressions/frontend_messages`): a truncated Parse, Bind,
//! Describe, Close, Execute or SASL message, or a length field below 4, makes them panic or
//! read into the next message. [`Validated`] sits between the socket (after TLS) and the
//! decoder: it passes on only whole messages whose structure it has checked against the
//! protocol, and fails the read with a [`FramingError`] otherwise, which the connection turns
//! into a FATAL 08P01 ErrorResponse and a closed connection, as PostgreSQL does.

use bytes::{Buf, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The largest startup packet accepted (PostgreSQL's limit).
const MAX_STARTUP_PACKET: usize = 10_000;
const CANCEL_REQUEST_CODE: u32 = 80_877_102;
const SSL_REQUEST_CODE: u32 = 80_877_103;
const GSSENC_REQUEST_CODE: u32 = 80_877_104;

/// Why a message was refused; carried inside the `io::Error` of the failed read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError(pub String);

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FramingError {}

/// The framing error inside an I/O error, if that is what it is.
pub fn framing_error(e: &io::Error) -> Option<&FramingError> {
    e.get_ref().and_then(|inner| inner.downcast_ref::<FramingError>())
}

/// Where the connection is in the protocol, as far as framing goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Untyped messages: SSLRequest, GSSENCRequest, CancelRequest, then the startup packet.
    Startup,
    /// Typed messages; `sasl_initial` while the next `p` must be a SASLInitialResponse.
    Typed { sasl_initial: bool },
}

/// Checks a stream of frontend messages; see the module documentation.
pub struct Validator {
    phase: Phase,
    sasl: bool,
    max_message: usize,
}

impl Validator {
    /// `sasl`: the server authenticates with SASL, so the first `p` message is a
    /// SASLInitialResponse. `max_message`: the largest typed message accepted, in bytes.
    pub fn new(sasl: bool, max_message: usize) -> Self {
        Self { phase: Phase::Startup, sasl, max_message }
    }

    /// The length of the first message in `buf` once it is complete and valid; Ok(None)
    /// while more bytes are needed.
    pub fn next_message(&mut self, buf: &[u8]) -> Result<Option<usize>, FramingError> {
        let bad = |m: &str| Err(FramingError(m.to_string()));
        match self.phase {
            Phase::Startup => {
                let Some(len) = read_i32(buf, 0) else { return Ok(None) };
                if !(8..=MAX_STARTUP_PACKET as i32).contains(&len) {
                    return bad("invalid length of startup packet");
                }
                let len = len as usize;
                if buf.len() < len {
                    return Ok(None);
                }
                let code = read_i32(buf, 4).unwrap_or_default() as u32;
                let body = &buf[8..len];
                match code {
                    SSL_REQUEST_CODE | GSSENC_REQUEST_CODE if body.is_empty() => {}
                    CANCEL_REQUEST_CODE if (8..=264).contains(&body.len()) => {}
                    SSL_REQUEST_CODE | GSSENC_REQUEST_CODE | CANCEL_REQUEST_CODE => {
                        return bad("invalid length of startup packet")
                    }
                    code if code >> 16 == 3 => {
                        if !startup_parameters_valid(body) {
                            return bad("invalid startup packet layout: expected terminator as last byte");
                        }
                        self.phase = Phase::Typed { sasl_initial: self.sasl };
                    }
                    _ => return bad("unsupported frontend protocol"),
                }
                Ok(Some(len))
            }
            Phase::Typed { sasl_initial } => {
                let (Some(&kind), Some(len)) = (buf.first(), read_i32(buf, 1)) else { return Ok(None) };
                if len < 4 {
                    return bad("invalid message length");
                }
                let len = len as usize;
                if len > self.max_message {
                    return Err(FramingError(format!(
                        "message of {len} bytes is larger than the limit of {} bytes",
                        self.max_message
                    )));
                }
                if buf.len() < len + 1 {
                    return Ok(None);
                }
                let body = &buf[5..len + 1];
                let valid = match kind {
                    b'Q' | b'f' => cstrings(body, 1).is_some_and(|rest| rest.is_empty()),
                    b'P' => parse_valid(body),
                    b'B' => bind_valid(body),
                    b'D' | b'C' => {
                        matches!(body.first(), Some(b'S' | b'P')) && cstrings(&body[1..], 1) == Some(&[][..])
                    }
                    b'E' => cstrings(body, 1).is_some_and(|rest| rest.len() == 4),
                    b'S' | b'H' | b'X' | b'c' => body.is_empty(),
                    b'd' => true,
                    b'p' if sasl_initial => {
                        self.phase = Phase::Typed { sasl_initial: false };
                        sasl_initial_valid(body)
                    }
                    b'p' => true,
                    other => {
                        return Err(FramingError(format!("invalid frontend message type {}", other as char)));
                    }
                };
                if !valid {
                    return Err(FramingError(format!("invalid message format ({} message)", kind as char)));
                }
                Ok(Some(len + 1))
            }
        }
    }
}

fn read_i32(buf: &[u8], at: usize) -> Option<i32> {
    buf.get(at..at + 4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn read_i16(buf: &[u8], at: usize) -> Option<i16> {
    buf.get(at..at + 2).map(|b| i16::from_be_bytes([b[0], b[1]]))
}

/// Skips `n` NUL-terminated strings; the rest, or None if one is unterminated.
fn cstrings(mut buf: &[u8], n: usize) -> Option<&[u8]> {
    for _ in 0..n {
        let end = buf.iter().position(|b| *b == 0)?;
        buf = &buf[end + 1..];
    }
    Some(buf)
}

/// `name\0value\0 … \0`.
fn startup_parameters_valid(body: &[u8]) -> bool {
    body.last() == Some(&0) && body.split(|b| *b == 0).filter(|s| !s.is_empty()).count() % 2 == 0
}

/// Parse: statement name, query, parameter type count and that many type oids.
fn parse_valid(body: &[u8]) -> bool {
    let Some(rest) = cstrings(body, 2) else { return false };
    match read_i16(rest, 0) {
        Some(n) if n >= 0 => rest.len() == 2 + 4 * n as usize,
        _ => false,
    }
}

/// Bind: portal, statement, format codes, parameters (length-prefixed, -1 for NULL), result
/// format codes.
fn bind_valid(body: &[u8]) -> bool {
    let Some(rest) = cstrings(body, 2) else { return false };
    let mut at = 0;
    let mut counted = |width: usize| -> Option<usize> {
        let n = read_i16(rest, at)?;
        if n < 0 {
            return None;
        }
        at += 2 + width * n as usize;
        (at <= rest.len()).then_some(n as usize)
    };
    if counted(2).is_none() {
        return false;
    }
    let Some(parameters) = read_i16(rest, at).filter(|n| *n >= 0) else { return false };
    at += 2;
    for _ in 0..parameters {
        let Some(len) = read_i32(rest, at) else { return false };
        at += 4;
        match len {
            -1 => {}
            len if len >= 0 && at + len as usize <= rest.len() => at += len as usize,
            _ => return false,
        }
    }
    let Some(results) = read_i16(rest, at).filter(|n| *n >= 0) else { return false };
    at += 2 + 2 * results as usize;
    at == rest.len()
}

/// SASLInitialResponse: mechanism name, then the initial response's length (-1: none) and bytes.
fn sasl_initial_valid(body: &[u8]) -> bool {
    let Some(rest) = cstrings(body, 1) else { return false };
    match read_i32(rest, 0) {
        Some(-1) => rest.len() == 4,
        Some(n) if n >= 0 => rest.len() == 4 + n as usize,
        _ => false,
    }
}

/// An I/O stream whose reads yield only whole, validated frontend messages.
pub struct Validated<S> {
    inner: S,
    validator: Validator,
    /// Read from `inner`, not yet validated.
    pending: BytesMut,
    /// Validated, not yet handed out.
    ready: BytesMut,
    failed: Option<FramingError>,
}

impl<S> Validated<S> {
    /// Wraps `inner`; `already_read` are bytes read from it before (they are validated too).
    pub fn new(inner: S, validator: Validator, already_read: BytesMut) -> Self {
        let mut validated = Self { inner, validator, pending: already_read, ready: BytesMut::new(), failed: None };
        if let Err(e) = validated.validate() {
            validated.failed = Some(e);
        }
        validated
    }

    /// Moves every whole valid message from `pending` to `ready`.
    fn validate(&mut self) -> Result<(), FramingError> {
        while let Some(len) = self.validator.next_message(&self.pending)? {
            let message = self.pending.split_to(len);
            self.ready.extend_from_slice(&message);
        }
        Ok(())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Validated<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            // Valid messages before a refused one still go through, then the error.
            if !this.ready.is_empty() {
                let n = this.ready.len().min(out.remaining());
                out.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if let Some(e) = &this.failed {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e.clone())));
            }
            let mut chunk = [0u8; 8192];
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                // End of stream: whatever is pending was an incomplete message.
                Poll::Ready(Ok(())) if read.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => {
                    this.pending.extend_from_slice(read.filled());
                    if let Err(e) = this.validate() {
                        this.failed = Some(e);
                    }
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Validated<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![kind];
        m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    fn after_startup(sasl: bool) -> Validator {
        let mut v = Validator::new(sasl, 1 << 20);
        let mut startup = vec![0, 0, 0, 0, 0, 3, 0, 0];
        startup.extend_from_slice(b"user\0a\0\0");
        let len = startup.len() as i32;
        startup[..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(v.next_message(&startup), Ok(Some(startup.len())));
        v
    }

    #[test]
    fn the_regression_inputs_are_refused() {
        // fuzz/regressions/frontend_messages, as typed messages after a startup packet.
        for (kind, body, sasl) in [
            (b'p', &b"SCRAM-SHA-256\0"[..], true),
            (b'p', &b"SCRAM-SHA-256\0\0\0\0\x10"[..], true),
            (b'P', &b""[..], false),
            (b'P', &b"\0SELECT 1\0\0\x01"[..], false),
            (b'B', &b""[..], false),
            (b'B', &b"\0\0\0\0\0\x01\0\0\0\x10"[..], false),
            (b'D', &b""[..], false),
            (b'C', &b""[..], false),
            (b'E', &b""[..], false),
            (b'Q', &b"SELECT 1"[..], false),
            (b'S', &b"x"[..], false),
            (b'F', &b""[..], false),
        ] {
            let mut v = after_startup(sasl);
            assert!(v.next_message(&typed(kind, body)).is_err(), "{} {body:?}", kind as char);
        }
        for length_below_4 in [&b"p\0\0\0\0"[..], b"d\0\0\0\0", b"P\0\0\0\0"] {
            assert!(after_startup(false).next_message(length_below_4).is_err());
        }
    }

    #[test]
    fn well_formed_messages_pass_whole() {
        let mut v = after_startup(true);
        let sasl = typed(b'p', b"SCRAM-SHA-256\0\0\0\0\x03abc");
        assert_eq!(v.next_message(&sasl), Ok(Some(sasl.len())));
        // Later `p` messages are SASLResponses: raw bytes.
        let response = typed(b'p', b"c=biws,r=abc,p=xyz");
        assert_eq!(v.next_message(&response), Ok(Some(response.len())));
        for (kind, body) in [
            (b'Q', &b"SELECT 1\0"[..]),
            (b'P', &b"s1\0SELECT $1\0\0\x01\0\0\0\x17"[..]),
            (b'B', &b"\0s1\0\0\x01\0\x01\0\x02\0\0\0\x04\0\0\0\x07\xff\xff\xff\xff\0\x01\0\x01"[..]),
            (b'D', &b"Ss1\0"[..]),
            (b'C', &b"P\0"[..]),
            (b'E', &b"\0\0\0\0\0"[..]),
            (b'S', &b""[..]),
            (b'd', &b"1,2\n"[..]),
            (b'X', &b""[..]),
        ] {
            let message = typed(kind, body);
            assert_eq!(v.next_message(&message), Ok(Some(message.len())), "{}", kind as char);
            // Incomplete: wait for more.
            assert_eq!(v.next_message(&message[..message.len() - 1]), Ok(None), "{}", kind as char);
        }
    }

    #[tokio::test]
    async fn bytes_read_before_wrapping_are_validated_and_passed_on() {
        use tokio::io::AsyncReadExt;
        let mut startup = vec![0, 0, 0, 16, 0, 3, 0, 0];
        startup.extend_from_slice(b"user\0a\0\0");
        let mut with_query = startup.clone();
        with_query.extend_from_slice(&typed(b'Q', b"SELECT 1\0"));
        // The peer sends nothing more: everything must come from the bytes already read.
        let (io, _peer) = tokio::io::duplex(64);
        let mut validated = Validated::new(io, Validator::new(false, 1 << 20), BytesMut::from(&with_query[..]));
        let mut out = vec![0u8; with_query.len()];
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), validated.read_exact(&mut out)).await;
        read.expect("no wait for the peer").unwrap();
        assert_eq!(out, with_query);

        let (io, _peer) = tokio::io::duplex(64);
        let mut bad = startup;
        bad.extend_from_slice(b"P\0\0\0\0");
        let mut validated = Validated::new(io, Validator::new(false, 1 << 20), BytesMut::from(&bad[..]));
        let mut out = vec![0u8; 64];
        let mut got = Vec::new();
        let error = loop {
            match validated.read(&mut out).await {
                Ok(0) => panic!("end of stream instead of an error"),
                Ok(n) => got.extend_from_slice(&out[..n]),
                Err(e) => break e,
            }
        };
        assert_eq!(got.len(), 16, "the valid startup packet comes first");
        assert!(framing_error(&error).is_some(), "{error:?}");
    }

    #[test]
    fn oversized_messages_and_startup_packets_are_refused() {
        let mut v = Validator::new(false, 1000);
        assert!(v.next_message(&100_000i32.to_be_bytes()).is_err());
        let mut v = after_startup(false);
        v.max_message = 1000;
        assert!(v.next_message(&[b'Q', 0, 0, 0x10, 0]).is_err());
    }
}
