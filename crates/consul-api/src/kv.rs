//! `/v1/kv`: read, write and delete keys; values are decoded from base64.
//!
//! [`KvPair`]'s `Debug` shows a value's length, not the value.

use std::fmt;

use base64::Engine as _;
use serde::Deserialize;

use crate::client::{parse_bool, Call};
use crate::error::{DecodeError, Error};
use crate::request::{PathBuilder, Request, Response};

/// A key and its value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KvPair {
    pub key: String,
    /// None for a key without value (Consul's `null`, e.g. a "folder" key).
    pub value: Option<Vec<u8>>,
    pub flags: u64,
    pub session: Option<String>,
    pub lock_index: u64,
    pub create_index: u64,
    pub modify_index: u64,
}

impl KvPair {
    /// The value as UTF-8 text; None when absent or not UTF-8.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(self.value.as_deref()?).ok()
    }
}

impl fmt::Debug for KvPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KvPair")
            .field("key", &self.key)
            .field("value_len", &self.value.as_ref().map(Vec::len))
            .field("flags", &self.flags)
            .field("session", &self.session)
            .field("lock_index", &self.lock_index)
            .field("create_index", &self.create_index)
            .field("modify_index", &self.modify_index)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(default, rename_all = "PascalCase")]
#[derive(Default)]
struct RawPair {
    key: String,
    value: Option<String>,
    flags: u64,
    session: Option<String>,
    lock_index: u64,
    create_index: u64,
    modify_index: u64,
}

fn decode_pairs(r: &Response) -> Result<Vec<KvPair>, Error> {
    if r.status == 404 {
        return Ok(Vec::new());
    }
    let raw: Vec<RawPair> = crate::client::parse_json(r)?;
    raw.into_iter()
        .map(|p| {
            let value = match p.value {
                Some(v) => Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(v)
                        .map_err(|e| {
                            Error::decode(DecodeError::Other(format!(
                                "{}: value is not base64: {e}",
                                p.key
                            )))
                        })?,
                ),
                None => None,
            };
            Ok(KvPair {
                key: p.key,
                value,
                flags: p.flags,
                session: p.session.filter(|s| !s.is_empty()),
                lock_index: p.lock_index,
                create_index: p.create_index,
                modify_index: p.modify_index,
            })
        })
        .collect()
}

fn key_path(key: &str) -> PathBuilder {
    PathBuilder::new("/v1/kv").path(key)
}

/// `GET /v1/kv/<key>`; None when the key does not exist (404).
pub fn get(key: &str) -> Call<Option<KvPair>> {
    let mut c = Call::new(Request::get(key_path(key).build()), |r| {
        Ok(decode_pairs(r)?.into_iter().next())
    });
    c.accept = &[404];
    c
}

/// `GET /v1/kv/<prefix>?recurse`: every key under `prefix` (empty when none).
pub fn list(prefix: &str) -> Call<Vec<KvPair>> {
    let mut c = Call::new(
        Request::get(key_path(prefix).flag("recurse").build()),
        decode_pairs,
    );
    c.accept = &[404];
    c
}

/// `PUT /v1/kv/<key>` with the raw value; Consul answers `true`.
pub fn put(key: &str, value: impl Into<Vec<u8>>) -> Call<bool> {
    Call::new(
        Request::put(key_path(key).build()).with_body(value),
        parse_bool,
    )
}

/// `PUT /v1/kv/<key>?cas=<index>`: write only if the key's ModifyIndex is still `index`
/// (0: only if the key does not exist); `false` when it was not written.
pub fn put_cas(key: &str, value: impl Into<Vec<u8>>, index: u64) -> Call<bool> {
    Call::new(
        Request::put(key_path(key).param("cas", index).build()).with_body(value),
        parse_bool,
    )
}

/// `DELETE /v1/kv/<key>`; Consul answers `true`.
pub fn delete(key: &str) -> Call<bool> {
    Call::new(Request::delete(key_path(key).build()), parse_bool)
}

/// `DELETE /v1/kv/<prefix>?recurse`.
pub fn delete_tree(prefix: &str) -> Call<bool> {
    Call::new(
        Request::delete(key_path(prefix).flag("recurse").build()),
        parse_bool,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, FakeTransport};
    use crate::Client;

    const PAIR: &str = r#"[{"LockIndex":0,"Key":"config/app one","Flags":42,"Value":"aGVsbG8gd29ybGQ=","CreateIndex":100,"ModifyIndex":200}]"#;

    #[test]
    fn values_are_decoded_and_missing_keys_are_none() {
        let fake = FakeTransport::new()
            .on("GET", "/v1/kv/config/app%20one", 200, PAIR)
            .on("GET", "/v1/kv/missing", 404, "");
        let c = Client::new(fake);
        let p = block_on(c.call(get("config/app one"))).unwrap().unwrap();
        assert_eq!(p.value_str(), Some("hello world"));
        assert_eq!(
            (
                p.flags,
                p.create_index,
                p.modify_index,
                p.session.as_deref()
            ),
            (42, 100, 200, None)
        );
        assert!(!format!("{p:?}").contains("hello"));
        assert_eq!(block_on(c.call(get("missing"))).unwrap(), None);
    }

    #[test]
    fn folders_and_lists() {
        let body = r#"[{"Key":"config/","Value":null,"Flags":0,"CreateIndex":1,"ModifyIndex":1,"LockIndex":0},
                       {"Key":"config/a","Value":"MQ==","Session":"adf4238a-882b-9ddc-4a9d-5b6758e4159e","Flags":0,"CreateIndex":2,"ModifyIndex":3,"LockIndex":1}]"#;
        let l = list("config/").finish(&Response::new(200, body)).unwrap();
        assert_eq!(l.len(), 2);
        assert_eq!(l[0].value, None);
        assert_eq!(l[1].value.as_deref(), Some(&b"1"[..]));
        assert_eq!(
            l[1].session.as_deref(),
            Some("adf4238a-882b-9ddc-4a9d-5b6758e4159e")
        );
        assert!(list("none/")
            .finish(&Response::new(404, ""))
            .unwrap()
            .is_empty());
        assert_eq!(list("config/").request.path, "/v1/kv/config/?recurse");
    }

    #[test]
    fn bad_base64_is_a_decode_error() {
        let e = get("k")
            .finish(&Response::new(200, r#"[{"Key":"k","Value":"***"}]"#))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("/v1/kv/k: cannot decode the answer: k: value is not base64"),
            "{e}"
        );
    }

    #[test]
    fn writes_and_deletes() {
        let fake = FakeTransport::new()
            .on("PUT", "/v1/kv/a/b", 200, "true")
            .on("PUT", "/v1/kv/a/b?cas=0", 200, "false")
            .on("DELETE", "/v1/kv/a/b", 200, "true")
            .on("DELETE", "/v1/kv/a?recurse", 200, "true");
        let c = Client::new(fake.clone());
        assert!(block_on(c.call(put("a/b", "v1"))).unwrap());
        assert!(!block_on(c.call(put_cas("a/b", "v2", 0))).unwrap());
        assert!(block_on(c.call(delete("a/b"))).unwrap());
        assert!(block_on(c.call(delete_tree("a"))).unwrap());
        let bodies: Vec<String> = fake.requests().iter().map(Request::body_text).collect();
        assert_eq!(bodies, ["v1", "v2", "", ""]);
    }
}
