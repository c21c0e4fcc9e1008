//! The UTS namespace holds two names: the hostname and the NIS domain name (the name comes from
//! "UNIX Time-sharing System", the struct utsname that uname(2) fills). A process in a new UTS
//! namespace starts with a copy of its parent's names and can change them without the host
//! noticing. See uts_namespaces(7), sethostname(2).

use anyhow::{bail, Context, Result};

use crate::trace::trace;

/// The kernel's limit (HOST_NAME_MAX).
const MAX_LEN: usize = 64;

// ANCHOR: validate_hostname
/// The kernel accepts any bytes up to 64 as a hostname, even an empty name or one with spaces
/// or newlines. Programs that print or resolve it do not, so we refuse such names before
/// creating anything.
pub fn validate_hostname(name: &str) -> Result<()> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if name.is_empty() || name.len() > MAX_LEN || !name.chars().all(allowed) {
        bail!("invalid hostname {name:?}: use 1 to {MAX_LEN} letters, digits, '-' and '.'");
    }
    Ok(())
}
// ANCHOR_END: validate_hostname

// ANCHOR: set_hostname
/// Set the hostname of the UTS namespace we are in (a new one: the host's stays as it was).
pub fn set_hostname(name: &str) -> Result<()> {
    // ANCHOR: exercise02_sethostname
    trace!("sethostname({name:?})");
    nix::unistd::sethostname(name).with_context(|| format!("failed to set the hostname to {name:?}"))
    // ANCHOR_END: exercise02_sethostname
}
// ANCHOR_END: set_hostname
