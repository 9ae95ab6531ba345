//! Wait until a condition holds, polling at an interval, with the last observation in the
//! timeout error ("timed out after 1m waiting for a leader: no leader yet").
//!
//! The condition returns `Ok(Progress::Ready(value))` when done, `Ok(Progress::Pending(why))`
//! to poll again, or `Err(e)`, which is also polled again (an agent that is not up yet) and
//! kept as the last observation. A condition that must stop at once returns `Ready(Err(..))`.
//!
//! [`wait_until_with`] runs on any executor through a [`Clock`]; [`wait_until`] (feature
//! `tokio`) uses tokio's timer and also bounds each attempt by the time left.

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::client::BoxFuture;

/// One observation of the condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress<T> {
    Ready(T),
    /// Not yet, and why (shown if the wait times out).
    Pending(String),
}

/// The last thing seen before a timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Last<E> {
    Pending(String),
    Error(E),
}

/// The condition did not hold within the timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeout<E> {
    pub what: String,
    pub after: Duration,
    /// What the last attempt saw.
    pub last: Last<E>,
}

impl<E: fmt::Display> fmt::Display for Timeout<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "timed out after {} waiting for {}",
            human(self.after),
            self.what
        )?;
        match &self.last {
            Last::Pending(why) => write!(f, ": {why}"),
            Last::Error(e) => write!(f, ": {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for Timeout<E> {}

/// `60s`, `1.5s`, `250ms`, `2m`, `1m30s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms % 1000 != 0 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// The delay before retry number `attempt` (1 = the first retry) of something that failed for
/// now: 1 s, doubling, at most `max`; None once `elapsed` plus the delay would pass `budget`.
/// The schedule of retries that are not polls of a condition (a snapshot Consul cannot take
/// yet); sleep it with a [`Clock`].
pub fn backoff(
    attempt: u32,
    elapsed: Duration,
    budget: Duration,
    max: Duration,
) -> Option<Duration> {
    let delay = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(16)).min(max);
    (elapsed + delay <= budget).then_some(delay)
}

/// Time for [`wait_until_with`]: tokio's in the CLI, a manual one in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()>;
}

/// Poll `f` every `interval` until it is ready or `timeout` has passed (at least one attempt;
/// the last sleep is cut to the deadline, and one last attempt is made there).
pub async fn wait_until_with<T, E, F, Fut>(
    clock: &dyn Clock,
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut f: F,
) -> Result<T, Timeout<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Progress<T>, E>>,
{
    let deadline = clock.now() + timeout;
    loop {
        let last = match f().await {
            Ok(Progress::Ready(v)) => return Ok(v),
            Ok(Progress::Pending(why)) => Last::Pending(why),
            Err(e) => Last::Error(e),
        };
        let now = clock.now();
        if now >= deadline {
            return Err(Timeout {
                what: what.to_string(),
                after: timeout,
                last,
            });
        }
        clock.sleep(interval.min(deadline - now)).await;
    }
}

/// tokio's clock (paused time in tests included).
#[cfg(feature = "tokio")]
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

#[cfg(feature = "tokio")]
impl Clock for TokioClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// [`wait_until_with`] on tokio's timer; an attempt still running at the deadline is cut
/// off and counts as `Pending("no answer within ...")`.
#[cfg(feature = "tokio")]
pub async fn wait_until<T, E, F, Fut>(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut f: F,
) -> Result<T, Timeout<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Progress<T>, E>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    wait_until_with(&TokioClock, what, timeout, interval, || {
        let attempt = f();
        async move {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            // At least a moment for the last attempt at the deadline.
            let left = left
                .max(Duration::from_millis(100))
                .min(timeout.max(Duration::from_millis(100)));
            match tokio::time::timeout(left, attempt).await {
                Ok(r) => r,
                Err(_) => Ok(Progress::Pending(format!(
                    "no answer within {}",
                    human(left)
                ))),
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_stays_within_the_budget() {
        let budget = Duration::from_secs(60);
        let s = Duration::from_secs;
        let max = s(5);
        assert_eq!(backoff(1, s(0), budget, max), Some(s(1)));
        assert_eq!(backoff(2, s(1), budget, max), Some(s(2)));
        assert_eq!(backoff(3, s(3), budget, max), Some(s(4)));
        assert_eq!(backoff(4, s(7), budget, max), Some(s(5)));
        assert_eq!(backoff(40, s(50), budget, max), Some(s(5)));
        assert_eq!(backoff(40, s(55), budget, max), Some(s(5)));
        assert_eq!(backoff(41, s(56), budget, max), None, "past the budget");
        let (mut elapsed, mut attempt) = (s(0), 1);
        while let Some(d) = backoff(attempt, elapsed, budget, max) {
            elapsed += d;
            attempt += 1;
        }
        assert!(elapsed <= budget && elapsed >= s(55), "{elapsed:?}");
    }
    use crate::testing::block_on;
    use std::sync::Mutex;

    /// A clock whose sleeps advance it at once.
    struct ManualClock(Mutex<Instant>, Mutex<Vec<Duration>>);

    impl ManualClock {
        fn new() -> Self {
            ManualClock(Mutex::new(Instant::now()), Mutex::new(Vec::new()))
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
        fn sleep(&self, d: Duration) -> BoxFuture<'_, ()> {
            *self.0.lock().unwrap() += d;
            self.1.lock().unwrap().push(d);
            Box::pin(std::future::ready(()))
        }
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn ready_returns_the_value() {
        let clock = ManualClock::new();
        let mut n = 0;
        let r: Result<u32, Timeout<String>> =
            block_on(wait_until_with(&clock, "x", S * 10, S, || {
                n += 1;
                let v = if n == 3 {
                    Progress::Ready(n)
                } else {
                    Progress::Pending(format!("try {n}"))
                };
                std::future::ready(Ok(v))
            }));
        assert_eq!(r.unwrap(), 3);
        assert_eq!(*clock.1.lock().unwrap(), [S, S]);
    }

    #[test]
    fn the_timeout_names_what_and_the_last_observation() {
        let clock = ManualClock::new();
        let mut n = 0;
        let r: Result<(), Timeout<String>> =
            block_on(wait_until_with(&clock, "a leader", S * 60, S * 25, || {
                n += 1;
                std::future::ready(Ok(Progress::Pending(format!("no leader yet ({n} reads)"))))
            }));
        let e = r.unwrap_err();
        assert_eq!(
            e.to_string(),
            "timed out after 1m waiting for a leader: no leader yet (4 reads)"
        );
        // The last sleep is cut to the deadline, and a last attempt is made there.
        assert_eq!(*clock.1.lock().unwrap(), [S * 25, S * 25, S * 10]);
    }

    #[test]
    fn errors_are_retried_and_reported() {
        let clock = ManualClock::new();
        let r: Result<(), Timeout<crate::Error>> =
            block_on(wait_until_with(&clock, "server2 alive", S * 3, S, || {
                std::future::ready(Err(crate::TransportError::new(
                    "ssh server2: connection refused",
                )
                .into()))
            }));
        let e = r.unwrap_err();
        assert!(matches!(e.last, Last::Error(crate::Error::Transport(_))));
        assert_eq!(
            e.to_string(),
            "timed out after 3s waiting for server2 alive: ssh server2: connection refused"
        );
        assert_eq!(clock.1.lock().unwrap().len(), 3);
    }

    #[test]
    fn durations_read_well() {
        let cases = [
            (0, "0ms"),
            (250, "250ms"),
            (1500, "1.5s"),
            (60_000, "1m"),
            (90_000, "1m30s"),
            (45_000, "45s"),
            (7_200_000, "120m"),
        ];
        for (ms, want) in cases {
            assert_eq!(human(Duration::from_millis(ms)), want, "{ms}");
        }
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn wait_until_on_tokio_polls_a_fake_consul() {
        use crate::testing::FakeTransport;
        let fake = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"\"")
            .on("GET", "/v1/status/leader", 200, "\"10.0.0.2:8300\"");
        let client = crate::Client::new(fake.clone());
        let leader = wait_until("a leader", S * 5, Duration::from_millis(5), || {
            let client = client.clone();
            async move {
                Ok::<_, crate::Error>(match client.call(crate::status::leader()).await? {
                    Some(l) => Progress::Ready(l),
                    None => Progress::Pending("no leader".into()),
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(leader, "10.0.0.2:8300");
        assert_eq!(fake.count("GET", "/v1/status/leader"), 2);

        let e = wait_until(
            "never",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || async { Ok::<Progress<()>, String>(Progress::Pending("still not".into())) },
        )
        .await
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "timed out after 30ms waiting for never: still not"
        );
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn a_hanging_attempt_is_cut_off_at_the_deadline() {
        let e = wait_until("an answer", Duration::from_millis(200), S, || async {
            tokio::time::sleep(S * 3600).await;
            Ok::<Progress<()>, String>(Progress::Pending("unreachable".into()))
        })
        .await
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("timed out after 200ms waiting for an answer: no answer within "),
            "{e}"
        );
    }
}
