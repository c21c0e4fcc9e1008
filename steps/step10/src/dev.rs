//! A minimal /dev. The container must not reach the host's devices, but programs expect a few
//! standard ones. So /dev is a fresh tmpfs holding only what real runtimes provide (runc's
//! list, see the OCI runtime spec, "Default Devices"): null, zero, full, random, urandom, tty,
//! a private devpts for terminals, /dev/shm and /dev/mqueue, and links into /proc/self/fd.
//! See mknod(2), tmpfs(5), devpts in pts(4), mq_overview(7).

use std::os::unix::fs::{symlink, PermissionsExt};

use anyhow::{Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};

use crate::trace::trace;

/// (name, major, minor) of the character devices a container gets: see devices.txt in the
/// kernel's documentation (admin-guide/devices.txt).
const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// /dev/fd and friends: links into /proc, so they mean "this process's descriptors".
const LINKS: [(&str, &str); 5] = [
    ("/proc/self/fd", "/dev/fd"),
    ("/proc/self/fd/0", "/dev/stdin"),
    ("/proc/self/fd/1", "/dev/stdout"),
    ("/proc/self/fd/2", "/dev/stderr"),
    ("pts/ptmx", "/dev/ptmx"),
];

fn mount_fs(fstype: &str, target: &str, flags: MsFlags, data: &str, shown_flags: &str) -> Result<()> {
    trace!("mount({fstype:?}, {target:?}, {fstype:?}, {shown_flags}, {data:?})");
    mount(Some(fstype), target, Some(fstype), flags, Some(data))
        .with_context(|| format!("failed to mount {fstype} on {target}"))
}

fn make_dir(path: &str) -> Result<()> {
    trace!("mkdir({path:?})");
    std::fs::create_dir(path).with_context(|| format!("failed to create {path}"))
}

// ANCHOR: mount_dev
/// Mount a fresh /dev (after the pivot, by paths inside the container).
pub fn mount_dev() -> Result<()> {
    // The image's /dev is hidden under a tmpfs: nothing in it, nothing written to the image.
    mount_fs(
        "tmpfs",
        "/dev",
        MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME,
        "mode=755,size=64k",
        "MS_NOSUID|MS_STRICTATIME",
    )?;
    for (name, major, minor) in DEVICES {
        let path = format!("/dev/{name}");
        trace!("mknod({path:?}, S_IFCHR|0666, makedev({major}, {minor}))");
        mknod(
            path.as_str(),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o666),
            makedev(major, minor),
        )
        .with_context(|| format!("failed to create {path}"))?;
        // mknod's mode is filtered by the umask: set it exactly.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666))
            .with_context(|| format!("failed to chmod {path}"))?;
    }
    // A devpts of its own ("newinstance"): the container's terminals, not the host's.
    make_dir("/dev/pts")?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
    mount_fs(
        "devpts",
        "/dev/pts",
        flags,
        "newinstance,ptmxmode=0666,mode=0620",
        "MS_NOSUID|MS_NOEXEC",
    )?;
    // Shared memory and POSIX message queues, both private to the IPC namespace.
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    make_dir("/dev/shm")?;
    mount_fs(
        "tmpfs",
        "/dev/shm",
        flags,
        "mode=1777,size=64m",
        "MS_NOSUID|MS_NODEV|MS_NOEXEC",
    )?;
    make_dir("/dev/mqueue")?;
    mount_fs("mqueue", "/dev/mqueue", flags, "", "MS_NOSUID|MS_NODEV|MS_NOEXEC")?;
    for (target, link) in LINKS {
        trace!("symlink({target:?}, {link:?})");
        symlink(target, link).with_context(|| format!("failed to create {link}"))?;
    }
    Ok(())
}
// ANCHOR_END: mount_dev
