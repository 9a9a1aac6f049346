//! Query handlers: the simple and extended protocols over one [`Session`] per connection.

use super::auth::Startup;
use super::{encode, stream, Shared};
use crate::error::Error;
use crate::sql::execution::SessionZone;
use crate::sql::session::Prepared;
use crate::sql::session::Simple;
use crate::sql::{Outcome, RowSink, Session, Streamed};
use crate::types::timezone::Zone;
use crate::types::{DataType, Value};
use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use futures::sink::{Sink, SinkExt};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::portal::PortalExecutionState;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{send_query_response, ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::DescribeResponse;
use pgwire::api::results::{CopyResponse, FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::Entry;
use pgwire::api::store::PortalStore;
use pgwire::api::PgWireConnectionState;
use pgwire::api::DEFAULT_NAME;
use pgwire::api::{ClientInfo, ClientPortalStore, ErrorHandler, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::cancel::CancelRequest;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail};
use pgwire::messages::data::{DataRow, NoData, ParameterDescription};
use pgwire::messages::extendedquery::{Describe, Execute, TARGET_TYPE_BYTE_STATEMENT};
use pgwire::messages::response::NoticeResponse;
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::PgWireBackendMessage;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A connection's session, created once the user is known.
type SharedSession = Arc<Mutex<Option<Session>>>;

/// Maps an engine error to an ErrorResponse.
pub fn to_pg_error(e: Error) -> PgWireError {
    let mut info = ErrorInfo::new("ERROR".into(), e.sqlstate().into(), e.to_string());
    info.detail = e.detail();
    info.position = e.position().map(|p| p.to_string());
    PgWireError::UserError(Box::new(info))
}

fn internal(message: String) -> PgWireError {
    to_pg_error(Error::Internal(message))
}

/// Handlers of one connection.
pub struct ConnectionHandlers {
    inner: Arc<Handler>,
    startup: Arc<Startup>,
}

impl ConnectionHandlers {
    pub fn new(shared: Arc<Shared>, peer: SocketAddr) -> Self {
        let session: SharedSession = Arc::new(Mutex::new(None));
        let startup = Arc::new(Startup::new(shared.clone()));
        let parser = Arc::new(Parser { shared: shared.clone(), session: session.clone() });
        let idle_ms = shared.config.idle_session_timeout.as_millis() as u64;
        let activity = Arc::new(Activity::new(idle_ms));
        Self { inner: Arc::new(Handler { shared, session, parser, peer, activity }), startup }
    }

    /// True while a statement of this connection is running.
    pub fn activity(&self) -> Arc<Activity> {
        self.inner.activity.clone()
    }
}

impl PgWireServerHandlers for ConnectionHandlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.inner.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.inner.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.inner.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.inner.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        self.inner.clone()
    }
}

/// Runs `f` on the connection's session, creating it on first use.
fn with_session<C: ClientInfo, T>(
    shared: &Arc<Shared>,
    session: &SharedSession,
    client: &C,
    f: impl FnOnce(&mut Session) -> T,
) -> T {
    let mut guard = session.lock().unwrap_or_else(|e| e.into_inner());
    let s = guard.get_or_insert_with(|| new_session(shared, client));
    f(s)
}

/// The `TimeZone` a client sent at start-up (JDBC sends the JVM's), if it is one the server
/// knows.
pub(super) fn startup_zone<C: ClientInfo>(client: &C) -> Option<String> {
    let value = client.metadata().iter().find(|(k, _)| k.eq_ignore_ascii_case("timezone"))?.1;
    crate::types::timezone::setting(value).ok().map(|(_, shown)| shown)
}

fn new_session<C: ClientInfo>(shared: &Arc<Shared>, client: &C) -> Session {
    let user = client.metadata().get("user").cloned().unwrap_or_else(|| "admin".into());
    let mut session = shared.engine.session(&user, "chronos");
    if let Some(app) = client.metadata().get("application_name") {
        let _ = session.set_startup("application_name", app.clone());
    }
    // A zone the server does not know leaves the session in UTC, which the ParameterStatus
    // sent at login says (`auth::Parameters`).
    if let Some(zone) = startup_zone(client) {
        let _ = session.set_startup("timezone", zone);
    }
    let info = std::sync::Arc::make_mut(&mut session.info);
    for (name, limit) in [
        ("idle_session_timeout", shared.config.idle_session_timeout),
        ("idle_in_transaction_session_timeout", shared.config.idle_in_transaction_timeout),
    ] {
        info.settings.retain(|(k, _)| k != name);
        info.settings.push((name.to_string(), limit.as_millis().to_string()));
    }
    let (pid, key) = client.pid_and_secret_key();
    std::sync::Arc::make_mut(&mut session.info).backend_pid = pid;
    shared.cancels.register(pid, key, session.cancel.clone());
    session
}

pub struct Handler {
    shared: Arc<Shared>,
    session: SharedSession,
    parser: Arc<Parser>,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

/// What a connection is doing: whether a statement runs (graceful shutdown waits for it) and
/// since when it is idle, against the session's idle limits.
pub struct Activity {
    busy: AtomicBool,
    epoch: std::time::Instant,
    /// Milliseconds since `epoch` when the last statement ended.
    last_ms: AtomicU64,
    /// The limit that applies now (0: none): `idle_in_transaction_session_timeout` inside a
    /// transaction block, `idle_session_timeout` outside.
    limit_ms: AtomicU64,
    in_transaction: AtomicBool,
}

impl Activity {
    fn new(idle_session_ms: u64) -> Self {
        Self {
            busy: AtomicBool::new(false),
            epoch: std::time::Instant::now(),
            last_ms: AtomicU64::new(0),
            limit_ms: AtomicU64::new(idle_session_ms),
            in_transaction: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// True while a statement runs.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }

    /// How long until the connection has been idle past its limit: None without a limit or
    /// while busy, zero once expired.
    pub fn until_idle_expiry(&self) -> Option<std::time::Duration> {
        let limit = self.limit_ms.load(Ordering::SeqCst);
        if limit == 0 || self.busy() {
            return None;
        }
        let idle = self.now_ms().saturating_sub(self.last_ms.load(Ordering::SeqCst));
        Some(std::time::Duration::from_millis(limit.saturating_sub(idle)))
    }

    /// Which limit expired, for the log.
    pub fn idle_reason(&self) -> &'static str {
        if self.in_transaction.load(Ordering::SeqCst) {
            "idle_in_transaction_session_timeout"
        } else {
            "idle_session_timeout"
        }
    }

    /// Records the end of a statement and the limit that now applies.
    fn finished(&self, session: Option<&Session>) {
        if let Some(s) = session {
            let in_transaction = s.transaction_state() != crate::sql::TransactionState::Idle;
            let name = if in_transaction { "idle_in_transaction_session_timeout" } else { "idle_session_timeout" };
            let limit = s.setting(name).and_then(crate::sql::session::parse_duration_ms).unwrap_or(0);
            self.in_transaction.store(in_transaction, Ordering::SeqCst);
            self.limit_ms.store(limit, Ordering::SeqCst);
        }
        self.last_ms.store(self.now_ms(), Ordering::SeqCst);
        self.busy.store(false, Ordering::SeqCst);
    }
}

/// Marks a connection busy for its lifetime; on drop records the end of the statement.
struct BusyGuard {
    activity: Arc<Activity>,
    session: SharedSession,
}

impl BusyGuard {
    fn new(handler: &Handler) -> Self {
        handler.activity.busy.store(true, Ordering::SeqCst);
        Self { activity: handler.activity.clone(), session: handler.session.clone() }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        // try_lock: a statement abandoned by a vanished client may still hold the session, and
        // an async worker must not block on it.
        match self.session.try_lock() {
            Ok(guard) => self.activity.finished(guard.as_ref()),
            Err(_) => self.activity.finished(None),
        }
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        let guard = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = guard.as_ref() {
            self.shared.cancels.remove(s.info.backend_pid);
        }
    }
}

/// The format code for column or parameter `i`; codes a client left out count as text (Bind
/// messages with a wrong number of codes are refused in [`check_formats`] first).
fn format_of(format: &Format, i: usize) -> FieldFormat {
    match format {
        Format::Individual(codes) if i >= codes.len() => FieldFormat::Text,
        other => other.format_for(i),
    }
}

/// PostgreSQL's rule for a Bind message's format codes: none, one for all, or one per item.
fn check_formats(format: &Format, items: usize, what: &str) -> PgWireResult<()> {
    match format {
        Format::Individual(codes) if codes.len() != items && codes.len() > 1 => {
            Err(protocol_violation(format!("bind message has {} {what} formats but {items} {what}s", codes.len())))
        }
        Format::Individual(codes) if codes.iter().any(|c| !matches!(c, 0 | 1)) => {
            Err(protocol_violation(format!("unsupported format code in the {what} formats")))
        }
        _ => Ok(()),
    }
}

fn protocol_violation(message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), "08P01".into(), message)))
}

/// Logs the audit records of a session's finished statements with the client's address.
fn record_audit(audit: &crate::audit::AuditLog, session: &mut Session, peer: SocketAddr) {
    for action in session.take_audit() {
        audit.record(&action, &session.info.user, Some(peer));
    }
}

/// The RowDescription fields of a result.
fn fields(columns: &[crate::sql::planner::plan::ResultColumn], format: &Format) -> Vec<FieldInfo> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let t = Type::from_oid(c.data_type.oid()).unwrap_or(Type::TEXT);
            FieldInfo::new(c.name.clone(), None, None, t, format_of(format, i))
        })
        .collect()
}

/// A row as a DataRow; text columns show a `timestamptz` in the session's time zone `zone`.
pub(super) fn encode_row(row: &[Value], fields: &[FieldInfo], zone: &Zone) -> PgWireResult<DataRow> {
    let mut data = BytesMut::with_capacity(row.len() * 8);
    for (value, field) in row.iter().zip(fields) {
        if value.is_null() {
            data.put_i32(-1);
            continue;
        }
        let value = encode::as_declared(value, field.datatype().oid(), zone).map_err(to_pg_error)?;
        let value = value.as_ref();
        match field.format() {
            FieldFormat::Text => {
                let text = encode::text(value, zone).unwrap_or_default();
                data.put_i32(text.len() as i32);
                data.put_slice(text.as_bytes());
            }
            FieldFormat::Binary => {
                let mut buf = BytesMut::new();
                encode::binary_as(value, field.datatype().oid(), &mut buf).map_err(to_pg_error)?;
                data.put_i32(buf.len() as i32);
                data.put_slice(&buf);
            }
        }
    }
    Ok(DataRow::new(data, row.len() as i16))
}

/// Converts one statement's outcome into a pgwire response.
fn response(outcome: Outcome, format: &Format, zone: &Zone) -> PgWireResult<Response> {
    Ok(match outcome {
        Outcome::Rows { columns, rows, tag } => {
            let fields = Arc::new(fields(&columns, format));
            let encoded: Vec<PgWireResult<DataRow>> = rows.iter().map(|r| encode_row(r, &fields, zone)).collect();
            let mut resp = QueryResponse::new(fields, futures::stream::iter(encoded));
            // pgwire appends the row count.
            let command = match tag.split_whitespace().next() {
                Some("INSERT") => "INSERT 0".to_string(),
                Some(word) => word.to_string(),
                None => "SELECT".into(),
            };
            resp.set_command_tag(&command);
            Response::Query(resp)
        }
        Outcome::CopyIn { columns } => {
            Response::CopyIn(CopyResponse::new(0, columns, futures::stream::empty::<PgWireResult<CopyData>>()))
        }
        Outcome::CopyOut { columns, lines } => {
            let data: Vec<PgWireResult<CopyData>> =
                lines.into_iter().map(|l| Ok(CopyData::new(bytes::Bytes::from(l.into_bytes())))).collect();
            Response::CopyOut(CopyResponse::new(0, columns, futures::stream::iter(data)))
        }
        Outcome::Command { tag } => match tag.as_str() {
            "BEGIN" => Response::TransactionStart(Tag::new(&tag)),
            "COMMIT" | "ROLLBACK" => Response::TransactionEnd(Tag::new(&tag)),
            _ => Response::Execution(Tag::new(&tag)),
        },
    })
}

/// The session's time zone after a statement, and its `TimeZone` setting as `SHOW` gives it
/// if the statement changed it (`before`: the session's count of changes before it ran).
fn zone_after(s: &mut Session, before: u64) -> (Zone, Option<String>) {
    let changed = s.info.zone_changes != before;
    (s.info.zone, changed.then(|| s.setting("timezone").unwrap_or("UTC").to_string()))
}

/// The same for a streamed query, from the zone its rows came with.
fn streamed_zone(zone: &SessionZone, before: u64) -> (Zone, Option<String>) {
    (zone.zone, (zone.changes != before).then(|| zone.setting.clone()))
}

/// Tells the client the session's `TimeZone` when a statement set it, as PostgreSQL reports
/// it (drivers read timestamps by it).
async fn report_zone<C>(client: &mut C, setting: Option<String>) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    if let Some(setting) = setting {
        let status = ParameterStatus::new("TimeZone".into(), setting);
        client.feed(PgWireBackendMessage::ParameterStatus(status)).await?;
    }
    Ok(())
}

async fn send_notices<C>(client: &mut C, notices: Vec<String>) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for n in notices {
        let info = ErrorInfo::new("NOTICE".into(), "00000".into(), n);
        client.feed(PgWireBackendMessage::NoticeResponse(NoticeResponse::from(info))).await?;
    }
    Ok(())
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    /// Runs a statement string on a blocking thread. The results of all but the last
    /// statement arrive whole; a last statement that is a query streams its rows
    /// ([`super::stream`]), so the memory a result takes does not grow with its size.
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let started = std::time::Instant::now();
        let busy = BusyGuard::new(self);
        let session = self.session.clone();
        let span = tracing::debug_span!("query", peer = %self.peer);
        let (tx, mut rx) = stream::channel();
        let (shared, peer) = (self.shared.clone(), self.peer);
        // Parsed here, and planned when it is one short query: a short read then runs here
        // whole (as in `execute_streamed`), anything else on a blocking thread.
        let (before, parsed) =
            with_session(&self.shared, &self.session, client, |s| (s.info.zone_changes, Some(s.parse_simple(query))));
        let quick = match &parsed {
            Some(Simple::Query(prepared)) => self.try_inline(prepared, &[]),
            _ => None,
        };
        let run = move |sink: RowSink| {
            let _enter = span.enter();
            let mut guard = session.lock().unwrap_or_else(|e| e.into_inner());
            match (guard.as_mut(), parsed) {
                (Some(s), Some(parsed)) => {
                    let results = match parsed {
                        Simple::Query(prepared) => vec![s.execute_prepared(&prepared, &[], Some(sink))],
                        Simple::Statements(statements) => s.run_parsed(statements, Some(sink)),
                        Simple::Long(sql) => s.run_streaming(&sql, Some(sink)),
                    };
                    record_audit(&shared.audit, s, peer);
                    (results, s.take_notices())
                }
                _ => (Vec::new(), Vec::new()),
            }
        };
        stream::finish(tx, quick, run);
        let mut outcomes = Vec::new();
        let mut notices = Vec::new();
        let streamed = loop {
            match rx.recv().await {
                Some(stream::Produced::Event(Streamed::Earlier(results, n))) => {
                    outcomes.extend(results);
                    notices.extend(n);
                }
                Some(stream::Produced::Event(Streamed::Columns(columns, n, zone))) => {
                    notices.extend(n);
                    break Some((columns, zone));
                }
                Some(stream::Produced::Event(Streamed::Rows(_))) => {
                    return Err(internal("rows before their columns".into()));
                }
                Some(stream::Produced::Done(results, n)) => {
                    outcomes.extend(results);
                    notices.extend(n);
                    break None;
                }
                None => return Err(internal("statement task failed".into())),
            }
        };
        send_notices(client, notices).await?;
        self.shared.metrics.record(&outcomes, started.elapsed());
        // The zone the message left the session in (a streamed query's rows carry their own,
        // the session being busy streaming them).
        let (zone, setting) = match &streamed {
            Some((_, zone)) => streamed_zone(zone, before),
            None => with_session(&self.shared, &self.session, client, |s| zone_after(s, before)),
        };
        report_zone(client, setting).await?;
        let mut out = Vec::with_capacity(outcomes.len() + 1);
        for result in outcomes {
            out.push(match result {
                Ok(outcome) => response(outcome, &Format::UnifiedText, &zone)?,
                Err(e) => match to_pg_error(e) {
                    PgWireError::UserError(info) => Response::Error(info),
                    other => return Err(other),
                },
            });
        }
        if let Some((columns, _)) = streamed {
            let fields = Arc::new(fields(&columns, &Format::UnifiedText));
            let shared = self.shared.clone();
            let rows = stream::data_rows(rx, fields.clone(), zone, busy, move |results| {
                shared.metrics.record(results, started.elapsed());
            });
            let mut resp = QueryResponse::new(fields, rows);
            resp.set_command_tag("SELECT");
            out.push(Response::Query(resp));
        }
        if out.is_empty() {
            out.push(Response::EmptyQuery);
        }
        Ok(out)
    }
}

/// A statement prepared by Parse.
#[derive(Clone, Debug)]
pub struct Statement {
    pub prepared: Prepared,
}

pub struct Parser {
    shared: Arc<Shared>,
    session: SharedSession,
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Arc<Statement>;

    async fn parse_sql<C>(&self, client: &C, sql: &str, types: &[Option<Type>]) -> PgWireResult<Option<Self::Statement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let declared: Vec<DataType> = types
            .iter()
            .map(|t| t.as_ref().map(|t| encode::type_from_oid(t.oid())).unwrap_or(DataType::Unknown))
            .collect();
        let prepared =
            with_session(&self.shared, &self.session, client, |s| s.prepare(sql, &declared)).map_err(to_pg_error)?;
        Ok(Some(Arc::new(Statement { prepared })))
    }

    fn get_parameter_types(&self, stmt: &Self::Statement) -> PgWireResult<Vec<Type>> {
        Ok(stmt.prepared.param_types.iter().map(|t| Type::from_oid(t.oid()).unwrap_or(Type::TEXT)).collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Self::Statement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        Ok(fields(&stmt.prepared.columns, column_format.unwrap_or(&Format::UnifiedText)))
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Arc<Statement>;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.parser.clone()
    }

    /// An Execute that asks for all the rows of a query streams them as the executor produces
    /// them. (pgwire's own Execute collects a portal's rows before sending any.) Executes with
    /// a row limit, whose portal is fetched in parts across messages, and other statements
    /// take pgwire's path.
    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let portal = match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal))
                if message.max_rows == 0
                    && matches!(client.state(), PgWireConnectionState::ReadyForQuery)
                    && returns_rows(&portal.statement.statement.prepared) =>
            {
                portal
            }
            _ => return self._on_execute(client, message).await,
        };
        let state = portal.state();
        let mut state = state.lock().await;
        if !matches!(*state, PortalExecutionState::Initial) {
            drop(state);
            return self._on_execute(client, message).await;
        }
        // Run once: executing the portal again returns no more rows, as in PostgreSQL.
        *state = PortalExecutionState::Finished;
        drop(state);
        client.set_state(PgWireConnectionState::QueryInProgress);
        let result = self.execute_streamed(client, &portal).await;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        result
    }

    /// Describe of a statement that returns no rows answers NoData, as PostgreSQL does. (The
    /// default sends an empty RowDescription when the statement has parameters, which pgjdbc
    /// reads as "returns rows" and then rejects the update count.)
    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if message.target_type == TARGET_TYPE_BYTE_STATEMENT {
            let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
            if let Some(Entry::Value(stmt)) = client.portal_store().get_statement(name) {
                if stmt.statement.prepared.columns.is_empty() {
                    let response = self.do_describe_statement(client, &stmt).await?;
                    let oids = response.parameters().unwrap_or_default().iter().map(|t| t.oid()).collect();
                    client.send(PgWireBackendMessage::ParameterDescription(ParameterDescription::new(oids))).await?;
                    client.send(PgWireBackendMessage::NoData(NoData::new())).await?;
                    return Ok(());
                }
            }
        }
        self._on_describe(client, message).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = portal.statement.statement.clone();
        if prepared.prepared.statement.is_none() {
            return Ok(Response::EmptyQuery);
        }
        let (zone, before) = with_session(&self.shared, &self.session, client, |s| (s.info.zone, s.info.zone_changes));
        let params = bind_parameters(portal, &prepared.prepared, &zone)?;
        let started = std::time::Instant::now();
        let _busy = BusyGuard::new(self);
        let session = self.session.clone();
        let span = tracing::debug_span!("execute", peer = %self.peer);
        let (shared, peer) = (self.shared.clone(), self.peer);
        let task = tokio::task::spawn_blocking(move || {
            let _enter = span.enter();
            let mut guard = session.lock().unwrap_or_else(|e| e.into_inner());
            let Some(s) = guard.as_mut() else {
                return (Err(Error::Internal("no session".into())), Vec::new(), (Zone::UTC, None));
            };
            let result = s.execute_prepared(&prepared.prepared, &params, None);
            record_audit(&shared.audit, s, peer);
            (result, s.take_notices(), zone_after(s, before))
        });
        let (result, notices, (zone, setting)) =
            task.await.map_err(|e| internal(format!("statement task failed: {e}")))?;
        send_notices(client, notices).await?;
        self.shared.metrics.record(std::slice::from_ref(&result), started.elapsed());
        report_zone(client, setting).await?;
        match result {
            Ok(outcome) => response(outcome, &portal.result_column_format, &zone),
            Err(e) => match to_pg_error(e) {
                PgWireError::UserError(info) => Ok(Response::Error(info)),
                other => Err(other),
            },
        }
    }
}

/// True for statements that are queries (their rows can stream).
fn returns_rows(prepared: &Prepared) -> bool {
    matches!(prepared.statement, Some(sqlparser::ast::Statement::Query(_))) && !prepared.columns.is_empty()
}

/// The values of a portal's parameters, as the types its statement was prepared with.
fn bind_parameters(portal: &Portal<Arc<Statement>>, prepared: &Prepared, zone: &Zone) -> PgWireResult<Vec<Value>> {
    check_formats(&portal.parameter_format, portal.parameters.len(), "parameter")?;
    check_formats(&portal.result_column_format, prepared.columns.len(), "result column")?;
    let mut params = Vec::with_capacity(portal.parameters.len());
    for (i, bytes) in portal.parameters.iter().enumerate() {
        let t = prepared.param_types.get(i).cloned().unwrap_or(DataType::Text);
        let binary = format_of(&portal.parameter_format, i) == FieldFormat::Binary;
        params.push(encode::parameter(bytes.as_deref(), &t, binary, zone).map_err(to_pg_error)?);
    }
    Ok(params)
}

impl Handler {
    /// Runs `prepared` here, on the connection's task, when it is a short read that can run
    /// without waiting ([`Session::try_execute_inline`]): it takes less time than the hop to a
    /// blocking thread and back. Its result and notices, or None when it did not run.
    fn try_inline(&self, prepared: &Prepared, params: &[Value]) -> Option<stream::Finished> {
        let _enter = tracing::debug_span!("execute", peer = %self.peer).entered();
        let mut guard = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let s = guard.as_mut()?;
        let result = s.try_execute_inline(prepared, params)?;
        record_audit(&self.shared.audit, s, self.peer);
        Some((vec![result], s.take_notices()))
    }

    /// Runs a portal whose statement is a query and sends all its rows as the executor
    /// produces them (see [`ExtendedQueryHandler::on_execute`] below).
    async fn execute_streamed<C>(&self, client: &mut C, portal: &Portal<Arc<Statement>>) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = portal.statement.statement.clone();
        if prepared.prepared.statement.is_none() {
            return Err(internal("no statement".into()));
        }
        let (zone, before) = with_session(&self.shared, &self.session, client, |s| (s.info.zone, s.info.zone_changes));
        let params = bind_parameters(portal, &prepared.prepared, &zone)?;
        let started = std::time::Instant::now();
        let busy = BusyGuard::new(self);
        let quick = self.try_inline(&prepared.prepared, &params);
        let session = self.session.clone();
        let span = tracing::debug_span!("execute", peer = %self.peer);
        let (tx, mut rx) = stream::channel();
        let (shared, peer) = (self.shared.clone(), self.peer);
        let run = move |sink: RowSink| {
            let _enter = span.enter();
            let mut guard = session.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_mut() {
                Some(s) => {
                    let result = s.execute_prepared(&prepared.prepared, &params, Some(sink));
                    record_audit(&shared.audit, s, peer);
                    (vec![result], s.take_notices())
                }
                None => (vec![Err(Error::Internal("no session".into()))], Vec::new()),
            }
        };
        stream::finish(tx, quick, run);
        let format = &portal.result_column_format;
        match rx.recv().await {
            Some(stream::Produced::Event(Streamed::Columns(columns, notices, streamed))) => {
                send_notices(client, notices).await?;
                let (zone, setting) = streamed_zone(&streamed, before);
                report_zone(client, setting).await?;
                let fields = Arc::new(fields(&columns, format));
                let shared = self.shared.clone();
                let rows = stream::data_rows(rx, fields.clone(), zone, busy, move |results| {
                    shared.metrics.record(results, started.elapsed());
                });
                let mut resp = QueryResponse::new(fields, rows);
                resp.set_command_tag("SELECT");
                send_query_response(client, resp, false).await
            }
            Some(stream::Produced::Done(results, notices)) => {
                send_notices(client, notices).await?;
                self.shared.metrics.record(&results, started.elapsed());
                let (zone, setting) = with_session(&self.shared, &self.session, client, |s| zone_after(s, before));
                report_zone(client, setting).await?;
                match results.into_iter().next() {
                    Some(Ok(outcome)) => match response(outcome, format, &zone)? {
                        Response::Query(resp) => send_query_response(client, resp, false).await,
                        _ => Err(internal("a query without rows".into())),
                    },
                    Some(Err(e)) => {
                        let info = match to_pg_error(e) {
                            PgWireError::UserError(info) => info,
                            other => return Err(other),
                        };
                        client.send(PgWireBackendMessage::ErrorResponse((*info).into())).await?;
                        client.set_transaction_status(client.transaction_status().to_error_state());
                        Ok(())
                    }
                    None => Err(internal("no result".into())),
                }
            }
            Some(stream::Produced::Event(_)) => Err(internal("rows before their columns".into())),
            None => Err(internal("statement task failed".into())),
        }
    }

    /// Runs a COPY step on the session, off the async workers.
    async fn copy_step<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Session) -> crate::error::Result<T> + Send + 'static,
    ) -> PgWireResult<T> {
        let _busy = BusyGuard::new(self);
        let session = self.session.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = session.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_mut() {
                Some(s) => f(s),
                None => Err(Error::Internal("no session".into())),
            }
        })
        .await
        .map_err(|e| internal(format!("COPY task failed: {e}")))?
        .map_err(to_pg_error)
    }
}

#[async_trait]
impl CopyHandler for Handler {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let data = copy_data.data;
        self.copy_step(move |s| s.copy_data(&data)).await
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let tag = self.copy_step(|s| s.copy_done()).await?;
        client.send(PgWireBackendMessage::CommandComplete(Tag::new(&tag).into())).await?;
        Ok(())
    }

    async fn on_copy_fail<C>(&self, _client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _ = self
            .copy_step(|s| {
                s.copy_abort();
                Ok(())
            })
            .await;
        to_pg_error(Error::QueryCanceledWith(format!("COPY from stdin failed: {}", fail.message)))
    }
}

#[async_trait]
impl CancelHandler for Handler {
    async fn on_cancel_request(&self, request: CancelRequest) {
        self.shared.cancels.cancel(request.pid, &request.secret_key);
    }
}

impl ErrorHandler for Handler {
    fn on_error<C>(&self, _client: &C, error: &mut PgWireError)
    where
        C: ClientInfo,
    {
        tracing::debug!(peer = %self.peer, error = %error, "protocol error");
    }
}
