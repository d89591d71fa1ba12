//! The wait for rotated credentials, on tokio's paused clock with a temp dir as the mount.

use std::sync::Mutex;

use super::*;
use crate::config::SecretStore;
use crate::send::SendConfig;

const GRACE: Duration = Duration::from_secs(180);

/// A mount root holding Secret `partner` with key `token`.
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn new(token: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("partner")).expect("secret dir");
        let mount = Self { dir };
        mount.rotate(token);
        mount
    }

    fn rotate(&self, token: &str) {
        std::fs::write(self.dir.path().join("partner/token"), token).expect("write token");
    }

    /// Reads the bearer token the way a worker pod does.
    fn source(&self) -> Arc<dyn CredentialSource> {
        let store = SecretStore::empty().with_mounts(self.dir.path());
        Arc::new(move || {
            store.named("partner", "token", "").map(|token| AuthConfig::Bearer { token }).map_err(|e| e.to_string())
        })
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl CredentialEvents for Recorder {
    fn refused(&self, status: u16) {
        self.0.lock().expect("lock").push(format!("refused {status}"));
    }
    fn reloaded(&self) {
        self.0.lock().expect("lock").push("reloaded".into());
    }
    fn holding(&self, holding: bool) {
        self.0.lock().expect("lock").push(format!("holding {holding}"));
    }
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

fn watch(token: &str, source: Option<Arc<dyn CredentialSource>>) -> (Arc<CredentialWatch>, Arc<Recorder>) {
    let client = HttpClient::new(&SendConfig::default()).expect("client");
    let config = AuthConfig::Bearer { token: token.into() };
    let auth = Auth::new(&config, client.clone()).expect("auth");
    let events = Arc::new(Recorder::default());
    let watch = CredentialWatch::new(config, auth, client).with_events(events.clone());
    watch.set_source(source);
    (Arc::new(watch), events)
}

async fn bearer(watch: &CredentialWatch) -> String {
    let (auth, _) = watch.current();
    let (_, value) = auth.header().await.expect("header").expect("some header");
    value.to_str().expect("ascii").to_owned()
}

#[tokio::test(start_paused = true)]
async fn a_refusal_after_the_mount_changed_retries_at_once_with_the_new_token() {
    let mount = Mount::new("old");
    let (watch, events) = watch("old", Some(mount.source()));
    mount.rotate("new");
    assert_eq!(watch.refused(401, 0, GRACE, Instant::now()), AuthDecision::Retry);
    assert_eq!(bearer(&watch).await, "Bearer new");
    assert_eq!(watch.current().1, 1);
    assert_eq!(watch.refusal(), None);
    assert_eq!(events.take(), ["refused 401", "reloaded"]);
}

#[tokio::test(start_paused = true)]
async fn decisions_by_time_since_the_first_refusal_and_whether_the_mount_changed() {
    // (seconds after the first refusal, rotate the mount before, expected decision)
    let table: [(u64, bool, AuthDecision); 5] = [
        (0, false, AuthDecision::Wait),
        (1, false, AuthDecision::Wait),
        (179, false, AuthDecision::Wait),
        (179, true, AuthDecision::Retry),
        (180, false, AuthDecision::GiveUp { waited: GRACE }),
    ];
    for (after, rotate, expected) in table {
        let mount = Mount::new("old");
        let (watch, _) = watch("old", Some(mount.source()));
        let start = Instant::now();
        assert_eq!(watch.refused(401, 0, GRACE, start), AuthDecision::Wait, "first refusal");
        if rotate {
            mount.rotate("new");
        }
        let decision = watch.refused(401, 0, GRACE, start + Duration::from_secs(after));
        assert_eq!(decision, expected, "{after}s after, rotated: {rotate}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_attempt_with_credentials_replaced_meanwhile_is_retried_without_reading() {
    let mount = Mount::new("old");
    let (watch, _) = watch("old", Some(mount.source()));
    mount.rotate("new");
    assert_eq!(watch.refused(401, 0, GRACE, Instant::now()), AuthDecision::Retry);
    // A second attempt that carried generation 0 is answered 401 after the change.
    assert_eq!(watch.refused(401, 0, GRACE, Instant::now()), AuthDecision::Retry);
    assert_eq!(watch.refusal(), None);
}

#[tokio::test(start_paused = true)]
async fn without_a_source_a_refusal_is_final_at_once() {
    let (watch, events) = watch("fixed", None);
    assert_eq!(watch.refused(401, 0, GRACE, Instant::now()), AuthDecision::GiveUp { waited: Duration::ZERO });
    assert_eq!(watch.ready(GRACE, &CancellationToken::new()).await, Ready::Send, "nothing holds sends");
    assert_eq!(events.take(), ["refused 401"]);
}

#[tokio::test(start_paused = true)]
async fn a_destination_without_credentials_has_nothing_to_wait_for() {
    let client = HttpClient::new(&SendConfig::default()).expect("client");
    let watch = CredentialWatch::new(AuthConfig::None, Auth::None, client);
    watch.set_source(Some(Arc::new(|| Ok(AuthConfig::None))));
    assert_eq!(watch.refused(401, 0, GRACE, Instant::now()), AuthDecision::GiveUp { waited: Duration::ZERO });
}

#[tokio::test(start_paused = true)]
async fn a_zero_grace_reads_the_mount_once_then_gives_up() {
    let mount = Mount::new("old");
    let (watch, _) = watch("old", Some(mount.source()));
    assert_eq!(watch.refused(403, 0, Duration::ZERO, Instant::now()), AuthDecision::GiveUp { waited: Duration::ZERO });
    mount.rotate("new");
    // The mount is read at most every READ_EVERY.
    let now = Instant::now();
    assert_eq!(watch.refused(403, 0, Duration::ZERO, now), AuthDecision::GiveUp { waited: Duration::ZERO });
    assert_eq!(watch.refused(403, 0, Duration::ZERO, now + READ_EVERY), AuthDecision::Retry);
}

#[tokio::test(start_paused = true)]
async fn sends_are_held_until_the_kubelet_updates_the_mount() {
    let mount = Mount::new("old");
    let (watch, events) = watch("old", Some(mount.source()));
    assert_eq!(watch.refused(401, 0, GRACE, Instant::now()), AuthDecision::Wait);
    assert!(watch.holding(), "attempts already past ready() are held at the gate too");
    assert_eq!(events.take(), ["refused 401", "holding true"]);
    let waiter = tokio::spawn({
        let watch = watch.clone();
        async move { watch.ready(GRACE, &CancellationToken::new()).await }
    });
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!waiter.is_finished(), "held while the mount is unchanged");
    mount.rotate("new");
    tokio::time::sleep(READ_EVERY).await;
    assert_eq!(waiter.await.expect("task"), Ready::Send, "released by the change");
    assert_eq!(bearer(&watch).await, "Bearer new");
    assert_eq!(events.take(), ["holding false", "reloaded"]);
}

#[tokio::test(start_paused = true)]
async fn one_probe_at_a_time_goes_out_while_held_and_the_grace_releases_everyone() {
    let mount = Mount::new("old");
    let (watch, events) = watch("old", Some(mount.source()));
    let start = Instant::now();
    assert_eq!(watch.refused(401, 0, GRACE, start), AuthDecision::Wait);
    let stop = CancellationToken::new();
    let spawn = || {
        let (watch, stop) = (watch.clone(), stop.clone());
        tokio::spawn(async move {
            let ok = watch.ready(GRACE, &stop).await;
            (ok, Instant::now())
        })
    };
    let (first, second) = (spawn(), spawn());
    tokio::time::sleep(PROBE_FIRST + Duration::from_millis(1)).await;
    assert!(first.is_finished() ^ second.is_finished(), "exactly one probe is let through");
    let (probe, other) = if first.is_finished() { (first, second) } else { (second, first) };
    let (ok, at) = probe.await.expect("task");
    assert_eq!(ok, Ready::Probe);
    assert_eq!(at - start, PROBE_FIRST);
    // The probe is refused again; the other waiter stays held until the next probe or the end
    // of the grace.
    assert_eq!(watch.refused(401, 0, GRACE, Instant::now()), AuthDecision::Wait);
    assert_eq!(probe_spacing(1), PROBE_FIRST * 2);
    let (ok, at) = other.await.expect("task");
    assert_eq!(ok, Ready::Probe);
    assert_eq!(at - start, PROBE_FIRST + probe_spacing(1));
    tokio::time::sleep_until(start + GRACE).await;
    assert_eq!(watch.ready(GRACE, &stop).await, Ready::Send, "past the grace nothing is held");
    assert!(!watch.holding());
    let decision = watch.refused(401, 0, GRACE, Instant::now());
    assert_eq!(decision, AuthDecision::GiveUp { waited: GRACE });
    assert_eq!(events.take(), ["refused 401", "holding true", "refused 401", "holding false", "refused 401"]);
}

#[tokio::test(start_paused = true)]
async fn an_accepted_attempt_ends_a_refusal_and_a_stop_ends_a_wait() {
    let mount = Mount::new("old");
    let (watch, _) = watch("old", Some(mount.source()));
    assert_eq!(watch.refused(401, 0, GRACE, Instant::now()), AuthDecision::Wait);
    let stop = CancellationToken::new();
    let waiter = tokio::spawn({
        let (watch, stop) = (watch.clone(), stop.clone());
        async move { watch.ready(GRACE, &stop).await }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    stop.cancel();
    assert_eq!(waiter.await.expect("task"), Ready::Stopped, "a stop ends the wait");
    watch.accepted();
    assert_eq!(watch.refusal(), None);
    assert_eq!(watch.ready(GRACE, &CancellationToken::new()).await, Ready::Send);
}

#[test]
fn probes_double_up_to_a_ceiling() {
    let spacings: Vec<u64> = (0..6).map(|n| probe_spacing(n).as_secs()).collect();
    assert_eq!(spacings, [5, 10, 20, 30, 30, 30]);
}

#[tokio::test]
async fn debug_output_shows_no_credential() {
    let (watch, _) = watch("tok-SECRET-9", None);
    let text = format!("{watch:?}");
    assert!(!text.contains("SECRET-9"), "{text}");
}
