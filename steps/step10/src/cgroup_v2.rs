//! What only cgroup v2 asks of a runtime. A parent passes a controller on to its children only
//! when its `cgroup.subtree_control` says so, and under the "no internal processes" rule. And
//! there are no devices files: the device policy is an eBPF program, loaded with bpf(2) and
//! attached to the container's cgroup. See the kernel's admin-guide/cgroup-v2.rst and bpf(2).

use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;

use crate::cgroup::{remove_dir, write};
use crate::devices::{self, Insn};
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

// bpf(2) commands and values, from include/uapi/linux/bpf.h.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Other programs may be attached to the cgroup or its ancestors too (systemd's, for one): the
/// kernel runs them all, and a device is allowed only if every one allows it.
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The part of `union bpf_attr` that BPF_PROG_LOAD reads. The kernel takes a shorter struct than
/// its own (what is missing counts as zero), so this one stops after the fields we use.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// The part of `union bpf_attr` that BPF_PROG_ATTACH reads.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

/// bpf(2) has no wrapper in libc: call it by number, with the attr struct and its size.
fn bpf<T>(command: libc::c_long, attr: &T) -> nix::Result<libc::c_long> {
    // SAFETY: `attr` points to a #[repr(C)] struct laid out as the kernel's bpf_attr member for
    // `command`; it, and what its fields point to (the instructions, the license), outlive the
    // call. The kernel reads size_of::<T>() bytes of it and writes nothing back (no log buffer).
    let ret = unsafe { libc::syscall(libc::SYS_bpf, command, attr as *const T, size_of::<T>()) };
    Errno::result(ret)
}

/// What to do when this kernel refuses to load or attach the device program.
fn bpf_hint(errno: Errno, command: libc::c_long) -> &'static str {
    match (errno, command) {
        (Errno::EPERM, BPF_PROG_LOAD) => "loading an eBPF program needs root (CAP_BPF or CAP_SYS_ADMIN); on kernels before 5.11 it also counts against the locked-memory limit: try `ulimit -l unlimited`",
        (Errno::EPERM, _) => "a device program attached above this cgroup without BPF_F_ALLOW_MULTI allows no other: run the step from another cgroup",
        _ => "this kernel lacks eBPF device control for cgroup v2 (CONFIG_CGROUP_BPF, Linux 4.15 or later), which steps 7-10 need: use a distribution kernel",
    }
}

/// Load `program` into the kernel, which checks it first (the verifier); returns its descriptor.
pub fn load_program(program: &[Insn]) -> Result<OwnedFd> {
    // The program's license, as a module's: ours is the workshop's (no GPL-only helpers used).
    let license = c"MIT OR Apache-2.0";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"box_devices");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
    };
    let fd = bpf(BPF_PROG_LOAD, &attr)
        .or_else(|errno| Err(errno).hint(bpf_hint(errno, BPF_PROG_LOAD)))
        .context("failed to load the device policy's eBPF program (BPF_PROG_LOAD)")?;
    // SAFETY: on success BPF_PROG_LOAD returns a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

// ANCHOR: attach_device_program
/// Enforce the device policy on the cgroup `dir`: load the program made from the table, and
/// attach it to the cgroup. The cgroup keeps it: it is detached and freed with the cgroup.
pub fn attach_device_program(dir: &Path) -> Result<()> {
    let program = devices::program(&devices::ALLOWED);
    trace!(
        "bpf(BPF_PROG_LOAD, BPF_PROG_TYPE_CGROUP_DEVICE, {} instructions: {} rules)",
        program.len(),
        devices::ALLOWED.len()
    );
    let loaded = load_program(&program)?;
    let cgroup = File::open(dir).with_context(|| format!("failed to open the cgroup {}", dir.display()))?;
    trace!("bpf(BPF_PROG_ATTACH, {dir:?}, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)");
    let attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: loaded.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &attr)
        .or_else(|errno| Err(errno).hint(bpf_hint(errno, BPF_PROG_ATTACH)))
        .with_context(|| format!("failed to attach the device policy to {}", dir.display()))?;
    Ok(())
}
// ANCHOR_END: attach_device_program

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_attr_structs_have_the_kernels_layout() {
        // Up to prog_name, as in include/uapi/linux/bpf.h (offsetof(union bpf_attr, prog_name) is 48).
        assert_eq!(size_of::<ProgLoadAttr>(), 64);
        assert_eq!(size_of::<ProgAttachAttr>(), 16);
    }

    /// The kernel's verifier accepts the program. Needs root (loading only: nothing is attached,
    /// and the program is freed when its descriptor closes at the end of the test).
    #[test]
    fn the_kernel_accepts_the_device_program() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: loading an eBPF program needs root");
            return;
        }
        let program = devices::program(&devices::ALLOWED);
        if let Err(err) = load_program(&program) {
            panic!("{err:#}");
        }
    }
}
