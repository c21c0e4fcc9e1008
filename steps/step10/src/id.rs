//! Every container gets a short id. Everything a step creates on the host is named
//! `box-ID` (state directory, cgroup, network links), so one pattern finds it all, and the id
//! is the container's default hostname, as in docker. `--name` picks the id yourself.

use std::fmt;
use std::io::Read;

use anyhow::{bail, Context, Result};

/// Network interface names have at most 15 bytes: "box-" plus 11.
const MAX_LEN: usize = 11;

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
        Ok(ContainerId(name.to_string()))
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
