//! `[[services]]` and their checks, attached to the hosts their `on` selects.

use super::*;

/// The placeholders service strings may hold, filled in per host when rendering.
pub(super) const PLACEHOLDERS: &[&str] = &["{{ bind_addr }}", "{{ node_name }}", "{{ address }}"];

pub(super) const ON_FORMS: &str =
    "expected comma-separated host names, tag:NAME, role:server or role:client";

/// Consul's limits on service `meta` (agent/structs: metaMaxKeyPairs, metaKeyMaxLength,
/// metaValueMaxLength).
pub(super) const META_MAX_PAIRS: usize = 64;
pub(super) const META_KEY_MAX: usize = 128;
pub(super) const META_VALUE_MAX: usize = 512;

/// One term of a service's `on`, checked against the host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum OnTerm {
    Name(String),
    Tag(String),
    Role(Role),
}

/// Does the host's agent config allow script checks from config files? consulctl writes
/// `enable_local_script_checks = true` for hosts with script checks; only an explicit
/// `enable_local_script_checks = false` in the extra config (without `enable_script_checks =
/// true`) switches them off.
pub(super) fn allows_scripts(host: &Host) -> bool {
    let get = |k: &str| host.extra_config.get(k);
    get("enable_local_script_checks") != Some(&Json::Bool(false))
        || get("enable_script_checks") == Some(&Json::Bool(true))
}

/// Consul service name or id: `[A-Za-z0-9_-]+`.
pub(super) fn is_service_ident(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Every `{{ ... }}` in `s` must be one of [`PLACEHOLDERS`], spelled exactly.
pub(super) fn placeholders(s: &str) -> Result<(), String> {
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!(
                "\"{{{{\" without a closing \"}}}}\"; allowed placeholders: {}",
                quoted_list(PLACEHOLDERS)
            ));
        };
        let found = &rest[start..start + 2 + end + 2];
        if !PLACEHOLDERS.contains(&found) {
            let inner = after[..end].trim();
            let hint = match PLACEHOLDERS.iter().find(|p| p[3..p.len() - 3] == *inner) {
                Some(p) => format!(" (write it as \"{p}\", one space inside the braces)"),
                None => String::new(),
            };
            return Err(format!(
                "unknown placeholder \"{found}\"{hint}; allowed: {}",
                quoted_list(PLACEHOLDERS)
            ));
        }
        rest = &after[end + 2..];
    }
    Ok(())
}

/// `s` with sample values in place of the placeholders, to check what is around them.
pub(super) fn fill_placeholders(s: &str) -> String {
    s.replace("{{ bind_addr }}", "192.0.2.1")
        .replace("{{ address }}", "host.example")
        .replace("{{ node_name }}", "node")
}

/// Length in nanoseconds of a Go duration (`time.ParseDuration`) without a sign: one or more
/// `<number><unit>`, the number with an optional fraction. `None` when malformed.
pub(super) fn go_duration_nanos(s: &str) -> Option<f64> {
    const UNITS: &[(&str, f64)] = &[
        ("ns", 1.0),
        ("us", 1e3),
        ("\u{b5}s", 1e3),
        ("\u{3bc}s", 1e3),
        ("ms", 1e6),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
    ];
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let (_, scale) = UNITS.iter().find(|(u, _)| *u == unit)?;
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(total)
}

/// Names for a message: all, or the first 20 and a count.
pub(super) fn names_list(names: &[&str]) -> String {
    if names.is_empty() {
        return "(none)".into();
    }
    let mut s = names
        .iter()
        .take(20)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > 20 {
        s.push_str(&format!(", ... ({} in all)", names.len()));
    }
    s
}

impl Ctx<'_> {
    /// Validate `[[services]]` and attach each to the hosts its `on` selects (when `hosts` is
    /// known). `host_names`: every host name the inventory gives. False when anything is
    /// wrong (reported).
    pub(super) fn services(
        &mut self,
        raw: Option<Vec<raw::Service>>,
        host_names: &[String],
        hosts: Option<&mut Vec<Host>>,
    ) -> bool {
        let Some(raw) = raw else {
            return true;
        };
        let ks = KeyPath::root().k("services");
        let probe = hosts.as_ref().map(|hosts| self.probe(hosts));

        let mut ok = true;
        // Per entry: the spec and which hosts (indices into `hosts`) it goes to.
        let mut resolved: Vec<Option<(ServiceSpec, Vec<usize>)>> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let k = ks.i(i);
            let spec = self.service(&k, r);
            let on = match &r.on {
                None => {
                    self.missing(
                        &k.k("on"),
                        format!(
                            "which hosts get the service: {ON_FORMS}, e.g. on = \"role:client\""
                        ),
                    );
                    None
                }
                Some(_) => self
                    .string(&k.k("on"), &r.on)
                    .and_then(|s| self.on_terms(&k.k("on"), &s, host_names)),
            };
            let (Some(spec), Some(on)) = (spec, on) else {
                ok = false;
                resolved.push(None);
                continue;
            };
            let Some(probe) = &probe else {
                resolved.push(None);
                continue;
            };
            let on_text = match &r.on {
                Some(toml::Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            let subject = format!("service {}", json_quote(&spec.name));
            let selected = self.select(&k.k("on"), &on_text, &on, &subject, probe);
            resolved.push(Some((spec, selected)));
        }
        let Some(hosts) = hosts else {
            return ok;
        };

        // Two entries with one id on one host: Consul keeps only the last.
        let mut clashes: Vec<(usize, usize, Vec<&str>)> = Vec::new();
        for (h, host) in hosts.iter().enumerate() {
            let mut ids: Vec<(&str, usize)> = Vec::new();
            for (i, entry) in resolved.iter().enumerate() {
                let Some((spec, on)) = entry else {
                    continue;
                };
                if !on.contains(&h) {
                    continue;
                }
                match ids.iter().find(|(id, _)| *id == spec.id()) {
                    Some(&(_, first)) => {
                        match clashes.iter_mut().find(|(f, s, _)| *f == first && *s == i) {
                            Some((_, _, names)) => names.push(&host.name),
                            None => clashes.push((first, i, vec![&host.name])),
                        }
                    }
                    None => ids.push((spec.id(), i)),
                }
            }
        }
        let clashes: Vec<(usize, usize, String)> = clashes
            .into_iter()
            .map(|(f, s, names)| (f, s, names.join(", ")))
            .collect();
        for (first, second, names) in &clashes {
            let id_key = |i: usize| {
                if raw[i].id.is_some() {
                    ks.i(i).k("id")
                } else {
                    ks.i(i).k("name")
                }
            };
            let id = resolved[*second]
                .as_ref()
                .map(|(s, _)| s.id().to_owned())
                .unwrap_or_default();
            let first_key = id_key(*first);
            let line = self.line_of(&first_key);
            let hosts_word = if names.contains(", ") {
                "hosts"
            } else {
                "host"
            };
            self.diag(
                &id_key(*second),
                format!(
                    "= {}: duplicate service id on {hosts_word} {names}: services[{first}] \
                     ({line}) has the same id and is attached there too; give one of them its \
                     own id = \"...\"",
                    json_quote(&id)
                ),
            );
            ok = false;
        }
        if !ok {
            return false;
        }

        // Attach, in inventory order.
        for (h, host) in hosts.iter_mut().enumerate() {
            for (spec, on) in resolved.iter().flatten() {
                if on.contains(&h) {
                    host.services.push(spec.clone());
                }
            }
        }

        // Script checks need the agent to allow them.
        for (i, (spec, _)) in resolved
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i, e)))
        {
            let Some(j) = spec
                .checks
                .iter()
                .position(|c| matches!(c.kind, CheckKind::Script(_)))
            else {
                continue;
            };
            let refusing: Vec<&str> = hosts
                .iter()
                .filter(|h| h.services.iter().any(|s| s == spec) && !allows_scripts(h))
                .map(|h| h.name.as_str())
                .collect();
            if !refusing.is_empty() {
                let key = ks.i(i).k("checks").i(j).k("args");
                let line = self.line_of(&key);
                self.warn(format!(
                    "{key} ({line}): a script check, but the config of {} sets \
                     enable_local_script_checks = false: Consul refuses script checks there",
                    refusing.join(", ")
                ));
            }
        }
        true
    }

    /// One `[[services]]` entry, without `on`.
    pub(super) fn service(&mut self, k: &KeyPath, r: &raw::Service) -> Option<ServiceSpec> {
        let mut ok = true;
        let name = match &r.name {
            None => {
                self.missing(
                    &k.k("name"),
                    "the Consul service name: letters, digits, \"-\" and \"_\"",
                );
                None
            }
            Some(v) => self.string(&k.k("name"), &r.name).and_then(|s| {
                if is_service_ident(&s) {
                    Some(s)
                } else {
                    self.bad(
                        &k.k("name"),
                        v,
                        "expected a service name of letters, digits, \"-\" and \"_\"",
                    );
                    None
                }
            }),
        };
        if let Some(n) = &name {
            let mut why = Vec::new();
            if n.contains('_') {
                why.push("\"_\" is not allowed in DNS names, so Consul DNS cannot answer for it");
            } else if !is_dns_label(n) {
                why.push(
                    "it is not a valid DNS label (at most 63 characters, no \"-\" at either end)",
                );
            }
            if n.chars().any(|c| c.is_ascii_uppercase()) {
                why.push(
                    "DNS ignores case while the catalog API does not, so it has two spellings",
                );
            }
            if !why.is_empty() {
                let key = k.k("name");
                let line = self.line_of(&key);
                self.warn(format!(
                    "{key} ({line}) = {} is not DNS-friendly: {}; use lowercase letters, digits \
                     and \"-\"",
                    json_quote(n),
                    why.join("; ")
                ));
            }
        }
        let id = self.string(&k.k("id"), &r.id).and_then(|s| {
            if is_service_ident(&s) {
                Some(s)
            } else {
                let v = r.id.clone()?;
                self.bad(
                    &k.k("id"),
                    &v,
                    "expected a service id of letters, digits, \"-\" and \"_\"",
                );
                ok = false;
                None
            }
        });
        let port = self
            .int_in(&k.k("port"), &r.port, 1, 65535)
            .map(|p| p as u16);
        if r.port.is_some() && port.is_none() {
            ok = false;
        }
        let address = self.templated(&k.k("address"), &r.address);
        if r.address.is_some() && address.is_none() {
            ok = false;
        }
        let tags = match &r.tags {
            None => Some(Vec::new()),
            Some(_) => self.list(
                &k.k("tags"),
                &r.tags,
                "[\"http\", \"upyun\"]",
                |s| {
                    if s.is_empty() {
                        Err("tags must not be empty".into())
                    } else {
                        placeholders(s).map(|()| s.to_owned())
                    }
                },
                |a, b| a == b,
            ),
        };
        let meta = self.meta(&k.k("meta"), &r.meta);
        let mut checks = Vec::new();
        for (j, c) in r.checks.iter().flatten().enumerate() {
            match self.check(&k.k("checks").i(j), c) {
                Some(c) => checks.push(c),
                None => ok = false,
            }
        }
        let (Some(name), Some(tags), Some(meta)) = (name, tags, meta) else {
            return None;
        };
        ok.then_some(ServiceSpec {
            name,
            id,
            port,
            address,
            tags,
            meta,
            checks,
        })
    }

    /// A string that may hold placeholders; not empty.
    pub(super) fn templated(&mut self, key: &KeyPath, v: &raw::V) -> Option<String> {
        let s = self.string(key, v)?;
        let value = v.as_ref()?;
        if s.trim().is_empty() {
            self.bad(key, value, "expected a value, not an empty string");
            return None;
        }
        match placeholders(&s) {
            Ok(()) => Some(s),
            Err(why) => {
                self.bad(key, value, why);
                None
            }
        }
    }

    pub(super) fn meta(
        &mut self,
        key: &KeyPath,
        v: &raw::V,
    ) -> Option<std::collections::BTreeMap<String, String>> {
        let mut out = std::collections::BTreeMap::new();
        let table = match v {
            None => return Some(out),
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                self.bad(
                    key,
                    other,
                    "expected a table of strings such as { team = \"db\" }",
                );
                return None;
            }
        };
        let mut ok = true;
        if table.len() > META_MAX_PAIRS {
            self.diag(
                key,
                format!(
                    "{} entries; Consul allows at most {META_MAX_PAIRS}",
                    table.len()
                ),
            );
            ok = false;
        }
        for (name, value) in table {
            let k = key.k(name);
            let name_ok = !name.is_empty()
                && name.len() <= META_KEY_MAX
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !name_ok {
                self.diag(
                    &k,
                    format!(
                        "invalid meta key {}: expected 1 to {META_KEY_MAX} letters, digits, \"_\" \
                         and \"-\"",
                        json_quote(name)
                    ),
                );
                ok = false;
                continue;
            }
            if name.starts_with("consul-") {
                self.diag(
                    &k,
                    "meta keys starting with \"consul-\" are reserved for Consul",
                );
                ok = false;
                continue;
            }
            match value {
                toml::Value::String(s) if s.len() > META_VALUE_MAX => {
                    self.bad(
                        &k,
                        value,
                        format!("expected at most {META_VALUE_MAX} bytes (Consul's limit)"),
                    );
                    ok = false;
                }
                toml::Value::String(s) => match placeholders(s) {
                    Ok(()) => {
                        out.insert(name.clone(), s.clone());
                    }
                    Err(why) => {
                        self.bad(&k, value, why);
                        ok = false;
                    }
                },
                other => {
                    self.bad(&k, other, "expected a string");
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// One `[[services.checks]]` entry.
    pub(super) fn check(&mut self, k: &KeyPath, r: &raw::Check) -> Option<CheckSpec> {
        const KINDS: &str = "expected exactly one of \"tcp\" (host:port), \"http\" (a URL) or \
                             \"args\" (a script and its arguments)";
        let mut ok = true;
        let name = match &r.name {
            None => None,
            Some(_) => {
                let n = self.templated(&k.k("name"), &r.name);
                ok &= n.is_some();
                n
            }
        };
        let given: Vec<&str> = [("tcp", &r.tcp), ("http", &r.http), ("args", &r.args)]
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(n, _)| *n)
            .collect();
        let kind = match given.as_slice() {
            [] => {
                self.diag(k, format!("no check kind; {KINDS}"));
                None
            }
            ["tcp"] => self.tcp_target(&k.k("tcp"), &r.tcp).map(CheckKind::Tcp),
            ["http"] => self.http_target(&k.k("http"), &r.http).map(CheckKind::Http),
            ["args"] => self
                .script_args(&k.k("args"), &r.args)
                .map(CheckKind::Script),
            several => {
                let names: Vec<String> = several.iter().map(|n| format!("\"{n}\"")).collect();
                self.diag(
                    k,
                    format!("{} given together; {KINDS}", names.join(" and ")),
                );
                None
            }
        };
        let interval = match &r.interval {
            None => {
                self.missing(
                    &k.k("interval"),
                    "how often the check runs, a Go duration such as \"10s\"",
                );
                None
            }
            Some(_) => self.duration(&k.k("interval"), &r.interval, true),
        };
        let timeout = self.duration(&k.k("timeout"), &r.timeout, false);
        ok &= r.timeout.is_none() || timeout.is_some();
        let deregister = self.duration(
            &k.k("deregister_critical_service_after"),
            &r.deregister_critical_service_after,
            false,
        );
        ok &= r.deregister_critical_service_after.is_none() || deregister.is_some();
        let (Some(kind), Some(interval), true) = (kind, interval, ok) else {
            return None;
        };
        Some(CheckSpec {
            name,
            kind,
            interval,
            timeout,
            deregister_critical_service_after: deregister,
        })
    }

    /// `host:port`, placeholders allowed in the host.
    pub(super) fn tcp_target(&mut self, key: &KeyPath, v: &raw::V) -> Option<String> {
        let s = self.templated(key, v)?;
        let sample = fill_placeholders(&s);
        let valid = match sample.rsplit_once(':') {
            Some((host, port)) => {
                let host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                !host.is_empty()
                    && !host.chars().any(|c| c.is_whitespace() || c == '/')
                    && port.parse::<u16>().is_ok_and(|p| p > 0)
            }
            None => false,
        };
        if valid {
            Some(s)
        } else {
            self.bad(
                key,
                v.as_ref()?,
                "expected host:port such as \"{{ bind_addr }}:80\" or \"127.0.0.1:3306\"",
            );
            None
        }
    }

    /// An http(s) URL, placeholders allowed.
    pub(super) fn http_target(&mut self, key: &KeyPath, v: &raw::V) -> Option<String> {
        let s = self.templated(key, v)?;
        if valid_url(&fill_placeholders(&s)) {
            Some(s)
        } else {
            self.bad(
                key,
                v.as_ref()?,
                "expected an http:// or https:// URL such as \
                 \"http://{{ bind_addr }}:80/health\"",
            );
            None
        }
    }

    /// A script check's argv: a non-empty array of strings, the first one not empty.
    pub(super) fn script_args(&mut self, key: &KeyPath, v: &raw::V) -> Option<Vec<String>> {
        let value = v.as_ref()?;
        const WHAT: &str = "expected the script and its arguments as a non-empty array of \
                            strings, such as [\"/usr/local/consul/script/check_udp.sh\"]";
        let toml::Value::Array(items) = value else {
            self.bad(key, value, WHAT);
            return None;
        };
        if items.is_empty() {
            self.bad(key, value, WHAT);
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item {
                toml::Value::String(s) if i == 0 && s.trim().is_empty() => {
                    self.bad(
                        &key.i(i),
                        item,
                        "expected the script to run, not an empty string",
                    );
                    ok = false;
                }
                toml::Value::String(s) => match placeholders(s) {
                    Ok(()) => out.push(s.clone()),
                    Err(why) => {
                        self.bad(&key.i(i), item, why);
                        ok = false;
                    }
                },
                other => {
                    self.bad(&key.i(i), other, "expected a string");
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    /// A Go duration (`10s`, `1m30s`, `500ms`); `positive`: not zero.
    pub(super) fn duration(&mut self, key: &KeyPath, v: &raw::V, positive: bool) -> Option<String> {
        let s = self.string(key, v)?;
        let value = v.as_ref()?;
        match go_duration_nanos(&s) {
            Some(n) if positive && n <= 0.0 => {
                self.bad(key, value, "expected a duration above zero");
                None
            }
            Some(_) => Some(s),
            None => {
                let hint = if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) {
                    " (add a unit)"
                } else {
                    ""
                };
                self.bad(
                    key,
                    value,
                    format!(
                        "expected a Go duration such as \"10s\", \"500ms\" or \"1m30s\": numbers \
                         each followed by a unit: \"ns\", \"us\", \"ms\", \"s\", \"m\", \"h\"{hint}"
                    ),
                );
                None
            }
        }
    }

    /// The terms of a service's `on`: syntax, and every host name must exist.
    pub(super) fn on_terms(
        &mut self,
        key: &KeyPath,
        s: &str,
        host_names: &[String],
    ) -> Option<Vec<OnTerm>> {
        let value = toml::Value::String(s.to_owned());
        if s.trim().is_empty() {
            self.bad(key, &value, format!("empty; {ON_FORMS}"));
            return None;
        }
        let names: Vec<&str> = host_names.iter().map(String::as_str).collect();
        let mut terms = Vec::new();
        let mut ok = true;
        for raw in s.split(',') {
            let t = raw.trim();
            let term = if t.is_empty() {
                Err(format!("has an empty term; {ON_FORMS}"))
            } else if let Some(tag) = t.strip_prefix("tag:") {
                if tag.is_empty() {
                    Err(format!("term `{t}` names no tag; {ON_FORMS}"))
                } else {
                    Ok(OnTerm::Tag(tag.to_owned()))
                }
            } else if let Some(role) = t.strip_prefix("role:") {
                match role {
                    "server" | "servers" => Ok(OnTerm::Role(Role::Server)),
                    "client" | "clients" => Ok(OnTerm::Role(Role::Client)),
                    _ => Err(format!(
                        "term `{t}`: unknown role `{role}`; expected role:server or role:client"
                    )),
                }
            } else if names.contains(&t) {
                Ok(OnTerm::Name(t.to_owned()))
            } else if t == "servers" {
                Ok(OnTerm::Role(Role::Server))
            } else if t == "clients" {
                Ok(OnTerm::Role(Role::Client))
            } else {
                let hint = match suggest(t, &names) {
                    Some(n) => format!(" (did you mean \"{n}\"?)"),
                    None => String::new(),
                };
                Err(format!(
                    "no host is named `{t}`{hint}; {ON_FORMS} (host names: {})",
                    names_list(&names)
                ))
            };
            match term {
                Ok(term) => {
                    if !terms.contains(&term) {
                        terms.push(term);
                    }
                }
                Err(why) => {
                    self.bad(key, &value, why);
                    ok = false;
                }
            }
        }
        ok.then_some(terms)
    }

    /// The hosts as a cluster, for `Selector`; the other fields are not looked at.
    pub(super) fn probe(&self, hosts: &[Host]) -> Cluster {
        Cluster {
            inventory_path: self.path.to_path_buf(),
            name: String::new(),
            datacenter: String::new(),
            domain: String::new(),
            consul: ConsulSpec {
                version: Version::new(0, 0, 0),
                source: InstallSource::Package {
                    manager: PackageManager::Auto,
                },
            },
            encrypt: None,
            encrypt_auto: false,
            tls_auto: false,
            acl: false,
            acl_tokens: Default::default(),
            registrar_binary: None,
            retry_join_wan: vec![],
            hosts: hosts.to_vec(),
            warnings: Vec::new(),
        }
    }

    /// Which hosts of `probe` a checked `on` selects (indices); warns about terms that match
    /// no host. `subject`: what goes there, for the warning (`service "web"`).
    pub(super) fn select(
        &mut self,
        key: &KeyPath,
        on: &str,
        terms: &[OnTerm],
        subject: &str,
        probe: &Cluster,
    ) -> Vec<usize> {
        let mut selected = vec![false; probe.hosts.len()];
        let mut empty: Vec<String> = Vec::new();
        for term in terms {
            let text = match term {
                OnTerm::Name(n) => n.clone(),
                OnTerm::Tag(t) => format!("tag:{t}"),
                OnTerm::Role(r) => format!("role:{}", r.as_str()),
            };
            // The selector refuses a term that matches no host: that is only a warning here.
            match Selector::parse(&text, probe) {
                Ok(sel) => {
                    for (h, host) in probe.hosts.iter().enumerate() {
                        selected[h] |= sel.matches(host);
                    }
                }
                Err(_) => empty.push(text),
            }
        }
        if !empty.is_empty() {
            let line = self.line_of(key);
            let mut tags: Vec<&str> = Vec::new();
            for t in probe.hosts.iter().flat_map(|h| &h.tags) {
                if !tags.contains(&t.as_str()) {
                    tags.push(t);
                }
            }
            let terms = empty
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let outcome = if selected.iter().any(|s| *s) {
                String::new()
            } else {
                format!("; {subject} is on no host")
            };
            self.warn(format!(
                "{key} ({line}) = {}: {terms} matches no host{outcome} (tags: {})",
                json_quote(on),
                names_list(&tags)
            ));
        }
        selected
            .iter()
            .enumerate()
            .filter(|(_, s)| **s)
            .map(|(h, _)| h)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::test_support::*;

    #[test]
    fn service_is_attached_to_exactly_the_hosts_on_selects() {
        let text = with_client(
            r#"[config]
enable_local_script_checks = true
[[services]]
name = "web"
on = "tag:web,s2"
port = 80
checks = [{ tcp = "{{ bind_addr }}:80", interval = "10s", timeout = "1s" }]
[[services]]
name = "ssh"
on = "role:client"
address = "{{ address }}"
[[services.checks]]
name = "sshd on {{ node_name }}"
tcp = "{{ bind_addr }}:22"
interval = "500ms"
[[services.checks]]
http = "https://{{ bind_addr }}:8443/health?full=1"
interval = "1h"
[[services.checks]]
args = ["/usr/local/consul/script/check_udp.sh"]
interval = "60s"
timeout = "10s"
deregister_critical_service_after = "1m"
[[services]]
name = "ui"
on = "servers"
"#,
        );
        let c = ok(&text);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let on = |name: &str| -> Vec<String> {
            c.hosts
                .iter()
                .filter(|h| h.services.iter().any(|s| s.name == name))
                .map(|h| h.name.clone())
                .collect()
        };
        assert_eq!(on("web"), ["s2", "c1"]);
        assert_eq!(on("ssh"), ["c1"]);
        assert_eq!(on("ui"), ["s1", "s2", "s3"]);
        // Inventory order on each host.
        let c1: Vec<&str> = c
            .host("c1")
            .unwrap()
            .services
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(c1, ["web", "ssh"]);

        let ssh = &c.host("c1").unwrap().services[1];
        assert_eq!(ssh.id, None);
        assert_eq!(ssh.id(), "ssh");
        assert_eq!(ssh.port, None);
        assert_eq!(ssh.address.as_deref(), Some("{{ address }}"));
        let kinds: Vec<&CheckKind> = ssh.checks.iter().map(|c| &c.kind).collect();
        assert_eq!(
            kinds,
            [
                &CheckKind::Tcp("{{ bind_addr }}:22".into()),
                &CheckKind::Http("https://{{ bind_addr }}:8443/health?full=1".into()),
                &CheckKind::Script(vec!["/usr/local/consul/script/check_udp.sh".into()]),
            ]
        );
        assert_eq!(
            ssh.checks[0].name.as_deref(),
            Some("sshd on {{ node_name }}")
        );
        assert_eq!(ssh.checks[0].interval, "500ms");
        assert_eq!(ssh.checks[2].timeout.as_deref(), Some("10s"));
        assert_eq!(
            ssh.checks[2].deregister_critical_service_after.as_deref(),
            Some("1m")
        );
        assert!(ssh.has_script_check());
        let web = &c.host("s2").unwrap().services[0];
        assert_eq!(web.port, Some(80));
        assert_eq!(web.checks[0].timeout.as_deref(), Some("1s"));
        assert!(!web.has_script_check());
    }

    #[test]
    fn service_without_on_is_rejected() {
        only(
            &doc("[[services]]\nname = \"web\"\n"),
            "services[0].on",
            12,
            "services[0].on: missing required key; which hosts get the service",
        );
        only(
            &doc("[[services]]\non = \"s1\"\n"),
            "services[0].name",
            12,
            "missing required key; the Consul service name",
        );
    }

    #[test]
    fn on_naming_an_unknown_host_is_rejected() {
        let d = only(
            &doc("[[services]]\nname = \"web\"\non = \"s1,s9\"\n"),
            "services[0].on",
            14,
            "services[0].on = \"s1,s9\": no host is named `s9`",
        );
        assert!(d.message.contains("did you mean \"s1\"?"), "{d}");
        assert!(d.message.contains("(host names: s1, s2, s3)"), "{d}");
        for (bad, needle) in [
            ("role:master", "unknown role `master`"),
            ("tag:", "names no tag"),
            ("s1,,s2", "has an empty term"),
            ("", "empty;"),
        ] {
            only(
                &doc(&format!("[[services]]\nname = \"web\"\non = \"{bad}\"\n")),
                "services[0].on",
                14,
                needle,
            );
        }
    }

    #[test]
    fn on_matching_no_host_is_a_warning() {
        let c = ok(&doc(
            "[[services]]\nname = \"web\"\non = \"tag:nope\"\n[[services]]\nname = \"api\"\n\
             on = \"s1,role:client\"\n",
        ));
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains(
                "services[0].on (line 14) = \"tag:nope\": `tag:nope` matches no host; service \
                 \"web\" is on no host"
            ),
            "{:?}",
            c.warnings
        );
        assert!(
            c.warnings[1].contains("services[1].on (line 17) = \"s1,role:client\": `role:client` matches no host (tags:"),
            "{:?}",
            c.warnings
        );
        assert!(c
            .hosts
            .iter()
            .all(|h| h.services.iter().all(|s| s.name != "web")));
        assert_eq!(c.host("s1").unwrap().services[0].name, "api");
    }

    #[test]
    fn non_dns_friendly_service_name_is_a_warning() {
        let c = ok(&doc("[[services]]\nname = \"web_api\"\non = \"s1\"\n"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains(
                "services[0].name (line 13) = \"web_api\" is not DNS-friendly: \"_\" is not \
                 allowed in DNS names"
            ),
            "{:?}",
            c.warnings
        );
        let c = ok(&doc("[[services]]\nname = \"Web\"\non = \"s1\"\n"));
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains("DNS ignores case"),
            "{:?}",
            c.warnings
        );
        only(
            &doc("[[services]]\nname = \"web.api\"\non = \"s1\"\n"),
            "services[0].name",
            13,
            "expected a service name of letters, digits",
        );
        only(
            &doc("[[services]]\nname = \"web\"\nid = \"web 1\"\non = \"s1\"\n"),
            "services[0].id",
            14,
            "expected a service id of letters, digits",
        );
    }

    #[test]
    fn check_with_two_kinds_or_none_is_rejected() {
        let svc = "[[services]]\nname = \"web\"\non = \"s1\"\n[[services.checks]]\n";
        only(
            &doc(&format!(
                "{svc}tcp = \"{{{{ bind_addr }}}}:80\"\nhttp = \"http://x/\"\ninterval = \"10s\"\n"
            )),
            "services[0].checks[0]",
            15,
            "services[0].checks[0]: \"tcp\" and \"http\" given together; expected exactly one of",
        );
        only(
            &doc(&format!("{svc}interval = \"10s\"\n")),
            "services[0].checks[0]",
            15,
            "no check kind; expected exactly one of \"tcp\" (host:port), \"http\" (a URL) or \
             \"args\"",
        );
    }

    #[test]
    fn bad_check_values_are_rejected() {
        let svc = "[[services]]\nname = \"web\"\non = \"s1\"\n[[services.checks]]\n";
        for (body, key, needle) in [
            ("tcp = \"{{ bind_addr }}\"", "tcp", "expected host:port"),
            ("tcp = \"{{ bind_addr }}:0\"", "tcp", "expected host:port"),
            (
                "http = \"{{ bind_addr }}/health\"",
                "http",
                "expected an http:// or https:// URL",
            ),
            ("args = []", "args", "non-empty array of strings"),
            (
                "args = \"/bin/check\"",
                "args",
                "non-empty array of strings",
            ),
            ("args = [\"\"]", "args[0]", "expected the script to run"),
            ("args = [\"/bin/check\", 1]", "args[1]", "expected a string"),
        ] {
            only(
                &doc(&format!("{svc}{body}\ninterval = \"10s\"\n")),
                &format!("services[0].checks[0].{key}"),
                16,
                needle,
            );
        }
        only(
            &doc(&format!("{svc}tcp = \"127.0.0.1:22\"\n")),
            "services[0].checks[0].interval",
            15,
            "missing required key; how often the check runs",
        );
    }

    #[test]
    fn bad_duration_is_rejected() {
        let svc = "[[services]]\nname = \"web\"\non = \"s1\"\n[[services.checks]]\n\
                   tcp = \"127.0.0.1:22\"\n";
        for (key, bad) in [
            ("interval", "10"),
            ("interval", "10sec"),
            ("interval", "-5s"),
            ("interval", "0s"),
            ("timeout", "1.5.0s"),
            ("timeout", "s"),
            ("deregister_critical_service_after", "1 m"),
        ] {
            let extra = if key == "interval" {
                String::new()
            } else {
                "interval = \"10s\"\n".into()
            };
            only(
                &doc(&format!("{svc}{extra}{key} = \"{bad}\"\n")),
                &format!("services[0].checks[0].{key}"),
                if key == "interval" { 17 } else { 18 },
                &format!("= \"{bad}\": expected a "),
            );
        }
        let d = only(
            &doc(&format!("{svc}interval = \"10\"\n")),
            "services[0].checks[0].interval",
            17,
            "(add a unit)",
        );
        assert!(
            d.message.contains("expected a Go duration such as \"10s\""),
            "{d}"
        );
    }

    #[test]
    fn go_durations_parse_like_go() {
        for (s, nanos) in [
            ("10s", 10e9),
            ("500ms", 0.5e9),
            ("1m30s", 90e9),
            ("1h", 3600e9),
            ("1.5h", 5400e9),
            ("2h45m0.5s", 9900.5e9),
            ("100us", 1e5),
            ("100\u{b5}s", 1e5),
            ("7ns", 7.0),
            (".5s", 0.5e9),
            ("0s", 0.0),
        ] {
            assert_eq!(go_duration_nanos(s), Some(nanos), "{s}");
        }
        for bad in [
            "", "10", "s", "1x", "1.2.3s", "-1s", "1 s", "1s ", ".s", "1d",
        ] {
            assert_eq!(go_duration_nanos(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unknown_placeholder_is_rejected() {
        let d = only(
            &doc("[[services]]\nname = \"web\"\non = \"s1\"\naddress = \"{{ bind_ip }}\"\n"),
            "services[0].address",
            15,
            "services[0].address = \"{{ bind_ip }}\": unknown placeholder \"{{ bind_ip }}\"; \
             allowed: \"{{ bind_addr }}\", \"{{ node_name }}\", \"{{ address }}\"",
        );
        assert_eq!(d.column, Some(11));
        only(
            &doc("[[services]]\nname = \"web\"\non = \"s1\"\ntags = [\"{{bind_addr}}\"]\n"),
            "services[0].tags[0]",
            15,
            "(write it as \"{{ bind_addr }}\", one space inside the braces)",
        );
        only(
            &doc("[[services]]\nname = \"web\"\non = \"s1\"\nmeta = { at = \"{{ node_name \" }\n"),
            "services[0].meta.at",
            15,
            "\"{{\" without a closing \"}}\"",
        );
        only(
            &doc(
                "[[services]]\nname = \"web\"\non = \"s1\"\n[[services.checks]]\n\
                 tcp = \"{{ GetPrivateIP }}:80\"\ninterval = \"10s\"\n",
            ),
            "services[0].checks[0].tcp",
            16,
            "unknown placeholder \"{{ GetPrivateIP }}\"",
        );
    }

    #[test]
    fn bad_service_values_are_rejected() {
        let svc = "[[services]]\nname = \"web\"\non = \"s1\"\n";
        for (body, key, needle) in [
            ("port = 0", "port", "expected an integer from 1 to 65535"),
            (
                "tags = [\"http\", \"http\"]",
                "tags[1]",
                "given twice (also services[0].tags[0])",
            ),
            ("tags = [\"\"]", "tags[0]", "tags must not be empty"),
            (
                "meta = { \"te am\" = \"x\" }",
                "meta.\"te am\"",
                "invalid meta key \"te am\"",
            ),
            (
                "meta = { consul-x = \"x\" }",
                "meta.consul-x",
                "reserved for Consul",
            ),
            ("meta = { team = 1 }", "meta.team", "expected a string"),
            ("meta = \"team=db\"", "meta", "expected a table of strings"),
            ("address = \"\"", "address", "not an empty string"),
        ] {
            only(
                &doc(&format!("{svc}{body}\n")),
                &format!("services[0].{key}"),
                15,
                needle,
            );
        }
    }

    #[test]
    fn unknown_service_key_is_rejected() {
        only(
            &doc("[[services]]\nname = \"web\"\non = \"s1\"\ncheck = []\n"),
            "services[0].check",
            15,
            "unknown key; did you mean \"checks\"?",
        );
        only(
            &doc("[[services]]\nname = \"web\"\non = \"s1\"\n[[services.checks]]\ntcp = \"x:1\"\ninterval = \"1s\"\nttl = \"5s\"\n"),
            "services[0].checks[0].ttl",
            18,
            "unknown key",
        );
        only(
            &doc("[services]\nname = \"web\"\n"),
            "services",
            12,
            "services = a table: expected an array of tables",
        );
    }

    #[test]
    fn duplicate_service_id_on_a_host_is_rejected() {
        let text = with_client(
            "[[services]]\nname = \"web\"\non = \"role:server\"\n\
             [[services]]\nname = \"api\"\nid = \"web\"\non = \"s2,c1\"\n\
             [[services]]\nname = \"web\"\non = \"c1\"\n",
        );
        let diags = errs(&text);
        assert_eq!(diags.len(), 2, "{}", render(&inv_path(), &diags));
        let d = check(
            &diags,
            "services[1].id",
            18,
            "services[1].id = \"web\": duplicate service id on host s2: services[0] (line 14) \
             has the same id and is attached there too",
        );
        assert_eq!(d.column, Some(6));
        // Without an id, the name is the id.
        check(
            &diags,
            "services[2].name",
            21,
            "services[2].name = \"web\": duplicate service id on host c1: services[1] (line 18)",
        );
        // The same id on different hosts is fine.
        let c = ok(&with_client(
            "[[services]]\nname = \"web\"\non = \"role:server\"\n\
             [[services]]\nname = \"web\"\non = \"c1\"\nport = 8080\n",
        ));
        assert_eq!(c.host("c1").unwrap().services[0].port, Some(8080));
        // Several hosts in one message.
        let diags = errs(&doc(
            "[[services]]\nname = \"web\"\non = \"s1,s2\"\n[[services]]\nname = \"web\"\n\
             on = \"role:server\"\n",
        ));
        check(
            &diags,
            "services[1].name",
            16,
            "duplicate service id on hosts s1, s2: services[0] (line 13)",
        );
    }

    #[test]
    fn script_check_with_script_checks_switched_off_is_a_warning() {
        let text = doc(
            "[[services]]\nname = \"ntp\"\non = \"s1\"\n[[services.checks]]\n\
             args = [\"/usr/local/consul/script/check_udp.sh\"]\ninterval = \"60s\"\n",
        );
        // consulctl switches local script checks on by itself.
        let c = ok(&text);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let off = format!("{text}[servers]\nconfig = {{ enable_local_script_checks = false }}\n");
        let c = ok(&off);
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(
            c.warnings[0].contains(
                "services[0].checks[0].args (line 16): a script check, but the config of s1 \
                 sets enable_local_script_checks = false"
            ),
            "{:?}",
            c.warnings
        );
        let c = ok(&format!(
            "{text}[servers]\nconfig = {{ enable_local_script_checks = false, enable_script_checks = true }}\n"
        ));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn service_problems_are_reported_even_when_a_host_has_problems() {
        let text = format!(
            "{}{HEAD}[[services]]\nname = \"web\"\non = \"s9\"\n",
            THREE.replace("10.0.0.2", "10.0.0.256")
        );
        let diags = errs(&text);
        assert_eq!(diags.len(), 2, "{}", render(&inv_path(), &diags));
        check(&diags, "hosts[1].address", 3, "not a valid IP address");
        check(&diags, "services[0].on", 14, "no host is named `s9`");
    }
}
