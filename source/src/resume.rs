//! Byte streams that wait out a passing outage of the filesystem and resume where they were.
//!
//! A namenode restart makes every open fail for its whole length (the client's own retries last
//! about 8 s, a restart often longer), and a datanode that dies mid-read can leave a block with
//! no replica the client still trusts. Failing the read there fails the lease, and the shard's
//! failures count against the package's `backoffLimit`: a routine restart of the namenode
//! would fail packages. Instead a read that hits a transient error waits, opens the file again
//! and goes on from the first byte it has not yielded yet. The file does not change under it
//! (only closed files are read), so the stream it yields is the same bytes, none twice.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt as _};
use tokio::time::Instant;

/// How a stream retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first wait; each next one doubles, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// How long one outage may last (from its first error, counting the attempts themselves)
    /// before its error is given up on. Progress (a chunk read) ends an outage.
    pub budget: Duration,
}

impl RetryPolicy {
    /// Long enough for a namenode restart (seconds to a couple of minutes on a small namespace),
    /// short of hiding a filesystem that is gone: then the shard fails as before.
    pub const READS: RetryPolicy = RetryPolicy {
        first_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(8),
        budget: Duration::from_secs(180),
    };

    /// No retries: the first error is the stream's.
    pub const NONE: RetryPolicy =
        RetryPolicy { first_delay: Duration::ZERO, max_delay: Duration::ZERO, budget: Duration::ZERO };

    fn delay(&self, attempt: u32) -> Duration {
        self.first_delay.saturating_mul(1u32 << attempt.min(16)).min(self.max_delay)
    }
}

/// The state of one outage: when it began and how many attempts it took so far.
struct Outage {
    since: Instant,
    attempts: u32,
}

impl Outage {
    /// The wait before the next attempt, or `None` when the budget is spent.
    fn next_delay(outage: &mut Option<Outage>, policy: &RetryPolicy) -> Option<Duration> {
        let now = Instant::now();
        let o = outage.get_or_insert(Outage { since: now, attempts: 0 });
        let delay = policy.delay(o.attempts);
        if policy.budget.is_zero() || now.saturating_duration_since(o.since) + delay > policy.budget {
            return None;
        }
        o.attempts += 1;
        Some(delay)
    }
}

/// Opens `len` bytes at `offset` (the end of the file when `None`) with `open(offset, len)`, and
/// yields them; on an error that `transient` accepts, at the open or mid-stream, waits and
/// opens again at the first byte not yet yielded, within `policy`. `what` names the file in
/// the log.
pub async fn resuming<E, F, Fut>(
    what: String,
    offset: u64,
    len: Option<u64>,
    policy: RetryPolicy,
    transient: fn(&E) -> bool,
    open: F,
) -> Result<BoxStream<'static, Result<Bytes, E>>, E>
where
    E: std::fmt::Display + Send + Sync + 'static,
    F: Fn(u64, Option<u64>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<BoxStream<'static, Result<Bytes, E>>, E>> + Send + 'static,
{
    // The first open's permanent errors (not found, out of range, …) are the caller's at once.
    let mut outage = None;
    let first = loop {
        match open(offset, len).await {
            Ok(stream) => break stream,
            Err(e) => wait(&what, offset, &e, &mut outage, &policy, transient).await.map_err(|()| e)?,
        }
    };
    let end = len.map(|l| offset.saturating_add(l));
    let state = State { what, open, pos: offset, end, current: Some(first), outage, policy, transient };
    Ok(futures::stream::unfold(state, State::next).boxed())
}

/// Waits out one failed attempt, or gives up (`Err`) when `e` is permanent or the budget is spent.
async fn wait<E: std::fmt::Display + Sync>(
    what: &str,
    pos: u64,
    e: &E,
    outage: &mut Option<Outage>,
    policy: &RetryPolicy,
    transient: fn(&E) -> bool,
) -> Result<(), ()> {
    if !transient(e) {
        return Err(());
    }
    let Some(delay) = Outage::next_delay(outage, policy) else {
        tracing::warn!(file = what, offset = pos, error = %e, "read failed; out of retries");
        return Err(());
    };
    tracing::warn!(file = what, offset = pos, error = %e, retry_in_ms = delay.as_millis() as u64, "read failed; opening again");
    tokio::time::sleep(delay).await;
    Ok(())
}

struct State<E, F> {
    what: String,
    open: F,
    /// The first byte not yielded yet.
    pos: u64,
    end: Option<u64>,
    current: Option<BoxStream<'static, Result<Bytes, E>>>,
    outage: Option<Outage>,
    policy: RetryPolicy,
    transient: fn(&E) -> bool,
}

impl<E, F, Fut> State<E, F>
where
    E: std::fmt::Display + Send + Sync + 'static,
    F: Fn(u64, Option<u64>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<BoxStream<'static, Result<Bytes, E>>, E>> + Send + 'static,
{
    async fn next(mut self) -> Option<(Result<Bytes, E>, Self)> {
        loop {
            if self.end.is_some_and(|end| self.pos >= end) {
                return None;
            }
            let result = match self.current.as_mut() {
                Some(stream) => match stream.next().await {
                    None => return None,
                    Some(Ok(chunk)) => {
                        self.pos += chunk.len() as u64;
                        if !chunk.is_empty() {
                            self.outage = None;
                        }
                        return Some((Ok(chunk), self));
                    }
                    Some(Err(e)) => Err(e),
                },
                None => {
                    let len = self.end.map(|end| end - self.pos);
                    (self.open)(self.pos, len).await.map(|s| self.current = Some(s))
                }
            };
            if let Err(e) = result {
                self.current = None;
                if wait(&self.what, self.pos, &e, &mut self.outage, &self.policy, self.transient).await.is_err() {
                    // The error ends the stream: nothing is polled after it.
                    self.end = Some(self.pos);
                    return Some((Err(e), self));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::TryStreamExt as _;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    enum Fail {
        Transient,
        Permanent,
    }

    impl std::fmt::Display for Fail {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    fn transient(e: &Fail) -> bool {
        *e == Fail::Transient
    }

    const FILE: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

    /// A file whose opens follow a script: each open either fails with the given error, or
    /// yields 4-byte chunks and fails with the given error after `n` chunks (`None`: to the end).
    /// One open's fate: fails, or yields chunks and then fails after `n` (`None`: to the end).
    type Step = Result<Option<(usize, Fail)>, Fail>;
    type Chunks = BoxStream<'static, Result<Bytes, Fail>>;
    type Opened = futures::future::Ready<Result<Chunks, Fail>>;
    /// (offset, len) of an open.
    type Open = (u64, Option<u64>);

    #[derive(Clone, Default)]
    struct Fake {
        script: Arc<Mutex<Vec<Step>>>,
        /// (offset, len) of every open.
        opens: Arc<Mutex<Vec<Open>>>,
    }

    impl Fake {
        fn new(script: Vec<Step>) -> Fake {
            Fake { script: Arc::new(Mutex::new(script)), ..Fake::default() }
        }

        fn opener(&self) -> impl Fn(u64, Option<u64>) -> Opened + Send + Sync + 'static {
            let fake = self.clone();
            move |offset, len| {
                fake.opens.lock().expect("lock").push((offset, len));
                let step = {
                    let mut script = fake.script.lock().expect("lock");
                    if script.is_empty() { Ok(None) } else { script.remove(0) }
                };
                let start = offset as usize;
                let end = len.map_or(FILE.len(), |l| start + l as usize);
                let chunks: Vec<Result<Bytes, Fail>> =
                    FILE[start..end].chunks(4).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
                futures::future::ready(step.map(|fail| match fail {
                    None => futures::stream::iter(chunks).boxed(),
                    Some((n, e)) => futures::stream::iter(chunks.into_iter().take(n).chain([Err(e)])).boxed(),
                }))
            }
        }
    }

    async fn read_all(fake: &Fake, offset: u64, len: Option<u64>, policy: RetryPolicy) -> Result<Vec<u8>, Fail> {
        let stream = resuming("f".into(), offset, len, policy, transient, fake.opener()).await?;
        let chunks: Vec<Bytes> = stream.try_collect().await?;
        Ok(chunks.concat())
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_open_is_tried_again_until_it_works() {
        let fake = Fake::new(vec![Err(Fail::Transient), Err(Fail::Transient), Ok(None)]);
        let started = Instant::now();
        assert_eq!(read_all(&fake, 0, None, RetryPolicy::READS).await, Ok(FILE.to_vec()));
        assert_eq!(fake.opens.lock().expect("lock").len(), 3);
        assert_eq!(started.elapsed(), Duration::from_secs(1 + 2), "1 s, then 2 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_broken_midway_resumes_at_the_first_byte_not_yielded() {
        // 2 chunks (8 bytes) from 3, then 1 chunk (4 bytes) from 11, then the rest from 15.
        let fake = Fake::new(vec![Ok(Some((2, Fail::Transient))), Ok(Some((1, Fail::Transient))), Ok(None)]);
        assert_eq!(read_all(&fake, 3, Some(20), RetryPolicy::READS).await, Ok(FILE[3..23].to_vec()));
        assert_eq!(*fake.opens.lock().expect("lock"), vec![(3, Some(20)), (11, Some(12)), (15, Some(8))]);
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_and_spent_budgets_are_the_streams_error() {
        let fake = Fake::new(vec![Err(Fail::Permanent)]);
        assert_eq!(read_all(&fake, 0, None, RetryPolicy::READS).await, Err(Fail::Permanent));
        assert_eq!(fake.opens.lock().expect("lock").len(), 1, "a permanent error is not retried");

        let fake = Fake::new(vec![Ok(Some((1, Fail::Permanent)))]);
        assert_eq!(read_all(&fake, 0, None, RetryPolicy::READS).await, Err(Fail::Permanent));

        // Always failing: 1 + 2 + 4 + 8 + 8 + … s until the budget is spent.
        let fake = Fake::new(vec![Err(Fail::Transient); 100]);
        let started = Instant::now();
        assert_eq!(read_all(&fake, 0, None, RetryPolicy::READS).await, Err(Fail::Transient));
        assert!(started.elapsed() <= RetryPolicy::READS.budget, "{:?}", started.elapsed());
        assert!(started.elapsed() >= RetryPolicy::READS.budget - Duration::from_secs(8), "{:?}", started.elapsed());

        let fake = Fake::new(vec![Err(Fail::Transient)]);
        assert_eq!(read_all(&fake, 0, None, RetryPolicy::NONE).await, Err(Fail::Transient), "no retries");
    }

    #[tokio::test(start_paused = true)]
    async fn progress_ends_an_outage() {
        // Each open yields a chunk and breaks: never out of budget, since every outage is short.
        let script = (0..9).map(|_| Ok(Some((1, Fail::Transient)))).collect();
        let fake = Fake::new(script);
        let policy = RetryPolicy { budget: Duration::from_secs(1), ..RetryPolicy::READS };
        assert_eq!(read_all(&fake, 0, None, policy).await, Ok(FILE.to_vec()));
    }
}
