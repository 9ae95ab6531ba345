//! The rules of Consul's blocking queries as a state machine.
//!
//! [`Watch`] keeps the index between calls and says how long to sleep before the next one:
//! - the index of an answer is sent with the next call (no index on the first call or after a
//!   reset, so that call answers at once with the current state);
//! - an answer with index 0 is treated as index 1 (index 0 would make every call return at
//!   once);
//! - an index lower than the previous one resets the watch (index 0, a full read next);
//! - successive calls start at least `min_interval` apart, so that an index that changes
//!   all the time cannot make a busy loop;
//! - after an error the next call waits an exponential backoff (`backoff_start` doubled per
//!   consecutive error, at most `backoff_max`); a success resets it.
//!
//! The pure methods take the elapsed time of the call and return the sleep; with the `tokio`
//! feature [`Watch::wait_change`] runs the loop.

use std::time::Duration;

use crate::request::{QueryMeta, QueryOptions};

/// State of a blocking-query loop on one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    min_interval: Duration,
    max_wait: Duration,
    backoff_start: Duration,
    backoff_max: Duration,
    index: u64,
    errors: u32,
    pending_sleep: Duration,
}

/// What a successful answer means for the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The index moved (or this is the first answer): the data may have changed.
    pub changed: bool,
    /// Sleep this long before the next call.
    pub sleep: Duration,
}

impl Watch {
    /// Calls at least `min_interval` apart, each waiting up to `max_wait` (Consul caps it at
    /// 10 minutes). Backoff after errors starts at `max(min_interval, 1s)`, at most 1 minute.
    pub fn new(min_interval: Duration, max_wait: Duration) -> Self {
        Watch {
            min_interval,
            max_wait,
            backoff_start: min_interval.max(Duration::from_secs(1)),
            backoff_max: Duration::from_secs(60),
            index: 0,
            errors: 0,
            pending_sleep: Duration::ZERO,
        }
    }

    pub fn with_backoff(mut self, start: Duration, max: Duration) -> Self {
        self.backoff_start = start;
        self.backoff_max = max.max(start);
        self
    }

    /// The index the next call sends; 0 when it sends none.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Consecutive errors so far.
    pub fn errors(&self) -> u32 {
        self.errors
    }

    /// `base` with the index and wait of the next call.
    pub fn options(&self, base: &QueryOptions) -> QueryOptions {
        let mut o = base.clone();
        if self.index > 0 {
            o.index = Some(self.index);
            o.wait = Some(self.max_wait);
        } else {
            o.index = None;
            o.wait = None;
        }
        o
    }

    /// Apply the index rules to an answer; the index the next call sends (0: none).
    pub fn next_index(&mut self, meta: &QueryMeta) -> u64 {
        let new = meta.last_index;
        self.index = if new == 0 {
            1
        } else if new < self.index {
            0
        } else {
            new
        };
        self.index
    }

    /// A call that took `elapsed` answered with `meta`.
    pub fn on_success(&mut self, meta: &QueryMeta, elapsed: Duration) -> Step {
        let previous = self.index;
        let next = self.next_index(meta);
        self.errors = 0;
        let step = Step {
            changed: previous == 0 || next != previous,
            sleep: self.min_interval.saturating_sub(elapsed),
        };
        self.pending_sleep = step.sleep;
        step
    }

    /// A call that took `elapsed` failed: how long to sleep before the next one.
    pub fn on_error(&mut self, elapsed: Duration) -> Duration {
        self.errors = self.errors.saturating_add(1);
        let factor = 2u32.saturating_pow(self.errors - 1);
        let backoff = self
            .backoff_start
            .checked_mul(factor)
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max);
        let sleep = backoff.max(self.min_interval.saturating_sub(elapsed));
        self.pending_sleep = sleep;
        sleep
    }

    /// Wait for the next change: sleep what the last answer asked for, call with the watch's
    /// index, repeat while the index does not move. The first call answers at once. Errors are
    /// returned (the backoff is slept at the start of the next `wait_change`).
    #[cfg(feature = "tokio")]
    pub async fn wait_change<T, F>(
        &mut self,
        client: &crate::Client,
        base: &QueryOptions,
        call: F,
    ) -> Result<(T, QueryMeta), crate::Error>
    where
        F: Fn() -> crate::Call<T>,
    {
        loop {
            if !self.pending_sleep.is_zero() {
                tokio::time::sleep(self.pending_sleep).await;
            }
            let start = tokio::time::Instant::now();
            let c = call().with_options(&self.options(base));
            match client.call_with_meta(c).await {
                Ok((value, meta)) => {
                    if self.on_success(&meta, start.elapsed()).changed {
                        return Ok((value, meta));
                    }
                }
                Err(e) => {
                    self.on_error(start.elapsed());
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(i: u64) -> QueryMeta {
        QueryMeta {
            last_index: i,
            ..QueryMeta::default()
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_returned_index_is_sent_next() {
        let mut w = Watch::new(MS * 100, Duration::from_secs(60));
        let o = w.options(&QueryOptions::stale());
        assert_eq!((o.index, o.wait, o.stale), (None, None, true));
        let s = w.on_success(&meta(10), MS * 5);
        assert_eq!(
            s,
            Step {
                changed: true,
                sleep: MS * 95
            }
        );
        let o = w.options(&QueryOptions::stale());
        assert_eq!(
            (o.index, o.wait, o.stale),
            (Some(10), Some(Duration::from_secs(60)), true)
        );
        // The wait ran out without a change.
        let s = w.on_success(&meta(10), Duration::from_secs(60));
        assert_eq!(
            s,
            Step {
                changed: false,
                sleep: Duration::ZERO
            }
        );
        assert!(w.on_success(&meta(12), MS * 200).changed);
        assert_eq!(w.index(), 12);
    }

    #[test]
    fn a_lower_index_resets_and_zero_becomes_one() {
        let mut w = Watch::new(Duration::ZERO, Duration::from_secs(10));
        w.on_success(&meta(100), MS);
        assert!(w.on_success(&meta(50), MS).changed);
        assert_eq!(w.index(), 0);
        assert_eq!(w.options(&QueryOptions::default()).index, None);
        w.on_success(&meta(50), MS);
        assert_eq!(w.index(), 50);
        assert_eq!(w.next_index(&meta(0)), 1);
        assert_eq!(w.options(&QueryOptions::default()).index, Some(1));
        // Never 0 while looping: 0 again stays 1.
        let s = w.on_success(&meta(0), MS);
        assert_eq!((w.index(), s.changed), (1, false));
    }

    #[test]
    fn fast_changes_are_rate_limited() {
        let mut w = Watch::new(Duration::from_secs(1), Duration::from_secs(300));
        for i in 1..5 {
            let s = w.on_success(&meta(i), MS * 10);
            assert_eq!(s.sleep, MS * 990);
        }
    }

    #[test]
    fn errors_back_off_exponentially_up_to_the_cap_and_success_resets() {
        let mut w = Watch::new(MS * 100, Duration::from_secs(60))
            .with_backoff(Duration::from_secs(1), Duration::from_secs(10));
        let sleeps: Vec<u64> = (0..6).map(|_| w.on_error(MS).as_secs()).collect();
        assert_eq!(sleeps, [1, 2, 4, 8, 10, 10]);
        assert_eq!(w.errors(), 6);
        w.on_success(&meta(3), MS);
        assert_eq!(w.errors(), 0);
        assert_eq!(w.on_error(MS), Duration::from_secs(1));
        // Many errors do not overflow.
        for _ in 0..100 {
            w.on_error(MS);
        }
        assert_eq!(w.on_error(MS), Duration::from_secs(10));
    }

    #[test]
    fn the_default_backoff_starts_at_one_second_or_the_interval() {
        let mut w = Watch::new(MS * 10, Duration::from_secs(60));
        assert_eq!(w.on_error(MS), Duration::from_secs(1));
        let mut w = Watch::new(Duration::from_secs(5), Duration::from_secs(60));
        assert_eq!(w.on_error(MS), Duration::from_secs(5));
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn wait_change_skips_answers_without_change() {
        use crate::testing::FakeTransport;
        let fake = FakeTransport::new()
            .on_indexed("GET", "/v1/catalog/services", 200, r#"{"a":[]}"#, 5)
            .on_indexed(
                "GET",
                "/v1/catalog/services?index=5&wait=1s",
                200,
                r#"{"a":[]}"#,
                5,
            )
            .on_indexed(
                "GET",
                "/v1/catalog/services?index=5&wait=1s",
                200,
                r#"{"a":[],"b":[]}"#,
                7,
            )
            .on("GET", "/v1/catalog/services?index=7&wait=1s", 500, "boom");
        let client = crate::Client::new(fake.clone());
        let mut w = Watch::new(MS, Duration::from_secs(1)).with_backoff(MS, MS * 4);
        let base = QueryOptions::default();
        let (v, m) = w
            .wait_change(&client, &base, crate::catalog::services)
            .await
            .unwrap();
        assert_eq!((v.len(), m.last_index), (1, 5));
        let (v, m) = w
            .wait_change(&client, &base, crate::catalog::services)
            .await
            .unwrap();
        assert_eq!((v.len(), m.last_index), (2, 7));
        let e = w
            .wait_change(&client, &base, crate::catalog::services)
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(500));
        assert_eq!(w.errors(), 1);
        assert_eq!(
            fake.sent(),
            [
                "GET /v1/catalog/services",
                "GET /v1/catalog/services?index=5&wait=1s",
                "GET /v1/catalog/services?index=5&wait=1s",
                "GET /v1/catalog/services?index=7&wait=1s",
            ]
        );
    }
}
