//! Install sources: a local file (raw binary, HashiCorp release zip, .deb), a URL + sha256
//! (downloaded once into the cache), or the hosts' package manager with HashiCorp's repository.
//!
//! File and URL sources are prepared once on the control host into a per-user cache
//! (`$CONSULCTL_CACHE_DIR`, else `$XDG_CACHE_HOME/consulctl`, else `$HOME/.cache/consulctl`):
//!
//! ```text
//! <cache>/downloads/<sha256>/<file name>        URL sources, verified against the sha256
//! <cache>/sources/<sha256 of the path>.json     stat key (dev, inode, size, mtime, ctime) -> sha256,
//!                                               so repeat runs do not re-hash a 70 MB file
//! <cache>/binaries/<sha256 of source>/consul    the raw binary (0755)
//!                                   /consul.gz  gzip -1 of it, for upload (`gzip -dc` on the host)
//!                                   /consul.zst zstd -3 of it, for upload to hosts with `zstd`
//!                                   /prepared.json  written last: raw sha256, size, format, version
//! ```
//!
//! A binaries entry is built in a temporary directory and renamed into place, so a present
//! entry is complete; concurrent runs at worst do the work twice.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use consulctl_core::facts::Facts;
use consulctl_core::model::{Cluster, InstallSource, PackageManager};
use consulctl_core::version::Version;

#[derive(Debug, Clone)]
pub struct PreparedBinary {
    /// The raw consul binary in the control host's cache.
    pub raw: PathBuf,
    /// sha256 of the raw binary (hex).
    pub sha256: String,
    /// The same binary gzip-compressed, for upload (`gzip -dc` on the host).
    pub gzip: PathBuf,
    /// The same binary zstd-compressed, for upload to hosts that have `zstd` (`zstd -dc`
    /// decompresses it in a fifth of gzip's CPU time, and it is a quarter smaller).
    pub zstd: PathBuf,
    /// Size of the raw binary in bytes.
    pub size: u64,
    /// What the source file was.
    pub format: SourceFormat,
    /// `consul version` of the binary, when it runs on the control host (same OS and CPU).
    pub version: Option<Version>,
    /// The CPU the ELF binary is built for, as `uname -m` names it (`x86_64`, `aarch64`, ...).
    pub arch: Option<String>,
}

impl PreparedBinary {
    /// Can this binary run on a host whose `uname -m` is `machine`? Unknown arch: true.
    pub fn runs_on(&self, machine: &str) -> bool {
        match self.arch.as_deref() {
            None => true,
            Some("arm") => machine.starts_with("arm"),
            Some("i686") => matches!(machine, "i386" | "i486" | "i586" | "i686"),
            Some(a) => a == machine || (a == "aarch64" && machine == "arm64"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// A raw ELF executable.
    Elf,
    /// HashiCorp's release zip (`consul_X.Y.Z_linux_amd64.zip`, entry `consul`).
    Zip,
    /// A Debian package (Debian's `consul` or HashiCorp's).
    Deb,
}

impl SourceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFormat::Elf => "raw binary",
            SourceFormat::Zip => "zip",
            SourceFormat::Deb => "deb",
        }
    }
}

const ACCEPTED: &str =
    "a raw Linux consul binary (ELF), HashiCorp's release .zip (with a `consul` entry), \
     or a .deb holding usr/bin/consul or usr/local/bin/consul";

/// Prepare the binary for file and URL sources; `None` for package sources.
/// Fails when the binary runs here and reports another version than `consul.version`.
pub async fn prepare(cluster: &Cluster) -> anyhow::Result<Option<PreparedBinary>> {
    if matches!(cluster.consul.source, InstallSource::Package { .. }) {
        return Ok(None);
    }
    let cache = cache_dir()?;
    let prepared = prepare_in(&cluster.consul.source, &cache).await?;
    if let Some(p) = &prepared {
        check_version(p, cluster.consul.version, &cluster.consul.source)?;
    }
    Ok(prepared)
}

/// The binary's own version (when it could run here) must be the inventory's.
fn check_version(p: &PreparedBinary, want: Version, source: &InstallSource) -> anyhow::Result<()> {
    match p.version {
        Some(v) if v != want => bail!(
            "{} is Consul {v} but the inventory says consul.version = {want}; fix one of them",
            describe(source)
        ),
        _ => Ok(()),
    }
}

fn describe(source: &InstallSource) -> String {
    match source {
        InstallSource::File { path } => format!("the consul binary from {}", path.display()),
        InstallSource::Url { url, .. } => format!("the consul binary from {url}"),
        InstallSource::Package { .. } => "the package".to_string(),
    }
}

/// [`prepare`] with an explicit cache directory and no version check.
pub async fn prepare_in(
    source: &InstallSource,
    cache: &Path,
) -> anyhow::Result<Option<PreparedBinary>> {
    let cache = cache.to_path_buf();
    let source = source.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<Option<PreparedBinary>> {
        match &source {
            InstallSource::Package { .. } => Ok(None),
            InstallSource::File { path } => prepare_file(&cache, path, None).map(Some),
            InstallSource::Url { url, sha256 } => {
                let file = download(&cache, url, sha256)?;
                prepare_file(&cache, &file, Some(sha256.to_ascii_lowercase())).map(Some)
            }
        }
    })
    .await
    .context("the binary preparation task failed")?
}

/// `$CONSULCTL_CACHE_DIR`, else `$XDG_CACHE_HOME/consulctl`, else `$HOME/.cache/consulctl`.
pub fn cache_dir() -> anyhow::Result<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("CONSULCTL_CACHE_DIR") {
        return Ok(dir);
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return Ok(dir.join("consulctl"));
    }
    if let Some(home) = var("HOME") {
        return Ok(home.join(".cache").join("consulctl"));
    }
    bail!("no cache directory: set CONSULCTL_CACHE_DIR, XDG_CACHE_HOME or HOME")
}

// ---- local files ----------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
struct PreparedMarker {
    sha256: String,
    size: u64,
    format: SourceFormat,
    version: Option<String>,
    arch: Option<String>,
}

/// Extract (if not cached yet) the binary from `path`. `known_sha` is the source file's sha256
/// when already verified (downloads).
fn prepare_file(
    cache: &Path,
    path: &Path,
    known_sha: Option<String>,
) -> anyhow::Result<PreparedBinary> {
    let meta = fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a file; expected {ACCEPTED}", path.display());
    }
    let format = detect_format(path)?;
    let source_sha = match known_sha {
        Some(sha) => sha,
        None => source_sha256(cache, path)?,
    };
    let dir = cache.join("binaries").join(&source_sha);
    if let Some(hit) = read_cached(&dir) {
        // Entries made before zstd uploads have no consul.zst: add it next to the others.
        if !hit.zstd.is_file() {
            zstd_file(&hit.raw, &hit.zstd)?;
        }
        return Ok(hit);
    }
    let binaries = cache.join("binaries");
    fs::create_dir_all(&binaries)
        .with_context(|| format!("cannot create the cache dir {}", binaries.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{source_sha}."))
        .tempdir_in(&binaries)
        .with_context(|| format!("cannot create a temporary dir in {}", binaries.display()))?;
    let raw = tmp.path().join("consul");
    let (sha256, size) = {
        let out = File::create(&raw).with_context(|| format!("cannot write {}", raw.display()))?;
        let mut out = HashingWriter::new(BufWriter::with_capacity(1 << 20, out));
        extract(path, format, &mut out)?;
        let (w, sha256, size) = out.finish();
        w.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot write {}", raw.display()))?;
        (sha256, size)
    };
    let mut head = [0u8; 20];
    File::open(&raw)?.read_exact(&mut head).map_err(|_| {
        anyhow!(
            "the consul file inside {} is not an executable (too short)",
            path.display()
        )
    })?;
    if &head[..4] != b"\x7fELF" {
        bail!(
            "the consul file inside {} is not an ELF executable (it starts with {})",
            path.display(),
            hex::encode(&head[..8])
        );
    }
    set_mode(&raw, 0o755)?;
    let gz = tmp.path().join("consul.gz");
    gzip_file(&raw, &gz)?;
    zstd_file(&raw, &tmp.path().join("consul.zst"))?;
    let marker = PreparedMarker {
        sha256,
        size,
        format,
        version: consul_version(&raw).map(|v| v.to_string()),
        arch: elf_arch(&head).map(str::to_string),
    };
    fs::write(
        tmp.path().join("prepared.json"),
        serde_json::to_vec_pretty(&marker)?,
    )?;
    let tmp = tmp.keep();
    if dir.exists() && read_cached(&dir).is_none() {
        // A damaged entry (e.g. a truncated binary): replace it.
        let _ = fs::remove_dir_all(&dir);
    }
    if let Err(e) = fs::rename(&tmp, &dir) {
        // Another run finished first (the entry exists now) or the rename failed.
        let _ = fs::remove_dir_all(&tmp);
        if read_cached(&dir).is_none() {
            return Err(e)
                .with_context(|| format!("cannot move the binary into {}", dir.display()));
        }
    }
    read_cached(&dir).ok_or_else(|| anyhow!("the cache entry {} is incomplete", dir.display()))
}

fn read_cached(dir: &Path) -> Option<PreparedBinary> {
    let marker: PreparedMarker =
        serde_json::from_slice(&fs::read(dir.join("prepared.json")).ok()?).ok()?;
    let raw = dir.join("consul");
    let gzip = dir.join("consul.gz");
    if fs::metadata(&raw).ok()?.len() != marker.size || !gzip.is_file() {
        return None;
    }
    Some(PreparedBinary {
        raw,
        sha256: marker.sha256,
        gzip,
        zstd: dir.join("consul.zst"),
        size: marker.size,
        format: marker.format,
        version: marker.version.and_then(|v| v.parse().ok()),
        arch: marker.arch,
    })
}

/// The file's format from its first bytes (never its name).
pub fn detect_format(path: &Path) -> anyhow::Result<SourceFormat> {
    let mut head = [0u8; 8];
    let mut f = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let n = read_up_to(&mut f, &mut head)?;
    let head = &head[..n];
    if head.starts_with(b"\x7fELF") {
        return Ok(SourceFormat::Elf);
    }
    if head.starts_with(b"PK\x03\x04") {
        return Ok(SourceFormat::Zip);
    }
    if head.starts_with(b"!<arch>\n") {
        return Ok(SourceFormat::Deb);
    }
    let what = if head.starts_with(b"\x1f\x8b") {
        "a gzip file".to_string()
    } else if head.starts_with(b"\xfd7zXZ") {
        "an xz file".to_string()
    } else if head.starts_with(b"\xcf\xfa\xed\xfe") || head.starts_with(b"\xfe\xed\xfa\xcf") {
        "a macOS (Mach-O) binary".to_string()
    } else if head.starts_with(b"MZ") {
        "a Windows executable".to_string()
    } else if head.starts_with(b"\xed\xab\xee\xdb") {
        "an RPM package".to_string()
    } else if head.is_empty() {
        "empty".to_string()
    } else {
        format!("a file starting with bytes {}", hex::encode(head))
    };
    bail!("{} is {what}; expected {ACCEPTED}", path.display())
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn extract(path: &Path, format: SourceFormat, out: &mut impl Write) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    match format {
        SourceFormat::Elf => {
            io::copy(&mut BufReader::with_capacity(1 << 20, file), out)
                .with_context(|| format!("cannot copy {}", path.display()))?;
        }
        SourceFormat::Zip => extract_zip(path, file, out)?,
        SourceFormat::Deb => extract_deb(path, file, out)?,
    }
    Ok(())
}

fn extract_zip(path: &Path, file: File, out: &mut impl Write) -> anyhow::Result<()> {
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .with_context(|| format!("{} is not a readable zip", path.display()))?;
    let names: Vec<String> = zip.file_names().map(str::to_string).collect();
    let Some(name) = names
        .iter()
        .find(|n| *n == "consul")
        .or_else(|| {
            names
                .iter()
                .find(|n| n.rsplit('/').next() == Some("consul"))
        })
        .cloned()
    else {
        bail!(
            "{} has no `consul` entry (entries: {}); expected HashiCorp's release zip",
            path.display(),
            names.join(", ")
        );
    };
    let mut entry = zip.by_name(&name)?;
    io::copy(&mut entry, out)
        .with_context(|| format!("cannot extract `{name}` from {}", path.display()))?;
    Ok(())
}

/// Paths of the binary inside a .deb's data archive, best first.
const DEB_BINARY_PATHS: [&str; 2] = ["usr/bin/consul", "usr/local/bin/consul"];

fn extract_deb(path: &Path, file: File, out: &mut impl Write) -> anyhow::Result<()> {
    let mut found = None;
    for pass in 0..2 {
        // Pass 0 looks for the binary; if it is a symlink, pass 1 reads its target.
        let wanted: Vec<String> = match (&found, pass) {
            (None, 0) => DEB_BINARY_PATHS.iter().map(|s| s.to_string()).collect(),
            (Some(DebHit::Link(target)), 1) => vec![target.clone()],
            _ => break,
        };
        found = Some(scan_deb(path, &file, &wanted, out)?);
        if matches!(found, Some(DebHit::Written)) {
            return Ok(());
        }
    }
    match found {
        Some(DebHit::Link(target)) => {
            bail!(
                "{}: usr/bin/consul links to {target}, which is not in the package",
                path.display()
            )
        }
        _ => bail!(
            "{} has no {} in its data archive; expected a consul .deb",
            path.display(),
            DEB_BINARY_PATHS.join(" or ")
        ),
    }
}

enum DebHit {
    Written,
    Link(String),
    Missing,
}

fn scan_deb(
    path: &Path,
    file: &File,
    wanted: &[String],
    out: &mut impl Write,
) -> anyhow::Result<DebHit> {
    let mut file = file.try_clone()?;
    file.rewind()?;
    let mut ar = ar::Archive::new(BufReader::new(file));
    let mut saw_debian_binary = false;
    while let Some(entry) = ar.next_entry() {
        let entry = entry.with_context(|| format!("{} is not a readable .deb", path.display()))?;
        let id = String::from_utf8_lossy(entry.header().identifier())
            .trim_end_matches('/')
            .to_string();
        if id == "debian-binary" {
            saw_debian_binary = true;
            continue;
        }
        let Some(compression) = id.strip_prefix("data.tar") else {
            continue;
        };
        if !saw_debian_binary {
            bail!(
                "{} is an ar archive but not a .deb (no debian-binary member)",
                path.display()
            );
        }
        let reader: Box<dyn Read> = match compression {
            ".xz" => Box::new(xz2::read::XzDecoder::new(entry)),
            ".gz" => Box::new(flate2::read::GzDecoder::new(entry)),
            ".zst" => Box::new(zstd::stream::read::Decoder::new(entry)?),
            "" => Box::new(entry),
            other => bail!(
                "{}: data.tar{other} compression is not supported",
                path.display()
            ),
        };
        let mut tar = tar::Archive::new(reader);
        let mut link: Option<String> = None;
        for e in tar
            .entries()
            .with_context(|| format!("{}: bad data archive", path.display()))?
        {
            let mut e = e.with_context(|| format!("{}: bad data archive", path.display()))?;
            let p = e.path()?.to_string_lossy().into_owned();
            let p = p
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_string();
            if !wanted.contains(&p) {
                continue;
            }
            let kind = e.header().entry_type();
            if kind.is_file() {
                // The first wanted path present as a regular file (a package ships one of them).
                io::copy(&mut e, out).with_context(|| format!("cannot extract {p}"))?;
                return Ok(DebHit::Written);
            }
            if (kind.is_symlink() || kind.is_hard_link()) && link.is_none() {
                let target = e
                    .link_name()?
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                link = Some(if target.starts_with('/') || kind.is_hard_link() {
                    normalize(Path::new(&target))
                } else {
                    normalize(
                        &Path::new(&p)
                            .parent()
                            .unwrap_or(Path::new(""))
                            .join(&target),
                    )
                });
            }
        }
        return Ok(link.map(DebHit::Link).unwrap_or(DebHit::Missing));
    }
    bail!(
        "{} has no data.tar member; expected a consul .deb",
        path.display()
    )
}

/// `usr/bin/../lib/x` -> `usr/lib/x` (inside an archive; never above its root).
fn normalize(p: &Path) -> String {
    let mut parts: Vec<String> = vec![];
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                parts.pop();
            }
            std::path::Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    parts.join("/")
}

/// ELF e_machine -> `uname -m` style name.
fn elf_arch(head: &[u8; 20]) -> Option<&'static str> {
    let little = head[5] == 1;
    let m = if little {
        u16::from_le_bytes([head[18], head[19]])
    } else {
        u16::from_be_bytes([head[18], head[19]])
    };
    Some(match m {
        0x3e => "x86_64",
        0xb7 => "aarch64",
        0x03 => "i686",
        0x28 => "arm",
        0x15 => "ppc64le",
        0x16 => "s390x",
        0xf3 => "riscv64",
        _ => return None,
    })
}

/// `consul version` when the binary runs here (same OS/CPU); None otherwise. 10 s at most.
fn consul_version(raw: &Path) -> Option<Version> {
    let mut child = std::process::Command::new(raw)
        .arg("version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    Version::from_consul_output(&out)
}

fn gzip_file(raw: &Path, gz: &Path) -> anyhow::Result<()> {
    let input = File::open(raw)?;
    let output = File::create(gz).with_context(|| format!("cannot write {}", gz.display()))?;
    let mut enc = flate2::write::GzEncoder::new(
        BufWriter::with_capacity(1 << 20, output),
        flate2::Compression::new(1),
    );
    io::copy(&mut BufReader::with_capacity(1 << 20, input), &mut enc)?;
    let w = enc.finish()?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(())
}

/// zstd -3 (its default level): higher levels (up to 6) save at most 6% of the size of a
/// consul binary for up to 3x the compression time, and decompress at the same speed. The
/// upload's sha256 is checked on the host, so the frame carries no checksum of its own.
/// Written to a temporary file renamed into place, so a present file is complete (it may be
/// added to an existing cache entry).
fn zstd_file(raw: &Path, dest: &Path) -> anyhow::Result<()> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let input = File::open(raw).with_context(|| format!("cannot read {}", raw.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".consul.zst.")
        .tempfile_in(dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let mut enc =
        zstd::stream::write::Encoder::new(BufWriter::with_capacity(1 << 20, tmp.as_file_mut()), 3)?;
    io::copy(&mut BufReader::with_capacity(1 << 20, input), &mut enc)?;
    enc.finish()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    tmp.persist(dest)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            size: 0,
        }
    }

    fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.size)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ---- source file hashes, cached by stat ------------------------------------------------

#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StatKey {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl StatKey {
    fn of(path: &Path) -> io::Result<StatKey> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(path)?;
        Ok(StatKey {
            path: path.to_path_buf(),
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            ctime_ns: m.ctime() as i128 * 1_000_000_000 + m.ctime_nsec() as i128,
        })
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SourceHash {
    key: StatKey,
    sha256: String,
}

/// sha256 of a source file, remembered by (path, device, inode, size, mtime, ctime): any
/// write to the file changes ctime, which no tool can set back.
fn source_sha256(cache: &Path, path: &Path) -> anyhow::Result<String> {
    let path = fs::canonicalize(path).with_context(|| format!("cannot read {}", path.display()))?;
    let record = cache.join("sources").join(format!(
        "{}.json",
        consulctl_core::hash::sha256_hex(path.as_os_str().as_encoded_bytes())
    ));
    let key = StatKey::of(&path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Ok(bytes) = fs::read(&record) {
        if let Ok(known) = serde_json::from_slice::<SourceHash>(&bytes) {
            if known.key == key {
                return Ok(known.sha256);
            }
        }
    }
    let sha256 = consulctl_core::hash::sha256_file(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    // Only remember it if the file did not change while it was read.
    if StatKey::of(&path).ok().as_ref() == Some(&key) {
        let _ = write_atomic(
            &record,
            &serde_json::to_vec(&SourceHash {
                key,
                sha256: sha256.clone(),
            })?,
        );
    }
    Ok(sha256)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

// ---- URL downloads ----------------------------------------------------------------------

/// Download `url` into `<cache>/downloads/<sha256>/<file name>` unless it is there already;
/// the file appears under its final name only after its sha256 matched.
fn download(cache: &Path, url: &str, sha256: &str) -> anyhow::Result<PathBuf> {
    let want = sha256.to_ascii_lowercase();
    if want.len() != 64 || !want.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("sha256 `{sha256}` for {url} is not 64 hex digits");
    }
    let dir = cache.join("downloads").join(&want);
    let dest = dir.join(url_file_name(url));
    if dest.is_file() {
        return Ok(dest);
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .build();
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, r) => {
            anyhow!("downloading {url}: HTTP {code} {}", r.status_text())
        }
        ureq::Error::Transport(t) => anyhow!("downloading {url}: {t}"),
    })?;
    let mut part = tempfile::Builder::new()
        .prefix(".download.")
        .suffix(".part")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let got = {
        let mut w = HashingWriter::new(BufWriter::with_capacity(1 << 20, part.as_file_mut()));
        io::copy(&mut response.into_reader(), &mut w)
            .with_context(|| format!("downloading {url}"))?;
        let (mut w, got, _) = w.finish();
        w.flush()?;
        got
    };
    if got != want {
        // Dropping `part` removes the partial file.
        drop(part);
        bail!("sha256 mismatch for {url}: expected {want}, got {got}; the download was removed");
    }
    part.as_file().sync_all()?;
    part.persist(&dest)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot write {}", dest.display()))?;
    Ok(dest)
}

/// The last path segment of the URL (no query or fragment), safe as a file name.
fn url_file_name(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or("");
    let after_scheme = no_query
        .split_once("://")
        .map_or(no_query, |(_, rest)| rest);
    let path = after_scheme.split_once('/').map_or("", |(_, path)| path);
    let last = path.rsplit('/').next().unwrap_or("");
    let safe: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() || safe.starts_with('.') {
        "download".to_string()
    } else {
        safe
    }
}

// ---- packages ---------------------------------------------------------------------------

pub const APT_KEY_URL: &str = "https://apt.releases.hashicorp.com/gpg";
pub const APT_REPO_URL: &str = "https://apt.releases.hashicorp.com";
pub const APT_KEYRING: &str = "/usr/share/keyrings/hashicorp-archive-keyring.gpg";
pub const APT_LIST: &str = "/etc/apt/sources.list.d/hashicorp.list";
pub const RPM_REPO_FILE_URL: &str = "https://rpm.releases.hashicorp.com/RHEL/hashicorp.repo";

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// The commands that install Consul `version` with a resolved package manager (apt, yum or
/// dnf), as argv lists to run in order. Pipelines are fixed `sh -c` scripts whose values are
/// positional arguments.
pub fn package_install_commands(manager: PackageManager, version: &Version) -> Vec<Vec<String>> {
    let v = version.to_string();
    match manager {
        PackageManager::Apt => vec![
            argv(&["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update"]),
            argv(&[
                "env",
                "DEBIAN_FRONTEND=noninteractive",
                "apt-get",
                "install",
                "-y",
                "ca-certificates",
                "curl",
                "gnupg",
            ]),
            argv(&[
                "sh",
                "-c",
                r#"curl -fsSL "$1" | gpg --batch --yes --dearmor -o "$2""#,
                "sh",
                APT_KEY_URL,
                APT_KEYRING,
            ]),
            argv(&[
                "sh",
                "-c",
                r#". /etc/os-release && printf 'deb [signed-by=%s] %s %s main\n' "$1" "$2" "$VERSION_CODENAME" > "$3""#,
                "sh",
                APT_KEYRING,
                APT_REPO_URL,
                APT_LIST,
            ]),
            argv(&["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update"]),
            vec![
                "env".into(),
                "DEBIAN_FRONTEND=noninteractive".into(),
                "apt-get".into(),
                "install".into(),
                "-y".into(),
                format!("consul={v}-1"),
            ],
        ],
        PackageManager::Yum => vec![
            argv(&["yum", "install", "-y", "yum-utils"]),
            argv(&["yum-config-manager", "--add-repo", RPM_REPO_FILE_URL]),
            vec![
                "yum".into(),
                "-y".into(),
                "install".into(),
                format!("consul-{v}"),
            ],
        ],
        PackageManager::Dnf => vec![
            argv(&["dnf", "install", "-y", "dnf-plugins-core"]),
            argv(&["dnf", "config-manager", "--add-repo", RPM_REPO_FILE_URL]),
            vec![
                "dnf".into(),
                "-y".into(),
                "install".into(),
                format!("consul-{v}"),
            ],
        ],
        // Callers resolve `Auto` per host first; an unresolved one installs nothing.
        PackageManager::Auto => vec![],
    }
}

/// The package manager to use on a host: the inventory's choice if the host has it, or for
/// `auto`: apt on Debian-like hosts, dnf (else yum) on RHEL-like hosts, else whichever exists.
pub fn resolve_package_manager(
    manager: PackageManager,
    facts: &Facts,
) -> Result<PackageManager, String> {
    let cmd = |m: PackageManager| match m {
        PackageManager::Apt => "apt-get",
        PackageManager::Yum => "yum",
        PackageManager::Dnf => "dnf",
        PackageManager::Auto => "",
    };
    let os = || {
        let like = if facts.os_like.is_empty() {
            String::new()
        } else {
            format!(", ID_LIKE={}", facts.os_like.join(" "))
        };
        format!(
            "ID={}{like}",
            if facts.os_id.is_empty() {
                "?"
            } else {
                &facts.os_id
            }
        )
    };
    let has = |m: PackageManager| facts.has_command(cmd(m));
    match manager {
        PackageManager::Auto => {
            let order: &[PackageManager] = if facts.is_debian_like() {
                &[PackageManager::Apt]
            } else if facts.is_rhel_like() {
                &[PackageManager::Dnf, PackageManager::Yum]
            } else {
                &[]
            };
            let fallback = [
                PackageManager::Apt,
                PackageManager::Dnf,
                PackageManager::Yum,
            ];
            order.iter().chain(fallback.iter()).copied().find(|m| has(*m)).ok_or_else(|| {
                format!(
                    "host `{}` ({}) has none of apt-get, dnf, yum: cannot install the consul package; \
                     use a file or url source",
                    facts.hostname,
                    os()
                )
            })
        }
        m if has(m) => Ok(m),
        m => Err(format!(
            "host `{}` ({}) has no `{}` but the inventory says consul.source.manager = \"{}\"; \
             use \"auto\" or another manager",
            facts.hostname,
            os(),
            cmd(m),
            cmd(m).trim_end_matches("-get"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A small fake x86-64 ELF "binary".
    fn fake_elf(tag: &str) -> Vec<u8> {
        let mut b = b"\x7fELF\x02\x01\x01\x00".to_vec();
        b.resize(18, 0);
        b.extend_from_slice(&0x3eu16.to_le_bytes());
        b.extend_from_slice(format!("fake consul {tag} ").repeat(500).as_bytes());
        b
    }

    fn make_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(0o755);
        for (name, data) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    enum Member<'a> {
        File(&'a str, &'a [u8]),
        Dir(&'a str),
        Symlink(&'a str, &'a str),
    }

    fn make_tar(members: &[Member]) -> Vec<u8> {
        let mut t = tar::Builder::new(Vec::new());
        for m in members {
            let mut h = tar::Header::new_gnu();
            match m {
                Member::File(p, data) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(data.len() as u64);
                    h.set_mode(0o755);
                    t.append_data(&mut h, p, *data).unwrap();
                }
                Member::Dir(p) => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    t.append_data(&mut h, p, io::empty()).unwrap();
                }
                Member::Symlink(p, target) => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    h.set_mode(0o777);
                    t.append_link(&mut h, p, target).unwrap();
                }
            }
        }
        t.into_inner().unwrap()
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut e = xz2::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// A real (minimal) .deb: debian-binary, control.tar.xz, data.tar.<compression>.
    fn make_deb(data_members: &[Member], compression: &str) -> Vec<u8> {
        let control = make_tar(&[Member::File(
            "./control",
            b"Package: consul\nVersion: 1.8.7+dfsg1-2\nArchitecture: amd64\nDescription: test\n",
        )]);
        let data = make_tar(data_members);
        let data = match compression {
            ".xz" => xz(&data),
            ".gz" => gz(&data),
            ".zst" => zstd::encode_all(&data[..], 1).unwrap(),
            _ => data,
        };
        let mut ar = ar::Builder::new(Vec::new());
        for (name, body) in [
            ("debian-binary".to_string(), b"2.0\n".to_vec()),
            ("control.tar.xz".to_string(), xz(&control)),
            (format!("data.tar{compression}"), data),
        ] {
            let header = ar::Header::new(name.into_bytes(), body.len() as u64);
            ar.append(&header, &body[..]).unwrap();
        }
        ar.into_inner().unwrap()
    }

    fn file_source(path: &Path) -> InstallSource {
        InstallSource::File {
            path: path.to_path_buf(),
        }
    }

    fn gunzip(path: &Path) -> Vec<u8> {
        let mut out = vec![];
        flate2::read::GzDecoder::new(File::open(path).unwrap())
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    async fn prepared(source: &InstallSource, cache: &Path) -> PreparedBinary {
        prepare_in(source, cache).await.unwrap().unwrap()
    }

    fn assert_prepared(p: &PreparedBinary, want: &[u8], format: SourceFormat) {
        assert_eq!(fs::read(&p.raw).unwrap(), want);
        assert_eq!(gunzip(&p.gzip), want);
        assert_eq!(
            zstd::decode_all(File::open(&p.zstd).unwrap()).unwrap(),
            want
        );
        assert_eq!(p.sha256, consulctl_core::hash::sha256_hex(want));
        assert_eq!(p.size, want.len() as u64);
        assert_eq!(p.format, format);
        assert_eq!(p.arch.as_deref(), Some("x86_64"));
        assert!(p.runs_on("x86_64") && !p.runs_on("aarch64"));
        assert_eq!(p.version, None); // a fake ELF does not run
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&p.raw).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[tokio::test]
    async fn raw_elf_by_content_not_name() {
        let tmp = tempfile::tempdir().unwrap();
        let elf = fake_elf("raw");
        let src = tmp.path().join("consul.zip"); // misleading name on purpose
        fs::write(&src, &elf).unwrap();
        assert_eq!(detect_format(&src).unwrap(), SourceFormat::Elf);
        let p = prepared(&file_source(&src), &tmp.path().join("cache")).await;
        assert_prepared(&p, &elf, SourceFormat::Elf);
        let source_sha = consulctl_core::hash::sha256_file(&src).unwrap();
        assert_eq!(
            p.raw,
            tmp.path()
                .join("cache/binaries")
                .join(source_sha)
                .join("consul")
        );
    }

    #[tokio::test]
    async fn zip_extraction() {
        let tmp = tempfile::tempdir().unwrap();
        let elf = fake_elf("zip");
        let src = tmp.path().join("release");
        fs::write(&src, make_zip(&[("LICENSE.txt", b"MPL"), ("consul", &elf)])).unwrap();
        let p = prepared(&file_source(&src), &tmp.path().join("cache")).await;
        assert_prepared(&p, &elf, SourceFormat::Zip);

        let bad = tmp.path().join("other.zip");
        fs::write(&bad, make_zip(&[("nomad", &elf), ("README", b"x")])).unwrap();
        let e = format!(
            "{:#}",
            prepare_in(&file_source(&bad), tmp.path())
                .await
                .unwrap_err()
        );
        assert!(
            e.contains("has no `consul` entry (entries: nomad, README)"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn deb_extraction_all_compressions() {
        let tmp = tempfile::tempdir().unwrap();
        for (i, compression) in [".xz", ".gz", ".zst", ""].into_iter().enumerate() {
            let elf = fake_elf(&format!("deb{i}"));
            let src = tmp.path().join(format!("pkg{i}.deb"));
            fs::write(
                &src,
                make_deb(
                    &[
                        Member::Dir("./"),
                        Member::Dir("./usr/"),
                        Member::Dir("./usr/bin/"),
                        Member::File("./usr/bin/consul", &elf),
                        Member::Dir("./usr/share/doc/consul/"),
                        Member::File("./usr/share/doc/consul/copyright", b"MPL-2.0\n"),
                    ],
                    compression,
                ),
            )
            .unwrap();
            assert_eq!(detect_format(&src).unwrap(), SourceFormat::Deb);
            let p = prepared(&file_source(&src), &tmp.path().join("cache")).await;
            assert_prepared(&p, &elf, SourceFormat::Deb);
        }
    }

    #[tokio::test]
    async fn deb_with_local_bin_and_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let elf = fake_elf("hashicorp");
        let src = tmp.path().join("consul_1.8.7-1_amd64.deb");
        fs::write(
            &src,
            make_deb(
                &[
                    Member::Symlink("./usr/bin/consul", "../local/bin/consul"),
                    Member::File("./usr/local/bin/consul", &elf),
                ],
                ".xz",
            ),
        )
        .unwrap();
        let p = prepared(&file_source(&src), &tmp.path().join("cache")).await;
        assert_prepared(&p, &elf, SourceFormat::Deb);

        let none = tmp.path().join("empty.deb");
        fs::write(
            &none,
            make_deb(&[Member::File("./usr/bin/nomad", &elf)], ".xz"),
        )
        .unwrap();
        let e = format!(
            "{:#}",
            prepare_in(&file_source(&none), tmp.path())
                .await
                .unwrap_err()
        );
        assert!(
            e.contains("has no usr/bin/consul or usr/local/bin/consul"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn unknown_formats_name_the_file_and_what_is_accepted() {
        let tmp = tempfile::tempdir().unwrap();
        for (name, bytes, what) in [
            (
                "consul.txt",
                b"#!/bin/sh\necho hi\n".to_vec(),
                "a file starting with bytes 2321",
            ),
            ("consul.tgz", gz(b"tar"), "a gzip file"),
            ("consul", vec![], "empty"),
        ] {
            let src = tmp.path().join(name);
            fs::write(&src, bytes).unwrap();
            let e = format!(
                "{:#}",
                prepare_in(&file_source(&src), tmp.path())
                    .await
                    .unwrap_err()
            );
            assert!(e.contains(&src.display().to_string()), "{e}");
            assert!(e.contains(what), "{e}");
            assert!(
                e.contains("expected a raw Linux consul binary (ELF), HashiCorp's release .zip"),
                "{e}"
            );
        }
        let e = format!(
            "{:#}",
            prepare_in(&file_source(&tmp.path().join("missing")), tmp.path())
                .await
                .unwrap_err()
        );
        assert!(e.contains("cannot read") && e.contains("missing"), "{e}");
        // A zip whose `consul` is not an executable.
        let src = tmp.path().join("notelf.zip");
        fs::write(&src, make_zip(&[("consul", b"#!/bin/sh\nexit 0\n....")])).unwrap();
        let e = format!(
            "{:#}",
            prepare_in(&file_source(&src), tmp.path())
                .await
                .unwrap_err()
        );
        assert!(e.contains("is not an ELF executable"), "{e}");
    }

    #[tokio::test]
    async fn second_call_is_a_cache_hit() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        let src = tmp.path().join("consul.zip");
        let elf = fake_elf("cached");
        fs::write(&src, make_zip(&[("consul", &elf)])).unwrap();
        let first = prepared(&file_source(&src), &cache).await;
        let marker = first.raw.with_file_name("prepared.json");
        let stamp = fs::metadata(&marker).unwrap().modified().unwrap();
        let second = prepared(&file_source(&src), &cache).await;
        assert_eq!((&second.raw, &second.sha256), (&first.raw, &first.sha256));
        assert_eq!(
            fs::metadata(&marker).unwrap().modified().unwrap(),
            stamp,
            "re-extracted"
        );
        assert_eq!(fs::read_dir(cache.join("binaries")).unwrap().count(), 1);

        // Same size, mtime put back: the ctime still tells the file changed.
        let mtime = fs::metadata(&src).unwrap().modified().unwrap();
        let other = fake_elf("cachee"); // same length
        let zipped = make_zip(&[("consul", &other)]);
        assert_eq!(zipped.len(), fs::metadata(&src).unwrap().len() as usize);
        fs::write(&src, zipped).unwrap();
        File::options()
            .write(true)
            .open(&src)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let third = prepared(&file_source(&src), &cache).await;
        assert_ne!(third.sha256, first.sha256);
        assert_eq!(fs::read(&third.raw).unwrap(), other);

        // A damaged cache entry (truncated binary) is rebuilt.
        fs::write(&third.raw, b"short").unwrap();
        let fourth = prepared(&file_source(&src), &cache).await;
        assert_eq!(fs::read(&fourth.raw).unwrap(), other);
    }

    /// Serves `body` over HTTP on 127.0.0.1 (loopback only) for at most `max` connections or
    /// 20 seconds, counting requests.
    fn serve(body: Vec<u8>, status: &'static str, max: usize) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!(
            "http://{}/dl/consul_1.8.7_linux_amd64.zip?x=1",
            listener.local_addr().unwrap()
        );
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(20);
            while counter.load(Ordering::SeqCst) < max && Instant::now() < deadline {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        counter.fetch_add(1, Ordering::SeqCst);
                        let mut req = vec![];
                        let mut buf = [0u8; 1024];
                        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => req.extend_from_slice(&buf[..n]),
                            }
                        }
                        let head = format!(
                            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/zip\r\nConnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(head.as_bytes());
                        let _ = s.write_all(&body);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        (url, hits)
    }

    #[tokio::test]
    async fn url_download_verified_and_cached() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        let elf = fake_elf("url");
        let zip = make_zip(&[("consul", &elf)]);
        let sha = consulctl_core::hash::sha256_hex(&zip);
        let (url, hits) = serve(zip.clone(), "200 OK", 3);
        let source = InstallSource::Url {
            url: url.clone(),
            sha256: sha.to_uppercase(),
        };
        let p = prepared(&source, &cache).await;
        assert_prepared(&p, &elf, SourceFormat::Zip);
        let saved = cache
            .join("downloads")
            .join(&sha)
            .join("consul_1.8.7_linux_amd64.zip");
        assert_eq!(fs::read(&saved).unwrap(), zip);
        let again = prepared(&source, &cache).await;
        assert_eq!(again.raw, p.raw);
        assert_eq!(hits.load(Ordering::SeqCst), 1, "downloaded twice");
    }

    #[tokio::test]
    async fn url_sha256_mismatch_removes_the_download() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("cache");
        let zip = make_zip(&[("consul", &fake_elf("bad"))]);
        let got = consulctl_core::hash::sha256_hex(&zip);
        let want = "0".repeat(64);
        let (url, _) = serve(zip, "200 OK", 1);
        let source = InstallSource::Url {
            url: url.clone(),
            sha256: want.clone(),
        };
        let e = format!("{:#}", prepare_in(&source, &cache).await.unwrap_err());
        assert!(
            e.contains(&format!(
                "sha256 mismatch for {url}: expected {want}, got {got}"
            )),
            "{e}"
        );
        let dir = cache.join("downloads").join(&want);
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            0,
            "partial file left behind"
        );

        let (url, _) = serve(b"nope".to_vec(), "404 Not Found", 1);
        let e = format!(
            "{:#}",
            prepare_in(&InstallSource::Url { url, sha256: want }, &cache)
                .await
                .unwrap_err()
        );
        assert!(e.contains("HTTP 404"), "{e}");

        let e = format!(
            "{:#}",
            prepare_in(
                &InstallSource::Url {
                    url: "http://127.0.0.1:1/x".into(),
                    sha256: "abc".into()
                },
                &cache
            )
            .await
            .unwrap_err()
        );
        assert!(e.contains("not 64 hex digits"), "{e}");
    }

    #[tokio::test]
    async fn package_sources_prepare_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let source = InstallSource::Package {
            manager: PackageManager::Auto,
        };
        assert!(prepare_in(&source, tmp.path()).await.unwrap().is_none());
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn url_file_names() {
        assert_eq!(
            url_file_name(
                "https://releases.hashicorp.com/consul/1.8.7/consul_1.8.7_linux_amd64.zip"
            ),
            "consul_1.8.7_linux_amd64.zip"
        );
        assert_eq!(
            url_file_name("https://x/a/consul.deb?sig=1#f"),
            "consul.deb"
        );
        assert_eq!(url_file_name("https://x/"), "download");
        assert_eq!(url_file_name("https://x/.."), "download");
        assert_eq!(url_file_name("https://x/a b"), "a_b");
    }

    #[test]
    fn cache_dir_from_env() {
        // Only reads the environment; the precedence is what matters.
        let dir = cache_dir().unwrap();
        if let Some(d) = std::env::var_os("CONSULCTL_CACHE_DIR").filter(|d| !d.is_empty()) {
            assert_eq!(dir, PathBuf::from(d));
        } else {
            assert!(dir.ends_with("consulctl"), "{}", dir.display());
        }
    }

    #[test]
    fn binary_version_must_match_the_inventory() {
        let mut p = PreparedBinary {
            raw: "r".into(),
            sha256: String::new(),
            gzip: "g".into(),
            zstd: "z".into(),
            size: 0,
            format: SourceFormat::Deb,
            version: Some(Version::new(1, 8, 7)),
            arch: None,
        };
        let src = InstallSource::File {
            path: "/srv/consul.deb".into(),
        };
        assert!(check_version(&p, Version::new(1, 8, 7), &src).is_ok());
        let e = check_version(&p, Version::new(1, 9, 0), &src)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "the consul binary from /srv/consul.deb is Consul 1.8.7 but the inventory says consul.version = 1.9.0; fix one of them"
        );
        p.version = None; // did not run here (other OS/CPU): nothing to check
        assert!(check_version(&p, Version::new(1, 9, 0), &src).is_ok());
    }

    #[test]
    fn elf_arch_names() {
        let mut head = [0u8; 20];
        head[5] = 1;
        head[18..20].copy_from_slice(&0xb7u16.to_le_bytes());
        assert_eq!(elf_arch(&head), Some("aarch64"));
        let p = PreparedBinary {
            raw: "r".into(),
            sha256: String::new(),
            gzip: "g".into(),
            zstd: "z".into(),
            size: 0,
            format: SourceFormat::Elf,
            version: None,
            arch: Some("aarch64".into()),
        };
        assert!(p.runs_on("aarch64") && p.runs_on("arm64") && !p.runs_on("x86_64"));
    }

    // ---- the upload's install script (src/remote/install-binary.sh), run here --------

    #[tokio::test]
    async fn old_cache_entries_get_a_zstd_file() {
        let tmp = tempfile::tempdir().unwrap();
        let elf = fake_elf("old");
        let src = tmp.path().join("consul");
        fs::write(&src, &elf).unwrap();
        let cache = tmp.path().join("cache");
        let p = prepared(&file_source(&src), &cache).await;
        // As a consulctl from before zstd uploads left it.
        fs::remove_file(&p.zstd).unwrap();
        let again = prepared(&file_source(&src), &cache).await;
        assert_eq!(again.raw, p.raw);
        assert_prepared(&again, &elf, SourceFormat::Elf);
        let names: Vec<String> = fs::read_dir(p.raw.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 4, "{names:?}"); // consul, .gz, .zst, prepared.json
    }

    fn on_path(cmd: &str) -> Option<PathBuf> {
        let out = std::process::Command::new("sh")
            .args(["-c", r#"command -v "$1""#, "sh", cmd])
            .output()
            .ok()?;
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && p.starts_with('/')).then(|| PathBuf::from(p))
    }

    /// Run install-binary.sh with `shell`, `data` on stdin; `path` replaces PATH.
    fn install_script(
        shell: &str,
        args: &[&str],
        data: &[u8],
        path: Option<&Path>,
    ) -> std::process::Output {
        let mut cmd = std::process::Command::new(on_path(shell).unwrap());
        cmd.arg("-c")
            .arg(crate::remote::INSTALL_BINARY)
            .arg("sh")
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(p) = path {
            cmd.env("PATH", p);
        }
        let mut child = cmd.spawn().unwrap();
        // The script may stop reading early (a bad argument): ignore EPIPE.
        let _ = child.stdin.take().unwrap().write_all(data);
        child.wait_with_output().unwrap()
    }

    fn text(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    /// A fake ELF for this machine and one for another, when this is x86-64 or arm64.
    fn elves_for_this_machine(tag: &str) -> Option<(Vec<u8>, Vec<u8>)> {
        let m = text(
            &std::process::Command::new("uname")
                .arg("-m")
                .output()
                .ok()?
                .stdout,
        );
        let x86 = fake_elf(tag);
        let mut arm = x86.clone();
        arm[18..20].copy_from_slice(&0xb7u16.to_le_bytes());
        match m.trim() {
            "x86_64" => Some((x86, arm)),
            "aarch64" | "arm64" => Some((arm, x86)),
            other => {
                eprintln!("skipped: no fake ELF for a {other} machine");
                None
            }
        }
    }

    #[tokio::test]
    async fn install_script_verifies_and_swaps() {
        let Some((_, foreign)) = elves_for_this_machine("script") else {
            return;
        };
        // A "binary" that runs anywhere and answers `version` like consul does.
        let elf = b"#!/bin/sh\necho 'Consul v1.8.7'\n".to_vec();
        let tmp = tempfile::tempdir().unwrap();
        let sha_owned = consulctl_core::hash::sha256_hex(&elf);
        let mut inputs = vec![("gzip", gz(&elf))];
        if on_path("zstd").is_some() {
            inputs.push(("zstd", zstd::encode_all(&elf[..], 3).unwrap()));
        } else {
            eprintln!("zstd inputs skipped: no zstd here");
        }
        let shells: Vec<&str> = ["sh", "dash", "bash"]
            .into_iter()
            .filter(|s| on_path(s).is_some())
            .collect();
        for shell in &shells {
            for (format, data) in &inputs {
                let what = format!("{shell} {format}");
                let dir = tmp.path().join(format!("{shell}-{format}"));
                let bin = dir.join("bin/consul");
                let b = bin.to_str().unwrap();
                let new = dir.join("bin/consul.consulctl-new");
                let prev = dir.join("bin/consul.consulctl-prev");
                let sha = sha_owned.as_str();

                // A wrong sha256: exit 3, nothing left.
                let bad = "0".repeat(64);
                let out = install_script(shell, &[b, &bad, "install", format], data, None);
                assert_eq!(out.status.code(), Some(3), "{what}: {}", text(&out.stderr));
                assert!(text(&out.stderr).contains(&format!("has sha256 {sha}, expected {bad}")));
                assert!(!new.exists() && !bin.exists(), "{what}");

                // Truncated data: the unpacker's failure fails the script, nothing left.
                let cut = &data[..data.len() / 2];
                let out = install_script(shell, &[b, sha, "install", format], cut, None);
                assert_eq!(out.status.code(), Some(1), "{what}: {}", text(&out.stderr));
                assert!(
                    text(&out.stderr).contains("cannot unpack the uploaded binary"),
                    "{what}: {}",
                    text(&out.stderr)
                );
                assert!(!new.exists() && !bin.exists(), "{what}");

                // The right one installs (0755), reporting what it checked.
                let out = install_script(shell, &[b, sha, "install", format], data, None);
                assert!(out.status.success(), "{what}: {}", text(&out.stderr));
                assert_eq!(
                    text(&out.stdout).trim(),
                    "installed Consul v1.8.7",
                    "{what}"
                );
                assert_eq!(fs::read(&bin).unwrap(), elf, "{what}");
                use std::os::unix::fs::PermissionsExt;
                let mode = fs::metadata(&bin).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o755, "{what}");
                assert!(!new.exists() && !prev.exists(), "{what}");

                // Staged: next to the binary, which stays.
                fs::write(&bin, b"old").unwrap();
                let out = install_script(shell, &[b, sha, "stage", format], data, None);
                assert!(out.status.success(), "{what}: {}", text(&out.stderr));
                assert!(text(&out.stdout).starts_with("staged "), "{what}");
                assert_eq!(fs::read(&new).unwrap(), elf, "{what}");
                assert_eq!(fs::read(&bin).unwrap(), b"old", "{what}");

                // Installed over the old one, which is kept.
                let out = install_script(shell, &[b, sha, "install", format], data, None);
                assert!(out.status.success(), "{what}: {}", text(&out.stderr));
                assert_eq!(fs::read(&bin).unwrap(), elf, "{what}");
                assert_eq!(fs::read(&prev).unwrap(), b"old", "{what}");
                assert!(!new.exists(), "{what}");
            }

            // Another machine's binary (its sha256 right): exit 3, nothing left.
            let dir = tmp.path().join(format!("{shell}-foreign"));
            let bin = dir.join("consul");
            let out = install_script(
                shell,
                &[
                    bin.to_str().unwrap(),
                    &consulctl_core::hash::sha256_hex(&foreign),
                    "install",
                    "gzip",
                ],
                &gz(&foreign),
                None,
            );
            assert_eq!(out.status.code(), Some(3), "{shell}: {}", text(&out.stderr));
            assert!(
                text(&out.stderr).contains("does not run on this host"),
                "{shell}: {}",
                text(&out.stderr)
            );
            assert!(!dir.join("consul.consulctl-new").exists() && !bin.exists());

            let out = install_script(
                shell,
                &[bin.to_str().unwrap(), "x", "install", "xz"],
                b"",
                None,
            );
            assert_eq!(out.status.code(), Some(2), "{shell}");
            assert!(text(&out.stderr).contains("unknown compression xz"));
        }
    }

    /// Without openssl the hash comes from sha256sum; on a machine without an ELF name in the
    /// script (a fake `uname`), the binary must run (`version`) to be installed.
    #[test]
    fn install_script_without_openssl_or_a_known_machine() {
        let tmp = tempfile::tempdir().unwrap();
        let shim = tmp.path().join("path");
        fs::create_dir(&shim).unwrap();
        for cmd in [
            "sh",
            "dirname",
            "mkdir",
            "gzip",
            "tee",
            "sha256sum",
            "cut",
            "rm",
            "sed",
            "tr",
            "chmod",
            "od",
            "head",
            "cp",
            "mv",
            "cat",
        ] {
            let Some(p) = on_path(cmd) else {
                eprintln!("skipped: no {cmd} here");
                return;
            };
            std::os::unix::fs::symlink(p, shim.join(cmd)).unwrap();
        }
        fs::write(shim.join("uname"), "#!/bin/sh\necho mips64\n").unwrap();
        set_mode(&shim.join("uname"), 0o755).unwrap();

        // A "binary" that runs here, and one that does not.
        let runs = b"#!/bin/sh\necho Consul v1.8.7\necho Revision x\n".to_vec();
        let fails = fake_elf("mips");
        for (raw, ok) in [(&runs, true), (&fails, false)] {
            let bin = tmp.path().join(format!("bin-{ok}/consul"));
            let sha = consulctl_core::hash::sha256_hex(raw);
            let out = install_script(
                "sh",
                &[bin.to_str().unwrap(), &sha, "install", "gzip"],
                &gz(raw),
                Some(&shim),
            );
            if ok {
                assert!(out.status.success(), "{}", text(&out.stderr));
                assert_eq!(text(&out.stdout), "installed Consul v1.8.7\n");
                assert_eq!(&fs::read(&bin).unwrap(), raw);
            } else {
                assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
                assert!(text(&out.stderr).contains("does not run on this host"));
                assert!(!bin.exists() && !bin.with_file_name("consul.consulctl-new").exists());
            }
        }
    }

    // ---- packages ---------------------------------------------------------------------

    fn strs(cmds: &[Vec<String>]) -> Vec<Vec<&str>> {
        cmds.iter()
            .map(|c| c.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn apt_commands() {
        let cmds = package_install_commands(PackageManager::Apt, &Version::new(1, 8, 7));
        assert_eq!(
            strs(&cmds),
            vec![
                vec!["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update"],
                vec![
                    "env",
                    "DEBIAN_FRONTEND=noninteractive",
                    "apt-get",
                    "install",
                    "-y",
                    "ca-certificates",
                    "curl",
                    "gnupg"
                ],
                vec![
                    "sh",
                    "-c",
                    r#"curl -fsSL "$1" | gpg --batch --yes --dearmor -o "$2""#,
                    "sh",
                    "https://apt.releases.hashicorp.com/gpg",
                    "/usr/share/keyrings/hashicorp-archive-keyring.gpg",
                ],
                vec![
                    "sh",
                    "-c",
                    r#". /etc/os-release && printf 'deb [signed-by=%s] %s %s main\n' "$1" "$2" "$VERSION_CODENAME" > "$3""#,
                    "sh",
                    "/usr/share/keyrings/hashicorp-archive-keyring.gpg",
                    "https://apt.releases.hashicorp.com",
                    "/etc/apt/sources.list.d/hashicorp.list",
                ],
                vec!["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update"],
                vec![
                    "env",
                    "DEBIAN_FRONTEND=noninteractive",
                    "apt-get",
                    "install",
                    "-y",
                    "consul=1.8.7-1"
                ],
            ]
        );
    }

    #[test]
    fn apt_repo_line_script_renders_the_list_file() {
        // Run the fixed repo-line script locally against a fake os-release-less sh: it must
        // print exactly the line HashiCorp documents (with this machine's codename).
        let cmds = package_install_commands(PackageManager::Apt, &Version::new(1, 8, 7));
        let mut script = cmds[3][2].clone();
        let tmp = tempfile::tempdir().unwrap();
        let list = tmp.path().join("hashicorp list");
        script = script.replace(". /etc/os-release", "VERSION_CODENAME=bookworm");
        let st = std::process::Command::new("sh")
            .args([
                "-c",
                &script,
                "sh",
                APT_KEYRING,
                APT_REPO_URL,
                list.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(
            fs::read_to_string(&list).unwrap(),
            "deb [signed-by=/usr/share/keyrings/hashicorp-archive-keyring.gpg] https://apt.releases.hashicorp.com bookworm main\n"
        );
    }

    #[test]
    fn yum_and_dnf_commands() {
        let v = Version::new(1, 21, 0);
        assert_eq!(
            strs(&package_install_commands(PackageManager::Yum, &v)),
            vec![
                vec!["yum", "install", "-y", "yum-utils"],
                vec![
                    "yum-config-manager",
                    "--add-repo",
                    "https://rpm.releases.hashicorp.com/RHEL/hashicorp.repo"
                ],
                vec!["yum", "-y", "install", "consul-1.21.0"],
            ]
        );
        assert_eq!(
            strs(&package_install_commands(PackageManager::Dnf, &v)),
            vec![
                vec!["dnf", "install", "-y", "dnf-plugins-core"],
                vec![
                    "dnf",
                    "config-manager",
                    "--add-repo",
                    "https://rpm.releases.hashicorp.com/RHEL/hashicorp.repo"
                ],
                vec!["dnf", "-y", "install", "consul-1.21.0"],
            ]
        );
        assert!(package_install_commands(PackageManager::Auto, &v).is_empty());
    }

    fn facts(name: &str) -> Facts {
        let text = fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../consulctl-core/tests/fixtures/facts")
                .join(name),
        )
        .unwrap();
        Facts::parse(&text).unwrap()
    }

    #[test]
    fn resolving_the_package_manager() {
        use PackageManager::*;
        let debian = facts("debian12-fresh.txt");
        let centos = facts("centos7-systemd-consul-failed.txt");
        let rocky = facts("rocky9-supervisord-fresh.txt");
        assert_eq!(resolve_package_manager(Auto, &debian), Ok(Apt));
        assert_eq!(resolve_package_manager(Auto, &centos), Ok(Yum));
        assert_eq!(resolve_package_manager(Auto, &rocky), Ok(Dnf));
        assert_eq!(resolve_package_manager(Yum, &rocky), Ok(Yum));
        assert_eq!(resolve_package_manager(Apt, &debian), Ok(Apt));
        let e = resolve_package_manager(Dnf, &centos).unwrap_err();
        assert_eq!(
            e,
            "host `c7-node-2.example.internal` (ID=centos, ID_LIKE=rhel fedora) has no `dnf` but the inventory says \
             consul.source.manager = \"dnf\"; use \"auto\" or another manager"
        );
        let e = resolve_package_manager(Apt, &rocky).unwrap_err();
        assert!(
            e.contains("has no `apt-get`") && e.contains("manager = \"apt\""),
            "{e}"
        );
        let bare = Facts {
            hostname: "alpine-1".into(),
            os_id: "alpine".into(),
            ..Default::default()
        };
        let e = resolve_package_manager(Auto, &bare).unwrap_err();
        assert_eq!(
            e,
            "host `alpine-1` (ID=alpine) has none of apt-get, dnf, yum: cannot install the consul package; use a file or url source"
        );
    }

    // ---- real artifacts, when this machine has them -----------------------------------

    /// A real artifact named by an environment variable; None (the test skips, saying how
    /// to run it) when the variable is unset or names no file.
    fn real_artifact(var: &str, what: &str) -> Option<std::path::PathBuf> {
        match std::env::var_os(var).filter(|v| !v.is_empty()) {
            Some(p) if Path::new(&p).is_file() => Some(p.into()),
            Some(p) => {
                eprintln!("skipped: {var}={} is not a file", Path::new(&p).display());
                None
            }
            None => {
                eprintln!("skipped: set {var} to {what} to run this test");
                None
            }
        }
    }

    #[tokio::test]
    #[ignore = "extracts a real Debian consul 1.8.7 package named by CONSULCTL_TEST_DEB"]
    async fn real_debian_package() {
        let Some(deb) = real_artifact(
            "CONSULCTL_TEST_DEB",
            "Debian's consul_1.8.7+dfsg1-2+b3_amd64.deb (`lab up` caches it in ~/.cache/consulctl)",
        ) else {
            return;
        };
        let deb = deb.as_path();
        let tmp = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let p = prepared(&file_source(deb), tmp.path()).await;
        eprintln!("first prepare: {:?}", started.elapsed());
        assert_eq!(p.format, SourceFormat::Deb);
        assert_eq!(p.arch.as_deref(), Some("x86_64"));
        assert_eq!(p.version, Some(Version::new(1, 8, 7)));
        let out = std::process::Command::new(&p.raw)
            .arg("version")
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("Consul v1.8.7"));
        assert_eq!(gunzip(&p.gzip).len() as u64, p.size);
        let started = Instant::now();
        let again = prepared(&file_source(deb), tmp.path()).await;
        eprintln!("cached prepare: {:?}", started.elapsed());
        assert_eq!(again.sha256, p.sha256);
    }

    #[tokio::test]
    #[ignore = "prepares a real consul binary named by CONSULCTL_TEST_BINARY"]
    async fn real_raw_binary() {
        let Some(bin) = real_artifact(
            "CONSULCTL_TEST_BINARY",
            "a consul binary (e.g. usr/bin/consul of Debian's 1.8.7 package)",
        ) else {
            return;
        };
        let bin = bin.as_path();
        let tmp = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let p = prepared(&file_source(bin), tmp.path()).await;
        eprintln!("first prepare: {:?}", started.elapsed());
        assert_eq!(p.sha256, consulctl_core::hash::sha256_file(bin).unwrap());
        // The version the binary itself reports.
        let out = std::process::Command::new(bin)
            .arg("version")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        let v = p.version.expect("a version was read from the binary");
        assert!(said.starts_with(&format!("Consul v{v}")), "{v} vs {said}");
        let started = Instant::now();
        prepared(&file_source(bin), tmp.path()).await;
        let cached = started.elapsed();
        eprintln!("cached prepare: {cached:?}");
        assert!(cached < Duration::from_millis(100), "{cached:?}");
    }
}
