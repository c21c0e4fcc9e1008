//! /proc and /sys are windows onto the whole kernel, not just the container: /proc/kcore is the
//! kernel's memory, /proc/sys/kernel/core_pattern names a program the *host* runs as root when
//! any process dumps core, /proc/sysrq-trigger can reboot the machine. Real runtimes mask the
//! dangerous entries (a /dev/null or an empty read-only tmpfs mounted on top), make the kernel
//! settings read-only, and mount /sys read-only. These are runc's default lists (the OCI
//! runtime spec's maskedPaths and readonlyPaths). See proc(5), sysfs(5).

use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::{mount, MsFlags};

use crate::trace::trace;

const NONE: Option<&str> = None;

/// Hidden: a file gets /dev/null on top, a directory an empty read-only tmpfs.
pub const MASKED: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Readable, not writable: kernel settings, interrupts, buses, the magic SysRq key.
pub const READ_ONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

// ANCHOR: mount_sys
/// Mount sysfs read-only: the container may look at the kernel's devices, not change them.
pub fn mount_sys() -> Result<()> {
    // ANCHOR: exercise05_sys
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    trace!("mount(\"sysfs\", \"/sys\", \"sysfs\", MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC)");
    mount(Some("sysfs"), "/sys", Some("sysfs"), flags, NONE).context("failed to mount /sys")
    // ANCHOR_END: exercise05_sys
}
// ANCHOR_END: mount_sys

// ANCHOR: mask_paths
/// Hide every entry of MASKED that this kernel has.
pub fn mask_paths() -> Result<()> {
    // ANCHOR: exercise05_mask
    for path in MASKED {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        if meta.is_dir() {
            trace!("mount(\"tmpfs\", {path:?}, \"tmpfs\", MS_RDONLY)");
            mount(Some("tmpfs"), path, Some("tmpfs"), MsFlags::MS_RDONLY, NONE)
        } else {
            trace!("mount(\"/dev/null\", {path:?}, NULL, MS_BIND)");
            mount(Some("/dev/null"), path, NONE, MsFlags::MS_BIND, NONE)
        }
        .with_context(|| format!("failed to mask {path}"))?;
    }
    Ok(())
    // ANCHOR_END: exercise05_mask
}
// ANCHOR_END: mask_paths

// ANCHOR: make_read_only
/// Make every entry of READ_ONLY that this kernel has read-only: bind it onto itself, then
/// remount that bind read-only (a bind mount takes its flags only on a remount).
pub fn make_read_only() -> Result<()> {
    // ANCHOR: exercise05_read_only
    let kept = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    for path in READ_ONLY {
        if !Path::new(path).exists() {
            continue;
        }
        trace!("mount({path:?}, {path:?}, NULL, MS_BIND|MS_REC)");
        mount(Some(path), path, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE)
            .with_context(|| format!("failed to bind {path}"))?;
        trace!("mount(NULL, {path:?}, NULL, MS_BIND|MS_REMOUNT|MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC)");
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept;
        mount(NONE, path, NONE, flags, NONE).with_context(|| format!("failed to make {path} read-only"))?;
    }
    Ok(())
    // ANCHOR_END: exercise05_read_only
}
// ANCHOR_END: make_read_only
