//! HAProxy's runtime API: a change of the servers of existing backends (an instance added,
//! removed) is applied to the running process through its admin socket instead of a reload,
//! so that it takes effect in milliseconds and the process keeps its connection pools, health
//! states and counters. The file is still validated and written, so that the next start or
//! reload reads the same servers.
//!
//! Pure here: reading a rendered `haproxy.cfg` into its structure (everything but the server
//! lines, comments and the status URI) and its servers, the commands that turn one set of
//! servers into the other, and reading `show stat`. The socket I/O is the sync's `System`.

use std::collections::BTreeMap;

/// A rendered HAProxy file, split: what needs a reload to change, and what the runtime API
/// can change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// Every line but comments, the `monitor-uri` line and the backends' `server` lines.
    pub structure: Vec<String>,
    /// Per backend, its servers in file order: (name, the rest of the line after the name).
    pub servers: BTreeMap<String, Vec<(String, String)>>,
    /// The generation in the status URI (`monitor-uri /consulctl/generation/<g>`).
    pub generation: Option<String>,
}

impl Layout {
    pub fn of(text: &str) -> Layout {
        let mut layout = Layout::default();
        let mut backend: Option<String> = None;
        for line in text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            if !line.starts_with(char::is_whitespace) {
                let mut words = trimmed.split_whitespace();
                backend = match (words.next(), words.next()) {
                    (Some("backend"), Some(name)) => {
                        layout.servers.entry(name.to_string()).or_default();
                        Some(name.to_string())
                    }
                    _ => None,
                };
                layout.structure.push(trimmed.to_string());
                continue;
            }
            if let Some(uri) = trimmed.strip_prefix("monitor-uri ") {
                layout.generation = uri
                    .trim()
                    .strip_prefix("/consulctl/generation/")
                    .map(str::to_string);
                continue;
            }
            if let (Some(b), Some(rest)) = (&backend, trimmed.strip_prefix("server ")) {
                let rest = rest.trim_start();
                let (name, params) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                layout
                    .servers
                    .entry(b.clone())
                    .or_default()
                    .push((name.to_string(), params.trim().to_string()));
                continue;
            }
            layout.structure.push(trimmed.to_string());
        }
        layout
    }

    /// The server names of each backend.
    pub fn names(&self) -> BTreeMap<String, Vec<String>> {
        self.servers
            .iter()
            .map(|(b, s)| (b.clone(), s.iter().map(|(n, _)| n.clone()).collect()))
            .collect()
    }
}

/// What the runtime API is asked to do: add the new servers (enabled, their checks on), then
/// put the gone ones in maintenance (no new request goes to them; requests under way finish)
/// and delete them (HAProxy refuses while a connection still uses one: it stays in
/// maintenance and its deletion is tried again later).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    pub add: Vec<(String, String, String)>,
    pub remove: Vec<(String, String)>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    /// The commands of the additions, in order, each with the answer that means it worked
    /// (empty: no answer).
    pub fn add_commands(&self) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        for (b, name, params) in &self.add {
            out.push((
                format!("add server {b}/{name} {params}"),
                "New server registered.",
            ));
            if params.split_whitespace().any(|w| w == "check") {
                out.push((format!("enable health {b}/{name}"), ""));
            }
            out.push((format!("enable server {b}/{name}"), ""));
        }
        out
    }
}

/// Why a change cannot go through the runtime API (the sync reloads instead).
pub fn change(live: &Layout, new: &Layout) -> Result<Change, String> {
    if live.structure != new.structure {
        return Err("more than servers changed".into());
    }
    let mut change = Change::default();
    for (b, servers) in &new.servers {
        let before: BTreeMap<&str, &str> = live
            .servers
            .get(b)
            .map(|s| s.iter().map(|(n, p)| (n.as_str(), p.as_str())).collect())
            .unwrap_or_default();
        let after: BTreeMap<&str, &str> = servers
            .iter()
            .map(|(n, p)| (n.as_str(), p.as_str()))
            .collect();
        for (name, params) in &after {
            match before.get(name) {
                None => change
                    .add
                    .push((b.clone(), name.to_string(), params.to_string())),
                Some(p) if p != params => {
                    return Err(format!("server {b}/{name} changed its settings"));
                }
                Some(_) => {}
            }
        }
        for name in before.keys() {
            if !after.contains_key(name) {
                change.remove.push((b.clone(), name.to_string()));
            }
        }
    }
    Ok(change)
}

/// One server row of `show stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStat {
    pub backend: String,
    pub server: String,
    /// `UP`, `DOWN`, `MAINT`, `no check`, `UP 1/2`, ...
    pub status: String,
    /// Connections it serves now.
    pub current: u64,
}

impl ServerStat {
    pub fn in_maintenance(&self) -> bool {
        self.status.starts_with("MAINT")
    }
}

/// The server rows of `show stat` (CSV with a `# pxname,svname,...` header).
pub fn parse_stat(text: &str) -> Result<Vec<ServerStat>, String> {
    let mut lines = text.lines();
    let header = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .ok_or_else(|| format!("`show stat` answered {:?}", first_line(text)))?;
    let cols: Vec<&str> = header.split(',').collect();
    let col = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("`show stat` has no {name} column"))
    };
    let (px, sv, status, scur) = (col("pxname")?, col("svname")?, col("status")?, col("scur")?);
    let mut out = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split(',').collect();
        let get = |i: usize| f.get(i).copied().unwrap_or("");
        if matches!(get(sv), "FRONTEND" | "BACKEND" | "") {
            continue;
        }
        out.push(ServerStat {
            backend: get(px).to_string(),
            server: get(sv).to_string(),
            status: get(status).to_string(),
            current: get(scur).parse().unwrap_or(0),
        });
    }
    Ok(out)
}

/// Whether the running servers are the file's: per backend of the file, the servers not in
/// maintenance are exactly its servers; a server in maintenance that the file does not have
/// is one whose deletion waits for its connections to end (returned). Otherwise why not.
pub fn matches(file: &Layout, running: &[ServerStat]) -> Result<Vec<(String, String)>, String> {
    let mut waiting = Vec::new();
    for (b, servers) in &file.servers {
        let want: Vec<&str> = servers.iter().map(|(n, _)| n.as_str()).collect();
        let mut active: Vec<&str> = Vec::new();
        for s in running.iter().filter(|s| &s.backend == b) {
            if !s.in_maintenance() {
                active.push(&s.server);
            } else if want.contains(&s.server.as_str()) {
                return Err(format!("server {b}/{} is in maintenance", s.server));
            } else {
                waiting.push((b.clone(), s.server.clone()));
            }
        }
        let (mut w, mut a) = (want.clone(), active.clone());
        w.sort_unstable();
        a.sort_unstable();
        if w != a {
            return Err(format!(
                "backend {b} serves [{}], the file has [{}]",
                a.join(" "),
                w.join(" ")
            ));
        }
    }
    Ok(waiting)
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "\
# Written by consulctl-host lb on lb1 (generation aaa) from Consul's catalog.
global
    stats socket /run/haproxy-admin.sock mode 600 level admin expose-fd listeners

frontend consulctl_status
    mode http
    bind 127.0.0.1:8404
    monitor-uri /consulctl/generation/aaa

backend web_http
    mode http
    balance leastconn
    server web-1 10.0.0.1:8080 check inter 2s fall 3 rise 2 maxconn 100 weight 1
    server web-2 10.0.0.2:8080 check inter 2s fall 3 rise 2 maxconn 100 weight 1

backend dns_tcp
    mode tcp
    # no instance of dns passes its checks in Consul: HAProxy answers 503
";

    fn new_file() -> String {
        LIVE.replace("aaa", "bbb")
            .replace(
                "    server web-1 10.0.0.1:8080 check inter 2s fall 3 rise 2 maxconn 100 weight 1\n",
                "",
            )
            .replace(
                "    # no instance of dns passes its checks in Consul: HAProxy answers 503\n",
                "    server dns-1 10.0.0.9:53 check inter 2s fall 3 rise 2 maxconn 100 weight 1\n",
            )
    }

    #[test]
    fn layout_splits_structure_servers_and_generation() {
        let l = Layout::of(LIVE);
        assert_eq!(l.generation.as_deref(), Some("aaa"));
        assert_eq!(
            l.names(),
            BTreeMap::from([
                ("dns_tcp".to_string(), vec![]),
                (
                    "web_http".to_string(),
                    vec!["web-1".to_string(), "web-2".to_string()]
                ),
            ])
        );
        assert!(l.structure.contains(&"backend web_http".to_string()));
        assert!(!l.structure.iter().any(|s| s.starts_with("server ")
            || s.starts_with('#')
            || s.starts_with("monitor-uri")));
    }

    #[test]
    fn only_servers_changed_gives_adds_then_removes() {
        let c = change(&Layout::of(LIVE), &Layout::of(&new_file())).unwrap();
        assert_eq!(
            c.add,
            vec![(
                "dns_tcp".to_string(),
                "dns-1".to_string(),
                "10.0.0.9:53 check inter 2s fall 3 rise 2 maxconn 100 weight 1".to_string()
            )]
        );
        assert_eq!(
            c.remove,
            vec![("web_http".to_string(), "web-1".to_string())]
        );
        assert_eq!(
            c.add_commands(),
            vec![
                (
                    "add server dns_tcp/dns-1 10.0.0.9:53 check inter 2s fall 3 rise 2 maxconn 100 weight 1"
                        .to_string(),
                    "New server registered."
                ),
                ("enable health dns_tcp/dns-1".to_string(), ""),
                ("enable server dns_tcp/dns-1".to_string(), ""),
            ]
        );
        assert!(change(&Layout::of(LIVE), &Layout::of(LIVE))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn anything_but_servers_needs_a_reload() {
        let retries = LIVE.replace("balance leastconn", "balance roundrobin");
        assert_eq!(
            change(&Layout::of(LIVE), &Layout::of(&retries)),
            Err("more than servers changed".into())
        );
        let new_backend = format!("{LIVE}\nbackend api_http\n    mode http\n");
        assert!(change(&Layout::of(LIVE), &Layout::of(&new_backend)).is_err());
        let moved = LIVE.replace("10.0.0.2:8080", "10.0.0.3:8080");
        assert_eq!(
            change(&Layout::of(LIVE), &Layout::of(&moved)),
            Err("server web_http/web-2 changed its settings".into())
        );
    }

    const STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight\n\
web_http,FRONTEND,,,0,0,4096,0,0,0,0,0,0,,,,,OPEN,\n\
web_http,web-2,0,0,1,1,100,5,0,0,,0,,0,0,0,0,UP,1\n\
web_http,web-1,0,0,2,2,100,5,0,0,,0,,0,0,0,0,MAINT,1\n\
web_http,BACKEND,0,0,3,3,410,10,0,0,0,0,,0,0,0,0,UP,1\n\
dns_tcp,dns-1,0,0,0,0,100,0,0,0,,0,,0,0,0,0,no check,1\n";

    #[test]
    fn show_stat_is_read_by_its_header() {
        let s = parse_stat(STAT).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].server, "web-1");
        assert!(s[1].in_maintenance());
        assert_eq!(s[1].current, 2);
        assert_eq!(s[2].status, "no check");
        assert!(parse_stat("Unknown command.\n").is_err());
    }

    #[test]
    fn running_servers_match_the_file_with_deletions_waiting() {
        let running = parse_stat(STAT).unwrap();
        let waiting = matches(&Layout::of(&new_file()), &running).unwrap();
        assert_eq!(waiting, vec![("web_http".to_string(), "web-1".to_string())]);
        // The live file still has web-1: it must not be in maintenance.
        let without_dns: Vec<_> = running
            .into_iter()
            .filter(|s| s.server != "dns-1")
            .collect();
        assert_eq!(
            matches(&Layout::of(LIVE), &without_dns),
            Err("server web_http/web-1 is in maintenance".into())
        );
        // A server the file has that does not run.
        assert_eq!(
            matches(&Layout::of(&new_file()), &without_dns),
            Err("backend dns_tcp serves [], the file has [dns-1]".into())
        );
    }
}
