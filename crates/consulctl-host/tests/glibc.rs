//! The host binary must run on the seed's oldest hosts: CentOS 7, glibc 2.17.
//!
//! The dynamic linker refuses to start a binary that needs a symbol version its glibc does not
//! define ("version `GLIBC_2.34' not found"). Those needs are in the ELF's `.gnu.version_r`
//! (library + version name) and `.gnu.version` (which version each dynamic symbol is bound
//! to), so reading them tells, without a CentOS 7 machine, whether the binary starts there.
//!
//! - `the_glibc_2_17_build_needs_nothing_newer` checks the binary `scripts/build-host-binary`
//!   builds (cargo-zigbuild, target `x86_64-unknown-linux-gnu.2.17`), named by
//!   `CONSULCTL_HOST_GLIBC217_BINARY`. It is ignored unless asked for (`--include-ignored`), and
//!   then fails if the variable is not set: CI runs it that way.
//! - `a_native_build_is_read_and_fails_the_check_on_a_newer_glibc` always runs: it reads the
//!   binary cargo built for this test with the host's toolchain, proving the reader finds the
//!   GLIBC versions at all, and (on a glibc >= 2.34 build machine, such as Debian 12's 2.36)
//!   that the check does fail on a binary that needs more than 2.17.

use std::collections::BTreeMap;
use std::path::Path;

use object::elf;
use object::read::elf::{FileHeader, Sym};
use object::read::SymbolIndex;
use object::Endianness;

const ENV: &str = "CONSULCTL_HOST_GLIBC217_BINARY";
const MAX: [u32; 2] = [2, 17];

/// One symbol version the binary needs: an entry of `.gnu.version_r`, with the undefined
/// dynamic symbols that `.gnu.version` binds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Needed {
    /// The library that must define the version (`libc.so.6`).
    library: String,
    /// The version name (`GLIBC_2.17`).
    version: String,
    /// The symbols bound to it, sorted.
    symbols: Vec<String>,
}

/// The version needs of a 64-bit little-endian ELF (the `.gnu.version_r` entries in file
/// order), each with its symbols. Empty for a binary without symbol versioning (static).
fn needed_versions(data: &[u8]) -> Result<Vec<Needed>, String> {
    let err = |e: object::read::Error| format!("not a readable 64-bit ELF: {e}");
    let header = elf::FileHeader64::<Endianness>::parse(data).map_err(err)?;
    let endian = header.endian().map_err(err)?;
    let sections = header.sections(endian, data).map_err(err)?;

    // .gnu.version_r: library, then the versions needed from it, each with its index (the
    // number .gnu.version uses for it).
    let mut needed = Vec::new();
    let mut by_index = BTreeMap::new();
    if let Some((mut libraries, link)) = sections.gnu_verneed(endian, data).map_err(err)? {
        let strings = sections.strings(endian, data, link).map_err(err)?;
        while let Some((library, mut versions)) = libraries.next().map_err(err)? {
            let file = text(library.file(endian, strings).map_err(err)?);
            while let Some(version) = versions.next().map_err(err)? {
                let index = version.vna_other.get(endian) & elf::VERSYM_VERSION;
                by_index.insert(index, needed.len());
                needed.push(Needed {
                    library: file.clone(),
                    version: text(version.name(endian, strings).map_err(err)?),
                    symbols: Vec::new(),
                });
            }
        }
    }

    // .dynsym + .gnu.version: which needed version each undefined symbol is bound to.
    if let Some(versions) = sections.versions(endian, data).map_err(err)? {
        let symbols = sections
            .symbols(endian, data, elf::SHT_DYNSYM)
            .map_err(err)?;
        for (index, symbol) in symbols.enumerate() {
            if !symbol.is_undefined(endian) || index == SymbolIndex(0) {
                continue;
            }
            let version = versions.version_index(endian, index).index();
            if let Some(&at) = by_index.get(&version) {
                let name = symbols.symbol_name(endian, symbol).map_err(err)?;
                needed[at].symbols.push(text(name));
            }
        }
    }
    for need in &mut needed {
        need.symbols.sort();
        need.symbols.dedup();
    }
    Ok(needed)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `GLIBC_2.3.4` -> `[2, 3, 4]`; `None` for other names (`GLIBC_PRIVATE`, `GCC_3.0`).
fn glibc_version(name: &str) -> Option<Vec<u32>> {
    let numbers = name.strip_prefix("GLIBC_")?;
    numbers.split('.').map(|n| n.parse().ok()).collect()
}

/// The needs a glibc `max` does not satisfy: every `GLIBC_x.y` above it, and any other
/// `GLIBC_` name (`GLIBC_PRIVATE` is internal to one glibc build and never portable).
fn too_new<'a>(needed: &'a [Needed], max: &[u32]) -> Vec<&'a Needed> {
    needed
        .iter()
        .filter(|n| n.version.starts_with("GLIBC_"))
        .filter(|n| glibc_version(&n.version).map_or(true, |v| v.as_slice() > max))
        .collect()
}

/// A line per need: `libc.so.6 GLIBC_2.34: __libc_start_main, ...`.
fn describe(needed: &[&Needed]) -> String {
    needed
        .iter()
        .map(|n| {
            let symbols = if n.symbols.is_empty() {
                "(no dynamic symbol bound to it)".to_string()
            } else {
                n.symbols.join(", ")
            };
            format!("  {} {}: {symbols}", n.library, n.version)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads `path`; `Ok` with its needs if it is an x86-64 ELF that needs GLIBC versions, none
/// of them above `max`; otherwise `Err` naming every version too new and the symbols that
/// need it.
fn check(path: &Path, max: &[u32]) -> Result<Vec<Needed>, String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header = elf::FileHeader64::<Endianness>::parse(&*data)
        .map_err(|e| format!("{}: not a 64-bit ELF: {e}", path.display()))?;
    let machine = header.e_machine(header.endian().map_err(|e| e.to_string())?);
    if machine != elf::EM_X86_64 {
        return Err(format!(
            "{}: not x86-64 (e_machine {machine})",
            path.display()
        ));
    }
    let needed = needed_versions(&data).map_err(|e| format!("{}: {e}", path.display()))?;
    if !needed.iter().any(|n| glibc_version(&n.version).is_some()) {
        return Err(format!(
            "{}: needs no GLIBC_ symbol version at all (static, or not a glibc binary?)",
            path.display()
        ));
    }
    let bad = too_new(&needed, max);
    if bad.is_empty() {
        Ok(needed)
    } else {
        Err(format!(
            "{} needs symbol versions newer than GLIBC_{}, which a glibc {} host lacks \
             (the dynamic linker refuses to start it):\n{}",
            path.display(),
            dotted(max),
            dotted(max),
            describe(&bad)
        ))
    }
}

fn dotted(version: &[u32]) -> String {
    version
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The glibc this test runs on, e.g. `[2, 36]`.
fn running_glibc() -> Vec<u32> {
    extern "C" {
        fn gnu_get_libc_version() -> *const std::ffi::c_char;
    }
    // SAFETY: glibc returns a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(gnu_get_libc_version()) };
    let version = version.to_str().expect("glibc version is ASCII");
    glibc_version(&format!("GLIBC_{version}")).expect("glibc version is x.y")
}

#[test]
#[ignore = "needs CONSULCTL_HOST_GLIBC217_BINARY (scripts/build-host-binary)"]
fn the_glibc_2_17_build_needs_nothing_newer() {
    let path = std::env::var_os(ENV)
        .filter(|path| !path.is_empty())
        .unwrap_or_else(|| {
            panic!("{ENV} is not set: set it to the path scripts/build-host-binary prints")
        });
    let needed = check(Path::new(&path), &MAX).unwrap_or_else(|e| panic!("{e}"));
    let all: Vec<&Needed> = needed.iter().collect();
    eprintln!(
        "{} needs (all within GLIBC_2.17):\n{}",
        Path::new(&path).display(),
        describe(&all)
    );
}

#[test]
fn a_native_build_is_read_and_fails_the_check_on_a_newer_glibc() {
    let path = Path::new(env!("CARGO_BIN_EXE_consulctl-host"));
    let needed = needed_versions(&std::fs::read(path).unwrap()).unwrap();
    let glibc: Vec<&Needed> = needed
        .iter()
        .filter(|n| glibc_version(&n.version).is_some())
        .collect();
    assert!(
        !glibc.is_empty(),
        "no GLIBC_ version found in {}: {needed:?}",
        path.display()
    );
    assert!(
        glibc.iter().any(|n| !n.symbols.is_empty()),
        "no symbol bound to a GLIBC_ version in {}: {needed:?}",
        path.display()
    );
    eprintln!("native build {}:\n{}", path.display(), describe(&glibc));

    let host = running_glibc();
    match check(path, &MAX) {
        // glibc 2.34 moved __libc_start_main (in every program's start code) to GLIBC_2.34,
        // so a binary linked against it cannot pass: the check must say so, with the symbol.
        Err(e) if host.as_slice() >= [2, 34].as_slice() => {
            assert!(
                e.contains("GLIBC_2.34") && e.contains("__libc_start_main"),
                "{e}"
            );
            eprintln!("as expected on glibc {}: {e}", dotted(&host));
        }
        Ok(_) if host.as_slice() >= [2, 34].as_slice() => {
            panic!(
                "a build against glibc {} passed the 2.17 check",
                dotted(&host)
            )
        }
        other => eprintln!(
            "on glibc {} the native build gives {other:?}",
            dotted(&host)
        ),
    }
}

// --- the reader, on real ELF files ----------------------------------------------------------

/// This test program: a real ELF linked against the running glibc.
fn this_test_binary() -> Vec<u8> {
    std::fs::read(std::env::current_exe().unwrap()).unwrap()
}

#[test]
fn reads_libraries_versions_and_symbols_of_a_real_elf() {
    let needed = needed_versions(&this_test_binary()).unwrap();
    let base = needed
        .iter()
        .find(|n| n.library == "libc.so.6" && n.version == "GLIBC_2.2.5")
        .unwrap_or_else(|| panic!("no libc.so.6 GLIBC_2.2.5 (x86-64's base version): {needed:?}"));
    assert!(!base.symbols.is_empty(), "{base:?}");
    // every program's start code calls __libc_start_main, bound to one libc version
    let start: Vec<&Needed> = needed
        .iter()
        .filter(|n| n.symbols.iter().any(|s| s == "__libc_start_main"))
        .collect();
    assert_eq!(start.len(), 1, "{needed:?}");
    assert_eq!(start[0].library, "libc.so.6");
    // a symbol is bound to one version only
    let mut seen = BTreeMap::new();
    for n in &needed {
        for s in &n.symbols {
            assert!(
                seen.insert(s, &n.version).is_none(),
                "{s} twice: {needed:?}"
            );
        }
    }
}

#[test]
fn agrees_with_readelf_when_it_is_there() {
    let exe = std::env::current_exe().unwrap();
    let Ok(out) = std::process::Command::new("readelf")
        .arg("-V")
        .arg(&exe)
        .output()
    else {
        eprintln!("no readelf here: skipped the cross-check");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut theirs: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Flags:") && l.contains("Name:") && !l.contains("File:"))
        .filter_map(|l| l.split("Name:").nth(1)?.split_whitespace().next())
        .filter(|name| name.starts_with("GLIBC_") || name.starts_with("GCC_"))
        .collect();
    theirs.sort();
    let needed = needed_versions(&this_test_binary()).unwrap();
    let mut ours: Vec<&str> = needed
        .iter()
        .map(|n| n.version.as_str())
        .filter(|name| name.starts_with("GLIBC_") || name.starts_with("GCC_"))
        .collect();
    ours.sort();
    assert_eq!(ours, theirs, "readelf -V:\n{text}");
}

#[test]
fn what_is_not_a_whole_elf_is_an_error() {
    assert!(needed_versions(b"#!/bin/sh\nexit 0\n").is_err());
    // the header alone: the section headers it points at are missing
    assert!(needed_versions(&this_test_binary()[..64]).is_err());
}

#[test]
fn glibc_versions_compare_as_numbers() {
    assert_eq!(glibc_version("GLIBC_2.3.4"), Some(vec![2, 3, 4]));
    assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
    assert_eq!(glibc_version("GCC_3.0"), None);
    let need = |version: &str| Needed {
        library: "libc.so.6".into(),
        version: version.into(),
        symbols: vec!["f".into()],
    };
    let needed = [
        need("GLIBC_2.2.5"),
        need("GLIBC_2.3.4"),
        need("GLIBC_2.17"),
        need("GLIBC_2.18"),
        need("GLIBC_2.34"),
        need("GLIBC_PRIVATE"),
        need("GCC_3.0"),
    ];
    let names: Vec<&str> = too_new(&needed, &MAX)
        .iter()
        .map(|n| n.version.as_str())
        .collect();
    assert_eq!(names, ["GLIBC_2.18", "GLIBC_2.34", "GLIBC_PRIVATE"]);
    assert_eq!(
        describe(&too_new(&needed, &MAX)[..1]),
        "  libc.so.6 GLIBC_2.18: f"
    );
}
