//! Startup and authentication: database name check, connection limit, SCRAM-SHA-256 when
//! passwords are configured, trust on loopback otherwise.

use super::Shared;
use crate::catalog::roles::{self, Role};
use crate::sql::{Engine, SERVER_VERSION};
use async_trait::async_trait;
use futures::sink::{Sink, SinkExt};
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata, AuthSource, LoginInfo, Password,
    ServerParameterProvider, StartupHandler,
};
use pgwire::api::ClientInfo;
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
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
            ("TimeZone", "UTC".into()),
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

/// Where SCRAM finds passwords: the built-in roles' from the configuration, created roles'
/// stored secrets from the catalog.
struct Passwords {
    admin: Option<String>,
    readonly: Option<String>,
    engine: Arc<Engine>,
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
        let configured = match user {
            roles::ADMIN => self.admin.as_deref(),
            roles::READONLY => self.readonly.as_deref(),
            _ => None,
        };
        if let Some(password) = configured {
            let salt = uuid::Uuid::new_v4().as_bytes().to_vec();
            return Ok(Password::new(Some(salt.clone()), gen_salted_password(password, &salt, SCRAM_ITERATIONS)));
        }
        if Role::builtin(user).is_none() {
            if let Some(role) = find_role(&self.engine, user)? {
                if !role.login {
                    return Err(not_permitted(user));
                }
                if let Some(secret) = role.password {
                    return Ok(Password::new(Some(secret.salt), secret.salted_password));
                }
            }
        }
        // Unknown users and roles without a password get a random one: the exchange fails like
        // a wrong password (28P01) and reveals nothing about which roles exist.
        let salt = uuid::Uuid::new_v4().as_bytes().to_vec();
        let fallback = uuid::Uuid::new_v4().to_string();
        Ok(Password::new(Some(salt.clone()), gen_salted_password(&fallback, &salt, SCRAM_ITERATIONS)))
    }
}

/// A role by name, from a fresh snapshot of the catalog.
fn find_role(engine: &Engine, user: &str) -> PgWireResult<Option<Role>> {
    let mut txn = engine.mvcc().begin();
    let role = roles::get_role(&mut txn, user);
    txn.rollback();
    role.map_err(|e| fatal(e.sqlstate(), e.to_string()))
}

fn not_permitted(user: &str) -> PgWireError {
    fatal("28000", format!("role \"{user}\" is not permitted to log in"))
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("FATAL".into(), code.into(), message)))
}

/// Decrements the connection count when the connection ends.
pub struct ConnectionSlot(pub Arc<Shared>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.metrics.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The startup handler: checks, then SCRAM or trust.
pub struct Startup {
    shared: Arc<Shared>,
    scram: Option<SASLAuthStartupHandler<Parameters>>,
}

impl Startup {
    pub fn new(shared: Arc<Shared>) -> Self {
        let config = &shared.config;
        let scram = if config.admin_password.is_some() || config.readonly_password.is_some() {
            let mut scram = ScramAuth::new(Arc::new(Passwords {
                admin: config.admin_password.clone(),
                readonly: config.readonly_password.clone(),
                engine: shared.engine.clone(),
            }));
            scram.set_iterations(SCRAM_ITERATIONS);
            Some(SASLAuthStartupHandler::new(Arc::new(Parameters)).with_scram(scram))
        } else {
            None
        };
        Self { shared, scram }
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
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            let user = startup.parameters.get("user").cloned().unwrap_or_default();
            let database = startup.parameters.get("database").cloned().unwrap_or_else(|| user.clone());
            if !matches!(database.as_str(), "chronos" | "postgres") && database != user {
                return Err(fatal("3D000", format!("database \"{database}\" does not exist")));
            }
            if self.shared.config.require_client_cert && !client.is_secure() {
                return Err(fatal("28000", "connection requires TLS with a client certificate".into()));
            }
            if self.scram.is_none() {
                // Trust (loopback only): the role must exist and may log in.
                match find_role(&self.shared.engine, &user)? {
                    None => return Err(fatal("28000", format!("role \"{user}\" does not exist"))),
                    Some(role) if !role.login => return Err(not_permitted(&user)),
                    Some(_) => {}
                }
            }
            let count = self.shared.metrics.connections.fetch_add(1, Ordering::SeqCst) + 1;
            client.session_extensions().insert(ConnectionSlot(self.shared.clone()));
            if count > self.shared.config.max_connections {
                return Err(fatal("53300", "sorry, too many clients already".into()));
            }
            let pid = (std::process::id() as i32).wrapping_mul(1000).wrapping_add(count as i32).abs();
            let secret = pgwire::messages::startup::SecretKey::I32(uuid::Uuid::new_v4().as_u128() as i32);
            client.set_pid_and_secret_key(pid, secret);
        }
        match &self.scram {
            Some(scram) => scram.on_startup(client, message).await,
            None => {
                if let PgWireFrontendMessage::Startup(ref startup) = message {
                    protocol_negotiation(client, startup).await?;
                    save_startup_parameters_to_metadata(client, startup);
                    finish_authentication(client, &Parameters).await?;
                    client.flush().await?;
                }
                Ok(())
            }
        }
    }
}
