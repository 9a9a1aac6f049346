//! One client connection: TLS negotiation, validated framing, the authentication deadline, and
//! the message loop that hands each message to the pgwire handlers.
//!
//! pgwire's own `process_socket` decodes straight from the socket; this loop puts
//! [`super::framing::Validated`] in between, so a malformed message ends the connection with a
//! FATAL 08P01 ErrorResponse instead of a decoder panic, and it knows when authentication
//! ends: until then the connection holds a permit of the bounded pool of connections that are
//! still authenticating, and past the authentication timeout it is closed. Replies are
//! written once per round trip ([`super::cork`]).

use super::cork::Corked;
use super::framing::{self, Validated, Validator};
use super::handler::ConnectionHandlers;
use futures::{FutureExt, SinkExt, StreamExt};
use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::server::{negotiate_tls, process_error, process_message, PgWireMessageServerCodec};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, FramedParts};

/// What a connection needs besides its handlers.
pub struct Limits {
    /// Time from accept to the end of authentication.
    pub authentication_timeout: Duration,
    /// The largest frontend message accepted.
    pub max_message_bytes: usize,
    /// The server authenticates with SASL (SCRAM).
    pub sasl: bool,
    /// Held while the connection authenticates; released once it has.
    pub authenticating: Option<tokio::sync::OwnedSemaphorePermit>,
}

/// Serves one TCP connection until it ends.
pub async fn serve(
    socket: TcpStream,
    tls: Option<pgwire::tokio::TlsAcceptor>,
    handlers: ConnectionHandlers,
    mut limits: Limits,
) -> std::io::Result<()> {
    let deadline = tokio::time::sleep(limits.authentication_timeout);
    tokio::pin!(deadline);
    let negotiated = tokio::select! {
        _ = &mut deadline => return Ok(()),
        negotiated = negotiate_tls(socket, tls) => negotiated?,
    };
    let Some(negotiated) = negotiated else { return Ok(()) };
    // Re-frame over the validating stream; bytes already read go through it too.
    let parts = negotiated.into_parts();
    let validator = Validator::new(limits.sasl, limits.max_message_bytes);
    let io = Corked::new(Validated::new(parts.io, validator, parts.read_buf));
    let mut reframed = FramedParts::new(io, parts.codec);
    reframed.write_buf = parts.write_buf;
    let mut socket: Framed<_, PgWireMessageServerCodec<_>> = Framed::from_parts(reframed);

    let startup = handlers.startup_handler();
    let simple = handlers.simple_query_handler();
    let extended = handlers.extended_query_handler();
    let copy = handlers.copy_handler();
    let cancel = handlers.cancel_handler();
    let errors = handlers.error_handler();
    loop {
        let authenticating = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup | PgWireConnectionState::AuthenticationInProgress
        );
        if !authenticating {
            limits.authenticating = None;
        }
        // Replies wait for the client's Sync or Flush only while more of its messages are
        // already here: what is held is written before waiting for the client.
        let next = match socket.next().now_or_never() {
            Some(next) => next,
            None => {
                socket.get_mut().set_corked(false);
                socket.flush().await?;
                if authenticating {
                    tokio::select! {
                        _ = &mut deadline => {
                            tracing::debug!("authentication timed out");
                            return Ok(());
                        }
                        next = socket.next() => next,
                    }
                } else {
                    socket.next().await
                }
            }
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(PgWireError::IoError(e))) => {
                socket.get_mut().set_corked(false);
                if let Some(refused) = framing::framing_error(&e) {
                    tracing::warn!(error = %refused, "closing a connection after a malformed message");
                    let info = ErrorInfo::new("FATAL".into(), "08P01".into(), refused.to_string());
                    let _ = socket.send(PgWireBackendMessage::ErrorResponse(info.into())).await;
                }
                return Ok(());
            }
            Some(Err(e)) => {
                // A message pgwire could not decode after all: refuse it the same way.
                socket.get_mut().set_corked(false);
                let info = ErrorInfo::new("FATAL".into(), "08P01".into(), e.to_string());
                let _ = socket.send(PgWireBackendMessage::ErrorResponse(info.into())).await;
                return Ok(());
            }
            None => return Ok(()),
        };
        // Terminate ends the connection; a CancelRequest arrives on a connection of its own,
        // which ends once it is handled.
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            return Ok(());
        }
        let is_cancel = matches!(message, PgWireFrontendMessage::CancelRequest(_));
        // The client reads no reply to these before its Sync or Flush (or the end of its COPY
        // data), so theirs wait for it.
        let mid_round = matches!(
            message,
            PgWireFrontendMessage::Parse(_)
                | PgWireFrontendMessage::Bind(_)
                | PgWireFrontendMessage::Describe(_)
                | PgWireFrontendMessage::Execute(_)
                | PgWireFrontendMessage::Close(_)
                | PgWireFrontendMessage::CopyData(_)
        );
        socket.get_mut().set_corked(true);
        let extended_protocol = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        let result = process_message(
            message,
            &mut socket,
            startup.clone(),
            simple.clone(),
            extended.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        let failed = result.is_err();
        if let Err(mut e) = result {
            errors.on_error(&socket, &mut e);
            let fatal = e.is_fatal();
            if fatal {
                socket.get_mut().set_corked(false);
            }
            process_error(&mut socket, e, extended_protocol).await?;
            if fatal {
                return Ok(());
            }
        }
        // An error is written at once, so a client still sending (COPY data) learns of it.
        if !mid_round || failed {
            socket.get_mut().set_corked(false);
            socket.flush().await?;
        }
        if is_cancel {
            return Ok(());
        }
    }
}
