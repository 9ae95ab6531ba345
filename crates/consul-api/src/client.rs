//! The transport trait, typed calls and the client that sends them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::error::{Error, TransportError};
use crate::request::{QueryMeta, QueryOptions, Request, Response};

/// A boxed, sendable future (what [`Transport::send`] returns).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Sends batches of requests to one Consul agent.
///
/// `send` answers one [`Response`] per request, in order; any HTTP status is a response,
/// not an error. An `Err` means the batch got no answer. The transport adds the ACL token
/// (if any) and must keep it out of its error messages and of `describe`.
pub trait Transport: Send + Sync {
    fn send<'a>(
        &'a self,
        requests: Vec<Request>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Response>, TransportError>> + Send + 'a>>;

    /// Where requests go, for messages: `http://10.0.0.1:8500`, `ssh server1`.
    fn describe(&self) -> String;
}

/// One endpoint call: the request and how to read its answer.
pub struct Call<T> {
    pub request: Request,
    pub parse: fn(&Response) -> Result<T, Error>,
    /// Non-2xx statuses that go to `parse` instead of being errors (404 of a KV read, 429 of
    /// an unhealthy autopilot).
    pub accept: &'static [u16],
}

impl<T> Call<T> {
    pub fn new(request: Request, parse: fn(&Response) -> Result<T, Error>) -> Self {
        Call {
            request,
            parse,
            accept: &[],
        }
    }

    /// Apply query options (blocking index, wait, stale, filter, ...) to the request.
    pub fn with_options(mut self, options: &QueryOptions) -> Self {
        self.request = self.request.with_options(options);
        self
    }

    /// Read the answer to this call's request: status check, then `parse`.
    pub fn finish(&self, response: &Response) -> Result<T, Error> {
        finish(&self.request, self.parse, self.accept, response)
    }
}

impl<T: DeserializeOwned> Call<T> {
    /// A call whose answer is JSON decoding to `T`.
    pub fn json(request: Request) -> Self {
        Call::new(request, parse_json::<T>)
    }
}

impl<T> std::fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("request", &self.request)
            .field("accept", &self.accept)
            .finish()
    }
}

fn finish<T>(
    request: &Request,
    parse: fn(&Response) -> Result<T, Error>,
    accept: &[u16],
    response: &Response,
) -> Result<T, Error> {
    if !(response.is_success() || accept.contains(&response.status)) {
        return Err(Error::Status {
            method: request.method,
            path: request.path.clone(),
            status: response.status,
            body: response.body_excerpt(),
        });
    }
    parse(response).map_err(|e| match e {
        Error::Decode { path, source } if path.is_empty() => Error::Decode {
            path: request.path.clone(),
            source,
        },
        e => e,
    })
}

/// JSON body decoding to `T`.
pub fn parse_json<T: DeserializeOwned>(r: &Response) -> Result<T, Error> {
    serde_json::from_slice(&r.body).map_err(Error::decode)
}

/// Any successful answer, body ignored.
pub fn parse_unit(_: &Response) -> Result<(), Error> {
    Ok(())
}

/// A `true` / `false` body (KV put, catalog deregister, token delete).
pub fn parse_bool(r: &Response) -> Result<bool, Error> {
    parse_json(r)
}

/// A client of one Consul agent through a [`Transport`]. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    transport: Arc<dyn Transport>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("transport", &self.transport.describe())
            .finish()
    }
}

impl Client {
    pub fn new(transport: impl Transport + 'static) -> Self {
        Client {
            transport: Arc::new(transport),
        }
    }

    pub fn from_arc(transport: Arc<dyn Transport>) -> Self {
        Client { transport }
    }

    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Where the client's requests go.
    pub fn describe(&self) -> String {
        self.transport.describe()
    }

    /// Send requests as one batch; exactly one response per request or an error.
    pub async fn send(&self, requests: Vec<Request>) -> Result<Vec<Response>, TransportError> {
        let n = requests.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        let responses = self.transport.send(requests).await?;
        if responses.len() != n {
            return Err(TransportError::new(format!(
                "{}: {} responses to {n} requests",
                self.transport.describe(),
                responses.len()
            )));
        }
        Ok(responses)
    }

    pub async fn call<T>(&self, call: Call<T>) -> Result<T, Error> {
        let responses = self.send(vec![call.request.clone()]).await?;
        call.finish(&responses[0])
    }

    /// As [`Client::call`], with the answer's [`QueryMeta`] (for blocking queries).
    pub async fn call_with_meta<T>(&self, call: Call<T>) -> Result<(T, QueryMeta), Error> {
        let responses = self.send(vec![call.request.clone()]).await?;
        let value = call.finish(&responses[0])?;
        Ok((value, responses[0].meta()))
    }

    /// Two calls in one transport round trip.
    pub async fn call2<A, B>(
        &self,
        a: Call<A>,
        b: Call<B>,
    ) -> (Result<A, Error>, Result<B, Error>) {
        match self.send(vec![a.request.clone(), b.request.clone()]).await {
            Ok(r) => (a.finish(&r[0]), b.finish(&r[1])),
            Err(e) => (Err(e.clone().into()), Err(e.into())),
        }
    }

    /// Three calls in one transport round trip.
    pub async fn call3<A, B, C>(
        &self,
        a: Call<A>,
        b: Call<B>,
        c: Call<C>,
    ) -> (Result<A, Error>, Result<B, Error>, Result<C, Error>) {
        let requests = vec![a.request.clone(), b.request.clone(), c.request.clone()];
        match self.send(requests).await {
            Ok(r) => (a.finish(&r[0]), b.finish(&r[1]), c.finish(&r[2])),
            Err(e) => (Err(e.clone().into()), Err(e.clone().into()), Err(e.into())),
        }
    }

    /// Four calls in one transport round trip.
    pub async fn call4<A, B, C, D>(
        &self,
        a: Call<A>,
        b: Call<B>,
        c: Call<C>,
        d: Call<D>,
    ) -> (
        Result<A, Error>,
        Result<B, Error>,
        Result<C, Error>,
        Result<D, Error>,
    ) {
        let requests = vec![
            a.request.clone(),
            b.request.clone(),
            c.request.clone(),
            d.request.clone(),
        ];
        match self.send(requests).await {
            Ok(r) => (
                a.finish(&r[0]),
                b.finish(&r[1]),
                c.finish(&r[2]),
                d.finish(&r[3]),
            ),
            Err(e) => (
                Err(e.clone().into()),
                Err(e.clone().into()),
                Err(e.clone().into()),
                Err(e.into()),
            ),
        }
    }

    /// Calls of one type in one transport round trip; results in order.
    pub async fn call_all<T>(&self, calls: Vec<Call<T>>) -> Vec<Result<T, Error>> {
        let requests = calls.iter().map(|c| c.request.clone()).collect();
        match self.send(requests).await {
            Ok(r) => calls.iter().zip(&r).map(|(c, r)| c.finish(r)).collect(),
            Err(e) => calls.iter().map(|_| Err(e.clone().into())).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, FakeTransport};
    use crate::{agent, operator, status};

    #[test]
    fn call2_and_call3_send_one_batch() {
        let fake = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"10.0.0.1:8300\"")
            .on(
                "GET",
                "/v1/operator/raft/configuration?stale",
                200,
                r#"{"Servers":[{"ID":"a","Node":"s1","Address":"10.0.0.1:8300","Leader":true,"Voter":true}],"Index":9}"#,
            )
            .on("GET", "/v1/agent/members", 200, r#"[{"Name":"s1","Addr":"10.0.0.1","Port":8301,"Status":1,"Tags":{"role":"consul"}}]"#);
        let client = Client::new(fake.clone());
        let (leader, raft) =
            block_on(client.call2(status::leader(), operator::raft_configuration(true)));
        assert_eq!(leader.unwrap().as_deref(), Some("10.0.0.1:8300"));
        assert_eq!(raft.unwrap().servers[0].node, "s1");
        assert_eq!(fake.batches(), vec![2]);

        let (l, r, m) = block_on(client.call3(
            status::leader(),
            operator::raft_configuration(true),
            agent::members(false),
        ));
        assert!(l.is_ok() && r.is_ok());
        assert_eq!(m.unwrap()[0].role(), "server");
        assert_eq!(fake.batches(), vec![2, 3]);
        assert_eq!(
            fake.sent(),
            [
                "GET /v1/status/leader",
                "GET /v1/operator/raft/configuration?stale",
                "GET /v1/status/leader",
                "GET /v1/operator/raft/configuration?stale",
                "GET /v1/agent/members",
            ]
        );
    }

    #[test]
    fn call4_sends_one_batch_and_keeps_each_answer() {
        let fake = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"10.0.0.1:8300\"")
            .on(
                "GET",
                "/v1/operator/raft/configuration?stale",
                200,
                r#"{"Servers":[]}"#,
            )
            .on("GET", "/v1/agent/members", 200, "[]")
            .on(
                "GET",
                "/v1/operator/autopilot/health",
                429,
                r#"{"Healthy":false,"FailureTolerance":0,"Servers":[]}"#,
            );
        let client = Client::new(fake.clone());
        let (l, r, m, a) = block_on(client.call4(
            status::leader(),
            operator::raft_configuration(true),
            agent::members(false),
            operator::autopilot_health(),
        ));
        assert_eq!(l.unwrap().as_deref(), Some("10.0.0.1:8300"));
        assert!(r.unwrap().servers.is_empty());
        assert!(m.unwrap().is_empty());
        assert!(!a.unwrap().healthy);
        assert_eq!(fake.batches(), vec![4]);
        let fake = FakeTransport::new().fail_all("ssh: refused");
        let (l, _, _, a) = block_on(Client::new(fake).call4(
            status::leader(),
            status::peers(),
            agent::members(false),
            operator::autopilot_health(),
        ));
        assert!(matches!(l, Err(Error::Transport(_))));
        assert!(matches!(a, Err(Error::Transport(_))));
    }

    #[test]
    fn one_failing_call_of_a_batch_does_not_fail_the_others() {
        let fake = FakeTransport::new()
            .on("GET", "/v1/status/leader", 200, "\"\"")
            .on(
                "GET",
                "/v1/operator/raft/configuration",
                500,
                "No cluster leader",
            );
        let client = Client::new(fake);
        let (leader, raft) =
            block_on(client.call2(status::leader(), operator::raft_configuration(false)));
        assert_eq!(leader.unwrap(), None);
        let e = raft.unwrap_err();
        assert_eq!(e.status(), Some(500));
        assert_eq!(
            e.to_string(),
            "GET /v1/operator/raft/configuration: HTTP 500: No cluster leader"
        );
    }

    #[test]
    fn a_transport_failure_fails_every_call_of_the_batch() {
        let fake = FakeTransport::new().fail_all("ssh server1: connection refused");
        let client = Client::new(fake);
        let (a, b, c) =
            block_on(client.call3(status::leader(), status::peers(), agent::members(false)));
        for e in [a.unwrap_err(), b.unwrap_err(), c.unwrap_err()] {
            assert!(matches!(e, Error::Transport(_)), "{e:?}");
            assert_eq!(e.to_string(), "ssh server1: connection refused");
        }
    }

    #[test]
    fn undecodable_bodies_name_the_path() {
        let fake = FakeTransport::new().on("GET", "/v1/agent/members", 200, "<html>proxy</html>");
        let e = block_on(Client::new(fake).call(agent::members(false))).unwrap_err();
        assert!(
            matches!(&e, Error::Decode { path, .. } if path == "/v1/agent/members"),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with("/v1/agent/members: cannot decode the answer: "),
            "{e}"
        );
    }

    #[test]
    fn unknown_requests_get_404_errors() {
        let e = block_on(Client::new(FakeTransport::new()).call(status::peers())).unwrap_err();
        assert_eq!(e.status(), Some(404));
    }

    #[test]
    fn a_transport_answering_too_few_responses_is_an_error() {
        struct Short;
        impl Transport for Short {
            fn send<'a>(
                &'a self,
                _: Vec<Request>,
            ) -> BoxFuture<'a, Result<Vec<Response>, TransportError>> {
                Box::pin(std::future::ready(Ok(vec![Response::new(200, "\"\"")])))
            }
            fn describe(&self) -> String {
                "short".into()
            }
        }
        let (a, b) = block_on(Client::new(Short).call2(status::leader(), status::peers()));
        assert_eq!(
            a.unwrap_err().to_string(),
            "short: 1 responses to 2 requests"
        );
        assert!(b.is_err());
    }

    #[test]
    fn call_all_and_meta() {
        let fake = FakeTransport::new()
            .on_indexed(
                "GET",
                "/v1/catalog/services?index=5&wait=10s",
                200,
                r#"{"consul":[]}"#,
                6,
            )
            .on(
                "DELETE",
                "/v1/operator/raft/peer?address=10.0.0.2%3A8300",
                200,
                "",
            )
            .on(
                "DELETE",
                "/v1/operator/raft/peer?address=10.0.0.3%3A8300",
                403,
                "Permission denied",
            );
        let client = Client::new(fake.clone());
        let (services, meta) = block_on(client.call_with_meta(
            crate::catalog::services().with_options(&QueryOptions::blocking(
                5,
                std::time::Duration::from_secs(10),
            )),
        ))
        .unwrap();
        assert!(services.contains_key("consul"));
        assert_eq!(meta.last_index, 6);
        let r = block_on(client.call_all(vec![
            operator::raft_remove_peer_by_address("10.0.0.2:8300"),
            operator::raft_remove_peer_by_address("10.0.0.3:8300"),
        ]));
        assert!(r[0].is_ok());
        assert_eq!(r[1].as_ref().unwrap_err().status(), Some(403));
        assert_eq!(fake.batches(), vec![1, 2]);
    }
}
