//! Phases and the manager that runs them in order (the shape of k0sctl's `phase/manager.go`).
//!
//! A command is a list of phases over one state (its hosts, their facts and plans, ...). The
//! manager announces each phase, skips the ones with nothing to do, and in a dry run runs only
//! the phases that change nothing on hosts: the others say what they would do instead.
//! Per-host failures are part of the state (a failed host is left out of later phases); a
//! phase returns an error only when the whole run must stop.

use std::future::Future;
use std::pin::Pin;

use consulctl_core::error::Error;

/// Not `Send`: phases run on the command's task, one after the other.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

pub trait Phase<S> {
    /// What the operator sees: `==> {title}`.
    fn title(&self) -> String;

    /// Whether the phase changes hosts. A dry run runs only the phases that do not.
    fn mutates(&self) -> bool {
        true
    }

    /// False when the phase has nothing to do in this state: it is skipped silently.
    fn should_run(&self, _state: &S) -> bool {
        true
    }

    fn run<'a>(&'a mut self, state: &'a mut S) -> BoxFuture<'a, Result<(), Error>>;

    /// In a dry run, instead of [`Phase::run`] for a phase that mutates: what it would do.
    fn dry_run(&self, _state: &S) -> Vec<String> {
        Vec::new()
    }
}

/// What a manager run did, phase by phase.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub ran: Vec<String>,
    pub skipped: Vec<String>,
    /// Phases not run because of the dry run, with what they would have done.
    pub would: Vec<(String, Vec<String>)>,
}

pub struct Manager<'p, S> {
    phases: Vec<Box<dyn Phase<S> + 'p>>,
    dry_run: bool,
    announce: Box<dyn Fn(&str) + 'p>,
}

impl<'p, S> Manager<'p, S> {
    pub fn new(dry_run: bool) -> Self {
        Manager {
            phases: Vec::new(),
            dry_run,
            announce: Box::new(|_| {}),
        }
    }

    /// Where `==> title` lines go (the progress display, stdout, ...).
    pub fn announce(mut self, f: impl Fn(&str) + 'p) -> Self {
        self.announce = Box::new(f);
        self
    }

    pub fn add(&mut self, phase: impl Phase<S> + 'p) -> &mut Self {
        self.phases.push(Box::new(phase));
        self
    }

    pub fn len(&self) -> usize {
        self.phases.len()
    }

    pub fn is_empty(&self) -> bool {
        self.phases.is_empty()
    }

    /// Run the phases in order; the first error stops the run.
    pub async fn run(&mut self, state: &mut S) -> Result<Report, Error> {
        let mut report = Report::default();
        for phase in &mut self.phases {
            let title = phase.title();
            if !phase.should_run(state) {
                tracing::info!(phase = %title, "skipped: nothing to do");
                report.skipped.push(title);
                continue;
            }
            if self.dry_run && phase.mutates() {
                let lines = phase.dry_run(state);
                tracing::info!(phase = %title, "dry run");
                report.would.push((title, lines));
                continue;
            }
            (self.announce)(&format!("==> {title}"));
            let started = std::time::Instant::now();
            let res = phase.run(state).await;
            tracing::info!(
                phase = %title,
                elapsed_ms = started.elapsed().as_millis() as u64,
                ok = res.is_ok(),
                "phase done"
            );
            res?;
            report.ran.push(title);
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A phase that appends its name to the state, or fails.
    struct Step {
        name: &'static str,
        mutates: bool,
        needed: bool,
        fail: bool,
    }

    fn step(name: &'static str) -> Step {
        Step {
            name,
            mutates: true,
            needed: true,
            fail: false,
        }
    }

    impl Phase<Vec<String>> for Step {
        fn title(&self) -> String {
            self.name.to_string()
        }
        fn mutates(&self) -> bool {
            self.mutates
        }
        fn should_run(&self, _: &Vec<String>) -> bool {
            self.needed
        }
        fn run<'a>(&'a mut self, state: &'a mut Vec<String>) -> BoxFuture<'a, Result<(), Error>> {
            Box::pin(async move {
                if self.fail {
                    return Err(Error::Runtime(anyhow::anyhow!("{} broke", self.name)));
                }
                state.push(self.name.to_string());
                Ok(())
            })
        }
        fn dry_run(&self, state: &Vec<String>) -> Vec<String> {
            vec![format!("{} after {}", self.name, state.join(","))]
        }
    }

    fn block_on<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn phases_run_in_order_and_are_announced() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let mut m = Manager::new(false).announce(move |l| s2.lock().unwrap().push(l.to_string()));
        m.add(step("connect")).add(step("upload")).add(Step {
            needed: false,
            ..step("acl")
        });
        let mut state = Vec::new();
        let report = block_on(m.run(&mut state)).unwrap();
        assert_eq!(state, ["connect", "upload"]);
        assert_eq!(report.ran, ["connect", "upload"]);
        assert_eq!(report.skipped, ["acl"]);
        assert_eq!(*seen.lock().unwrap(), ["==> connect", "==> upload"]);
    }

    #[test]
    fn a_dry_run_runs_only_what_changes_nothing_and_says_what_the_rest_would_do() {
        let mut m = Manager::new(true);
        m.add(Step {
            mutates: false,
            ..step("facts")
        })
        .add(step("configure"))
        .add(Step {
            needed: false,
            ..step("restart")
        });
        let mut state = Vec::new();
        let report = block_on(m.run(&mut state)).unwrap();
        assert_eq!(state, ["facts"], "configure must not run in a dry run");
        assert_eq!(
            report.would,
            [(
                "configure".to_string(),
                vec!["configure after facts".to_string()]
            )]
        );
        assert_eq!(report.skipped, ["restart"]);
    }

    #[test]
    fn an_error_stops_the_run() {
        let mut m = Manager::new(false);
        m.add(step("a"))
            .add(Step {
                fail: true,
                ..step("b")
            })
            .add(step("c"));
        let mut state = Vec::new();
        let err = block_on(m.run(&mut state)).unwrap_err();
        assert_eq!(err.to_string(), "b broke");
        assert_eq!(state, ["a"], "c must not run after b failed");
    }
}
