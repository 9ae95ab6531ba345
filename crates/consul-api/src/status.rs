//! `/v1/status`: the raft leader and peers as the agent's server sees them.

use crate::client::{parse_json, Call};
use crate::error::Error;
use crate::request::{Request, Response};

/// `GET /v1/status/leader`: the leader's raft address `IP:port`, None when there is none
/// (Consul answers `""`).
pub fn leader() -> Call<Option<String>> {
    Call::new(Request::get("/v1/status/leader"), parse_leader)
}

fn parse_leader(r: &Response) -> Result<Option<String>, Error> {
    let s: String = parse_json(r)?;
    Ok(Some(s).filter(|s| !s.is_empty()))
}

/// `GET /v1/status/peers`: the raft addresses of the voters.
pub fn peers() -> Call<Vec<String>> {
    Call::json(Request::get("/v1/status/peers"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Response;

    #[test]
    fn leader_and_peers_parse() {
        let c = leader();
        assert_eq!(c.request.line(), "GET /v1/status/leader");
        assert_eq!(
            c.finish(&Response::new(200, "\"10.0.0.1:8300\""))
                .unwrap()
                .as_deref(),
            Some("10.0.0.1:8300")
        );
        assert_eq!(c.finish(&Response::new(200, "\"\"")).unwrap(), None);
        assert_eq!(
            c.finish(&Response::new(200, "\"[fd00::1]:8300\""))
                .unwrap()
                .as_deref(),
            Some("[fd00::1]:8300")
        );
        let p = peers()
            .finish(&Response::new(200, r#"["10.0.0.1:8300","10.0.0.2:8300"]"#))
            .unwrap();
        assert_eq!(p, ["10.0.0.1:8300", "10.0.0.2:8300"]);
    }
}
