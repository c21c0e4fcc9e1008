//! What only cgroup v2 asks of a runtime. A parent passes a controller on to its children only
//! when its `cgroup.subtree_control` says so, and under the "no internal processes" rule. See
//! the kernel's admin-guide/cgroup-v2.rst.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::cgroup::{remove_dir, write};
use crate::errors::HintExt;
use crate::trace::trace;

/// Controllers the runtime switched on in its own cgroup after moving into a leaf of its own;
/// switched off again, and the runtime moved back, when dropped.
#[derive(Debug)]
pub struct Enabled {
    own: PathBuf,
    controllers: Vec<&'static str>,
    leaf: PathBuf,
}

// ANCHOR: enable_controllers
/// cgroup v2 gives a child a controller only if its parent lists it in `cgroup.subtree_control`,
/// and a cgroup that holds processes may not list any there (the "no internal processes" rule;
/// the root cgroup is exempt). So if the runtime's own cgroup lacks a controller, the runtime
/// moves itself into a leaf `NAME-runtime` first, when it is alone there, and switches it on.
pub fn enable_controllers(own: &Path, wanted: &[&'static str], name: &str) -> Result<Option<Enabled>> {
    let enabled = fs::read_to_string(own.join("cgroup.subtree_control")).unwrap_or_default();
    let missing: Vec<&'static str> = wanted
        .iter()
        .copied()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    let available = fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
    if let Some(absent) = missing
        .iter()
        .find(|c| !available.split_whitespace().any(|a| a == **c))
    {
        return Err(anyhow::anyhow!("the {absent} controller is not available to {}", own.display()))
            .hint("enable it for this cgroup's parent (cgroup.subtree_control), or run the step under `systemd-run --scope -p Delegate=yes`");
    }
    let change: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
    let procs = fs::read_to_string(own.join("cgroup.procs")).unwrap_or_default();
    let is_root = !own.join("cgroup.type").exists();
    if is_root || procs.trim().is_empty() {
        // No process to move out of the way (the root cgroup is exempt from the rule anyway).
        write(&own.join("cgroup.subtree_control"), &change.join(" "))?;
        return Ok(None);
    }
    let alone = procs
        .split_whitespace()
        .all(|pid| pid == std::process::id().to_string());
    if !alone {
        return Err(anyhow::anyhow!(
            "cannot switch on {} for containers under {}: other processes are in that cgroup \
             (cgroup v2's no-internal-processes rule)",
            missing.join(", "),
            own.display()
        ))
        .hint(format!(
            "run the step in a cgroup of its own: sudo systemd-run --scope -p Delegate=yes --quiet target/debug/{} …",
            env!("CARGO_PKG_NAME")
        ));
    }
    let leaf = own.join(format!("{name}-runtime"));
    trace!("mkdir({leaf:?})");
    fs::create_dir(&leaf).with_context(|| format!("failed to create {}", leaf.display()))?;
    // From here on, dropping `undo` moves the runtime back and removes the leaf.
    let mut undo = Enabled {
        own: own.to_path_buf(),
        controllers: Vec::new(),
        leaf,
    };
    write(&undo.leaf.join("cgroup.procs"), "0")?;
    write(&own.join("cgroup.subtree_control"), &change.join(" "))?;
    undo.controllers = missing;
    Ok(Some(undo))
}

impl Drop for Enabled {
    fn drop(&mut self) {
        // Switch the controllers off again and go back where we came from.
        if !self.controllers.is_empty() {
            let change: Vec<String> = self.controllers.iter().map(|c| format!("-{c}")).collect();
            let _ = write(&self.own.join("cgroup.subtree_control"), &change.join(" "));
        }
        let _ = write(&self.own.join("cgroup.procs"), "0");
        remove_dir(&self.leaf);
    }
}
// ANCHOR_END: enable_controllers
