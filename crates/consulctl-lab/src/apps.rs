//! App containers: test applications on a lab's network, next to its hosts (for the registrar
//! on lab Docker hosts: `SERVICE_*` env and labels, health checks, stop/pause/kill).
//!
//! - The app image (`consulctl-lab-app:<hash>`) is built locally, once, from a static busybox
//!   (the machine's Debian `busybox-static` binary, else that package downloaded with apt-get)
//!   and `files/app.*`: `FROM scratch`, no package mirror needed (`docker build` steps here cannot
//!   reach one). Its default command serves HTTP on port 8080 from `/srv`: `/` (index.html),
//!   `/health` (`ok`), `/hostname` (the container's hostname). No HEALTHCHECK; no UDP server
//!   (Debian's busybox `nc` has no `-u`; `AppSpec::expose` can still declare a UDP port).
//! - Every app container carries the lab's label (`consulctl.lab=<lab>`, so `lab down` removes
//!   it) and `consulctl.lab.app=<app name>`, and is named `consulctl-<lab>-app-<name>`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context as _};

use crate::{
    apt_download, cache_dir, docker, elapsed, find_deb, image_exists, lab_networks, lock_file,
    network_name, short_hash, validate_lab_name, LAB_LABEL,
};

/// The Docker label of every app container: `consulctl.lab.app=<app name>`.
pub const APP_LABEL: &str = "consulctl.lab.app";
/// The port the app image serves HTTP on.
pub const APP_HTTP_PORT: u16 = 8080;

const APP_DOCKERFILE: &str = include_str!("../files/app.Dockerfile");
const APP_SCRIPT: &str = include_str!("../files/app.sh");
const APP_INDEX: &str = include_str!("../files/app-index.html");
/// Static glibc resolves `localhost` from /etc/hosts only with this file (without it busybox
/// `wget http://localhost:...` crashes).
const APP_NSSWITCH: &str = "hosts: files dns\n";
const APP_HEALTH: &str = "ok\n";
/// Where a static busybox comes from when the machine has none.
const BUSYBOX_SUITE_LINE: &str = "deb http://deb.debian.org/debian bookworm main";

/// The app container name: `consulctl-<lab>-app-<app>`.
pub fn app_container_name(lab: &str, app: &str) -> String {
    format!("{}-app-{app}", crate::network_name(lab))
}

/// App names go into container names: the rules of lab names.
pub fn validate_app_name(name: &str) -> anyhow::Result<()> {
    validate_lab_name(name).map_err(|_| {
        anyhow!(
            "invalid app name {name:?}: use 1-32 lowercase letters, digits and '-' \
             (starting with a letter or digit, not ending with '-')"
        )
    })
}

/// The image tag for the app image's inputs (the build files and the busybox binary). Pure.
pub fn app_image_tag(busybox_sha256: &str) -> String {
    format!(
        "consulctl-lab-app:{}",
        short_hash(&[
            "app",
            APP_DOCKERFILE,
            APP_SCRIPT,
            APP_INDEX,
            APP_NSSWITCH,
            APP_HEALTH,
            busybox_sha256
        ])
    )
}

/// True when `bytes` are an ELF executable without a program interpreter (statically linked).
fn is_static_elf(bytes: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[5] != 1 {
        return false; // not ELF, or not little-endian
    }
    let u16_at = |o: usize| {
        bytes
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |o: usize| {
        bytes
            .get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        bytes
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let (phoff, phentsize, phnum) = match bytes[4] {
        2 => (u64_at(0x20), u16_at(0x36), u16_at(0x38)), // ELF64
        1 => (u32_at(0x1c).map(u64::from), u16_at(0x2a), u16_at(0x2c)), // ELF32
        _ => return false,
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        return false;
    };
    let Ok(phoff) = usize::try_from(phoff) else {
        return false;
    };
    (0..usize::from(phnum))
        .all(|i| u32_at(phoff + i * usize::from(phentsize)).is_some_and(|t| t != PT_INTERP))
        && phnum > 0
}

fn read_static_busybox(path: &Path) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    is_static_elf(&bytes).then_some(bytes)
}

/// A statically linked busybox: `<cache>/downloads/busybox`, else the machine's `/bin/busybox`
/// or `/usr/bin/busybox` (Debian's `busybox-static`), else Debian bookworm's `busybox-static`
/// downloaded with apt-get (temporary lists) and unpacked with `dpkg-deb` into the cache.
async fn ensure_static_busybox(cache: &Path) -> anyhow::Result<(PathBuf, Vec<u8>)> {
    let downloads = cache.join("downloads");
    let cached = downloads.join("busybox");
    for p in [
        cached.clone(),
        "/bin/busybox".into(),
        "/usr/bin/busybox".into(),
    ] {
        if let Some(bytes) = read_static_busybox(&p) {
            return Ok((p, bytes));
        }
    }
    let _lock = lock_file(
        &cache.join("locks").join("downloads.lock"),
        "downloading busybox-static",
    )
    .await?;
    if let Some(bytes) = read_static_busybox(&cached) {
        return Ok((cached, bytes));
    }
    if crate::find_program("apt-get").is_none() || crate::find_program("dpkg-deb").is_none() {
        bail!(
            "the lab app image needs a statically linked busybox: install Debian's \
             busybox-static, or put such a binary at {}",
            cached.display()
        );
    }
    let t = Instant::now();
    println!("lab: downloading busybox-static (Debian bookworm's package) with apt-get");
    let deb = match find_deb(&downloads, "busybox-static_") {
        Some(deb) => deb,
        None => {
            apt_download(
                &downloads,
                BUSYBOX_SUITE_LINE,
                "busybox-static",
                "busybox-static_",
            )
            .await?
        }
    };
    let unpack = downloads.join(format!(".busybox-{}", std::process::id()));
    let result = async {
        crate::run_capture(
            "dpkg-deb",
            &[
                std::ffi::OsStr::new("-x"),
                deb.as_os_str(),
                unpack.as_os_str(),
            ],
            None,
            &[],
        )
        .await?;
        let bytes = read_static_busybox(&unpack.join("bin/busybox"))
            .ok_or_else(|| anyhow!("{} holds no static bin/busybox", deb.display()))?;
        let tmp = downloads.join(format!(".busybox.tmp-{}", std::process::id()));
        std::fs::write(&tmp, &bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &cached)
            .with_context(|| format!("moving to {}", cached.display()))?;
        anyhow::Ok(bytes)
    }
    .await;
    let _ = std::fs::remove_dir_all(&unpack);
    let bytes = result?;
    println!("lab: {} ready in {}", cached.display(), elapsed(t));
    Ok((cached, bytes))
}

/// Builds the app image if missing (under its own lock) and returns its tag.
pub async fn ensure_app_image(cache: &Path) -> anyhow::Result<String> {
    let (busybox, bytes) = ensure_static_busybox(cache).await?;
    let tag = app_image_tag(&consulctl_core::hash::sha256_hex(&bytes));
    if image_exists(&tag).await? {
        return Ok(tag);
    }
    let _lock = lock_file(
        &cache.join("locks").join("app-image.lock"),
        "building the lab app image",
    )
    .await?;
    if image_exists(&tag).await? {
        return Ok(tag);
    }
    let t = Instant::now();
    println!("lab: building {tag} (busybox from {})", busybox.display());
    let ctx = cache.join("build-app");
    if ctx.exists() {
        // Left from a crashed build: we hold the lock.
        std::fs::remove_dir_all(&ctx).with_context(|| format!("removing {}", ctx.display()))?;
    }
    let result = async {
        let write = |rel: &str, content: &[u8]| {
            let p = ctx.join(rel);
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            std::fs::write(&p, content).with_context(|| format!("writing {}", p.display()))
        };
        write("Dockerfile", APP_DOCKERFILE.as_bytes())?;
        write("rootfs/bin/busybox", &bytes)?;
        write("rootfs/app.sh", APP_SCRIPT.as_bytes())?;
        write("rootfs/srv/index.html", APP_INDEX.as_bytes())?;
        write("rootfs/srv/health", APP_HEALTH.as_bytes())?;
        write("rootfs/etc/nsswitch.conf", APP_NSSWITCH.as_bytes())?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            let set = |rel: &str, mode: u32| {
                std::fs::set_permissions(ctx.join(rel), std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("chmod {rel}"))
            };
            set("rootfs/bin/busybox", 0o755)?;
            set("rootfs/app.sh", 0o755)?;
            std::fs::create_dir_all(ctx.join("rootfs/tmp"))?;
            set("rootfs/tmp", 0o1777)?;
        }
        crate::docker_build(&ctx, &tag, &[]).await
    }
    .await;
    let _ = std::fs::remove_dir_all(&ctx);
    result?;
    println!("lab: built {tag} in {}", elapsed(t));
    Ok(tag)
}

/// One app container to start on a lab's network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSpec {
    /// App name (container `consulctl-<lab>-app-<name>`, label `consulctl.lab.app=<name>`).
    pub name: String,
    /// Image to run (default: the app image, [`ensure_app_image`]).
    pub image: Option<String>,
    /// `--env K=V` (registrator conventions: `SERVICE_NAME`, `SERVICE_8080_CHECK_HTTP`, ...).
    pub env: Vec<(String, String)>,
    /// `--label K=V` (besides the lab's own labels).
    pub labels: Vec<(String, String)>,
    /// `--publish-all` (`-P`): every exposed port on a random port of the machine.
    pub publish_all: bool,
    /// `--publish` values: `8080`, `18080:8080`, `5353/udp`, ...
    pub publish: Vec<String>,
    /// `--expose` values: `9090`, `5353/udp`, ...
    pub expose: Vec<String>,
    /// A fixed address on the lab network (default: Docker picks one).
    pub ip: Option<Ipv4Addr>,
    /// More `docker run` flags, before the image (`--health-cmd ...`, `--health-interval 1s`).
    pub docker_args: Vec<String>,
    /// Command and arguments after the image (default: the image's, HTTP on 8080).
    pub command: Vec<String>,
}

/// A started app container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppContainer {
    /// The app name of its [`AppSpec`].
    pub app: String,
    /// Container name: `consulctl-<lab>-app-<app>`.
    pub name: String,
    /// Full container ID.
    pub id: String,
    /// The lab's network (`consulctl-<lab>`).
    pub network: String,
    /// Its address on the lab network.
    pub ip: Ipv4Addr,
}

fn check_kv(what: &str, k: &str) -> anyhow::Result<()> {
    if k.is_empty() || k.contains('=') || k.contains('\0') {
        bail!("{what} name {k:?}: must be non-empty without '='");
    }
    Ok(())
}

/// The `docker run` arguments for an app container. Pure.
pub fn app_run_args(lab: &str, spec: &AppSpec, image: &str) -> anyhow::Result<Vec<String>> {
    validate_lab_name(lab)?;
    validate_app_name(&spec.name)?;
    let mut args: Vec<String> = [
        "run",
        "--detach",
        "--name",
        &app_container_name(lab, &spec.name),
        "--network",
        &network_name(lab),
        "--network-alias",
        &spec.name,
        "--label",
        &format!("{LAB_LABEL}={lab}"),
        "--label",
        &format!("{APP_LABEL}={}", spec.name),
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(ip) = spec.ip {
        args.extend(["--ip".to_owned(), ip.to_string()]);
    }
    for (k, v) in &spec.env {
        check_kv("env", k)?;
        args.extend(["--env".to_owned(), format!("{k}={v}")]);
    }
    for (k, v) in &spec.labels {
        check_kv("label", k)?;
        if k == LAB_LABEL || k == APP_LABEL {
            bail!("label {k} is set by the lab");
        }
        args.extend(["--label".to_owned(), format!("{k}={v}")]);
    }
    if spec.publish_all {
        args.push("--publish-all".to_owned());
    }
    for p in &spec.publish {
        args.extend(["--publish".to_owned(), p.clone()]);
    }
    for p in &spec.expose {
        args.extend(["--expose".to_owned(), p.clone()]);
    }
    args.extend(spec.docker_args.iter().cloned());
    args.push(image.to_owned());
    args.extend(spec.command.iter().cloned());
    Ok(args)
}

/// Starts an app container on the lab's network (building the app image first if needed).
pub async fn run_app(lab: &str, spec: &AppSpec) -> anyhow::Result<AppContainer> {
    validate_lab_name(lab)?;
    validate_app_name(&spec.name)?;
    if lab_networks(lab).await?.is_empty() {
        bail!("no lab named {lab:?} (no network labelled {LAB_LABEL}={lab}): start it with `consulctl lab up --name {lab}`");
    }
    let image = match &spec.image {
        Some(image) => image.clone(),
        None => ensure_app_image(&cache_dir()?).await?,
    };
    let args = app_run_args(lab, spec, &image)?;
    let name = app_container_name(lab, &spec.name);
    docker(&args)
        .await
        .with_context(|| format!("starting the app container {name}"))?;
    let network = network_name(lab);
    let (id, ip) = app_id_and_ip(&name, &network).await?;
    Ok(AppContainer {
        app: spec.name.clone(),
        name,
        id,
        network,
        ip: ip
            .ok_or_else(|| anyhow!("the app container has no address on {}", network_name(lab)))?,
    })
}

/// A container's full ID and its address on `network` (none while stopped).
async fn app_id_and_ip(
    container: &str,
    network: &str,
) -> anyhow::Result<(String, Option<Ipv4Addr>)> {
    let format = format!(
        "{{{{.Id}}}} {{{{with index .NetworkSettings.Networks {}}}}}{{{{.IPAddress}}}}{{{{end}}}}",
        go_quote(network)
    );
    let out = docker(&[
        "inspect",
        "--type",
        "container",
        "--format",
        &format,
        container,
    ])
    .await
    .with_context(|| format!("inspecting {container}"))?;
    let mut parts = out.split_whitespace();
    let id = parts
        .next()
        .ok_or_else(|| anyhow!("docker inspect {container}: no ID"))?
        .to_owned();
    Ok((id, parts.next().and_then(|s| s.parse().ok())))
}

/// A Go template string literal.
fn go_quote(s: &str) -> String {
    format!("{s:?}")
}

/// What [`app_action`] does to an app container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppAction {
    /// `docker start`
    Start,
    /// `docker stop` (SIGTERM; the app image's command exits at once)
    Stop,
    /// `docker kill` (SIGKILL)
    Kill,
    /// `docker pause`
    Pause,
    /// `docker unpause`
    Unpause,
    /// `docker rm --force --volumes`
    Remove,
}

impl AppAction {
    fn argv(self) -> &'static [&'static str] {
        match self {
            AppAction::Start => &["start"],
            AppAction::Stop => &["stop"],
            AppAction::Kill => &["kill"],
            AppAction::Pause => &["pause"],
            AppAction::Unpause => &["unpause"],
            AppAction::Remove => &["rm", "--force", "--volumes"],
        }
    }
}

/// Starts, stops, kills, pauses, unpauses or removes the app container `app` of `lab`.
pub async fn app_action(lab: &str, app: &str, action: AppAction) -> anyhow::Result<()> {
    validate_lab_name(lab)?;
    validate_app_name(app)?;
    let name = app_container_name(lab, app);
    let mut args: Vec<&str> = action.argv().to_vec();
    args.push(&name);
    docker(&args)
        .await
        .with_context(|| format!("{action:?} app container {name}"))?;
    Ok(())
}

/// The names of the lab's app containers (running or not), sorted.
pub async fn lab_apps(lab: &str) -> anyhow::Result<Vec<String>> {
    let out = docker(&[
        "ps",
        "-a",
        "--format",
        "{{.Names}}",
        "--filter",
        &crate::label_filter(lab),
        "--filter",
        &format!("label={APP_LABEL}"),
    ])
    .await?;
    let mut names: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_args_label_name_and_place_the_container() {
        let spec = AppSpec {
            name: "web1".into(),
            env: vec![("SERVICE_NAME".into(), "simple".into())],
            labels: vec![("SERVICE_TAGS".into(), "a,b".into())],
            publish_all: true,
            publish: vec!["18080:8080".into()],
            expose: vec!["5353/udp".into()],
            ip: Some(Ipv4Addr::new(10, 213, 5, 100)),
            docker_args: vec!["--health-cmd".into(), "true".into()],
            command: vec!["sleep".into(), "60".into()],
            ..AppSpec::default()
        };
        let args = app_run_args("regx", &spec, "img:1").unwrap();
        let joined = args.join(" ");
        assert_eq!(
            joined,
            "run --detach --name consulctl-regx-app-web1 --network consulctl-regx \
             --network-alias web1 --label consulctl.lab=regx --label consulctl.lab.app=web1 \
             --ip 10.213.5.100 --env SERVICE_NAME=simple --label SERVICE_TAGS=a,b \
             --publish-all --publish 18080:8080 --expose 5353/udp --health-cmd true img:1 \
             sleep 60"
        );
        let minimal = app_run_args(
            "regx",
            &AppSpec {
                name: "a".into(),
                ..AppSpec::default()
            },
            "i",
        )
        .unwrap();
        assert_eq!(minimal.last().map(String::as_str), Some("i"));
        assert!(!minimal.iter().any(|a| a == "--publish-all" || a == "--ip"));
    }

    #[test]
    fn run_args_refuse_bad_names_and_lab_labels() {
        let spec = |name: &str| AppSpec {
            name: name.into(),
            ..AppSpec::default()
        };
        assert!(app_run_args("regx", &spec("Web"), "i").is_err());
        assert!(app_run_args("regx", &spec(""), "i").is_err());
        assert!(app_run_args("Bad", &spec("web"), "i").is_err());
        let mut s = spec("web");
        s.labels = vec![(LAB_LABEL.into(), "other".into())];
        assert!(app_run_args("regx", &s, "i").is_err());
        let mut s = spec("web");
        s.env = vec![("A=B".into(), "c".into())];
        assert!(app_run_args("regx", &s, "i").is_err());
    }

    #[test]
    fn app_names_and_tags() {
        assert_eq!(
            app_container_name("regx", "web1"),
            "consulctl-regx-app-web1"
        );
        let t = app_image_tag("abc");
        assert!(t.starts_with("consulctl-lab-app:"), "{t}");
        assert_eq!(t, app_image_tag("abc"));
        assert_ne!(t, app_image_tag("abd"));
    }

    #[test]
    fn static_elf_detection() {
        // A minimal ELF64 header with one PT_LOAD (static) or PT_INTERP (dynamic) entry.
        let elf = |ptype: u32| {
            let mut b = vec![0u8; 64 + 56];
            b[..4].copy_from_slice(b"\x7fELF");
            b[4] = 2;
            b[5] = 1;
            b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
            b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
            b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
            b[64..68].copy_from_slice(&ptype.to_le_bytes());
            b
        };
        assert!(is_static_elf(&elf(1)));
        assert!(!is_static_elf(&elf(3)));
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        let mut truncated = elf(1);
        truncated.truncate(66); // cuts the program header's type
        assert!(!is_static_elf(&truncated));
    }
}
