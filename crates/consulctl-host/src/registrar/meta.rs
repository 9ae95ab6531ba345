//! Service meta from a container's settings: every `SERVICE_<KEY>` (and `SERVICE_<port>_<KEY>`,
//! which wins) that is not a name, ID, tags, ignore or check setting becomes meta `<key>`,
//! lowercased, when Consul allows it.

use std::collections::BTreeMap;

use super::conventions::{
    Problems, META_CONTAINER, META_CONTAINER_ID, META_HASH, META_MANAGED_BY, META_NODE,
};
use super::keys::Keys;

/// Consul's limits on service meta.
const MAX_KEY_LEN: usize = 128;
const MAX_VALUE_LEN: usize = 512;
const MAX_PAIRS: usize = 64;
/// The keys the registrar adds itself.
const OWNER_KEYS: [&str; 5] = [
    META_MANAGED_BY,
    META_NODE,
    META_CONTAINER,
    META_CONTAINER_ID,
    META_HASH,
];

/// Whether Consul accepts `key` as a meta key: 1-128 letters, digits, `_` and `-`, not
/// starting with `consul-`.
pub fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_LEN).contains(&key.len())
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !key.starts_with("consul-")
}

/// The meta of container port `port` from the settings (without the owner keys), with a
/// problem for each key left out.
pub fn user_meta(keys: &Keys, port: u16, problems: &mut Problems) -> BTreeMap<String, String> {
    let mut meta = BTreeMap::new();
    for (word, setting) in keys.meta(port) {
        let key = word.to_ascii_lowercase();
        let refuse = if !valid_key(&key) {
            Some(format!(
                "meta key {key:?} is not allowed: Consul's meta keys are 1-{MAX_KEY_LEN} letters, \
                 digits, _ and -, not starting with consul-"
            ))
        } else if setting.value.len() > MAX_VALUE_LEN {
            Some(format!(
                "the value is {} bytes: Consul's meta values are at most {MAX_VALUE_LEN}",
                setting.value.len()
            ))
        } else if OWNER_KEYS.contains(&key.as_str()) {
            Some(format!("meta key {key} is the registrar's own"))
        } else if meta.len() + OWNER_KEYS.len() >= MAX_PAIRS {
            Some(format!(
                "Consul allows {MAX_PAIRS} meta keys, {} of them the registrar's: left out",
                OWNER_KEYS.len()
            ))
        } else {
            None
        };
        match refuse {
            Some(message) => problems.push(setting.key.clone(), message),
            None => {
                meta.insert(key, setting.value.clone());
            }
        }
    }
    meta
}
