//! `consulctl tls renew`. The certificate authority itself is `consulctl_core::pki`.

use std::path::Path;

use anyhow::anyhow;
use time::OffsetDateTime;

pub use consulctl_core::pki::*;

/// What `tls renew --output json` prints: the certificates reissued (host and the expiry of the
/// old one), where the old files are kept, and the recap of the rollout that installs the new
/// ones (`apply`: hosts, totals, verify); `apply` is null when nothing expired.
#[derive(Debug, serde::Serialize)]
pub struct RenewOutput {
    pub within_days: u32,
    pub renewed: Vec<RenewedCert>,
    /// The old files, kept (None when nothing was renewed).
    pub retired_dir: Option<String>,
    pub apply: Option<crate::engine::recap::Recap>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, serde::Serialize)]
pub struct RenewedCert {
    pub host: String,
    /// The old certificate's expiry (`YYYY-MM-DD`), None when it was unreadable.
    pub expired: Option<String>,
}

/// `consulctl tls renew`: retire the server certificates expiring within the window, then run
/// the rollout, which issues new ones and installs them with `consul reload` (no restart).
pub async fn renew(
    args: &crate::cli::TlsRenewArgs,
    debug_log: Option<&Path>,
) -> std::result::Result<(), consulctl_core::error::Error> {
    use consulctl_core::error::Error;
    let json = args.output == crate::cli::Output::Json;
    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let cluster = consulctl_core::inventory::load(&args.cluster.inventory)?;
    consulctl_core::inventory::persist_secrets(&cluster)?;
    if !cluster.tls_auto {
        return Err(Error::Input(anyhow!(
            "{}: tls renew manages the certificates of cluster.tls = \"auto\"; this inventory \
             does not set it",
            args.cluster.inventory.display()
        )));
    }
    let servers: Vec<String> = cluster.servers().map(|h| h.name.clone()).collect();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let retired = retire_expiring(&dir(&cluster), &servers, i64::from(args.within), &stamp)
        .map_err(Error::Runtime)?;
    let mut out = RenewOutput {
        within_days: args.within,
        renewed: Vec::new(),
        retired_dir: None,
        apply: None,
        error: None,
    };
    let print_json = |out: &RenewOutput| {
        if json {
            println!(
                "{}",
                consulctl_core::redact::values(
                    &serde_json::to_string_pretty(out).unwrap_or_default(),
                    &[]
                )
            );
        }
    };
    if retired.is_empty() {
        say(format!(
            "tls renew: no server certificate expires within {} days; nothing to do",
            args.within
        ));
        print_json(&out);
        return Ok(());
    }
    for (host, expiry) in &retired {
        let when = expiry
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
            .map(|t| t.date().to_string());
        say(format!(
            "==> renewing the certificate of {host} (expires {})",
            when.as_deref().unwrap_or("unreadable")
        ));
        out.renewed.push(RenewedCert {
            host: host.clone(),
            expired: when,
        });
    }
    let kept = dir(&cluster).join("retired").join(&stamp);
    say(format!("    old files kept in {}", kept.display()));
    out.retired_dir = Some(kept.display().to_string());
    let settings =
        crate::cli::Settings::all_hosts(&args.cluster.inventory, args.cluster.accept_new_host_keys);
    let rollout = crate::cli::RolloutSettings::default();
    if !json {
        return crate::engine::rollout::apply(&settings, rollout, debug_log).await;
    }
    let (result, recap) =
        crate::engine::recap::capture(crate::engine::rollout::apply(&settings, rollout, debug_log))
            .await;
    out.apply = recap;
    if let Err(e) = &result {
        out.error = Some(consulctl_core::redact::redact(&e.to_string(), &[]));
    }
    print_json(&out);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_json_shape() {
        let out = RenewOutput {
            within_days: 30,
            renewed: vec![RenewedCert {
                host: "server1".into(),
                expired: Some("2027-01-01".into()),
            }],
            retired_dir: Some("/s/tls/retired/T".into()),
            apply: None,
            error: None,
        };
        assert_eq!(
            serde_json::to_value(&out).unwrap(),
            serde_json::json!({
                "within_days": 30,
                "renewed": [{"host": "server1", "expired": "2027-01-01"}],
                "retired_dir": "/s/tls/retired/T",
                "apply": null
            })
        );
    }
}
