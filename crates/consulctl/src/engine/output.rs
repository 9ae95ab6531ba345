//! How a command reports, written once: its report as text for people or JSON for programs
//! (`--output`), both through secret redaction, and the exit code rule for host failures.

use std::path::Path;

use consulctl_core::error::Error;
use serde::Serialize;

use crate::cli::Output;

/// A command's report.
pub trait Report: Serialize {
    fn to_text(&self) -> String;

    /// The JSON document (pretty); a report with a shape of its own overrides it.
    fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Whether the printed report goes through redaction: reports that may carry host output
    /// or config (the rollout's recap, with its per-host errors). Reports made only of
    /// Consul's and consulctl's own state, and `plan` (which marks changed secrets itself),
    /// print as they are.
    fn redacted(&self) -> bool {
        false
    }
}

/// The report as `output` asks; when [`Report::redacted`], the text by key and value and the
/// JSON by value (its keys are consulctl's own).
pub fn render(output: Output, report: &impl Report) -> String {
    let red = report.redacted();
    match output {
        Output::Text if red => consulctl_core::redact::redact(&report.to_text(), &[]),
        Output::Text => report.to_text(),
        Output::Json => {
            let json = report.to_json();
            let mut s = if red {
                consulctl_core::redact::values(&json, &[])
            } else {
                json
            };
            s.push('\n');
            s
        }
    }
}

/// Print the report to stdout.
pub fn print(output: Output, report: &impl Report) {
    print!("{}", render(output, report));
}

/// Exit code 1 when some hosts failed (`Error::HostsFailed`), pointing to the debug log;
/// Ok otherwise.
pub fn hosts_failed(failed: usize, total: usize, debug_log: Option<&Path>) -> Result<(), Error> {
    if failed == 0 {
        return Ok(());
    }
    if let Some(log) = debug_log {
        eprintln!("debug log: {}", log.display());
    }
    Err(Error::HostsFailed { failed, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct R {
        token: String,
        hosts: usize,
    }

    impl Report for R {
        fn to_text(&self) -> String {
            format!("token = \"{}\"\n{} hosts\n", self.token, self.hosts)
        }
        fn redacted(&self) -> bool {
            true
        }
    }

    #[test]
    fn text_and_json_come_from_one_report_and_hide_secrets() {
        let secret = consulctl_core::model::Secret::new("b1f6a0c2-9d1e-4c4f-8a3b-2f6e0d7c9a11");
        let r = R {
            token: secret.expose().to_string(),
            hosts: 3,
        };
        let text = render(Output::Text, &r);
        assert!(text.contains("3 hosts"), "{text}");
        assert!(!text.contains(secret.expose()), "{text}");
        let json = render(Output::Json, &r);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["hosts"], 3);
        assert!(!json.contains(secret.expose()), "{json}");
    }

    #[test]
    fn failed_hosts_are_exit_code_one_and_none_is_ok() {
        assert!(hosts_failed(0, 5, None).is_ok());
        let e = hosts_failed(2, 5, None).unwrap_err();
        assert_eq!(e.code(), 1);
        assert!(matches!(
            e,
            Error::HostsFailed {
                failed: 2,
                total: 5
            }
        ));
    }
}
