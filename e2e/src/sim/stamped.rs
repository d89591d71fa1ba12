//! A connection that knows when its bytes reached this host: every read asks the kernel for
//! the receive timestamp of what it returned (`SO_TIMESTAMPNS`), so a request is timed by when
//! it arrived, not by when a busy simulator got round to reading it.
//!
//! Why it matters: on a small machine shared by a cluster, the partner's thread is sometimes
//! late by tens of milliseconds, and requests sent evenly are then read in one bunch. Judged at
//! reading time, that bunch empties the bucket and draws 429s for requests that were never
//! above the limit; judged at arrival, it does not. A sender that really bunches its requests
//! is still refused, because its packets arrive bunched.
//!
//! Over HTTP/1.1 without pipelining (what Courier and the other senders of the tests do) the
//! newest read when a request starts is that request's head, so its stamp is the request's
//! arrival. Over HTTP/2 it is the newest frame read on the connection, close to it.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// No stamp yet.
const NONE: u64 = 0;

/// When the newest bytes read on one connection reached this host.
#[derive(Debug, Clone, Default)]
pub struct ArrivalClock(Arc<AtomicU64>);

impl ArrivalClock {
    /// The kernel's receive time of the newest bytes read, if the kernel gave one.
    pub fn latest(&self) -> Option<SystemTime> {
        match self.0.load(Ordering::Acquire) {
            NONE => None,
            nanos => Some(UNIX_EPOCH + Duration::from_nanos(nanos)),
        }
    }

    /// The arrival of what was read last, or now when the kernel gave no stamp.
    pub fn arrival(&self) -> SystemTime {
        self.latest().unwrap_or_else(SystemTime::now)
    }

    fn set(&self, stamp: TimeSpec) {
        let nanos = u64::try_from(stamp.tv_sec())
            .ok()
            .and_then(|secs| secs.checked_mul(1_000_000_000))
            .and_then(|nanos| nanos.checked_add(u64::try_from(stamp.tv_nsec()).ok()?));
        if let Some(nanos) = nanos.filter(|&n| n != NONE) {
            self.0.store(nanos, Ordering::Release);
        }
    }
}

/// Bytes one read takes at most. Reads land here first: `recvmsg` needs initialised memory,
/// and zeroing the free part of hyper's (uninitialised) read buffer at every read cost more
/// than copying the few hundred bytes a request has.
const SCRATCH: usize = 16 * 1024;

/// A TCP stream whose reads record their kernel receive time in an [`ArrivalClock`].
#[derive(Debug)]
pub struct StampedStream {
    inner: TcpStream,
    clock: ArrivalClock,
    scratch: Box<[u8]>,
}

impl StampedStream {
    /// Asks the kernel to stamp what `inner` receives. When it will not, reads still work and
    /// the clock stays empty (so [`ArrivalClock::arrival`] falls back to the reading time).
    pub fn new(inner: TcpStream) -> (Self, ArrivalClock) {
        if let Err(error) = setsockopt(&inner, sockopt::ReceiveTimestampns, &true) {
            tracing::debug!(%error, "no kernel receive timestamps: requests are timed when read");
        }
        let clock = ArrivalClock::default();
        (Self { inner, clock: clock.clone(), scratch: vec![0; SCRATCH].into_boxed_slice() }, clock)
    }
}

/// One `recvmsg` into `buf`: how many bytes, and the kernel's stamp of them if it gave one.
fn receive(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<TimeSpec>)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut control = nix::cmsg_space!(TimeSpec);
    let message = recvmsg::<()>(fd, &mut iov, Some(&mut control), MsgFlags::MSG_DONTWAIT).map_err(io::Error::from)?;
    let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
        cmsgs.find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmTimestampns(stamp) => Some(stamp),
            _ => None,
        })
    });
    Ok((message.bytes, stamp))
}

impl AsyncRead for StampedStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let Self { inner, clock, scratch } = self.get_mut();
        let want = buf.remaining().min(scratch.len());
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            ready!(inner.poll_read_ready(cx))?;
            let fd = inner.as_raw_fd();
            match inner.try_io(Interest::READABLE, || receive(fd, &mut scratch[..want])) {
                Ok((read, stamp)) => {
                    if let Some(stamp) = stamp {
                        clock.set(stamp);
                    }
                    buf.put_slice(&scratch[..read]);
                    return Poll::Ready(Ok(()));
                }
                // Readiness was stale: `try_io` cleared it, so the next poll waits again.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }
}

impl AsyncWrite for StampedStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (client, server)
    }

    #[tokio::test]
    async fn bytes_read_late_are_stamped_with_when_they_arrived() {
        let (mut client, server) = pair().await;
        let (mut server, clock) = StampedStream::new(server);
        assert_eq!(clock.latest(), None, "nothing read yet");
        let sent = SystemTime::now();
        client.write_all(b"first").await.expect("write");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut buf = [0u8; 16];
        let read = server.read(&mut buf).await.expect("read");
        let read_at = SystemTime::now();
        assert_eq!(&buf[..read], b"first");
        let stamp = clock.latest().expect("the kernel stamps TCP reads");
        let after_send = stamp.duration_since(sent).unwrap_or_default();
        assert!(after_send < Duration::from_millis(100), "stamped {after_send:?} after the send, not at the read");
        assert!(read_at.duration_since(stamp).unwrap_or_default() >= Duration::from_millis(250));
    }

    #[tokio::test]
    async fn more_than_one_scratch_buffer_arrives_whole_and_in_order() {
        let (mut client, server) = pair().await;
        let (mut server, _clock) = StampedStream::new(server);
        let sent: Vec<u8> = (0..3 * SCRATCH + 17).map(|i| (i % 251) as u8).collect();
        let writer = {
            let sent = sent.clone();
            tokio::spawn(async move {
                client.write_all(&sent).await.expect("write");
                client.shutdown().await.expect("shutdown");
            })
        };
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.expect("read to the end");
        writer.await.expect("writer");
        assert_eq!(got, sent);
    }

    #[tokio::test]
    async fn each_read_moves_the_clock_to_its_own_bytes_and_writes_pass_through() {
        let (mut client, server) = pair().await;
        let (mut server, clock) = StampedStream::new(server);
        let mut buf = [0u8; 16];
        client.write_all(b"one").await.expect("write");
        let _ = server.read(&mut buf).await.expect("read");
        let first = clock.latest().expect("stamp");
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.write_all(b"two").await.expect("write");
        let read = server.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..read], b"two");
        let second = clock.latest().expect("stamp");
        assert!(second.duration_since(first).unwrap_or_default() >= Duration::from_millis(40));
        server.write_all(b"answer").await.expect("write back");
        let read = client.read(&mut buf).await.expect("client reads");
        assert_eq!(&buf[..read], b"answer");
        drop(server);
        assert_eq!(client.read(&mut buf).await.expect("eof"), 0);
    }
}
