//! A probe of what an application next to a Consul agent sees while something happens to the
//! cluster: inside a lab host's container, a background shell loop (`docker exec -d`) that every
//! 200 ms records a timestamp and whether the local agent's `/v1/status/leader` names a leader,
//! and starts a KV write (`PUT /v1/kv/probe/N`, 2 s timeout) whose outcome it records when it
//! ends. Writes run in the background so a slow write never delays the leader samples.
//!
//! ```ignore
//! let probe = Probe::start(&lab, "client1");
//! // ... restart things ...
//! let report = probe.stop();
//! assert!(report.longest_gap_without_leader <= Duration::from_secs(5));
//! ```
//!
//! The file in the container has one line per event:
//! - `l <unix ms> <0|1|2> <leader>`: leader sample: 1 a leader (its `IP:8300` follows), 0 the
//!   agent answered "no leader", 2 the agent did not answer (its own restart) - counted as no
//!   leader known;
//! - `w <unix ms at start> <0|1> <latency ms> <curl exit> <first bytes of the answer>`;
//! - `end` after the loop stopped and every write finished.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use crate::harness::Lab;

const OUT: &str = "/tmp/consulctl-probe.out";
const STOP: &str = "/tmp/consulctl-probe.stop";

/// The loop. Args: 1=output file, 2=stop file (the loop ends when it exists).
const SCRIPT: &str = r#"
out=$1; stop=$2
i=0
: > "$out"
while [ ! -e "$stop" ]; do
  t0=$(date +%s%3N)
  i=$((i + 1))
  (
    s=$(date +%s%3N)
    b=$(curl -s --max-time 2 -X PUT --data "$i" "http://127.0.0.1:8500/v1/kv/probe/$i" 2>/dev/null)
    rc=$?
    e=$(date +%s%3N)
    if [ "$b" = true ]; then r=1; else r=0; fi
    why=$(printf '%s' "$b" | tr -c 'A-Za-z0-9.:=-' '_' | cut -c1-60)
    echo "w $s $r $((e - s)) $rc $why" >> "$out"
  ) &
  b=$(curl -s --max-time 1 http://127.0.0.1:8500/v1/status/leader 2>/dev/null)
  case "$b" in
    '""') l=0 ;;
    '"'?*'"') l=1 ;;
    *) l=2 ;;
  esac
  addr=$(printf '%s' "$b" | tr -d '"' | tr -c 'A-Za-z0-9.:[]-' '_' | cut -c1-60)
  echo "l $t0 $l ${addr:--}" >> "$out"
  d=$((200 - ($(date +%s%3N) - t0)))
  if [ "$d" -gt 0 ]; then sleep "0.$(printf %03d "$d")"; fi
done
wait
echo end >> "$out"
"#;

/// What the probe saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeReport {
    /// Leader samples taken.
    pub samples: usize,
    /// From the first to the last sample.
    pub duration: Duration,
    /// The longest window without a known leader: from the last sample that saw a leader before
    /// a run of samples that did not, to the first sample that saw one again (to the last
    /// sample when none did). An upper bound: it includes up to one sampling interval.
    pub longest_gap_without_leader: Duration,
    /// Samples where the agent answered that there is no leader.
    pub samples_no_leader: usize,
    /// Samples where the local agent did not answer at all.
    pub samples_agent_down: usize,
    pub writes_ok: usize,
    pub writes_total: usize,
    pub max_write_latency: Duration,
    /// The failed writes: `+<secs since the first sample>s curl=<exit> <answer>`.
    pub failed_writes: Vec<String>,
    /// Every leader sample: (Unix ms, 0|1|2, the leader's `IP:8300` or `-`), in time order.
    pub leader_samples: Vec<(i64, u8, String)>,
}

impl ProbeReport {
    /// The share of writes that succeeded (1.0 when there were none).
    pub fn write_ratio(&self) -> f64 {
        if self.writes_total == 0 {
            return 1.0;
        }
        self.writes_ok as f64 / self.writes_total as f64
    }

    /// The first sample at or after `since` (Unix ms) that names a leader again after the old
    /// one went away: a leader other than `old`, or `old` itself re-elected after at least one
    /// sample without a leader (a restarted server that comes back before the others time out
    /// can win the next election; Raft allows it). `None` when no sample saw the old leader go.
    pub fn leader_back_at(&self, since: i64, old: &str) -> Option<i64> {
        let mut saw_none = false;
        for (t, s, addr) in self.leader_samples.iter().filter(|(t, _, _)| *t >= since) {
            if *s != 1 {
                saw_none = true;
            } else if addr != old || saw_none {
                return Some(*t);
            }
        }
        None
    }

    /// Parse the probe's file.
    pub fn parse(text: &str) -> ProbeReport {
        let mut leader: Vec<(i64, u8, String)> = Vec::new();
        let mut writes: Vec<(i64, bool, u64, String)> = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                ["l", t, s, rest @ ..] => {
                    if let (Ok(t), Ok(s)) = (t.parse(), s.parse()) {
                        leader.push((t, s, rest.first().unwrap_or(&"-").to_string()));
                    }
                }
                ["w", t, ok, lat, rest @ ..] => {
                    if let (Ok(t), Ok(lat)) = (t.parse(), lat.parse()) {
                        writes.push((t, *ok == "1", lat, rest.join(" ")));
                    }
                }
                _ => {}
            }
        }
        leader.sort_by_key(|(t, _, _)| *t);
        let first = leader.first().map(|(t, _, _)| *t).unwrap_or(0);
        let last = leader.last().map(|(t, _, _)| *t).unwrap_or(0);
        let mut longest = 0i64;
        let mut last_with_leader: Option<i64> = None;
        let mut in_gap = false;
        for (t, s, _) in &leader {
            if *s == 1 {
                if in_gap {
                    longest = longest.max(t - last_with_leader.unwrap_or(first));
                }
                in_gap = false;
                last_with_leader = Some(*t);
            } else {
                in_gap = true;
            }
        }
        if in_gap {
            longest = longest.max(last - last_with_leader.unwrap_or(first));
        }
        writes.sort_by_key(|w| w.0);
        ProbeReport {
            samples: leader.len(),
            duration: Duration::from_millis((last - first).max(0) as u64),
            longest_gap_without_leader: Duration::from_millis(longest.max(0) as u64),
            samples_no_leader: leader.iter().filter(|(_, s, _)| *s == 0).count(),
            samples_agent_down: leader.iter().filter(|(_, s, _)| *s == 2).count(),
            writes_ok: writes.iter().filter(|w| w.1).count(),
            writes_total: writes.len(),
            max_write_latency: Duration::from_millis(writes.iter().map(|w| w.2).max().unwrap_or(0)),
            failed_writes: writes
                .iter()
                .filter(|w| !w.1)
                .map(|w| {
                    format!(
                        "+{:.1}s curl={}",
                        (w.0 - first) as f64 / 1000.0,
                        w.3.trim_end()
                    )
                })
                .collect(),
            leader_samples: leader,
        }
    }

    /// One line for test output.
    pub fn summary(&self) -> String {
        format!(
            "longest gap without a leader {:.2}s; writes ok {}/{} ({:.1}%); {} samples over {:.1}s \
             ({} no leader, {} agent down); slowest write {}ms; failed writes: {:?}",
            self.longest_gap_without_leader.as_secs_f64(),
            self.writes_ok,
            self.writes_total,
            self.write_ratio() * 100.0,
            self.samples,
            self.duration.as_secs_f64(),
            self.samples_no_leader,
            self.samples_agent_down,
            self.max_write_latency.as_millis(),
            self.failed_writes
        )
    }
}

/// A running probe. `stop()` ends it and reads the report; dropping it only ends it.
pub struct Probe<'a> {
    lab: &'a Lab,
    host: String,
    stopped: bool,
}

impl<'a> Probe<'a> {
    /// Start the loop in `host`'s container and wait for its first sample.
    #[track_caller]
    pub fn start(lab: &'a Lab, host: &str) -> Probe<'a> {
        lab.exec(host, &["rm", "-f", OUT, STOP]).success();
        let container = lab.container(host);
        lab.docker(&[
            "exec", "-d", &container, "sh", "-c", SCRIPT, "sh", OUT, STOP,
        ])
        .success();
        let probe = Probe {
            lab,
            host: host.to_string(),
            stopped: false,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = lab.exec(host, &["cat", OUT]).stdout;
            if text.lines().any(|l| l.starts_with("l ")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the probe on {host} did not start"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        probe
    }

    /// End the loop, wait until every write finished, read and parse the file.
    #[track_caller]
    pub fn stop(mut self) -> ProbeReport {
        self.stopped = true;
        self.lab.exec(&self.host, &["touch", STOP]).success();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.lab.exec(&self.host, &["cat", OUT]).success().stdout;
            if text.lines().any(|l| l == "end") {
                return ProbeReport::parse(&text);
            }
            assert!(
                Instant::now() < deadline,
                "the probe on {} did not end:\n{text}",
                self.host
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        if !self.stopped {
            let _ = self.lab.exec(&self.host, &["touch", STOP]);
        }
    }
}

#[test]
fn probe_report_measures_gaps_from_the_last_leader_sample_to_the_next() {
    let text = "\
l 1000 1 10.0.0.1:8300
w 1001 1 20 0 true
l 1200 1 10.0.0.1:8300
w 1201 0 15 0 No_cluster_leader
l 1400 0 -
l 1600 2 -
w 1401 1 900 0 true
l 1800 1 10.0.0.2:8300
l 2000 0 -
l 2200 1 10.0.0.2:8300
end
";
    let r = ProbeReport::parse(text);
    assert_eq!(r.samples, 7);
    assert_eq!(r.duration, Duration::from_millis(1200));
    // 1200 (last leader) -> 1800 (leader again).
    assert_eq!(r.longest_gap_without_leader, Duration::from_millis(600));
    assert_eq!((r.samples_no_leader, r.samples_agent_down), (2, 1));
    assert_eq!((r.writes_ok, r.writes_total), (2, 3));
    assert_eq!(r.max_write_latency, Duration::from_millis(900));
    assert_eq!(r.failed_writes, ["+0.2s curl=0 No_cluster_leader"]);
    assert!((r.write_ratio() - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(r.leader_back_at(1100, "10.0.0.1:8300"), Some(1800));
    // The same leader re-elected after a window without one counts; without a gap it does not.
    assert_eq!(r.leader_back_at(1900, "10.0.0.2:8300"), Some(2200));
    assert_eq!(r.leader_back_at(2100, "10.0.0.2:8300"), None);

    // Ending without a leader: the gap runs to the last sample.
    let r = ProbeReport::parse("l 0 1\nl 200 0\nl 400 0\nend\n");
    assert_eq!(r.longest_gap_without_leader, Duration::from_millis(400));
    // Never a leader: the whole window.
    let r = ProbeReport::parse("l 0 0\nl 200 2\n");
    assert_eq!(r.longest_gap_without_leader, Duration::from_millis(200));
    assert_eq!(ProbeReport::parse("").write_ratio(), 1.0);
}
