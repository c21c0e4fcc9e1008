//! Control groups (cgroups(7)) limit what a group of processes may use: memory, number of
//! processes, CPU time, devices. A cgroup is a directory in a cgroup filesystem; its files are
//! the limits and counters, and a process joins it by writing its pid into `cgroup.procs`.
//!
//! Hosts come in three layouts, and the runtime finds out which at run time:
//! - **unified** (cgroup v2): one hierarchy at /sys/fs/cgroup; controllers are switched on for
//!   a cgroup's children in its `cgroup.subtree_control`.
//! - **legacy** (cgroup v1): one hierarchy per controller, /sys/fs/cgroup/memory and so on.
//! - **hybrid**: v1 hierarchies for the controllers, plus a cgroup2 (usually with no
//!   controllers) at /sys/fs/cgroup/unified.
//!
//! Everything here takes its paths from the texts of /proc/self/mountinfo and /proc/self/cgroup,
//! and the limits are a table of file writes (`writes`), so the unit tests below run on a
//! temporary directory, without root. What only v2 needs is in cgroup_v2.rs, the device policy
//! in devices.rs. See cgroups(7), and the kernel's admin-guide/cgroup-v2.rst and cgroup-v1/*.rst.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::errno::Errno;

use crate::errors::HintExt;
use crate::size::CPU_PERIOD_US;
use crate::trace::trace;
use crate::{cgroup_v2, devices};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Memory,
    Pids,
    Cpu,
    /// Always used: the device policy (on v2 not a controller of its own, but an eBPF program).
    Devices,
}

impl Controller {
    pub const ALL: [Controller; 4] = [
        Controller::Memory,
        Controller::Pids,
        Controller::Cpu,
        Controller::Devices,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
            Controller::Devices => "devices",
        }
    }
}

/// The limits of one container; `None` is "no limit".
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Limits {
    /// Bytes.
    pub memory: Option<u64>,
    /// Processes (and threads).
    pub pids: Option<u64>,
    /// Microseconds of CPU time per `crate::size::CPU_PERIOD_US`.
    pub cpu_quota: Option<u64>,
}

impl Limits {
    /// Is a limit given for `controller`?
    fn wants(&self, controller: Controller) -> bool {
        match controller {
            Controller::Memory => self.memory.is_some(),
            Controller::Pids => self.pids.is_some(),
            Controller::Cpu => self.cpu_quota.is_some(),
            Controller::Devices => false,
        }
    }
}

/// Where one controller lives on this host: its hierarchy's version, and the directory of the
/// runtime's own cgroup in it (the container's cgroup is made inside that one).
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub version: Version,
    pub own_dir: PathBuf,
}

/// What the host has, as `detect` found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub layout: &'static str,
    pub places: Vec<(Controller, Place)>,
}

impl Host {
    fn place(&self, controller: Controller) -> Option<&Place> {
        self.places
            .iter()
            .find(|(c, _)| *c == controller)
            .map(|(_, place)| place)
    }

    /// The hierarchies a container gets a cgroup in, each once, with the controllers it serves
    /// there (on v2, all of them; on v1, one or a few co-mounted ones).
    fn hierarchies(&self) -> Vec<(&Place, Vec<Controller>)> {
        let mut hierarchies: Vec<(&Place, Vec<Controller>)> = Vec::new();
        for (controller, place) in &self.places {
            match hierarchies.iter_mut().find(|(known, _)| *known == place) {
                Some((_, controllers)) => controllers.push(*controller),
                None => hierarchies.push((place, vec![*controller])),
            }
        }
        hierarchies
    }

    /// Where `Cgroup::create` makes the container's cgroup `name`: one directory per hierarchy,
    /// recorded before anything is made.
    pub fn cgroup_dirs(&self, name: &str) -> Vec<PathBuf> {
        self.hierarchies()
            .into_iter()
            .map(|(place, _)| place.own_dir.join(name))
            .collect()
    }

    /// Refuse, before anything is made, a limit whose controller this host lacks, and a host
    /// where the device policy cannot be applied.
    fn check(&self, limits: &Limits) -> Result<()> {
        for controller in Controller::ALL {
            let needed = controller == Controller::Devices || limits.wants(controller);
            if !needed || self.place(controller).is_some() {
                continue;
            }
            let hint = match controller {
                Controller::Devices => "mount the cgroup v1 devices hierarchy, or use cgroup v2".to_string(),
                other => format!("mount it, or run without the {} limit", other.name()),
            };
            return Err(anyhow::anyhow!(
                "the {} controller is not available on this host (cgroups: {})",
                controller.name(),
                self.layout
            ))
            .hint(hint);
        }
        Ok(())
    }
}

/// One mount of a cgroup filesystem, from a line of /proc/self/mountinfo.
struct CgroupMount {
    version: Version,
    /// The cgroup at the root of this mount (field 4), and where it is mounted (field 5).
    root: String,
    mount_point: PathBuf,
    /// v1: the controllers of this hierarchy (from the super options).
    controllers: Vec<String>,
}

fn cgroup_mounts(mountinfo: &str) -> Vec<CgroupMount> {
    let mut mounts = Vec::new();
    for line in mountinfo.lines() {
        // "36 25 0:31 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory"
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.len() < 3 {
            continue;
        }
        let version = match right[0] {
            "cgroup" => Version::V1,
            "cgroup2" => Version::V2,
            _ => continue,
        };
        let controllers = right[2].split(',').map(String::from).collect();
        mounts.push(CgroupMount {
            version,
            root: left[3].to_string(),
            mount_point: PathBuf::from(left[4]),
            controllers,
        });
    }
    mounts
}

/// The runtime's own cgroup in the hierarchy with `hierarchy_key`: a v1 controller name, or
/// "" for the v2 hierarchy ("0::/path").
fn own_path<'a>(self_cgroup: &'a str, hierarchy_key: &str) -> Option<&'a str> {
    self_cgroup.lines().find_map(|line| {
        let mut fields = line.splitn(3, ':');
        let (_id, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
        let matches = if hierarchy_key.is_empty() {
            controllers.is_empty()
        } else {
            controllers.split(',').any(|c| c == hierarchy_key)
        };
        matches.then_some(path)
    })
}

/// The directory of cgroup `path` in a hierarchy mounted at `mount` (whose root is `root`).
fn dir_of(mount: &CgroupMount, path: &str) -> PathBuf {
    let relative = path
        .strip_prefix(mount.root.as_str())
        .unwrap_or(path)
        .trim_start_matches('/');
    mount.mount_point.join(relative)
}

// ANCHOR: detect
/// Find, for each controller, the hierarchy that has it and the runtime's own cgroup there.
/// A v1 hierarchy wins over v2 for a controller: on a hybrid host the controllers are on v1.
pub fn detect(mountinfo: &str, self_cgroup: &str) -> Host {
    let mounts = cgroup_mounts(mountinfo);
    let v2 = mounts.iter().find(|m| m.version == Version::V2);
    let v2_controllers: Vec<String> = v2
        .map(|m| fs::read_to_string(m.mount_point.join("cgroup.controllers")).unwrap_or_default())
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let mut places = Vec::new();
    for controller in Controller::ALL {
        let name = controller.name();
        let v1 = mounts
            .iter()
            .find(|m| m.version == Version::V1 && m.controllers.iter().any(|c| c == name));
        let place = match (v1, v2) {
            (Some(mount), _) => own_path(self_cgroup, name).map(|path| Place {
                version: Version::V1,
                own_dir: dir_of(mount, path),
            }),
            // v2 lists no devices controller: every v2 cgroup can have a device program.
            (None, Some(mount))
                if controller == Controller::Devices || v2_controllers.iter().any(|c| c == name) =>
            {
                own_path(self_cgroup, "").map(|path| Place {
                    version: Version::V2,
                    own_dir: dir_of(mount, path),
                })
            }
            _ => None,
        };
        if let Some(place) = place {
            places.push((controller, place));
        }
    }
    let has_v1 = mounts.iter().any(|m| m.version == Version::V1);
    let layout = match (has_v1, v2.is_some()) {
        (false, true) => "unified (cgroup v2)",
        (true, true) => "hybrid (cgroup v1 controllers, and cgroup v2)",
        (true, false) => "legacy (cgroup v1)",
        (false, false) => "none",
    };
    Host { layout, places }
}
// ANCHOR_END: detect

/// `detect` on this host.
pub fn detect_host() -> Result<Host> {
    let mountinfo =
        fs::read_to_string("/proc/self/mountinfo").context("failed to read /proc/self/mountinfo")?;
    let self_cgroup = fs::read_to_string("/proc/self/cgroup").context("failed to read /proc/self/cgroup")?;
    Ok(detect(&mountinfo, &self_cgroup))
}

pub fn write(path: &Path, value: &str) -> Result<()> {
    trace!("write({:?}, {value:?})", path);
    fs::write(path, value).with_context(|| format!("failed to write {value:?} to {}", path.display()))
}

// ANCHOR: writes
/// One write into the container's cgroup: a file of a controller, and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    pub controller: Controller,
    pub file: &'static str,
    pub value: String,
    /// Skipped where the host lacks the file (swap accounting is a kernel option).
    pub optional: bool,
}

/// The limits, and the device policy, as the writes that apply them, in order. The same limit
/// is a file of another name in each version.
pub fn writes(version: Version, limits: &Limits) -> Vec<Write> {
    match version {
        Version::V1 => v1_writes(limits),
        Version::V2 => v2_writes(limits),
    }
}

/// cgroup v1: each in its controller's hierarchy.
fn v1_writes(limits: &Limits) -> Vec<Write> {
    use Controller::*;
    let mut rows = Vec::new();
    // ANCHOR: exercise07_v1_limits
    if let Some(bytes) = limits.memory {
        rows.push(row(Memory, "memory.limit_in_bytes", bytes));
        // No swap beyond the limit (v1 counts memory and swap together), where swap is counted.
        rows.push(optional(Memory, "memory.memsw.limit_in_bytes", bytes));
    }
    if let Some(pids) = limits.pids {
        rows.push(row(Pids, "pids.max", pids));
    }
    if let Some(quota) = limits.cpu_quota {
        rows.push(row(Cpu, "cpu.cfs_period_us", CPU_PERIOD_US));
        rows.push(row(Cpu, "cpu.cfs_quota_us", quota));
    }
    // ANCHOR_END: exercise07_v1_limits
    // The device policy, always: deny every device, then allow the table's, a rule a write.
    rows.push(row(Devices, "devices.deny", "a"));
    for rule in devices::ALLOWED {
        rows.push(row(Devices, "devices.allow", rule));
    }
    rows
}

/// cgroup v2: all in the one cgroup. (No devices files: the device policy is an eBPF program
/// made from the same table, see `Cgroup::create`.)
fn v2_writes(limits: &Limits) -> Vec<Write> {
    use Controller::*;
    let mut rows = Vec::new();
    // ANCHOR: exercise07_v2_limits
    if let Some(bytes) = limits.memory {
        rows.push(row(Memory, "memory.max", bytes));
        // No swap beyond the limit (v2 counts swap alone), where swap is counted.
        rows.push(optional(Memory, "memory.swap.max", 0));
    }
    if let Some(pids) = limits.pids {
        rows.push(row(Pids, "pids.max", pids));
    }
    if let Some(quota) = limits.cpu_quota {
        rows.push(row(Cpu, "cpu.max", format!("{quota} {CPU_PERIOD_US}")));
    }
    // ANCHOR_END: exercise07_v2_limits
    rows
}
// ANCHOR_END: writes

fn row(controller: Controller, file: &'static str, value: impl ToString) -> Write {
    let value = value.to_string();
    Write {
        controller,
        file,
        value,
        optional: false,
    }
}

fn optional(controller: Controller, file: &'static str, value: impl ToString) -> Write {
    Write {
        optional: true,
        ..row(controller, file, value)
    }
}

/// One directory of the container's cgroup: one per v1 hierarchy, one for v2.
#[derive(Debug)]
struct Dir {
    version: Version,
    path: PathBuf,
    controllers: Vec<Controller>,
}

/// A container's cgroup, in every hierarchy that has one of the controllers.
#[derive(Debug)]
pub struct Cgroup {
    dirs: Vec<Dir>,
    /// v2: what the runtime switched on in its own cgroup for it; undone when dropped, after the
    /// directories are removed.
    _enabled: Option<cgroup_v2::Enabled>,
}

// ANCHOR: create
impl Cgroup {
    /// Make the container's cgroup `name` under the runtime's own cgroup in each hierarchy, and
    /// apply the limits and the device policy.
    pub fn create(host: &Host, name: &str, limits: &Limits) -> Result<Cgroup> {
        let cgroup = Cgroup::create_dirs_and_files(host, name, limits)?;
        // v2 has no devices files: the policy is an eBPF program attached to the cgroup.
        for dir in &cgroup.dirs {
            if dir.version == Version::V2 && dir.controllers.contains(&Controller::Devices) {
                cgroup_v2::attach_device_program(&dir.path)?;
            }
        }
        Ok(cgroup)
    }

    /// All of `create` but the eBPF program: directories and files, what the unit tests check.
    fn create_dirs_and_files(host: &Host, name: &str, limits: &Limits) -> Result<Cgroup> {
        host.check(limits)?;
        let mut cgroup = Cgroup {
            dirs: Vec::new(),
            _enabled: None,
        };
        for (place, controllers) in host.hierarchies() {
            if place.version == Version::V2 {
                // v2 passes a controller on to children only when asked: see cgroup_v2.rs.
                let wanted: Vec<&str> = controllers
                    .iter()
                    .filter(|c| limits.wants(**c))
                    .map(|c| c.name())
                    .collect();
                cgroup._enabled = cgroup_v2::enable_controllers(&place.own_dir, &wanted, name)?;
            }
            let path = place.own_dir.join(name);
            trace!("mkdir({path:?})");
            fs::create_dir(&path)
                .with_context(|| format!("failed to create the cgroup {}", path.display()))?;
            cgroup.dirs.push(Dir {
                version: place.version,
                path,
                controllers,
            });
        }
        // On an error from here on, `cgroup` is dropped, which removes what was made.
        for dir in &cgroup.dirs {
            for row in writes(dir.version, limits) {
                let file = dir.path.join(row.file);
                if dir.controllers.contains(&row.controller) && (!row.optional || file.exists()) {
                    write(&file, &row.value)?;
                }
            }
        }
        Ok(cgroup)
    }
    // ANCHOR_END: create

    // ANCHOR: add_process
    /// Move process `pid` (a pid of the host) into the cgroup, in every hierarchy. Its children
    /// are born in it.
    pub fn add_process(&self, pid: nix::unistd::Pid) -> Result<()> {
        // ANCHOR: exercise07_add_process
        // (v1 also has `tasks`, for single threads; cgroup.procs moves the whole process.)
        for dir in &self.dirs {
            write(&dir.path.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
        // ANCHOR_END: exercise07_add_process
    }
    // ANCHOR_END: add_process

    // ANCHOR: oom_kills
    /// How many processes the kernel killed for going over the memory limit, from its own
    /// counters (`oom_kill` in memory.events on v2, memory.oom_control on v1).
    pub fn oom_kills(&self) -> u64 {
        self.dirs
            .iter()
            .filter(|dir| dir.controllers.contains(&Controller::Memory))
            .filter_map(|dir| {
                let file = match dir.version {
                    Version::V1 => "memory.oom_control",
                    Version::V2 => "memory.events",
                };
                let text = fs::read_to_string(dir.path.join(file)).ok()?;
                text.lines()
                    .find_map(|line| line.strip_prefix("oom_kill ")?.trim().parse::<u64>().ok())
            })
            .sum()
    }
    // ANCHOR_END: oom_kills
}

// ANCHOR: remove
/// The cgroup is removed when it goes out of scope, on every way out of the runtime, errors
/// included. A cgroup can only be removed once it has no processes, and the kernel may still
/// count processes that are exiting, so `remove_dir` retries for a while on EBUSY. (On v2 the
/// device program goes with the cgroup; then `_enabled`, dropped next, undoes its own part.)
impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            remove_dir(&dir.path);
        }
    }
}
// ANCHOR_END: remove

/// rmdir a cgroup, retrying for up to a second while its last processes finish exiting.
pub fn remove_dir(dir: &Path) {
    trace!("rmdir({dir:?})");
    if !remove_dir_quietly(dir) {
        eprintln!(
            "{}: warning: could not remove the cgroup {}; the next run will",
            env!("CARGO_PKG_NAME"),
            dir.display()
        );
    }
}

/// rmdir with the retries, and no trace or warning (for sweeping up after other runs).
pub fn remove_dir_quietly(dir: &Path) -> bool {
    for _ in 0..100 {
        match fs::remove_dir(dir).map_err(|err| Errno::from_raw(err.raw_os_error().unwrap_or(0))) {
            Ok(()) | Err(Errno::ENOENT) => return true,
            Err(Errno::EBUSY) => sleep(Duration::from_millis(10)),
            Err(_) => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake /sys/fs/cgroup in a temporary directory, and the mountinfo that describes it.
    fn fixture(layout: &str) -> (tempfile::TempDir, String, String) {
        let root = tempfile::tempdir().unwrap();
        let r = root.path().display().to_string();
        let (mountinfo, self_cgroup) = match layout {
            "v2" => {
                fs::create_dir_all(root.path().join("user.slice/session.scope")).unwrap();
                fs::write(
                    root.path().join("cgroup.controllers"),
                    "cpuset cpu io memory pids\n",
                )
                .unwrap();
                let own = root.path().join("user.slice/session.scope");
                fs::write(own.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
                fs::write(own.join("cgroup.subtree_control"), "cpu memory pids\n").unwrap();
                fs::write(own.join("cgroup.type"), "domain\n").unwrap();
                (
                    format!("30 24 0:26 / {r} rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"),
                    "0::/user.slice/session.scope\n".to_string(),
                )
            }
            "hybrid" => {
                for c in ["memory/box.slice", "pids", "cpu,cpuacct", "devices", "unified"] {
                    fs::create_dir_all(root.path().join(c)).unwrap();
                }
                fs::write(root.path().join("unified/cgroup.controllers"), "").unwrap();
                (
                    format!(
                        "31 24 0:27 / {r}/unified rw shared:5 - cgroup2 cgroup2 rw\n\
                         32 24 0:28 / {r}/memory rw shared:6 - cgroup cgroup rw,memory\n\
                         33 24 0:29 / {r}/pids rw shared:7 - cgroup cgroup rw,pids\n\
                         34 24 0:30 / {r}/cpu,cpuacct rw shared:8 - cgroup cgroup rw,cpu,cpuacct\n\
                         35 24 0:31 / {r}/cpuset rw shared:9 - cgroup cgroup rw,cpuset\n\
                         36 24 0:32 / {r}/devices rw shared:10 - cgroup cgroup rw,devices\n"
                    ),
                    "6:devices:/\n5:cpuset:/\n4:cpu,cpuacct:/\n3:pids:/\n2:memory:/box.slice\n0::/\n"
                        .to_string(),
                )
            }
            _ => unreachable!(),
        };
        (root, mountinfo, self_cgroup)
    }

    #[test]
    fn detects_a_unified_host() {
        let (root, mountinfo, self_cgroup) = fixture("v2");
        let host = detect(&mountinfo, &self_cgroup);
        assert_eq!(host.layout, "unified (cgroup v2)");
        let own = root.path().join("user.slice/session.scope");
        for controller in Controller::ALL {
            assert_eq!(
                host.place(controller),
                Some(&Place {
                    version: Version::V2,
                    own_dir: own.clone()
                })
            );
        }
    }

    #[test]
    fn detects_a_hybrid_host_and_uses_v1_for_the_controllers() {
        let (root, mountinfo, self_cgroup) = fixture("hybrid");
        let host = detect(&mountinfo, &self_cgroup);
        assert_eq!(host.layout, "hybrid (cgroup v1 controllers, and cgroup v2)");
        let place = |c| host.place(c).unwrap().clone();
        assert_eq!(
            place(Controller::Memory),
            Place {
                version: Version::V1,
                own_dir: root.path().join("memory/box.slice")
            }
        );
        assert_eq!(
            place(Controller::Pids),
            Place {
                version: Version::V1,
                own_dir: root.path().join("pids")
            }
        );
        // cpu is co-mounted with cpuacct, and "cpuset" must not be mistaken for it.
        assert_eq!(
            place(Controller::Cpu),
            Place {
                version: Version::V1,
                own_dir: root.path().join("cpu,cpuacct")
            }
        );
        assert_eq!(
            place(Controller::Devices),
            Place {
                version: Version::V1,
                own_dir: root.path().join("devices")
            }
        );
    }

    #[test]
    fn without_a_v1_devices_hierarchy_the_device_policy_goes_to_v2() {
        let (root, mountinfo, self_cgroup) = fixture("hybrid");
        let mountinfo: String = mountinfo
            .lines()
            .filter(|l| !l.contains("rw,devices"))
            .map(|l| format!("{l}\n"))
            .collect();
        let host = detect(&mountinfo, &self_cgroup);
        assert_eq!(
            host.place(Controller::Devices),
            Some(&Place {
                version: Version::V2,
                own_dir: root.path().join("unified")
            })
        );
    }

    #[test]
    fn the_table_names_each_limit_in_each_version() {
        let limits = Limits {
            memory: Some(64 << 20),
            pids: Some(32),
            cpu_quota: Some(50_000),
        };
        let show = |version| -> Vec<String> {
            writes(version, &limits)
                .iter()
                .map(|w| {
                    format!(
                        "{} {}={}{}",
                        w.controller.name(),
                        w.file,
                        w.value,
                        if w.optional { "?" } else { "" }
                    )
                })
                .collect()
        };
        assert_eq!(
            show(Version::V2),
            [
                "memory memory.max=67108864",
                "memory memory.swap.max=0?",
                "pids pids.max=32",
                "cpu cpu.max=50000 100000",
            ]
        );
        let v1 = show(Version::V1);
        assert_eq!(
            v1[..7],
            [
                "memory memory.limit_in_bytes=67108864",
                "memory memory.memsw.limit_in_bytes=67108864?",
                "pids pids.max=32",
                "cpu cpu.cfs_period_us=100000",
                "cpu cpu.cfs_quota_us=50000",
                "devices devices.deny=a",
                "devices devices.allow=c 1:3 rwm",
            ]
        );
        assert_eq!(v1.len(), 6 + devices::ALLOWED.len());
        assert_eq!(v1.last().unwrap(), "devices devices.allow=c 136:* rwm");
    }

    #[test]
    fn without_limits_only_the_device_policy_is_written() {
        let v1: Vec<&str> = writes(Version::V1, &Limits::default())
            .iter()
            .map(|w| w.file)
            .collect();
        assert_eq!(v1.len(), 1 + devices::ALLOWED.len());
        assert!(v1.iter().all(|file| file.starts_with("devices.")));
        assert_eq!(writes(Version::V2, &Limits::default()), []);
    }

    #[test]
    fn writes_v1_limits_under_the_runtimes_own_cgroup() {
        let (root, mountinfo, self_cgroup) = fixture("hybrid");
        let host = detect(&mountinfo, &self_cgroup);
        let limits = Limits {
            memory: Some(32 << 20),
            pids: Some(16),
            cpu_quota: Some(50_000),
        };
        let cgroup = Cgroup::create_dirs_and_files(&host, "box-test", &limits).unwrap();
        let read = |path: &str| fs::read_to_string(root.path().join(path)).unwrap();
        assert_eq!(
            read("memory/box.slice/box-test/memory.limit_in_bytes"),
            "33554432"
        );
        assert_eq!(read("pids/box-test/pids.max"), "16");
        assert_eq!(read("cpu,cpuacct/box-test/cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu,cpuacct/box-test/cpu.cfs_period_us"), "100000");
        // Every rule was written, one after another: the file holds the last.
        assert_eq!(read("devices/box-test/devices.deny"), "a");
        assert_eq!(read("devices/box-test/devices.allow"), "c 136:* rwm");
        // What was made is what the runtime records before making it.
        let made: Vec<PathBuf> = cgroup.dirs.iter().map(|dir| dir.path.clone()).collect();
        assert_eq!(made, host.cgroup_dirs("box-test"));
        assert_eq!(made.len(), 4);
    }

    #[test]
    fn writes_v2_limits_into_one_cgroup() {
        let (root, mountinfo, self_cgroup) = fixture("v2");
        let host = detect(&mountinfo, &self_cgroup);
        let limits = Limits {
            memory: Some(64 << 20),
            pids: Some(32),
            cpu_quota: Some(150_000),
        };
        let cgroup = Cgroup::create_dirs_and_files(&host, "box-test", &limits).unwrap();
        let dir = root.path().join("user.slice/session.scope/box-test");
        assert_eq!(fs::read_to_string(dir.join("memory.max")).unwrap(), "67108864");
        assert_eq!(fs::read_to_string(dir.join("pids.max")).unwrap(), "32");
        assert_eq!(fs::read_to_string(dir.join("cpu.max")).unwrap(), "150000 100000");
        let made: Vec<PathBuf> = cgroup.dirs.iter().map(|dir| dir.path.clone()).collect();
        assert_eq!(made, vec![dir.clone()]);
        assert_eq!(host.cgroup_dirs("box-test"), made);
    }

    /// The v2 fixture, with no controllers switched on in the runtime's own cgroup yet, and
    /// `procs` as its members.
    fn v2_without_controllers(procs: &str) -> (tempfile::TempDir, Host, PathBuf) {
        let (root, mountinfo, self_cgroup) = fixture("v2");
        let own = root.path().join("user.slice/session.scope");
        fs::write(own.join("cgroup.subtree_control"), "").unwrap();
        fs::write(own.join("cgroup.procs"), procs).unwrap();
        let host = detect(&mountinfo, &self_cgroup);
        (root, host, own)
    }

    #[test]
    fn v2_moves_a_lone_runtime_into_a_leaf_to_switch_controllers_on() {
        let (_root, host, own) = v2_without_controllers(&format!("{}\n", std::process::id()));
        let limits = Limits {
            memory: Some(64 << 20),
            ..Limits::default()
        };
        let cgroup = Cgroup::create_dirs_and_files(&host, "box-test", &limits).unwrap();
        assert_eq!(
            fs::read_to_string(own.join("box-test-runtime/cgroup.procs")).unwrap(),
            "0"
        );
        assert_eq!(
            fs::read_to_string(own.join("cgroup.subtree_control")).unwrap(),
            "+memory"
        );
        drop(cgroup);
        assert_eq!(
            fs::read_to_string(own.join("cgroup.subtree_control")).unwrap(),
            "-memory"
        );
    }

    #[test]
    fn v2_refuses_to_move_processes_it_does_not_own() {
        let (_root, host, own) = v2_without_controllers("1\n4242\n");
        let limits = Limits {
            pids: Some(8),
            ..Limits::default()
        };
        let err = format!(
            "{:#}",
            Cgroup::create_dirs_and_files(&host, "box-test", &limits).unwrap_err()
        );
        assert!(err.contains("no-internal-processes rule"), "{err}");
        assert!(!own.join("box-test").exists() && !own.join("box-test-runtime").exists());
    }

    #[test]
    fn reads_oom_kills_from_the_kernels_counters() {
        let (root, mountinfo, self_cgroup) = fixture("v2");
        let host = detect(&mountinfo, &self_cgroup);
        let cgroup = Cgroup::create_dirs_and_files(&host, "box-test", &Limits::default()).unwrap();
        let dir = root.path().join("user.slice/session.scope/box-test");
        fs::write(
            dir.join("memory.events"),
            "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n",
        )
        .unwrap();
        assert_eq!(cgroup.oom_kills(), 1);
    }

    #[test]
    fn a_host_without_a_device_policy_is_refused() {
        let (_root, mountinfo, self_cgroup) = fixture("hybrid");
        let mountinfo: String = mountinfo
            .lines()
            .filter(|l| !l.contains("rw,devices") && !l.contains("cgroup2"))
            .map(|l| format!("{l}\n"))
            .collect();
        let host = detect(&mountinfo, &self_cgroup);
        let err = Cgroup::create_dirs_and_files(&host, "box-test", &Limits::default()).unwrap_err();
        assert!(
            format!("{err:#}").contains(
                "the devices controller is not available on this host (cgroups: legacy (cgroup v1))"
            ),
            "{err:#}"
        );
    }

    #[test]
    fn a_missing_controller_is_a_clear_error() {
        let (_root, mountinfo, self_cgroup) = fixture("hybrid");
        let mountinfo: String = mountinfo
            .lines()
            .filter(|l| !l.contains("rw,pids"))
            .map(|l| format!("{l}\n"))
            .collect();
        let host = detect(&mountinfo, &self_cgroup);
        let limits = Limits {
            pids: Some(16),
            ..Limits::default()
        };
        let err = Cgroup::create_dirs_and_files(&host, "box-test", &limits).unwrap_err();
        assert!(
            format!("{err:#}").contains("the pids controller is not available"),
            "{err:#}"
        );
    }
}
