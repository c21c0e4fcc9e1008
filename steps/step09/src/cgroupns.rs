//! A cgroup namespace (cgroup_namespaces(7)) changes what a process sees of the cgroup tree: the
//! cgroup it is in when it enters the namespace becomes its root, `/`, in /proc/PID/cgroup and in
//! any cgroup filesystem mounted from inside. The container sees its own cgroup, and none of the
//! host's tree above it (the runtime's path, other containers), as in Docker's containers.
//! See cgroup_namespaces(7), unshare(2), and for v1 the kernel's admin-guide/cgroup-v1/cgroups.rst.

use std::fs;
use std::os::unix::fs::symlink;

use anyhow::{Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::cgroup::Controller;
use crate::trace::trace;

const NONE: Option<&str> = None;
const CGROUP: &str = "/sys/fs/cgroup";

fn read_only() -> MsFlags {
    MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC
}

// ANCHOR: mount_own_cgroup
/// Enter a new cgroup namespace, and mount the container's cgroup at /sys/fs/cgroup, read-only.
/// Init calls it after its go, once /sys is mounted.
pub fn mount_own_cgroup() -> Result<()> {
    // The namespace is rooted at the cgroup init is in now: the container's, since the runtime
    // moved init there before the go. (CLONE_NEWCGROUP in the clone would have rooted it at the
    // runtime's cgroup, where init was born.)
    trace!("unshare(CLONE_NEWCGROUP)");
    unshare(CloneFlags::CLONE_NEWCGROUP).context("failed to enter a new cgroup namespace")?;
    // What the container is in, as it sees it now: "0::/" on v2, one "N:memory:/" per v1 hierarchy.
    let self_cgroup = fs::read_to_string("/proc/self/cgroup").context("failed to read /proc/self/cgroup")?;
    let hierarchies = v1_hierarchies(&self_cgroup);
    if hierarchies.is_empty() {
        // cgroup v2: one filesystem, which shows the namespace's root cgroup and what is below.
        trace!("mount(\"cgroup2\", \"{CGROUP}\", \"cgroup2\", MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC)");
        return mount(Some("cgroup2"), CGROUP, Some("cgroup2"), read_only(), NONE)
            .with_context(|| format!("failed to mount cgroup2 on {CGROUP}"));
    }
    mount_v1(&hierarchies)
}
// ANCHOR_END: mount_own_cgroup

/// The v1 hierarchies the container has a cgroup of its own in (those of the runtime's
/// controllers), by their controllers as /proc/self/cgroup names them ("cpu,cpuacct"), sorted.
fn v1_hierarchies(self_cgroup: &str) -> Vec<String> {
    let mut hierarchies: Vec<String> = self_cgroup
        .lines()
        .filter_map(|line| line.split(':').nth(1))
        .filter(|controllers| {
            controllers
                .split(',')
                .any(|c| Controller::ALL.iter().any(|ours| ours.name() == c))
        })
        .map(String::from)
        .collect();
    hierarchies.sort();
    hierarchies
}

// ANCHOR: mount_v1
/// cgroup v1: a small tmpfs at /sys/fs/cgroup, each hierarchy mounted read-only in a directory of
/// its own (with a link per controller where several share one, like cpu,cpuacct), and the
/// tmpfs made read-only last.
fn mount_v1(hierarchies: &[String]) -> Result<()> {
    trace!("mount(\"tmpfs\", \"{CGROUP}\", \"tmpfs\", MS_NOSUID|MS_NODEV|MS_NOEXEC, \"mode=755,size=64k\")");
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("tmpfs"),
        CGROUP,
        Some("tmpfs"),
        flags,
        Some("mode=755,size=64k"),
    )
    .with_context(|| format!("failed to mount a tmpfs on {CGROUP}"))?;
    for controllers in hierarchies {
        let dir = format!("{CGROUP}/{controllers}");
        trace!("mkdir({dir:?})");
        fs::create_dir(&dir).with_context(|| format!("failed to create {dir}"))?;
        // The controllers name the hierarchy: mounting "memory" again shows the same tree,
        // from the namespace's root.
        trace!(
            "mount(\"cgroup\", {dir:?}, \"cgroup\", MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC, {controllers:?})"
        );
        mount(
            Some("cgroup"),
            dir.as_str(),
            Some("cgroup"),
            read_only(),
            Some(controllers.as_str()),
        )
        .with_context(|| format!("failed to mount the cgroup v1 hierarchy {controllers} on {dir}"))?;
        if controllers.contains(',') {
            for controller in controllers.split(',') {
                let link = format!("{CGROUP}/{controller}");
                trace!("symlink({controllers:?}, {link:?})");
                symlink(controllers, &link).with_context(|| format!("failed to create {link}"))?;
            }
        }
    }
    trace!("mount(NULL, \"{CGROUP}\", NULL, MS_BIND|MS_REMOUNT|MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC)");
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | read_only();
    mount(NONE, CGROUP, NONE, flags, NONE).with_context(|| format!("failed to make {CGROUP} read-only"))
}
// ANCHOR_END: mount_v1

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_v2_there_is_no_v1_hierarchy_to_mount() {
        assert!(v1_hierarchies("0::/\n").is_empty());
    }

    #[test]
    fn on_v1_the_hierarchies_of_the_runtimes_controllers() {
        let self_cgroup = "12:net_cls,net_prio:/\n11:name=systemd:/\n10:pids:/\n9:devices:/\n\
                           8:cpu,cpuacct:/\n7:cpuset:/\n6:memory:/\n0::/\n";
        assert_eq!(
            v1_hierarchies(self_cgroup),
            ["cpu,cpuacct", "devices", "memory", "pids"]
        );
    }
}
