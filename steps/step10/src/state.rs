//! What a running container has made on the host is recorded in /run/box-ID/: the runtime's
//! pid, the cgroups it created, and its scratch area (unless it is to be kept). The runtime
//! removes them when the container ends. If the runtime itself is killed, nobody can; the next
//! run of a step sweeps every record whose runtime is gone, and `scripts/cleanup.sh` does the
//! same by hand.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::sys::signal::kill;
use nix::unistd::Pid;

use crate::errors::HintExt;
use crate::id::ContainerId;

const RUN: &str = "/run";
/// The files of a record this step understands. A record with more was written by a later
/// step, with more to remove: only that step (or scripts/cleanup.sh) may remove the record.
const KNOWN: [&str; 3] = ["runtime.pid", "cgroups", "scratch"];
const PREFIX: &str = "box-";

/// The record of one container; removed when dropped.
pub struct State {
    dir: PathBuf,
}

impl State {
    /// Claim the name `box-ID` for this run. Only one live container may have it.
    pub fn create(id: &ContainerId) -> Result<State> {
        let dir = Path::new(RUN).join(format!("{PREFIX}{id}"));
        if let Err(err) = fs::create_dir(&dir) {
            if err.kind() == ErrorKind::AlreadyExists {
                return Err(anyhow::anyhow!(
                    "a container named {id} is already running ({})",
                    dir.display()
                ))
                .hint("pick another --name, or stop that container first");
            }
            return Err(err).with_context(|| format!("failed to create {}", dir.display()));
        }
        let state = State { dir };
        fs::write(state.dir.join("runtime.pid"), std::process::id().to_string())
            .with_context(|| format!("failed to write {}", state.dir.join("runtime.pid").display()))?;
        Ok(state)
    }

    /// The name everything of this container is called on the host: `box-ID`.
    pub fn name(&self) -> String {
        self.dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// The scratch area to remove if the runtime dies; not recorded when the user keeps it.
    pub fn record_scratch(&self, dir: &Path, keep: bool) -> Result<()> {
        if keep {
            return Ok(());
        }
        fs::write(self.dir.join("scratch"), dir.display().to_string())
            .context("failed to record the scratch area")
    }

    pub fn record_cgroups<'a>(&self, dirs: impl Iterator<Item = &'a Path>) -> Result<()> {
        let list: String = dirs.map(|dir| format!("{}\n", dir.display())).collect();
        fs::write(self.dir.join("cgroups"), list).context("failed to record the container's cgroups")
    }
}

impl Drop for State {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn runtime_alive(dir: &Path) -> bool {
    let Ok(text) = fs::read_to_string(dir.join("runtime.pid")) else {
        // Being created right now by another run, or not ours to judge.
        return true;
    };
    match text.trim() {
        // Created, and its pid not written yet: a runtime is starting.
        "" => true,
        // Signal 0 only checks that the process exists.
        pid => pid
            .parse::<i32>()
            .map(|pid| kill(Pid::from_raw(pid), None).is_ok())
            .unwrap_or(false),
    }
}

fn only_known_files(dir: &Path) -> bool {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .all(|e| KNOWN.iter().any(|known| e.file_name() == *known))
        })
        .unwrap_or(false)
}

// ANCHOR: sweep
/// Remove what containers whose runtime is gone left behind: their cgroups, then the record.
/// Quiet: it is housekeeping for other runs, not part of this container.
pub fn sweep_stale() {
    let Ok(entries) = fs::read_dir(RUN) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dir = entry.path();
        if !name.starts_with(PREFIX) || !dir.is_dir() || runtime_alive(&dir) {
            continue;
        }
        let cgroups = fs::read_to_string(dir.join("cgroups")).unwrap_or_default();
        let mut all_removed = true;
        for cgroup in cgroups.lines().map(Path::new) {
            // The runtime's init took the container with it (PR_SET_PDEATHSIG); wait for the
            // last processes to be gone, and sweep the v2 runtime leaf too.
            let leaf = PathBuf::from(format!("{}-runtime", cgroup.display()));
            all_removed &= crate::cgroup::remove_dir_quietly(cgroup);
            crate::cgroup::remove_dir_quietly(&leaf);
        }
        if all_removed && only_known_files(&dir) {
            if let Ok(scratch) = fs::read_to_string(dir.join("scratch")) {
                let _ = fs::remove_dir_all(scratch.trim());
            }
            let _ = fs::remove_dir_all(&dir);
        }
    }
}
// ANCHOR_END: sweep
