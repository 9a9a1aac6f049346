//! Startup and authentication: database name check, SCRAM-SHA-256 when passwords are
//! configured (trust on loopback otherwise), then admission: the role may log in, and the
//! session takes a connection slot only once its identity is established.

use super::Shared;
use crate::catalog::roles::{self, Role};
use crate::sql::{Engine, SERVER_VERSION};
use async_trait::async_trait;
use futures::sink::{Sink, SinkExt};
use pgwire::api::auth::mechanism::{AuthMechanism, AuthMechanismFactory, AuthState};
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, AuthDriver, AuthOutcome,
    AuthSource, LoginInfo, Password, ServerParameterProvider, StartupHandler,
};
use pgwire::api::{ClientInfo, PidSecretKeyGenerator};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::{PasswordMessageFamily, SecretKey};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage, ProtocolVersion};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::Ordering;
use std::sync::Arc;

const SCRAM_ITERATIONS: usize = roles::SCRAM_ITERATIONS as usize;

/// The ParameterStatus values sent after authentication.
#[derive(Debug)]
pub struct Parameters;

impl ServerParameterProvider for Parameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let user = client.metadata().get("user").cloned().unwrap_or_default();
        let app = client.metadata().get("application_name").cloned().unwrap_or_default();
        let params = [
            ("server_version", SERVER_VERSION.to_string()),
            ("server_encoding", "UTF8".into()),
            ("client_encoding", "UTF8".into()),
            ("DateStyle", "ISO, MDY".into()),
            ("TimeZone", super::handler::startup_zone(client).unwrap_or_else(|| "UTC".into())),
            ("IntervalStyle", "postgres".into()),
            ("integer_datetimes", "on".into()),
            ("standard_conforming_strings", "on".into()),
            ("is_superuser", if user == "admin" { "on" } else { "off" }.into()),
            ("session_authorization", user),
            ("application_name", app),
            ("default_transaction_read_only", "off".into()),
            ("in_hot_standby", "off".into()),
        ];
        Some(params.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }
}

/// Where SCRAM finds passwords, built once per server.
///
/// Every login attempt takes the same path whether the role exists or not: one catalog read
/// and no key derivation. The built-in roles' secrets are derived once at start-up; created
/// roles' are stored. A role that does not exist, or has no password, gets a mock secret whose
/// salt is a keyed hash of its name (stable across attempts, as a real role's is) and whose
/// key is random, so the exchange fails like a wrong password (28P01). The mock key derives
/// from the configured passwords, so every member of a cluster answers alike. Whether a role
/// may log in (NOLOGIN) is checked only once its password was proven, as PostgreSQL does.
pub struct Passwords {
    builtin: HashMap<&'static str, roles::ScramSecret>,
    mock_key: ring::hmac::Key,
    engine: Arc<Engine>,
}

impl Passwords {
    /// None without configured passwords (trust on loopback).
    pub fn new(admin: Option<&str>, readonly: Option<&str>, engine: Arc<Engine>) -> Option<Arc<Passwords>> {
        if admin.is_none() && readonly.is_none() {
            return None;
        }
        let mut builtin = HashMap::new();
        let mut seed = Vec::new();
        for (name, password) in [(roles::ADMIN, admin), (roles::READONLY, readonly)] {
            if let Some(password) = password {
                builtin.insert(name, roles::ScramSecret::new(password));
                seed.extend_from_slice(name.as_bytes());
                seed.push(0);
                seed.extend_from_slice(password.as_bytes());
                seed.push(0);
            }
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &seed);
        let mock_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, digest.as_ref());
        Some(Arc::new(Passwords { builtin, mock_key, engine }))
    }

    /// A secret that matches no password, with a salt that depends only on `user`.
    fn mock(&self, user: &str) -> Password {
        let tag = ring::hmac::sign(&self.mock_key, user.as_bytes());
        let salt = tag.as_ref()[..16].to_vec();
        let key = uuid::Uuid::new_v4().as_bytes().repeat(2);
        Password::new(Some(salt), key)
    }
}

impl Debug for Passwords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Passwords").finish_non_exhaustive()
    }
}

#[async_trait]
impl AuthSource for Passwords {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let user = login.user().unwrap_or_default();
        let stored = find_role(&self.engine, user)?.and_then(|role| role.password);
        let secret = match self.builtin.get(user) {
            Some(secret) => Some(secret.clone()),
            None if Role::builtin(user).is_some() => None,
            None => stored,
        };
        Ok(match secret {
            Some(secret) => Password::new(Some(secret.salt), secret.salted_password),
            None => self.mock(user),
        })
    }
}

/// A role by name, from a fresh snapshot of the catalog.
fn find_role(engine: &Engine, user: &str) -> PgWireResult<Option<Role>> {
    let mut txn = engine.mvcc().begin();
    let role = roles::get_role(&mut txn, user);
    txn.rollback();
    role.map_err(|e| fatal(e.sqlstate(), e.to_string()))
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("FATAL".into(), code.into(), message)))
}

/// Decrements the session count when the connection ends.
pub struct ConnectionSlot(pub Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.metrics.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Records a login attempt's outcome in the audit log.
fn audit_login(shared: &Shared, client: &(dyn ClientInfo + Send + Sync), method: &str, result: &PgWireResult<()>) {
    let user = client.metadata().get("user").cloned().unwrap_or_default();
    let failure = result.as_ref().err().map(|e| match e {
        PgWireError::UserError(info) => (info.code.clone(), info.message.clone()),
        other => ("28000".to_string(), other.to_string()),
    });
    let action =
        crate::audit::Action { event: crate::audit::Event::Authentication, what: format!("LOGIN {method}"), failure };
    shared.audit.record(&action, &user, Some(client.socket_addr()));
}

/// Admits a client whose identity is established (its password proven, or trusted): the role
/// must exist and may log in, and the session takes one of `max_connections` slots.
fn admit(shared: &Arc<Shared>, client: &(dyn ClientInfo + Send + Sync)) -> PgWireResult<()> {
    let user = client.metadata().get("user").cloned().unwrap_or_default();
    match find_role(&shared.engine, &user)? {
        None if shared.passwords.is_none() => return Err(fatal("28000", format!("role \"{user}\" does not exist"))),
        None => return Err(fatal("28P01", format!("password authentication failed for user \"{user}\""))),
        Some(role) if !role.login => {
            return Err(fatal("28000", format!("role \"{user}\" is not permitted to log in")));
        }
        Some(_) => {}
    }
    let count = shared.metrics.connections.fetch_add(1, Ordering::SeqCst) + 1;
    client.session_extensions().insert(ConnectionSlot(shared.clone()));
    if count > shared.config.max_connections {
        return Err(fatal("53300", "sorry, too many clients already".into()));
    }
    Ok(())
}

/// SCRAM, with [`admit`] run the moment the client's proof checks out (before the server's
/// final message, so a refused client never sees AuthenticationOk).
struct AdmittedScram {
    scram: Box<dyn AuthMechanism>,
    shared: Arc<Shared>,
}

#[async_trait]
impl AuthMechanism for AdmittedScram {
    async fn begin(&mut self, client: &(dyn ClientInfo + Send + Sync)) -> PgWireResult<AuthState> {
        self.scram.begin(client).await
    }

    async fn next(
        &mut self,
        client: &(dyn ClientInfo + Send + Sync),
        message: PasswordMessageFamily,
    ) -> PgWireResult<AuthState> {
        let state = self.scram.next(client, message).await;
        let user = client.metadata().get("user").cloned().unwrap_or_default();
        let wrong_password = || fatal("28P01", format!("password authentication failed for user \"{user}\""));
        let admitted = match &state {
            Ok(AuthState::Ok { .. }) => admit(&self.shared, client),
            Ok(AuthState::InProgress(_)) => return state,
            Ok(AuthState::Failed(_)) | Err(PgWireError::InvalidPassword(_)) => Err(wrong_password()),
            // A SASL exchange that breaks the protocol (an unknown mechanism, a malformed message).
            Err(e) => Err(fatal("08P01", e.to_string())),
        };
        audit_login(&self.shared, client, "SCRAM-SHA-256", &admitted);
        admitted?;
        state
    }
}

/// Backend process ids unique among live sessions (so a CancelRequest reaches exactly its
/// session), with random cancel keys.
struct SessionKeys(Arc<Shared>);

impl PidSecretKeyGenerator for SessionKeys {
    fn generate(&self, client: &dyn ClientInfo) -> (i32, SecretKey) {
        let pid = self.0.cancels.allocate_pid();
        let key = match client.protocol_version() {
            ProtocolVersion::PROTOCOL3_0 => SecretKey::I32(rand::random::<i32>()),
            _ => SecretKey::Bytes(bytes::Bytes::from(rand::random::<[u8; 32]>().to_vec())),
        };
        (pid, key)
    }
}

/// The startup handler: checks, then SCRAM or trust, then [`admit`].
pub struct Startup {
    shared: Arc<Shared>,
    scram: Option<ScramAuth>,
    driver: AuthDriver<Arc<Parameters>>,
    keys: SessionKeys,
}

impl Startup {
    pub fn new(shared: Arc<Shared>) -> Self {
        let scram = shared.passwords.clone().map(|passwords| {
            let mut scram = ScramAuth::new(passwords);
            scram.set_iterations(SCRAM_ITERATIONS);
            scram
        });
        let driver =
            AuthDriver::new(Arc::new(Parameters)).with_pid_secret_key_generator(Arc::new(SessionKeys(shared.clone())));
        Self { keys: SessionKeys(shared.clone()), shared, scram, driver }
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let outcome = match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                let user = startup.parameters.get("user").cloned().unwrap_or_default();
                let database = startup.parameters.get("database").cloned().unwrap_or_else(|| user.clone());
                if !matches!(database.as_str(), "chronos" | "postgres") && database != user {
                    return Err(fatal("3D000", format!("database \"{database}\" does not exist")));
                }
                if self.shared.config.require_client_cert && !client.is_secure() {
                    return Err(fatal("28000", "connection requires TLS with a client certificate".into()));
                }
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                match &self.scram {
                    Some(scram) => {
                        let mechanism = AdmittedScram { scram: scram.create(), shared: self.shared.clone() };
                        self.driver.begin_authentication(client, Box::new(mechanism)).await?
                    }
                    None => {
                        // Trust (loopback only).
                        let admitted = admit(&self.shared, &*client);
                        audit_login(&self.shared, &*client, "trust", &admitted);
                        admitted?;
                        let (pid, key) = self.keys.generate(&*client);
                        client.set_pid_and_secret_key(pid, key);
                        finish_authentication(client, &Parameters).await?;
                        client.flush().await?;
                        return Ok(());
                    }
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                self.driver.advance_authentication(client, message).await?
            }
            _ => return Ok(()),
        };
        match outcome {
            AuthOutcome::InProgress => Ok(()),
            AuthOutcome::Authenticated { final_message, .. } => {
                self.driver.complete_authentication(client, final_message).await
            }
        }
    }
}
