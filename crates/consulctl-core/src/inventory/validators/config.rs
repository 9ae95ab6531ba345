//! The extra agent `config` tables: TOML -> JSON, no `${...}` interpolation, no key consulctl
//! manages itself.

use super::*;

/// Agent config keys consulctl writes itself from dedicated inventory settings; a second source
/// for them in `config` would silently disagree with what consulctl manages (data dir moves,
/// node names, bootstrap_expect).
pub(in crate::inventory) const MANAGED_CONFIG_KEYS: &[(&str, &str)] = &[
    ("datacenter", "cluster.datacenter"),
    ("domain", "cluster.domain"),
    ("node_name", "the host's name"),
    ("bind_addr", "bind_addr / bind_cidr"),
    ("client_addr", "client_addr"),
    ("log_level", "log_level"),
    ("data_dir", "paths.data_dir"),
    ("encrypt", "cluster.encrypt"),
    ("server", "the host's role"),
    (
        "bootstrap_expect",
        "the number of hosts with role = \"server\"",
    ),
];

impl Ctx<'_> {
    /// A `config` table, converted to JSON, with managed keys rejected.
    pub(in crate::inventory) fn config(&mut self, key: &KeyPath, v: &raw::V) -> Map<String, Json> {
        let table = match v {
            None => return Map::new(),
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                self.bad(key, other, "expected a table of Consul agent settings");
                return Map::new();
            }
        };
        for (name, instead) in MANAGED_CONFIG_KEYS {
            if table.contains_key(*name) {
                self.diag(
                    &key.k(name),
                    format!("consulctl sets this itself from {instead}; remove it from config"),
                );
            }
        }
        let mut out = Map::new();
        for (k, v) in table {
            if let Some(j) = self.json_value(&key.k(k), v) {
                out.insert(k.clone(), j);
            }
        }
        out
    }

    /// `${` / `%{` in a config string: HCL2 reads them as template interpolation and HCL1
    /// does not, so consulctl cannot write them to mean the same to every Consul version.
    pub(in crate::inventory) fn interpolation(
        &mut self,
        key: &KeyPath,
        s: &str,
        what: &str,
    ) -> bool {
        if !(s.contains("${") || s.contains("%{")) {
            return false;
        }
        // A value under a secret-bearing key is not quoted back.
        let secret = key.0.iter().any(|seg| match seg {
            Seg::Key(k) => crate::redact::is_secret_key(k),
            Seg::Index(_) => false,
        });
        let shown = if secret {
            String::new()
        } else {
            format!("= {}: ", json_quote(s))
        };
        self.diag(
            key,
            format!(
                "{shown}{what} holds \"${{\" or \"%{{\" (HCL template interpolation, which \
                 Consul's config parsers read differently); agent settings must be literal \
                 values without \"${{\" and \"%{{\""
            ),
        );
        true
    }

    pub(in crate::inventory) fn json_value(
        &mut self,
        key: &KeyPath,
        v: &toml::Value,
    ) -> Option<Json> {
        Some(match v {
            toml::Value::String(s) => {
                if self.interpolation(key, s, "the value") {
                    return None;
                }
                Json::String(s.clone())
            }
            toml::Value::Integer(n) => Json::from(*n),
            toml::Value::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => Json::Number(n),
                None => {
                    self.bad(key, v, "expected a finite number");
                    return None;
                }
            },
            toml::Value::Boolean(b) => Json::Bool(*b),
            toml::Value::Datetime(d) => Json::String(d.to_string()),
            toml::Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, item) in a.iter().enumerate() {
                    out.push(self.json_value(&key.i(i), item)?);
                }
                Json::Array(out)
            }
            toml::Value::Table(t) => {
                let mut out = Map::new();
                for (k, item) in t {
                    if self.interpolation(&key.k(k), k, "the key") {
                        return None;
                    }
                    out.insert(k.clone(), self.json_value(&key.k(k), item)?);
                }
                Json::Object(out)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::test_support::*;

    #[test]
    fn interpolation_in_config_is_an_input_error() {
        // Line 12 on: a value, a nested value, a key, a host's config, a secret (not quoted).
        let text = doc(
            "[config]\nnode_meta = { rack = \"${env.RACK}\" }\nui_dir = \"/srv/%{ if x }ui\"\n\
             [config.limits]\n\"${k}\" = 1\n\
             [servers.config]\nacl = { tokens = { agent = \"${TOKEN_VALUE}\" } }\n",
        );
        let diags = errs(&text);
        assert_eq!(diags.len(), 4, "{}", render(&inv_path(), &diags));
        let d = check(
            &diags,
            "config.node_meta.rack",
            13,
            "config.node_meta.rack = \"${env.RACK}\": the value holds \"${\" or \"%{\"",
        );
        assert_eq!(d.column, Some(22));
        check(
            &diags,
            "config.ui_dir",
            14,
            "the value holds \"${\" or \"%{\"",
        );
        check(&diags, "config.limits.\"${k}\"", 16, "the key holds");
        let secret = check(
            &diags,
            "servers.config.acl.tokens.agent",
            18,
            "the value holds",
        );
        assert!(
            !secret.to_string().contains("TOKEN_VALUE"),
            "a token's value is not quoted back: {secret}"
        );
        // What is allowed is said, and the file is named.
        assert!(d.to_string().contains("literal values"), "{d}");
        assert!(d.to_string().contains("test.toml:13:22"), "{d}");
        // A lone `$` or `%` is fine.
        ok(&doc("[config]\nnode_meta = { cost = \"$5 or 5%\" }\n"));
    }

    #[test]
    fn config_merges_deeply_cluster_role_host() {
        let text = format!(
            "{}{HEAD}[config]\ndns_config = {{ enable_truncate = true, only_passing = true }}\n\
             retry_join = [\"a\"]\n[servers]\nconfig = {{ dns_config = {{ only_passing = false }}, \
             retry_join = [\"b\"] }}\n",
            s2_with("config = { dns_config = { a_record_limit = 3 } }")
        );
        let c = ok(&text);
        assert_eq!(
            Json::Object(c.hosts[1].extra_config.clone()),
            serde_json::json!({
                "dns_config": { "enable_truncate": true, "only_passing": false, "a_record_limit": 3 },
                "retry_join": ["b"],
            })
        );
        assert_eq!(
            c.hosts[0].extra_config["dns_config"],
            serde_json::json!({ "enable_truncate": true, "only_passing": false })
        );
    }

    #[test]
    fn config_values_pass_through_unchecked() {
        // Whether Consul wants a table there is Consul's business (`consul validate` later).
        let c = ok(&doc("[config]\nports = 5\nstart_join = \"x\"\n"));
        assert_eq!(c.hosts[0].extra_config["ports"], serde_json::json!(5));
    }

    #[test]
    fn config_that_is_not_a_table_is_rejected() {
        let text = format!("{THREE}config = \"ui = true\"\n{HEAD}");
        only(
            &text,
            "config",
            6,
            "config = \"ui = true\": expected a table of Consul agent settings",
        );
    }

    #[test]
    fn managed_config_key_is_rejected() {
        let text = hosts_doc(&s2_with("config = { data_dir = \"/x\" }"));
        only(
            &text,
            "hosts[1].config.data_dir",
            3,
            "consulctl sets this itself from paths.data_dir",
        );
    }
}
