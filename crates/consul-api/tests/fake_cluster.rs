//! A server removal as the CLI does it, against a scripted cluster: read leader, raft
//! configuration and members in one batch, check the quorum, then remove the peer.

use std::collections::BTreeSet;
use std::net::IpAddr;

use consul_api::quorum::{quorum_after_removal, raft_addr};
use consul_api::testing::{block_on, FakeTransport};
use consul_api::{agent, operator, status, Client};

fn fixture() -> FakeTransport {
    FakeTransport::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cluster-3-servers.json"
    ))
    .unwrap()
    .named("ssh server1")
}

#[test]
fn removing_the_failed_server_is_allowed_and_sends_the_right_requests() {
    let fake = fixture();
    let client = Client::new(fake.clone());
    let (leader, raft, members) = block_on(client.call3(
        status::leader(),
        operator::raft_configuration(true),
        agent::members(false),
    ));
    assert_eq!(leader.unwrap().as_deref(), Some("10.0.0.1:8300"));
    let (raft, members) = (raft.unwrap(), members.unwrap());

    let ip: IpAddr = "10.0.0.3".parse().unwrap();
    let check = quorum_after_removal(
        &raft.servers,
        &members,
        &["server3".to_string()],
        &BTreeSet::from([ip]),
    );
    assert_eq!(check.problem(), None, "{check:?}");

    block_on(client.call(operator::raft_remove_peer_by_address(&raft_addr(ip)))).unwrap();
    block_on(client.call(agent::force_leave("server3", true))).unwrap();
    assert_eq!(fake.batches(), [3, 1, 1]);
    assert_eq!(
        fake.sent()[3..],
        [
            "DELETE /v1/operator/raft/peer?address=10.0.0.3%3A8300",
            "PUT /v1/agent/force-leave/server3?prune",
        ]
    );
}

#[test]
fn removing_a_live_server_while_another_is_failed_is_refused() {
    let client = Client::new(fixture());
    let (raft, members) =
        block_on(client.call2(operator::raft_configuration(true), agent::members(false)));
    let check = quorum_after_removal(
        &raft.unwrap().servers,
        &members.unwrap(),
        &["server2".to_string()],
        &BTreeSet::new(),
    );
    assert_eq!(
        check.problem().as_deref(),
        Some("removing server2 would leave 1 alive voter of 2; quorum of the remaining 2 needs 2")
    );
}
