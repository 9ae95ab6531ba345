//! The one error type. It is printed once, at the top, with its cause chain.
//!
//! Exit codes (documented in README.md):
//! - 0: everything succeeded
//! - 1: the run failed on some hosts, or the cluster did not verify
//! - 2: bad input or usage, or a refusal (the cluster is locked by another run, the change
//!   would break quorum): nothing was touched

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// Bad input (inventory, flags, files). Exit 2. No host was touched.
    Input(anyhow::Error),
    /// Refused before touching anything: the cluster is locked by another run, or the change
    /// would break quorum. Exit 2.
    Locked(anyhow::Error),
    /// Some hosts failed; the recap has already been printed. Exit 1.
    HostsFailed { failed: usize, total: usize },
    /// Anything else that stopped the run. Exit 1.
    Runtime(anyhow::Error),
}

impl Error {
    pub fn input(e: impl Into<anyhow::Error>) -> Self {
        Error::Input(e.into())
    }

    pub fn code(&self) -> i32 {
        match self {
            Error::Input(_) | Error::Locked(_) => 2,
            Error::HostsFailed { .. } | Error::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input(e) | Error::Locked(e) | Error::Runtime(e) => {
                write!(f, "{e}")?;
                for cause in e.chain().skip(1) {
                    write!(f, "\n  caused by: {cause}")?;
                }
                Ok(())
            }
            Error::HostsFailed { failed, total } => {
                write!(f, "{failed} of {total} hosts failed (see the recap above)")
            }
        }
    }
}

impl From<anyhow::Error> for Error {
    fn from(e: anyhow::Error) -> Self {
        Error::Runtime(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
