//! Every container gets a short id. Everything a step creates on the host is named
//! `box-ID` (state directory, cgroup, network links), so one pattern finds it all, and the id
//! is the container's default hostname, as in docker. `--name` picks the id yourself.

use std::fmt;
use std::io::Read;

use anyhow::{bail, Context, Result};

/// Network interface names have at most 15 bytes: "box-" plus 11.
const MAX_LEN: usize = 11;

/// Names the runtime gives its own things under the same prefix, which no container may take:
/// the bridge (box-br0), the address and subnet claims (box-ip-N, box-net-N) and, on cgroup
/// v2, the cgroup a runtime moves itself into (box-ID-runtime).
const RESERVED: [&str; 1] = ["br0"];
const RESERVED_PREFIXES: [&str; 2] = ["ip-", "net-"];
const RESERVED_SUFFIX: &str = "-runtime";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerId(String);

impl ContainerId {
    /// Eight random hex digits, from the kernel's random pool.
    pub fn random() -> Result<Self> {
        let mut bytes = [0u8; 4];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut random| random.read_exact(&mut bytes))
            .context("failed to read /dev/urandom")?;
        Ok(ContainerId(bytes.iter().map(|b| format!("{b:02x}")).collect()))
    }

    /// A name given with `--name`: it becomes part of host resource names, so keep it short
    /// and plain.
    pub fn from_name(name: &str) -> Result<Self> {
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
        if name.is_empty() || name.len() > MAX_LEN || !name.chars().all(allowed) || name.starts_with('-') {
            bail!("invalid container name {name:?}: use 1 to {MAX_LEN} lowercase letters, digits and '-'");
        }
        let reserved = RESERVED.contains(&name)
            || RESERVED_PREFIXES.iter().any(|prefix| name.starts_with(prefix))
            || name.ends_with(RESERVED_SUFFIX);
        if reserved {
            bail!(
                "invalid container name {name:?}: br0, ip-*, net-* and *-runtime name the runtime's own \
                 bridge, claims and cgroups"
            );
        }
        Ok(ContainerId(name.to_string()))
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_plain_and_not_the_runtimes_own() {
        for good in ["web", "a1", "my-box", "net", "ip", "runtime"] {
            assert!(ContainerId::from_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-x",
            "Web",
            "a_b",
            "twelve-chars",
            "br0",
            "ip-3",
            "net-12",
            "x-runtime",
        ] {
            assert!(ContainerId::from_name(bad).is_err(), "{bad}");
        }
    }
}
