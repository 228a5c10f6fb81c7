//! Errors of loading a component and of calling one. Each names the
//! component (its name in the broker config) and, for loading, the file.

use std::path::PathBuf;

use crate::check::{CheckError, World};

/// A component could not be loaded; the broker must not start (or must
/// keep the previous set on reload).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("component {name} ({}): {message}", path.display())]
    Limits {
        name: String,
        path: PathBuf,
        message: String,
    },
    #[error("component {name} ({}): cannot read the file", path.display())]
    Read {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("component {name} ({}): {source}", path.display())]
    Check {
        name: String,
        path: PathBuf,
        source: CheckError,
    },
    #[error("component {name} ({}): implements {found}, but is configured as {expected}", path.display())]
    WrongWorld {
        name: String,
        path: PathBuf,
        found: World,
        expected: World,
    },
    #[error("component {name} ({}): does not fit this host: {message}", path.display())]
    Link {
        name: String,
        path: PathBuf,
        message: String,
    },
    #[error("component {name} ({}): its first instance failed: {source}", path.display())]
    Instantiate {
        name: String,
        path: PathBuf,
        source: PolicyError,
    },
}

/// One call into a component failed. The instance that failed has been
/// discarded; the next call gets a fresh one.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    #[error("component {component}: {call} missed its deadline of {deadline_ms} ms")]
    Deadline {
        component: String,
        call: &'static str,
        deadline_ms: u64,
    },
    #[error("component {component}: {call} ran out of memory (cap {memory_mib} MiB)")]
    OutOfMemory {
        component: String,
        call: &'static str,
        memory_mib: u32,
    },
    #[error("component {component}: {call} trapped: {message}")]
    Trap {
        component: String,
        call: &'static str,
        message: String,
    },
    #[error("component {component}: cannot create an instance: {message}")]
    Instantiate { component: String, message: String },
}

impl PolicyError {
    /// The name of the component that failed.
    pub fn component(&self) -> &str {
        match self {
            PolicyError::Deadline { component, .. }
            | PolicyError::OutOfMemory { component, .. }
            | PolicyError::Trap { component, .. }
            | PolicyError::Instantiate { component, .. } => component,
        }
    }
}
