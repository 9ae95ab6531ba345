//! The finding codes: stable identifiers that `doctor` prints (`PROBLEM <code>`) and writes
//! in its JSON output.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a finding is about. Serialized (and displayed) as its kebab-case string, such as
/// `"no-leader"`: those strings are part of `doctor`'s output and never change. Declared most
/// severe first: [`FindingCode::ALL`] is the order [`diagnose`](super::diagnose) sorts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum FindingCode {
    #[serde(rename = "no-leader")]
    NoLeader,
    #[serde(rename = "protocol-version")]
    ProtocolVersion,
    #[serde(rename = "node-id-conflict")]
    NodeIdConflict,
    #[serde(rename = "gossip-key")]
    GossipKey,
    #[serde(rename = "encryption-mismatch")]
    EncryptionMismatch,
    #[serde(rename = "datacenter-mismatch")]
    DatacenterMismatch,
    #[serde(rename = "bind-address")]
    BindAddress,
    #[serde(rename = "port-in-use")]
    PortInUse,
    #[serde(rename = "data-dir")]
    DataDir,
    #[serde(rename = "crash-loop")]
    CrashLoop,
    #[serde(rename = "agent-down")]
    AgentDown,
    #[serde(rename = "no-agent")]
    NoAgent,
    #[serde(rename = "registrar-down")]
    RegistrarDown,
    #[serde(rename = "lb-down")]
    LbDown,
    #[serde(rename = "lb-failing")]
    LbFailing,
    #[serde(rename = "stale-peers")]
    StalePeers,
    #[serde(rename = "missing-peers")]
    MissingPeers,
    #[serde(rename = "unknown-members")]
    UnknownMembers,
    #[serde(rename = "not-member")]
    NotMember,
    #[serde(rename = "clock-skew")]
    ClockSkew,
    #[serde(rename = "registrar-settings")]
    RegistrarSettings,
    #[serde(rename = "external-check-never-run")]
    ExternalCheckNeverRun,
    #[serde(rename = "unreachable")]
    Unreachable,
    #[serde(rename = "sudo-password")]
    SudoPassword,
}

impl FindingCode {
    /// Every code, most severe first.
    pub const ALL: [FindingCode; 24] = [
        FindingCode::NoLeader,
        FindingCode::ProtocolVersion,
        FindingCode::NodeIdConflict,
        FindingCode::GossipKey,
        FindingCode::EncryptionMismatch,
        FindingCode::DatacenterMismatch,
        FindingCode::BindAddress,
        FindingCode::PortInUse,
        FindingCode::DataDir,
        FindingCode::CrashLoop,
        FindingCode::AgentDown,
        FindingCode::NoAgent,
        FindingCode::RegistrarDown,
        FindingCode::LbDown,
        FindingCode::LbFailing,
        FindingCode::StalePeers,
        FindingCode::MissingPeers,
        FindingCode::UnknownMembers,
        FindingCode::NotMember,
        FindingCode::ClockSkew,
        FindingCode::RegistrarSettings,
        FindingCode::ExternalCheckNeverRun,
        FindingCode::Unreachable,
        FindingCode::SudoPassword,
    ];

    /// The code as `doctor` prints it (the same string as in the JSON output).
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::NoLeader => "no-leader",
            FindingCode::ProtocolVersion => "protocol-version",
            FindingCode::NodeIdConflict => "node-id-conflict",
            FindingCode::GossipKey => "gossip-key",
            FindingCode::EncryptionMismatch => "encryption-mismatch",
            FindingCode::DatacenterMismatch => "datacenter-mismatch",
            FindingCode::BindAddress => "bind-address",
            FindingCode::PortInUse => "port-in-use",
            FindingCode::DataDir => "data-dir",
            FindingCode::CrashLoop => "crash-loop",
            FindingCode::AgentDown => "agent-down",
            FindingCode::NoAgent => "no-agent",
            FindingCode::RegistrarDown => "registrar-down",
            FindingCode::LbDown => "lb-down",
            FindingCode::LbFailing => "lb-failing",
            FindingCode::StalePeers => "stale-peers",
            FindingCode::MissingPeers => "missing-peers",
            FindingCode::UnknownMembers => "unknown-members",
            FindingCode::NotMember => "not-member",
            FindingCode::ClockSkew => "clock-skew",
            FindingCode::RegistrarSettings => "registrar-settings",
            FindingCode::ExternalCheckNeverRun => "external-check-never-run",
            FindingCode::Unreachable => "unreachable",
            FindingCode::SudoPassword => "sudo-password",
        }
    }
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for FindingCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for FindingCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_code_has_its_own_string_and_round_trips_through_json() {
        let strings: BTreeSet<&str> = FindingCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            strings.len(),
            FindingCode::ALL.len(),
            "two codes share a string"
        );
        for code in FindingCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{code}\""), "{code:?}");
            let back: FindingCode = serde_json::from_str(&json).unwrap();
            assert_eq!(back, code);
            assert!(code
                .as_str()
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '-'));
        }
    }

    #[test]
    fn all_holds_every_variant_in_declaration_order() {
        // `as_str` matches exhaustively, so every variant has a string; ALL must hold every
        // variant too (it is the severity order), each once, in declaration order.
        for (i, code) in FindingCode::ALL.into_iter().enumerate() {
            assert_eq!(code as usize, i, "{code:?}");
        }
        assert_eq!(
            FindingCode::SudoPassword as usize + 1,
            FindingCode::ALL.len()
        );
    }

    #[test]
    fn codes_read_as_doctor_has_always_printed_them() {
        let expected = [
            "no-leader",
            "protocol-version",
            "node-id-conflict",
            "gossip-key",
            "encryption-mismatch",
            "datacenter-mismatch",
            "bind-address",
            "port-in-use",
            "data-dir",
            "crash-loop",
            "agent-down",
            "no-agent",
            "registrar-down",
            "lb-down",
            "lb-failing",
            "stale-peers",
            "missing-peers",
            "unknown-members",
            "not-member",
            "clock-skew",
            "registrar-settings",
            "external-check-never-run",
            "unreachable",
            "sudo-password",
        ];
        let actual: Vec<&str> = FindingCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(actual, expected);
    }
}
