//! Consul's HTTP API through SSH: a [`consul_api::Transport`] that sends a batch of requests
//! to the local agent of a host in one round trip (`remote/api-requests.sh`). Every Consul
//! read and write of the CLI goes through a [`consul_api::Client`] built here; daemons on
//! hosts use the same client over HTTP.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use consul_api::{Client, Request, Response, Transport, TransportError};

use crate::remote::ssh::Connection;

/// How long one request may take when it sets no blocking wait of its own.
const DEFAULT_MAX_TIME: Duration = Duration::from_secs(10);

/// Requests to Consul through a host's agent, over that host's SSH connection. The token and
/// CA are the connection's (`ssh::ConsulEnv`): they reach the script on stdin.
#[derive(Clone)]
pub struct SshTransport {
    conn: Connection,
    /// `http://10.0.0.1:8500` or `https://127.0.0.1:8501`, as the agent on that host listens.
    base: String,
}

impl SshTransport {
    pub fn new(conn: &Connection, base: impl Into<String>) -> Self {
        SshTransport {
            conn: conn.clone(),
            base: base.into(),
        }
    }
}

/// A client of the agent at `http` (`host:port`, or a URL) on the host of `conn`.
pub fn client(conn: &Connection, http: &str) -> Client {
    let base = if http.contains("://") {
        http.to_string()
    } else {
        format!("http://{http}")
    };
    Client::new(SshTransport::new(conn, base))
}

/// The script's stdin for a batch: two lines a request.
pub fn encode_requests(requests: &[Request]) -> Result<String, TransportError> {
    let mut input = String::new();
    for r in requests {
        if r.path.contains(['\n', ' ', '\r']) {
            return Err(TransportError::new(format!(
                "a request path with a space or newline: {:?}",
                r.path
            )));
        }
        let max = consul_api::request_timeout(DEFAULT_MAX_TIME, r.wait);
        let body = match &r.body {
            Some(b) => B64.encode(b),
            None => "-".into(),
        };
        input.push_str(&format!(
            "{} {} {}\n{}\n",
            r.method.as_str(),
            max.as_secs().max(1),
            r.path,
            body
        ));
    }
    Ok(input)
}

/// Read the script's answers: one per request, in order.
pub fn decode_responses(
    stdout: &str,
    requests: &[Request],
    base: &str,
) -> Result<Vec<Response>, TransportError> {
    let mut answers = Vec::new();
    let mut lines = stdout.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("=== ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        let body = B64
            .decode(lines.next().unwrap_or("").trim())
            .map_err(|e| TransportError::new(format!("an answer that is not base64: {e}")))?;
        let code: u16 = fields.first().and_then(|c| c.parse().ok()).unwrap_or(0);
        let request = requests.get(answers.len());
        if code == 0 {
            let what = request
                .map(|r| format!("{} {base}{}", r.method.as_str(), r.path))
                .unwrap_or_default();
            let msg = String::from_utf8_lossy(&body).trim().to_string();
            let msg = msg.strip_prefix("curl: ").unwrap_or(&msg).to_string();
            return Err(if msg.contains("timed out") {
                TransportError::timeout(format!("{what}: {msg}"))
            } else {
                TransportError::new(format!("{what}: {msg}"))
            });
        }
        let mut response = Response::new(code, body);
        for (name, value) in [
            "X-Consul-Index",
            "X-Consul-KnownLeader",
            "X-Consul-LastContact",
        ]
        .iter()
        .zip(fields.iter().skip(1))
        {
            if *value != "-" {
                response.set_header(name, value);
            }
        }
        answers.push(response);
    }
    if answers.len() != requests.len() {
        return Err(TransportError::new(format!(
            "expected {} answers from the agent, got {}",
            requests.len(),
            answers.len()
        )));
    }
    Ok(answers)
}

impl Transport for SshTransport {
    fn send<'a>(
        &'a self,
        requests: Vec<Request>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Response>, TransportError>> + Send + 'a>> {
        Box::pin(async move {
            let input = encode_requests(&requests)?;
            let (out, stdout) = self
                .conn
                .run_bytes(
                    "consul api",
                    crate::remote::API_REQUESTS,
                    std::slice::from_ref(&self.base),
                    Some(input.as_bytes()),
                )
                .await
                .map_err(|e| TransportError::new(format!("{e:#}")))?;
            if !out.success() {
                return Err(TransportError::new(format!(
                    "{}: API requests failed: {}",
                    self.conn.host(),
                    out.tail(4)
                )));
            }
            decode_responses(&String::from_utf8_lossy(&stdout), &requests, &self.base)
        })
    }

    fn describe(&self) -> String {
        format!("{} via ssh {}", self.base, self.conn.host())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consul_api::Method;
    use std::process::Command;

    fn decode(out: &str, n: usize) -> Result<Vec<Response>, TransportError> {
        let reqs: Vec<Request> = (0..n).map(|i| Request::get(format!("/v1/x{i}"))).collect();
        decode_responses(out, &reqs, "http://127.0.0.1:8500")
    }

    #[test]
    fn requests_travel_as_method_time_path_and_base64_body() {
        let reqs = vec![
            Request::get("/v1/status/leader"),
            Request::new(Method::Put, "/v1/operator/keyring").with_body("{\"Key\":\"s3cr3t\"}"),
        ];
        let input = encode_requests(&reqs).unwrap();
        let lines: Vec<&str> = input.lines().collect();
        assert_eq!(lines[0], "GET 10 /v1/status/leader");
        assert_eq!(lines[1], "-");
        assert_eq!(lines[2], "PUT 10 /v1/operator/keyring");
        assert_eq!(B64.decode(lines[3]).unwrap(), b"{\"Key\":\"s3cr3t\"}");
        assert!(!input.contains("s3cr3t"), "the body is encoded");
    }

    #[test]
    fn a_blocking_wait_gets_time_beyond_the_wait() {
        let mut r = Request::get("/v1/health/service/web?index=7");
        r.wait = Some(Duration::from_secs(60));
        let input = encode_requests(&[r]).unwrap();
        let secs: u64 = input.split(' ').nth(1).unwrap().parse().unwrap();
        assert!(secs > 60, "{input}");
    }

    #[test]
    fn a_path_with_a_space_is_refused() {
        assert!(encode_requests(&[Request::get("/v1/kv/a b")]).is_err());
    }

    #[test]
    fn answers_carry_status_body_and_query_meta() {
        let out = format!(
            "noise\n=== 200 42 true 7\n{}\n=== 404 - - -\n\n",
            B64.encode("[\"a\"]")
        );
        let r = decode(&out, 2).unwrap();
        assert_eq!(r[0].status, 200);
        assert_eq!(r[0].body, b"[\"a\"]");
        assert_eq!(r[0].index, Some(42));
        assert_eq!(r[0].known_leader, Some(true));
        assert_eq!(r[0].last_contact_ms, Some(7));
        assert_eq!(r[1].status, 404);
        assert_eq!(r[1].index, None);
        assert!(r[1].body.is_empty());
    }

    #[test]
    fn no_answer_from_curl_is_a_transport_error_naming_the_request() {
        let out = format!(
            "=== 000 - - -\n{}\n",
            B64.encode("curl: (7) Failed to connect to 127.0.0.1 port 8500: Connection refused")
        );
        let e = decode(&out, 1).unwrap_err();
        assert!(
            e.message.contains("GET http://127.0.0.1:8500/v1/x0"),
            "{}",
            e.message
        );
        assert!(e.message.contains("Connection refused"), "{}", e.message);
        assert!(!e.timed_out);
        let out = format!(
            "=== 000 - - -\n{}\n",
            B64.encode("curl: (28) Operation timed out")
        );
        assert!(decode(&out, 1).unwrap_err().timed_out);
    }

    #[test]
    fn a_missing_answer_is_an_error() {
        let out = format!("=== 200 - - -\n{}\n", B64.encode("1"));
        assert!(decode(&out, 2).is_err());
    }

    /// The script itself against a fake `curl` on PATH: headers, status and bodies come back
    /// as `decode_responses` expects, the body reaches curl intact.
    #[test]
    fn the_script_round_trips_through_a_fake_curl() {
        let dir =
            std::env::temp_dir().join(format!("consulctl-api-requests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let curl = dir.join("curl");
        std::fs::write(
            &curl,
            r#"#!/bin/sh
# fake curl: -D FILE -o FILE --data-binary @FILE, URL last
h= o= d= url= m=GET
while [ $# -gt 0 ]; do
  case $1 in
    -D) h=$2; shift ;;
    -o) o=$2; shift ;;
    -X) m=$2; shift ;;
    --data-binary) d=${2#@}; shift ;;
    -K|--max-time|-w) shift ;;
    -*) ;;
    *) url=$1 ;;
  esac
  shift
done
case $url in
  */refused) echo "curl: (7) Failed to connect" >&2; exit 7 ;;
esac
printf 'HTTP/1.1 200 OK\r\nX-Consul-Index: 99\r\nX-Consul-Knownleader: true\r\n\r\n' >"$h"
if [ -n "$d" ]; then { printf '%s ' "$m"; cat "$d"; } >"$o"; else printf '%s' "$url" >"$o"; fi
printf 200
"#,
        )
        .unwrap();
        Command::new("chmod").arg("+x").arg(&curl).status().unwrap();
        let reqs = vec![
            Request::get("/v1/status/leader"),
            Request::new(Method::Put, "/v1/kv/k").with_body("line1\nline2 with spaces"),
        ];
        let input = encode_requests(&reqs).unwrap();
        let script = format!(
            "ccurl() {{ curl -K /dev/null \"$@\"; }}\n{}",
            crate::remote::API_REQUESTS
        );
        let path = format!(
            "{}:{}",
            dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .arg("sh")
            .arg("http://agent:8500")
            .env("PATH", path)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let r = decode_responses(&text, &reqs, "http://agent:8500").unwrap();
        assert_eq!(r[0].status, 200);
        assert_eq!(r[0].index, Some(99));
        assert_eq!(r[0].known_leader, Some(true));
        assert_eq!(
            String::from_utf8_lossy(&r[0].body),
            "http://agent:8500/v1/status/leader"
        );
        assert_eq!(
            String::from_utf8_lossy(&r[1].body),
            "PUT line1\nline2 with spaces"
        );
        let refused = vec![Request::get("/refused")];
        let input = encode_requests(&refused).unwrap();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .arg("sh")
            .arg("http://agent:8500")
            .env("PATH", format!("{}:/usr/bin:/bin", dir.display()))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let e = decode_responses(
            &String::from_utf8_lossy(&out.stdout),
            &refused,
            "http://agent:8500",
        )
        .unwrap_err();
        assert!(e.message.contains("Failed to connect"), "{}", e.message);
        std::fs::remove_dir_all(&dir).ok();
    }
}
