//! What a running container has made on the host is recorded in /run/box-ID/: the runtime's
//! pid, the cgroups it created, and its scratch area (unless it is to be kept). The runtime
//! removes them when the container ends. If the runtime itself is killed, nobody can; the next
//! run of a step sweeps every record whose runtime is gone, and `scripts/cleanup.sh` does the
//! same by hand.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

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
    // ANCHOR: create_record
    /// Claim the name `box-ID` for this run. Only one live container may have it.
    pub fn create(id: &ContainerId) -> Result<State> {
        let dir = Path::new(RUN).join(format!("{PREFIX}{id}"));
        let taken = || {
            Err(anyhow::anyhow!(
                "a container named {id} is already running ({})",
                dir.display()
            ))
            .hint("pick another --name, or stop that container first")
        };
        if dir.exists() {
            return taken();
        }
        // The record comes into being whole: made under a name of this runtime's own, with its
        // pid in it, then renamed into place. The pid alone could be taken by another process
        // once we are gone: with the time the kernel started this process (a pid is never
        // reused at the same start time), the record names exactly one runtime.
        let me = std::process::id();
        let started = start_time(me).context("failed to read the runtime's start time")?;
        let new = Path::new(RUN).join(format!("{PREFIX}{id}.new-{me}"));
        fs::create_dir(&new).with_context(|| format!("failed to create {}", new.display()))?;
        let filled = fs::write(new.join("runtime.pid"), format!("{me} {started}\n"))
            .with_context(|| format!("failed to write {}", new.join("runtime.pid").display()));
        if let Err(err) = filled.and_then(|()| rename_noreplace(&new, &dir)) {
            let _ = fs::remove_dir_all(&new);
            if dir.exists() {
                return taken();
            }
            return Err(err);
        }
        Ok(State { dir })
    }
    // ANCHOR_END: create_record

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

    /// The cgroups to remove if the runtime dies: written before they are made, so that a
    /// runtime killed at any moment leaves nothing that no record names.
    pub fn record_cgroups(&self, dirs: &[PathBuf]) -> Result<()> {
        let list: String = dirs.iter().map(|dir| format!("{}\n", dir.display())).collect();
        fs::write(self.dir.join("cgroups"), list).context("failed to record the container's cgroups")
    }
}

// ANCHOR: drop_record
impl Drop for State {
    /// The pid goes last: a record without one is a runtime's that died while removing it.
    fn drop(&mut self) {
        for entry in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if entry.file_name() != "runtime.pid" {
                let _ = fs::remove_file(entry.path());
            }
        }
        let _ = fs::remove_file(self.dir.join("runtime.pid"));
        let _ = fs::remove_dir(&self.dir);
    }
}
// ANCHOR_END: drop_record

// ANCHOR: rename_noreplace
/// rename(2), but failing instead of replacing what is at `to` (renameat2, RENAME_NOREPLACE):
/// two runtimes given the same --name cannot both take it.
fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c =
        |path: &Path| std::ffi::CString::new(path.as_os_str().as_bytes()).context("a path with a NUL byte");
    let (from_c, to_c) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths; AT_FDCWD makes them relative to the cwd (they
    // are absolute anyway).
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from_c.as_ptr(),
            libc::AT_FDCWD,
            to_c.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    nix::errno::Errno::result(rc)
        .map(drop)
        .with_context(|| format!("failed to rename {} to {}", from.display(), to.display()))
}
// ANCHOR_END: rename_noreplace

// ANCHOR: runtime_alive
/// When process `pid` started, in clock ticks after boot: field 22 of /proc/PID/stat.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

fn runtime_alive(dir: &Path) -> bool {
    // A record being made: its name says whose.
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some((_, pid)) = name.rsplit_once(".new-") {
        return pid.parse::<u32>().is_ok_and(|pid| start_time(pid).is_some());
    }
    let text = fs::read_to_string(dir.join("runtime.pid")).unwrap_or_default();
    let mut words = text.split_whitespace();
    match (words.next(), words.next()) {
        (Some(pid), Some(started)) => {
            let (Ok(pid), Ok(started)) = (pid.parse::<u32>(), started.parse::<u64>()) else {
                return false;
            };
            start_time(pid) == Some(started)
        }
        // No pid: the runtime died while removing its record.
        _ => false,
    }
}
// ANCHOR_END: runtime_alive

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
