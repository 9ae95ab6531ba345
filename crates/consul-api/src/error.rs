//! Errors of calls and transports.

use crate::request::Method;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Consul answered with a status other than 2xx (and other than 404 where the call
    /// treats 404 as an answer). `body` is the first 200 characters of the answer.
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        method: Method,
        path: String,
        status: u16,
        body: String,
    },
    /// The answer's body is not what the endpoint returns.
    #[error("{path}: cannot decode the answer: {source}")]
    Decode {
        path: String,
        #[source]
        source: DecodeError,
    },
    /// The request did not get an answer.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl Error {
    /// The HTTP status of a [`Error::Status`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A decode error whose path the client fills in.
    pub(crate) fn decode(source: impl Into<DecodeError>) -> Self {
        Error::Decode {
            path: String::new(),
            source: source.into(),
        }
    }
}

/// What is wrong with a body.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Other(String),
}

/// A request got no answer: connection refused, timeout, TLS failure, ssh failure, or a
/// transport that answered the wrong number of responses. The message never holds a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    pub message: String,
    /// The request timed out (as opposed to being refused or failing otherwise).
    pub timed_out: bool,
}

impl TransportError {
    pub fn new(message: impl Into<String>) -> Self {
        TransportError {
            message: message.into(),
            timed_out: false,
        }
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        TransportError {
            message: message.into(),
            timed_out: true,
        }
    }
}
