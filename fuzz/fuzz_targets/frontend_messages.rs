//! Bytes from a client into pgwire's frontend message decoder, driven the way the server's
//! codec drives it (`pgwire::tokio::server`): the DecodeContext follows the connection state
//! (SSL negotiation → startup → authentication/ready), data arrives in reads of arbitrary
//! size, and decoded messages are used as the server uses them:
//! - Startup: the protocol version is negotiated and the `user`/`database` parameters read;
//! - PasswordMessage family: coerced to Password, SASLInitialResponse and SASLResponse, and
//!   run through the SCRAM-SHA-256 server exchange (client-first, then client-final);
//! - Bind: made into a Portal, and each parameter's format looked up by index, as
//!   `pg::handler` does before decoding the values.
//!
//! Decoding errors are fine (the connection ends); panics are not.
//!
//! Input: byte 0 chooses the starting state (bits 0-1: 0/3 awaiting SSLRequest, 1 awaiting
//! startup, 2 authenticated), the protocol version (bit 2: 3.0 or 3.2) and the read size
//! (bits 3-7: 1..=31 bytes, 0 = everything in one read); the rest is the byte stream.

#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pgwire::api::auth::sasl::scram::{
    gen_salted_password, ScramSecret, ScramServerAuth, ScramServerAuthWaitingForClientFinal,
};
use pgwire::api::portal::Portal;
use pgwire::api::stmt::StoredStatement;
use pgwire::messages::startup::PasswordMessageFamily;
use pgwire::messages::{DecodeContext, PgWireFrontendMessage, ProtocolVersion, SslNegotiationMetaMessage};

#[derive(Clone, Copy, PartialEq)]
enum State {
    AwaitingSsl { ssl_done: bool, gss_done: bool },
    AwaitingStartup,
    /// Startup received: password messages go to SCRAM; everything is decoded as in
    /// ReadyForQuery (pgwire's codec uses the same context for both).
    Authenticating,
    Ready,
}

enum Scram {
    AwaitingClientFirst,
    AwaitingClientFinal(Box<ScramServerAuthWaitingForClientFinal>),
    Done,
}

const SALT: &[u8] = b"chronos-fuzz-salt";

fn salted_password() -> Vec<u8> {
    static SALTED: OnceLock<Vec<u8>> = OnceLock::new();
    SALTED.get_or_init(|| gen_salted_password("secret", SALT, 4096)).clone()
}

fn secret() -> ScramSecret {
    ScramSecret::SaltedPassword { salt: SALT.to_vec(), salted_password: salted_password() }
}

struct Connection {
    state: State,
    protocol: ProtocolVersion,
    scram: Scram,
    closed: bool,
}

impl Connection {
    fn context(&self) -> DecodeContext {
        let mut ctx = DecodeContext::new(self.protocol);
        let (ssl, startup) = match self.state {
            State::AwaitingSsl { .. } => (true, true),
            State::AwaitingStartup => (false, true),
            State::Authenticating | State::Ready => (false, false),
        };
        ctx.awaiting_frontend_ssl = ssl;
        ctx.awaiting_frontend_startup = startup;
        ctx
    }

    /// Decodes every complete message in `buf`; returns when more data is needed or the
    /// connection ends.
    fn drain(&mut self, buf: &mut BytesMut) {
        while !self.closed {
            match PgWireFrontendMessage::decode(buf, &self.context()) {
                Ok(Some(message)) => self.handle(message),
                Ok(None) => return,
                Err(_) => match self.state {
                    // `negotiate_tls` treats a failed read during SSL negotiation as "no
                    // negotiation" and goes on to the startup phase with the same buffer.
                    State::AwaitingSsl { .. } => self.state = State::AwaitingStartup,
                    _ => self.closed = true,
                },
            }
        }
    }

    fn handle(&mut self, message: PgWireFrontendMessage) {
        match message {
            PgWireFrontendMessage::SslNegotiation(negotiation) => {
                let State::AwaitingSsl { mut ssl_done, mut gss_done } = self.state else {
                    self.closed = true;
                    return;
                };
                // No TLS in this model: the server refuses both and waits for the next packet.
                match negotiation {
                    SslNegotiationMetaMessage::PostgresSsl(_) => ssl_done = true,
                    SslNegotiationMetaMessage::PostgresGss(_) => gss_done = true,
                    SslNegotiationMetaMessage::None => {
                        self.state = State::AwaitingStartup;
                        return;
                    }
                }
                self.state = if ssl_done && gss_done {
                    State::AwaitingStartup
                } else {
                    State::AwaitingSsl { ssl_done, gss_done }
                };
            }
            PgWireFrontendMessage::CancelRequest(cancel) => {
                let _ = (cancel.pid, cancel.secret_key.to_bytes());
                self.closed = true;
            }
            PgWireFrontendMessage::Startup(startup) => {
                // pgwire's `protocol_negotiation`.
                match ProtocolVersion::from_version_number(
                    startup.protocol_number_major,
                    startup.protocol_number_minor,
                ) {
                    Some(v) => self.protocol = v,
                    None if startup.protocol_number_major == 3 => self.protocol = ProtocolVersion::default(),
                    None => {
                        self.closed = true;
                        return;
                    }
                }
                // `pg::auth::Startup::on_startup`.
                let user = startup.parameters.get("user").cloned().unwrap_or_default();
                let database = startup.parameters.get("database").cloned().unwrap_or_else(|| user.clone());
                let _ = matches!(database.as_str(), "chronos" | "postgres") || database == user;
                self.state = State::Authenticating;
            }
            PgWireFrontendMessage::PasswordMessageFamily(family) => {
                let PasswordMessageFamily::Raw(body) = family else { return };
                // The cleartext/MD5 handlers' coercion (ChronosDB uses neither; kept for the
                // PasswordMessage decoder).
                let _ = PasswordMessageFamily::Raw(body.clone()).into_password();
                // Outside authentication the server ignores the message.
                if self.state != State::Authenticating {
                    return;
                }
                // pgwire's `SaslMechanism::next` and `ScramAuth::process_scram_message`: the
                // first message is read as SASLInitialResponse, the second as SASLResponse; any
                // error is FATAL.
                match std::mem::replace(&mut self.scram, Scram::Done) {
                    Scram::AwaitingClientFirst => {
                        let Ok(initial) = PasswordMessageFamily::Raw(body).into_sasl_initial_response() else {
                            return self.close();
                        };
                        if initial.auth_method != "SCRAM-SHA-256" {
                            return self.close();
                        }
                        let Some(data) = initial.data.as_ref() else { return self.close() };
                        let mut auth = ScramServerAuth::new();
                        auth.set_iterations(4096);
                        match auth.on_client_first_message_with_secret(data, secret()) {
                            Ok((_server_first, waiting)) => self.scram = Scram::AwaitingClientFinal(Box::new(waiting)),
                            Err(_) => self.close(),
                        }
                    }
                    Scram::AwaitingClientFinal(waiting) => {
                        let Ok(response) = PasswordMessageFamily::Raw(body).into_sasl_response() else {
                            return self.close();
                        };
                        match waiting.on_client_final_message(&response.data) {
                            Ok(_) => self.state = State::Ready,
                            Err(_) => self.close(),
                        }
                    }
                    Scram::Done => {}
                }
            }
            PgWireFrontendMessage::Bind(bind) => {
                // pgwire's default `on_bind`, then the parameter formats `pg::handler` reads.
                let statement = Arc::new(StoredStatement::new(String::new(), (), Vec::new()));
                if let Ok(portal) = Portal::try_new(&bind, statement) {
                    for i in 0..portal.parameters.len() {
                        let _ = portal.parameter_format.is_binary(i);
                    }
                }
            }
            PgWireFrontendMessage::Parse(parse) => {
                let _ = (parse.name, parse.query, parse.type_oids);
            }
            PgWireFrontendMessage::Terminate(_) => self.closed = true,
            _ => {}
        }
    }

    fn close(&mut self) {
        self.closed = true;
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, stream)) = input.split_first() else { return };
    let state = match control & 3 {
        1 => State::AwaitingStartup,
        2 => State::Ready,
        _ => State::AwaitingSsl { ssl_done: false, gss_done: false },
    };
    let protocol = if control & 4 == 0 { ProtocolVersion::PROTOCOL3_0 } else { ProtocolVersion::PROTOCOL3_2 };
    let read_size = match (control >> 3) as usize {
        0 => stream.len().max(1),
        n => n,
    };
    let mut connection = Connection { state, protocol, scram: Scram::AwaitingClientFirst, closed: false };
    let mut buf = BytesMut::new();
    for read in stream.chunks(read_size) {
        buf.extend_from_slice(read);
        connection.drain(&mut buf);
        if connection.closed {
            return;
        }
    }
});
