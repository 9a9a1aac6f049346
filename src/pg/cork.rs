//! Replies held back until the client waits for them.
//!
//! A client of the extended protocol sends Parse, Bind, Describe and Execute and then Sync (or
//! Flush), and reads nothing before the reply to the Sync; a simple query's replies end with
//! ReadyForQuery. As PostgreSQL does, the replies of such a round are written to the socket
//! together, when the round ends, instead of one write per message: each write to a local
//! socket costs a system call and a wake-up of the client. Replies held past
//! [`HOLD_BYTES`] are written at once, so a large result streams as it is produced, and the
//! connection writes what it holds before it waits for the client (`connection.rs`), so no
//! reply waits on a message that has not arrived.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The most bytes held back before they are written anyway.
pub const HOLD_BYTES: usize = 64 * 1024;

/// A stream whose writes are held while it is corked, and written on the first flush after.
pub struct Corked<S> {
    inner: S,
    corked: bool,
    held: Vec<u8>,
    /// How much of `held` has been written.
    written: usize,
}

impl<S> Corked<S> {
    /// Wraps `inner`, uncorked.
    pub fn new(inner: S) -> Self {
        Corked { inner, corked: false, held: Vec::new(), written: 0 }
    }

    /// While corked, a flush writes nothing unless [`HOLD_BYTES`] are held; uncorked, it
    /// writes everything held.
    pub fn set_corked(&mut self, corked: bool) {
        self.corked = corked;
    }
}

impl<S: AsyncWrite + Unpin> Corked<S> {
    /// Writes everything held to `inner`.
    fn poll_write_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.held.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.held.clear();
        self.written = 0;
        // A burst of a large result should not keep its buffer for the connection's life.
        if self.held.capacity() > 2 * HOLD_BYTES {
            self.held.shrink_to(HOLD_BYTES);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Corked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Corked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.held.len() >= HOLD_BYTES {
            ready!(self.poll_write_held(cx))?;
        }
        self.held.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.corked && self.held.len() < HOLD_BYTES {
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_write_held(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_write_held(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Held writes reach the peer only once uncorked and flushed, in order; past the hold
    /// limit they go at once.
    #[tokio::test]
    async fn writes_wait_for_the_uncorked_flush() {
        let (near, mut far) = tokio::io::duplex(1 << 20);
        let mut corked = Corked::new(near);
        corked.set_corked(true);
        corked.write_all(b"one ").await.unwrap();
        corked.flush().await.unwrap();
        corked.write_all(b"two").await.unwrap();
        corked.flush().await.unwrap();
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(std::time::Duration::from_millis(50), far.read(&mut byte)).await;
        assert!(early.is_err(), "nothing is written while corked");
        corked.set_corked(false);
        corked.flush().await.unwrap();
        let mut got = vec![0u8; 7];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"one two");

        corked.set_corked(true);
        let big = vec![7u8; HOLD_BYTES + 10];
        corked.write_all(&big).await.unwrap();
        corked.flush().await.unwrap();
        let mut got = vec![0u8; HOLD_BYTES + 10];
        far.read_exact(&mut got).await.unwrap();
        assert_eq!(got, big, "a large reply is not held back");
    }
}
