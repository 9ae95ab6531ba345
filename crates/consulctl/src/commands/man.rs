//! `consulctl man --dir DIR`: one man page (section 1) per command and subcommand,
//! `consulctl.1`, `consulctl-apply.1`, `consulctl-catalog-service.1` ..., each with NAME,
//! SYNOPSIS, DESCRIPTION, OPTIONS, SUBCOMMANDS (where it has some) and EXAMPLES: the same
//! examples its `--help` ends with (`cli::examples_of`).
//!
//! clap_mangen renders the page; EXAMPLES is written here, because clap_mangen puts
//! `after_help` into an "EXTRA" section as filled text (the example lines would run together),
//! so the page is rendered without it.

use std::io::Write;
use std::path::PathBuf;

use anyhow::anyhow;
use clap::CommandFactory;
use consulctl_core::error::Error;

use crate::cli::{examples_of, Cli, ManArgs};

pub fn run(args: &ManArgs) -> Result<(), Error> {
    std::fs::create_dir_all(&args.dir).map_err(|e| {
        Error::Input(anyhow!(
            "--dir {}: cannot create the directory: {e}",
            args.dir.display()
        ))
    })?;
    let mut out = std::io::stdout().lock();
    for (name, page) in pages()? {
        let path: PathBuf = args.dir.join(&name);
        std::fs::write(&path, page)
            .map_err(|e| Error::Runtime(anyhow!("{}: cannot write: {e}", path.display())))?;
        let _ = writeln!(out, "{}", path.display());
    }
    Ok(())
}

/// Every page: (file name, roff text), the root first, then each subcommand depth first
/// (clap's `help` subcommand and hidden commands have none).
pub fn pages() -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    collect(&cmd, &mut pages)?;
    Ok(pages)
}

fn collect(cmd: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> Result<(), Error> {
    pages.push(page(cmd)?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, pages)?;
    }
    Ok(())
}

/// One page: clap_mangen's (NAME, SYNOPSIS, DESCRIPTION, OPTIONS, SUBCOMMANDS, VERSION for
/// the root) without its EXTRA section, with EXAMPLES before VERSION.
fn page(cmd: &clap::Command) -> Result<(String, Vec<u8>), Error> {
    let examples = examples_section(&examples_of(cmd));
    let without_after_help = cmd
        .clone()
        .after_help(clap::builder::Resettable::<clap::builder::StyledStr>::Reset)
        .after_long_help(clap::builder::Resettable::<clap::builder::StyledStr>::Reset);
    let man = clap_mangen::Man::new(without_after_help)
        .date(date())
        .source(format!("consulctl {}", env!("CARGO_PKG_VERSION")))
        .manual("consulctl manual");
    let mut roff = Vec::new();
    man.render(&mut roff)
        .map_err(|e| Error::Runtime(anyhow!("man page of {}: {e}", cmd.get_name())))?;
    let mut roff = String::from_utf8_lossy(&roff).into_owned();
    match roff.find("\n.SH VERSION\n") {
        Some(at) => roff.insert_str(at + 1, &examples),
        None => roff.push_str(&examples),
    }
    Ok((man.get_filename(), roff.into_bytes()))
}

/// The pages' date: `SOURCE_DATE_EPOCH`'s (reproducible builds), else today's, UTC. (An empty
/// date would shift `.TH`'s arguments: clap_mangen does not quote it.)
fn date() -> String {
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .unwrap_or_else(chrono::Utc::now);
    now.format("%Y-%m-%d").to_string()
}

/// `.SH EXAMPLES` with the lines as they are (no filling), indented.
fn examples_section(examples: &[String]) -> String {
    if examples.is_empty() {
        return String::new();
    }
    let mut s = String::from(".SH EXAMPLES\n.PP\n.RS 4\n.nf\n");
    for line in examples {
        s.push_str(&escape(line));
        s.push('\n');
    }
    s.push_str(".fi\n.RE\n");
    s
}

/// A line of roff text: backslashes and hyphens escaped, a leading `.` or `'` (a request
/// otherwise) made literal.
fn escape(line: &str) -> String {
    let text = line.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(pages: &[(String, Vec<u8>)], name: &str) -> String {
        let (_, page) = pages
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} among {:?}", names(pages)));
        String::from_utf8(page.clone()).unwrap()
    }

    fn names(pages: &[(String, Vec<u8>)]) -> Vec<&str> {
        pages.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn a_page_per_command_and_subcommand_without_help() {
        let pages = pages().unwrap();
        let names = names(&pages);
        for want in [
            "consulctl.1",
            "consulctl-apply.1",
            "consulctl-catalog.1",
            "consulctl-catalog-service.1",
            "consulctl-inventory-import-ansible.1",
            "consulctl-lab-up.1",
        ] {
            assert!(names.contains(&want), "no {want} in {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }

    #[test]
    fn a_page_has_name_synopsis_options_and_the_examples_of_its_help() {
        let pages = pages().unwrap();
        let page = text(&pages, "consulctl-catalog-service.1");
        assert!(
            page.contains("\n.TH consulctl-catalog-service 1 "),
            "{page}"
        );
        for section in [
            ".SH NAME",
            ".SH SYNOPSIS",
            ".SH DESCRIPTION",
            ".SH OPTIONS",
            ".SH EXAMPLES",
        ] {
            assert!(page.contains(section), "no {section}:\n{page}");
        }
        assert!(!page.contains(".SH EXTRA"), "{page}");
        assert!(page.contains("\\-\\-health"), "{page}");
        let examples = page.split(".SH EXAMPLES").nth(1).unwrap();
        assert!(
            examples
                .contains("consulctl catalog service web \\-\\-tag http \\-\\-health passing\n"),
            "{examples}"
        );
        let root = text(&pages, "consulctl.1");
        assert!(root.contains(".SH SUBCOMMANDS"), "{root}");
        assert!(root.contains("consulctl\\-apply(1)"), "{root}");
        assert!(root.contains(".SH VERSION"), "{root}");
    }

    #[test]
    fn roff_escapes() {
        assert_eq!(
            escape("consulctl plan -i a\\b"),
            "consulctl plan \\-i a\\eb"
        );
        assert_eq!(escape(".x"), "\\&.x");
        assert_eq!(examples_section(&[]), "");
    }
}
