//! Per-component limits, read from the component's entry in the broker
//! config, with defaults that are safe for policies.
//!
//! Every limit is enforced by wasmtime, not by trusting the guest: memory,
//! tables and instances through `StoreLimits` (a `memory.grow` past the cap
//! traps instead of failing softly, so "out of memory" is visible and the
//! instance is discarded), CPU time per call through epoch interruption.
//! This module only holds and validates the numbers.

use std::time::Duration;

use serde::Deserialize;
use wasmtime::{StoreLimits, StoreLimitsBuilder};

/// Limits for one component. In TOML (all optional):
///
/// ```toml
/// [policy.acl.limits]
/// memory_mib = 16     # linear memory cap per instance
/// deadline_ms = 5     # CPU time per call
/// instances = 2       # instances kept for concurrent calls
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Cap on all linear memories of one instance, in MiB.
    pub memory_mib: u32,
    /// Wall-clock budget of one call, in milliseconds, enforced by epoch
    /// interruption (the guest is interrupted in compiled code; a host call
    /// in progress finishes first).
    pub deadline_ms: u64,
    /// How many instances serve concurrent calls (each with its own store
    /// and memory). Calls beyond that wait for a free instance.
    pub instances: u32,
    /// Cap on the elements of any one table (function tables).
    pub table_elements: u32,
    /// Cap on the number of tables per instance.
    pub tables: u32,
    /// Cap on the number of linear memories per instance.
    pub memories: u32,
    /// Cap on core instances per store (a component instantiates a few).
    pub core_instances: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::POLICY
    }
}

impl Limits {
    /// Defaults for policies: small and quick.
    pub const POLICY: Limits = Limits {
        memory_mib: 16,
        deadline_ms: 5,
        instances: 2,
        table_elements: 65_536,
        tables: 16,
        memories: 4,
        core_instances: 32,
    };

    /// Checks the numbers; the error names the key that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.memory_mib == 0 || self.memory_mib > 4096 {
            return Err(format!(
                "limits.memory_mib = {}: must be between 1 and 4096",
                self.memory_mib
            ));
        }
        if self.deadline_ms == 0 || self.deadline_ms > 60_000 {
            return Err(format!(
                "limits.deadline_ms = {}: must be between 1 and 60000",
                self.deadline_ms
            ));
        }
        if self.instances == 0 || self.instances > 64 {
            return Err(format!(
                "limits.instances = {}: must be between 1 and 64",
                self.instances
            ));
        }
        for (key, value) in [
            ("table_elements", self.table_elements),
            ("tables", self.tables),
            ("memories", self.memories),
            ("core_instances", self.core_instances),
        ] {
            if value == 0 {
                return Err(format!("limits.{key} = 0: must be at least 1"));
            }
        }
        Ok(())
    }

    /// The call deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }

    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        usize::try_from(u64::from(self.memory_mib) << 20).unwrap_or(usize::MAX)
    }

    /// The most bytes a guest may hand to the host in one call (wasmtime's
    /// "hostcall fuel"): its memory cap. Strings and lists are copied out
    /// of guest memory when a call lifts them, and a guest could point
    /// many list elements at the same bytes; with this bound the host
    /// never copies more for a guest than the guest itself may hold. A
    /// call over it fails and the guest traps.
    pub(crate) fn hostcall_fuel(&self) -> usize {
        self.memory_bytes()
    }

    /// The `StoreLimits` for one instance's store.
    pub(crate) fn store_limits(&self) -> StoreLimits {
        StoreLimitsBuilder::new()
            .memory_size(self.memory_bytes())
            .table_elements(self.table_elements as usize)
            .tables(self.tables as usize)
            .memories(self.memories as usize)
            .instances(self.core_instances as usize)
            .trap_on_grow_failure(true)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_policy_limits_and_valid() {
        let limits = Limits::default();
        assert_eq!(limits.memory_bytes(), 16 << 20);
        assert_eq!(limits.deadline(), Duration::from_millis(5));
        limits.validate().unwrap();
    }

    #[test]
    fn a_zero_deadline_is_refused_naming_the_key() {
        let limits = Limits {
            deadline_ms: 0,
            ..Limits::default()
        };
        assert!(
            limits
                .validate()
                .unwrap_err()
                .contains("limits.deadline_ms")
        );
    }
}
