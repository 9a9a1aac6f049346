//! Streaming a statement's rows to the client while the executor produces them.
//!
//! The statement runs on a blocking thread holding the session; what it produces crosses to
//! the connection's task through a bounded channel of [`Streamed`] batches, and the
//! connection's task encodes and sends them as pgwire pulls the response stream. The bound is
//! the backpressure: a slow client stops the executor instead of letting rows pile up in
//! memory. When the client goes away the receiver is dropped, the next send fails and the
//! statement stops (57014) and rolls back.

use super::handler::{encode_row, to_pg_error};
use crate::error::{Error, Result};
use crate::sql::{Outcome, RowSink, Streamed};
use crate::types::timezone::Zone;
use futures::stream::{self, Stream, StreamExt};
use pgwire::api::results::FieldInfo;
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Batches in flight between the executor and the connection (each up to 1,024 rows).
const QUEUE_BATCHES: usize = 4;

/// What the statement thread sends to the connection's task.
pub enum Produced {
    Event(Streamed),
    /// The statement string finished: the results not streamed, and the notices.
    Done(Vec<Result<Outcome>>, Vec<String>),
}

/// A bounded channel for one statement string.
pub fn channel() -> (mpsc::Sender<Produced>, mpsc::Receiver<Produced>) {
    mpsc::channel(QUEUE_BATCHES)
}

/// A [`RowSink`] that sends into `tx` from the statement's blocking thread.
pub fn sink(tx: mpsc::Sender<Produced>) -> RowSink {
    Box::new(move |event| tx.blocking_send(Produced::Event(event)).map_err(|_| Error::QueryCanceled))
}

/// The outcome of a statement string and its notices.
pub type Finished = (Vec<Result<Outcome>>, Vec<String>);

/// Delivers a statement string's outcome on `tx`: `ran_here` when it already ran on the
/// connection's task, else what `run` returns on a blocking thread, its rows streamed
/// through the sink it is given.
pub fn finish(
    tx: mpsc::Sender<Produced>,
    ran_here: Option<Finished>,
    run: impl FnOnce(RowSink) -> Finished + Send + 'static,
) {
    match ran_here {
        Some((results, notices)) => {
            let _ = tx.try_send(Produced::Done(results, notices));
        }
        None => {
            let sink = sink(tx.clone());
            tokio::task::spawn_blocking(move || {
                let (results, notices) = run(sink);
                let _ = tx.blocking_send(Produced::Done(results, notices));
            });
        }
    }
}

/// The data rows of a streamed query: each batch encoded as it arrives, and the statement's
/// error, if it ended with one, as the stream's last item. `keep` lives as long as the stream
/// (the connection's busy mark); `done` sees the final results.
pub fn data_rows<K: Send + 'static>(
    rx: mpsc::Receiver<Produced>,
    fields: Arc<Vec<FieldInfo>>,
    zone: Zone,
    keep: K,
    mut done: impl FnMut(&[Result<Outcome>]) + Send + 'static,
) -> impl Stream<Item = PgWireResult<DataRow>> + Send {
    tokio_stream::wrappers::ReceiverStream::new(rx).flat_map(move |produced| {
        let _ = &keep;
        let items: Vec<PgWireResult<DataRow>> = match produced {
            Produced::Event(Streamed::Rows(rows)) => rows.iter().map(|r| encode_row(r, &fields, &zone)).collect(),
            Produced::Event(Streamed::Earlier(..) | Streamed::Columns(..)) => {
                vec![Err(to_pg_error(Error::Internal("a streamed query restarted".into())))]
            }
            Produced::Done(results, _) => {
                done(&results);
                results.into_iter().filter_map(|r| r.err()).map(|e| Err(to_pg_error(e))).take(1).collect()
            }
        };
        stream::iter(items)
    })
}
