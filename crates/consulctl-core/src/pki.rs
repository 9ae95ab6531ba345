//! `tls = "auto"`: consulctl's own certificate authority and per-server certificates, made on
//! the control host with `rcgen` (no `openssl`), kept under `<state dir>/tls/`:
//!
//! | file | what | mode |
//! |---|---|---|
//! | `ca.pem` | CA certificate, ECDSA P-256, valid [`CA_DAYS`] | 0644 |
//! | `ca-key.pem` | CA private key | 0600 |
//! | `<host>.pem` | server certificate, valid [`SERVER_DAYS`], signed by the CA | 0644 |
//! | `<host>-key.pem` | its private key | 0600 |
//!
//! The directory is 0700. Existing files are reused while they are valid: the CA while it
//! parses, matches its key and does not expire within [`RENEW_WITHIN_DAYS`]; a server
//! certificate while it is signed by that CA, matches its key, has exactly the wanted SANs
//! ([`server_sans`]) and does not expire within [`RENEW_WITHIN_DAYS`]. Anything else is
//! reissued (a new CA reissues every server certificate, since they no longer verify).
//!
//! Clients get no certificate of their own: they use `auto_encrypt` (the servers sign one for
//! them), and only the CA certificate is installed on them.
//!
//! Rendering ([`for_host`]) writes nothing until the directory is [`persist`]ed: a command that
//! only reads (plan, status, doctor) generates what is missing in memory, shared by every host
//! of the run, and leaves no file behind. Its diff shows the files a first apply creates (the
//! CA, each server's certificate and key, all new), but not their bytes: apply persists before
//! it renders and generates its own CA, because fresh keys cannot be shown ahead without being
//! stored, and storing them is what a read-only command must not do. Once a command that
//! changes hosts has persisted the directory, files are written as they are made, and every
//! later run (plan included) reuses them, so plan and apply then agree byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::{anyhow, bail, Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::model::{Cluster, Host, Secret};
use crate::secrets::write_file;

/// Validity of a new CA.
pub const CA_DAYS: i64 = 3650;
/// Validity of a new server certificate.
pub const SERVER_DAYS: i64 = 365;
/// A certificate expiring within this many days is reissued.
pub const RENEW_WITHIN_DAYS: i64 = 30;

/// One process makes or checks the files at a time (hosts are rendered concurrently; two
/// CAs made at once would leave certificates signed by a CA that is not on disk). Also what
/// each TLS directory (absolute path) holds in memory: files made and not written yet, and
/// whether the directory was persisted (files are then written as they are made).
static DIRS: Mutex<BTreeMap<PathBuf, DirState>> = Mutex::new(BTreeMap::new());

#[derive(Debug, Default)]
struct DirState {
    persisted: bool,
    /// path -> (content, mode), made while the directory was not persisted.
    unsaved: BTreeMap<PathBuf, (String, u32)>,
}

fn dirs() -> MutexGuard<'static, BTreeMap<PathBuf, DirState>> {
    DIRS.lock().unwrap_or_else(|e| e.into_inner())
}

fn dir_key(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// Where the TLS files are read and written: the directory itself, or (not persisted yet) the
/// files made in memory over what the directory holds.
struct Files<'a> {
    unsaved: Option<&'a mut BTreeMap<PathBuf, (String, u32)>>,
}

impl Files<'_> {
    fn read(&self, path: &Path) -> Option<String> {
        if let Some(made) = self.unsaved.as_ref().and_then(|u| u.get(path)) {
            return Some(made.0.clone());
        }
        std::fs::read_to_string(path).ok()
    }

    fn write(&mut self, path: &Path, data: &str, mode: u32) -> Result<()> {
        match &mut self.unsaved {
            Some(unsaved) => {
                unsaved.insert(path.to_path_buf(), (data.to_string(), mode));
                Ok(())
            }
            None => write_file(path, data.as_bytes(), mode),
        }
    }

    fn on_disk(&self) -> bool {
        self.unsaved.is_none()
    }
}

/// What a host gets: the CA certificate, and for a server its own certificate and key.
#[derive(Debug, Clone)]
pub struct HostTls {
    pub ca_pem: String,
    pub server: Option<ServerCert>,
}

#[derive(Debug, Clone)]
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: Secret,
}

/// Where the cluster's TLS files live on the control host.
pub fn dir(cluster: &Cluster) -> PathBuf {
    cluster.state_dir().join("tls")
}

/// The SANs of a server's certificate: `server.<dc>.<domain>` (what `verify_server_hostname`
/// checks), the host's name, `localhost`; IPs: its bind address and 127.0.0.1.
pub fn server_sans(cluster: &Cluster, host: &Host, bind_addr: IpAddr) -> Sans {
    let mut dns = BTreeSet::new();
    dns.insert(format!(
        "server.{}.{}",
        cluster.datacenter,
        cluster.domain.trim_end_matches('.')
    ));
    dns.insert(host.name.clone());
    dns.insert("localhost".to_string());
    let mut ips = BTreeSet::new();
    ips.insert(bind_addr);
    ips.insert(IpAddr::V4(Ipv4Addr::LOCALHOST));
    Sans { dns, ips }
}

/// Subject alternative names, compared as sets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sans {
    pub dns: BTreeSet<String>,
    pub ips: BTreeSet<IpAddr>,
}

/// The TLS material for one host, made or reused under `dir(cluster)`: written there once the
/// directory is [`persist`]ed, kept in memory before (see the module docs).
pub fn for_host(cluster: &Cluster, host: &Host, bind_addr: IpAddr) -> Result<HostTls> {
    let sans = match host.role {
        crate::model::Role::Server => Some(server_sans(cluster, host, bind_addr)),
        crate::model::Role::Client => None,
    };
    let dir = dir(cluster);
    let mut dirs = dirs();
    let state = dirs.entry(dir_key(&dir)).or_default();
    if state.persisted {
        create_private_dir(&dir)?;
        make(
            &mut Files { unsaved: None },
            &dir,
            &cluster.name,
            &host.name,
            sans.as_ref(),
        )
    } else {
        let mut files = Files {
            unsaved: Some(&mut state.unsaved),
        };
        make(&mut files, &dir, &cluster.name, &host.name, sans.as_ref())
    }
}

/// Make or reuse the CA in `dir`, and (`sans` given) the server certificate of `host`, writing
/// what it makes there.
pub fn ensure(dir: &Path, cluster_name: &str, host: &str, sans: Option<&Sans>) -> Result<HostTls> {
    let _guard = dirs();
    create_private_dir(dir)?;
    make(&mut Files { unsaved: None }, dir, cluster_name, host, sans)
}

/// From now on in this process, write the TLS files of `dir` as they are made, and write those
/// made in memory so far (keys first). For the commands that change hosts, before they render.
pub fn persist(dir: &Path) -> Result<()> {
    let mut dirs = dirs();
    let state = dirs.entry(dir_key(dir)).or_default();
    state.persisted = true;
    if state.unsaved.is_empty() {
        return Ok(());
    }
    create_private_dir(dir)?;
    let unsaved = std::mem::take(&mut state.unsaved);
    let is_key = |p: &Path| p.to_string_lossy().ends_with("-key.pem");
    let keys_first = unsaved
        .iter()
        .filter(|(p, _)| is_key(p))
        .chain(unsaved.iter().filter(|(p, _)| !is_key(p)));
    for (path, (data, mode)) in keys_first {
        write_file(path, data.as_bytes(), *mode)?;
    }
    if unsaved.contains_key(&dir.join("ca-key.pem")) {
        eprintln!(
            "created a TLS CA in {} (keep ca-key.pem private, never commit it)",
            dir.display()
        );
    }
    Ok(())
}

/// TLS files of `dir` made in memory and not written yet (see [`persist`]), sorted.
pub fn unsaved(dir: &Path) -> Vec<PathBuf> {
    dirs()
        .get(&dir_key(dir))
        .map(|s| s.unsaved.keys().cloned().collect())
        .unwrap_or_default()
}

fn make(
    files: &mut Files,
    dir: &Path,
    cluster_name: &str,
    host: &str,
    sans: Option<&Sans>,
) -> Result<HostTls> {
    let (ca_pem, ca_key, ca_new) = ensure_ca(files, dir, cluster_name)?;
    let server = match sans {
        None => None,
        Some(sans) => Some(ensure_server(
            files, dir, host, sans, &ca_pem, &ca_key, ca_new,
        )?),
    };
    Ok(HostTls { ca_pem, server })
}

fn create_private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod 700 {}", dir.display()))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// The CA: reused when `ca.pem` and `ca-key.pem` are there, match and are not about to expire.
fn ensure_ca(files: &mut Files, dir: &Path, cluster_name: &str) -> Result<(String, KeyPair, bool)> {
    let cert_path = dir.join("ca.pem");
    let key_path = dir.join("ca-key.pem");
    if let (Some(cert), Some(key)) = (files.read(&cert_path), files.read(&key_path)) {
        match check_ca(&cert, &key) {
            Ok(kp) => return Ok((cert, kp, false)),
            Err(e) => eprintln!(
                "the TLS CA in {} is not usable ({e:#}); making a new one (every server \
                 certificate is reissued)",
                dir.display()
            ),
        }
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("consulctl CA {cluster_name}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "consulctl");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    params.not_before = now() - Duration::hours(1);
    params.not_after = now() + Duration::days(CA_DAYS);
    let cert = params.self_signed(&key)?;
    // The key first: a CA certificate without its key on disk would be useless.
    files.write(&key_path, &key.serialize_pem(), 0o600)?;
    files.write(&cert_path, &cert.pem(), 0o644)?;
    if files.on_disk() {
        eprintln!(
            "created a TLS CA in {} (keep ca-key.pem private, never commit it)",
            dir.display()
        );
    }
    Ok((cert.pem(), key, true))
}

fn check_ca(cert_pem: &str, key_pem: &str) -> Result<KeyPair> {
    let key = KeyPair::from_pem(key_pem).context("ca-key.pem")?;
    let info = parse(cert_pem).context("ca.pem")?;
    if !info.is_ca {
        bail!("ca.pem is not a CA certificate");
    }
    if info.public_key != key.public_key_raw() {
        bail!("ca-key.pem does not belong to ca.pem");
    }
    if expiring(info.not_after) {
        bail!("it expires within {RENEW_WITHIN_DAYS} days");
    }
    Ok(key)
}

fn expiring(not_after: i64) -> bool {
    not_after < (now() + Duration::days(RENEW_WITHIN_DAYS)).unix_timestamp()
}

fn ensure_server(
    files: &mut Files,
    dir: &Path,
    host: &str,
    sans: &Sans,
    ca_pem: &str,
    ca_key: &KeyPair,
    ca_new: bool,
) -> Result<ServerCert> {
    if host.is_empty() || host.contains('/') || host.starts_with('.') {
        bail!("host name {host:?} cannot name a certificate file");
    }
    let cert_path = dir.join(format!("{host}.pem"));
    let key_path = dir.join(format!("{host}-key.pem"));
    if !ca_new {
        if let (Some(cert), Some(key)) = (files.read(&cert_path), files.read(&key_path)) {
            match check_server(&cert, &key, sans, ca_pem) {
                Ok(()) => {
                    return Ok(ServerCert {
                        cert_pem: cert,
                        key_pem: Secret::new(key),
                    })
                }
                Err(e) => eprintln!("reissuing the TLS certificate of {host}: {e:#}"),
            }
        }
    }
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    let cn = sans
        .dns
        .iter()
        .find(|d| d.starts_with("server."))
        .cloned()
        .unwrap_or_else(|| host.to_string());
    params.distinguished_name.push(DnType::CommonName, cn);
    params.subject_alt_names = sans
        .dns
        .iter()
        .map(|d| {
            Ok(SanType::DnsName(d.as_str().try_into().map_err(|e| {
                anyhow!("{d:?} cannot be a certificate name: {e}")
            })?))
        })
        .chain(sans.ips.iter().map(|ip| Ok(SanType::IpAddress(*ip))))
        .collect::<Result<Vec<_>>>()?;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    // Servers dial each other on 8300 and must present a client certificate there.
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now() - Duration::hours(1);
    params.not_after = now() + Duration::days(SERVER_DAYS);
    let issuer = Issuer::from_ca_cert_pem(ca_pem, ca_key).context("reading ca.pem")?;
    let cert = params.signed_by(&key, &issuer)?;
    let key_pem = key.serialize_pem();
    files.write(&key_path, &key_pem, 0o600)?;
    files.write(&cert_path, &cert.pem(), 0o644)?;
    Ok(ServerCert {
        cert_pem: cert.pem(),
        key_pem: Secret::new(key_pem),
    })
}

fn check_server(cert_pem: &str, key_pem: &str, sans: &Sans, ca_pem: &str) -> Result<()> {
    let key = KeyPair::from_pem(key_pem).context("the key file")?;
    let info = parse(cert_pem)?;
    if info.public_key != key.public_key_raw() {
        bail!("the key file does not belong to the certificate");
    }
    if !verifies(cert_pem, ca_pem)? {
        bail!("it is not signed by the current CA");
    }
    if &info.sans != sans {
        bail!(
            "its names changed (has {:?} {:?}, wanted {:?} {:?})",
            info.sans.dns,
            info.sans.ips,
            sans.dns,
            sans.ips
        );
    }
    if expiring(info.not_after) {
        bail!("it expires within {RENEW_WITHIN_DAYS} days");
    }
    Ok(())
}

/// What consulctl reads back from a certificate.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    pub is_ca: bool,
    pub sans: Sans,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Raw public key bits (as `KeyPair::public_key_raw`).
    pub public_key: Vec<u8>,
}

/// Parse a PEM certificate.
pub fn parse(pem: &str) -> Result<CertInfo> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| anyhow!("not a PEM certificate: {e}"))?;
    let cert = p
        .parse_x509()
        .map_err(|e| anyhow!("not an X.509 certificate: {e}"))?;
    let mut sans = Sans::default();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => {
                    sans.dns.insert(d.to_string());
                }
                x509_parser::extensions::GeneralName::IPAddress(b) => {
                    let ip = match b.len() {
                        4 => IpAddr::from(<[u8; 4]>::try_from(*b).expect("4 bytes")),
                        16 => IpAddr::from(<[u8; 16]>::try_from(*b).expect("16 bytes")),
                        _ => continue,
                    };
                    sans.ips.insert(ip);
                }
                _ => {}
            }
        }
    }
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        is_ca: cert.is_ca(),
        sans,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        public_key: cert.public_key().subject_public_key.data.to_vec(),
    })
}

/// Is `cert_pem` signed by the CA in `ca_pem`?
pub fn verifies(cert_pem: &str, ca_pem: &str) -> Result<bool> {
    let (_, cp) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
        .map_err(|e| anyhow!("not a PEM certificate: {e}"))?;
    let (_, ap) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .map_err(|e| anyhow!("ca: not a PEM certificate: {e}"))?;
    let cert = cp.parse_x509().map_err(|e| anyhow!("{e}"))?;
    let ca = ap.parse_x509().map_err(|e| anyhow!("ca: {e}"))?;
    Ok(cert.issuer() == ca.subject() && cert.verify_signature(Some(ca.public_key())).is_ok())
}

/// Move the certificate and key of every named server whose certificate expires within
/// `within_days` (or is missing or unreadable) into `dir/retired/<stamp>/`, so that the next
/// render issues new ones. Returns (host, expiry as a Unix time, None when unreadable).
pub fn retire_expiring(
    dir: &Path,
    hosts: &[String],
    within_days: i64,
    stamp: &str,
) -> Result<Vec<(String, Option<i64>)>> {
    let _guard = dirs();
    let limit = (now() + Duration::days(within_days)).unix_timestamp();
    let mut retired = Vec::new();
    for host in hosts {
        let cert_path = dir.join(format!("{host}.pem"));
        let key_path = dir.join(format!("{host}-key.pem"));
        let Ok(pem) = std::fs::read_to_string(&cert_path) else {
            continue; // never issued: apply issues it
        };
        let expiry = parse(&pem).ok().map(|i| i.not_after);
        if expiry.is_some_and(|t| t >= limit) {
            continue;
        }
        let to = dir.join("retired").join(stamp);
        create_private_dir(&dir.join("retired"))?;
        create_private_dir(&to)?;
        for p in [&cert_path, &key_path] {
            if p.exists() {
                let dest = to.join(p.file_name().expect("file name"));
                std::fs::rename(p, &dest)
                    .with_context(|| format!("moving {} to {}", p.display(), dest.display()))?;
            }
        }
        retired.push((host.clone(), expiry));
    }
    Ok(retired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renew_retires_only_certificates_inside_the_window() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("tls");
        ensure(&d, "c", "s1", Some(&sans("s1", [10, 0, 0, 1]))).unwrap();
        ensure(&d, "c", "s2", Some(&sans("s2", [10, 0, 0, 2]))).unwrap();
        // Fresh certificates (365 days): a 30-day window retires nothing.
        let r = retire_expiring(&d, &["s1".into(), "s2".into()], 30, "T1").unwrap();
        assert!(r.is_empty(), "{r:?}");
        // A window longer than their validity retires both, keeping the files.
        let r = retire_expiring(&d, &["s1".into(), "s3".into()], 400, "T2").unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].0, "s1");
        assert!(!d.join("s1.pem").exists() && !d.join("s1-key.pem").exists());
        assert!(d.join("retired/T2/s1.pem").exists());
        assert!(d.join("retired/T2/s1-key.pem").exists());
        assert_eq!(mode(&d.join("retired/T2")), 0o700);
        assert!(d.join("s2.pem").exists(), "s2 was not named");
        // The next render issues a new one under the same CA.
        let again = ensure(&d, "c", "s1", Some(&sans("s1", [10, 0, 0, 1]))).unwrap();
        let old = std::fs::read_to_string(d.join("retired/T2/s1.pem")).unwrap();
        let new = again.server.unwrap().cert_pem;
        assert_ne!(old, new);
        assert!(verifies(&new, &again.ca_pem).unwrap());
    }

    fn sans(name: &str, ip: [u8; 4]) -> Sans {
        let mut s = Sans::default();
        s.dns.insert("server.dc1.consul".into());
        s.dns.insert(name.into());
        s.dns.insert("localhost".into());
        s.ips.insert(IpAddr::from(ip));
        s.ips.insert(IpAddr::V4(Ipv4Addr::LOCALHOST));
        s
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn generates_a_ca_and_a_server_certificate_that_verifies() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let want = sans("s1", [10, 0, 0, 1]);
        let t = ensure(&dir, "dc1", "s1", Some(&want)).unwrap();
        let ca = parse(&t.ca_pem).unwrap();
        assert!(ca.is_ca);
        assert!(ca.subject.contains("consulctl CA dc1"), "{}", ca.subject);
        let years = (ca.not_after - ca.not_before) as f64 / (365.25 * 86400.0);
        assert!((5.0..=10.1).contains(&years), "{years}");

        let s = t.server.expect("server cert");
        let info = parse(&s.cert_pem).unwrap();
        assert!(!info.is_ca);
        assert_eq!(info.sans, want);
        assert_eq!(info.issuer, ca.subject);
        assert!(info.subject.contains("server.dc1.consul"));
        let days = (info.not_after - info.not_before) / 86400;
        assert!((365..=366).contains(&days), "{days}");
        assert!(verifies(&s.cert_pem, &t.ca_pem).unwrap());
        // ECDSA P-256 keys.
        let key = KeyPair::from_pem(s.key_pem.expose()).unwrap();
        assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
        assert_eq!(info.public_key, key.public_key_raw());

        // A certificate from another CA does not verify.
        let other = tmp.path().join("other");
        let o = ensure(&other, "dc1", "s1", Some(&want)).unwrap();
        assert!(!verifies(&s.cert_pem, &o.ca_pem).unwrap());
    }

    #[test]
    fn rendering_writes_nothing_until_persisted_then_keeps_the_same_files() {
        let tmp = tempfile::tempdir().unwrap();
        let inv = tmp.path().join("inv.toml");
        let text = "[cluster]\ndatacenter = \"dc1\"\ntls = \"auto\"\n\n[consul]\n\
                    version = \"1.21.0\"\nsource = { package = \"auto\" }\n\n\
                    [[hosts]]\nname = \"s1\"\naddress = \"10.0.0.1\"\nrole = \"server\"\n\n\
                    [[hosts]]\nname = \"c1\"\naddress = \"10.0.0.2\"\nrole = \"client\"\n";
        let cluster = crate::inventory::parse(&inv, text).expect("inventory");
        let (s1, c1) = (&cluster.hosts[0], &cluster.hosts[1]);
        let ip = IpAddr::from([10, 0, 0, 1]);
        let d = dir(&cluster);

        // Not persisted: made in memory, the same CA for every host and every call.
        let a = for_host(&cluster, s1, ip).unwrap();
        let c = for_host(&cluster, c1, ip).unwrap();
        assert_eq!(a.ca_pem, c.ca_pem);
        let again = for_host(&cluster, s1, ip).unwrap();
        assert_eq!(
            again.server.unwrap().cert_pem,
            a.clone().server.unwrap().cert_pem
        );
        assert!(!tmp.path().join(".consulctl").exists(), "nothing written");
        assert_eq!(
            unsaved(&d),
            ["ca-key.pem", "ca.pem", "s1-key.pem", "s1.pem"].map(|f| d.join(f))
        );

        // Persisted: what was made is written, and reused from then on.
        persist(&d).unwrap();
        assert!(unsaved(&d).is_empty());
        assert_eq!(mode(&d), 0o700);
        assert_eq!(mode(&d.join("ca-key.pem")), 0o600);
        assert_eq!(mode(&d.join("s1-key.pem")), 0o600);
        assert_eq!(std::fs::read_to_string(d.join("ca.pem")).unwrap(), a.ca_pem);
        let b = for_host(&cluster, s1, ip).unwrap();
        assert_eq!(b.ca_pem, a.ca_pem);
        assert_eq!(b.server.unwrap().cert_pem, a.server.unwrap().cert_pem);
        // A server rendered after persisting is written at once, under the same CA.
        let mut s2 = s1.clone();
        s2.name = "s2".into();
        let n = for_host(&cluster, &s2, IpAddr::from([10, 0, 0, 3])).unwrap();
        assert_eq!(n.ca_pem, a.ca_pem);
        assert!(d.join("s2.pem").exists() && d.join("s2-key.pem").exists());
    }

    #[test]
    fn files_are_private_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let want = sans("s1", [10, 0, 0, 1]);
        let a = ensure(&dir, "dc1", "s1", Some(&want)).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
        assert_eq!(mode(&dir.join("s1-key.pem")), 0o600);
        assert_eq!(mode(&dir.join("ca.pem")), 0o644);
        assert_eq!(mode(&dir.join("s1.pem")), 0o644);
        let b = ensure(&dir, "dc1", "s1", Some(&want)).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem);
        let (a, b) = (a.server.unwrap(), b.server.unwrap());
        assert_eq!(a.cert_pem, b.cert_pem);
        assert_eq!(a.key_pem, b.key_pem);
        // A client gets only the CA, and no file of its own.
        let c = ensure(&dir, "dc1", "c1", None).unwrap();
        assert!(c.server.is_none());
        assert!(!dir.join("c1.pem").exists());
        assert_eq!(
            c.ca_pem,
            std::fs::read_to_string(dir.join("ca.pem")).unwrap()
        );
    }

    #[test]
    fn a_san_change_reissues_the_server_certificate_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let a = ensure(&dir, "dc1", "s1", Some(&sans("s1", [10, 0, 0, 1]))).unwrap();
        let moved = sans("s1", [10, 0, 0, 9]);
        let b = ensure(&dir, "dc1", "s1", Some(&moved)).unwrap();
        assert_eq!(a.ca_pem, b.ca_pem, "the CA is kept");
        let b = b.server.unwrap();
        assert_ne!(a.server.unwrap().cert_pem, b.cert_pem);
        assert_eq!(parse(&b.cert_pem).unwrap().sans, moved);
        assert!(verifies(&b.cert_pem, &a.ca_pem).unwrap());
    }

    #[test]
    fn a_new_ca_reissues_server_certificates_and_garbage_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let want = sans("s1", [10, 0, 0, 1]);
        let a = ensure(&dir, "dc1", "s1", Some(&want)).unwrap();
        std::fs::remove_file(dir.join("ca-key.pem")).unwrap();
        let b = ensure(&dir, "dc1", "s1", Some(&want)).unwrap();
        assert_ne!(a.ca_pem, b.ca_pem);
        let s = b.server.unwrap();
        assert!(verifies(&s.cert_pem, &b.ca_pem).unwrap());
        std::fs::write(dir.join("s1.pem"), "garbage").unwrap();
        let c = ensure(&dir, "dc1", "s1", Some(&want)).unwrap();
        assert_eq!(c.ca_pem, b.ca_pem);
        assert!(verifies(&c.server.unwrap().cert_pem, &b.ca_pem).unwrap());
    }

    #[test]
    fn an_expiring_certificate_is_reissued() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tls");
        let want = sans("s1", [10, 0, 0, 1]);
        let a = ensure(&dir, "dc1", "s1", Some(&want)).unwrap();
        // Sign a certificate for s1 that expires in 10 days with the same CA and key.
        let ca_key =
            KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca-key.pem")).unwrap()).unwrap();
        let issuer = Issuer::from_ca_cert_pem(&a.ca_pem, &ca_key).unwrap();
        let key_pem = a.server.as_ref().unwrap().key_pem.expose().to_string();
        let key = KeyPair::from_pem(&key_pem).unwrap();
        let mut params = CertificateParams::new(vec![
            "server.dc1.consul".into(),
            "s1".into(),
            "localhost".into(),
            "10.0.0.1".into(),
            "127.0.0.1".into(),
        ])
        .unwrap();
        params.not_before = now() - Duration::days(1);
        params.not_after = now() + Duration::days(10);
        let short = params.signed_by(&key, &issuer).unwrap().pem();
        assert!(check_server(&short, &key_pem, &want, &a.ca_pem)
            .unwrap_err()
            .to_string()
            .contains("expires within"));
        std::fs::write(dir.join("s1.pem"), &short).unwrap();
        let b = ensure(&dir, "dc1", "s1", Some(&want)).unwrap();
        let info = parse(&b.server.unwrap().cert_pem).unwrap();
        assert!(info.not_after > (now() + Duration::days(300)).unix_timestamp());
    }
}
