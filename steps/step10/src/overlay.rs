//! overlayfs stacks directories: read-only *lower* layers, and one writable *upper* layer on
//! top. The merged view shows, for each path, the topmost layer that has it. Writing to a file
//! of a lower layer first copies it up to the upper layer ("copy-up"); deleting one leaves a
//! *whiteout* in the upper layer (a character device 0/0) that hides it. The layers themselves
//! never change. That is what an image's layers are: the same read-only layers under every
//! container, and a thin writable layer per container.
//! See the kernel's filesystems/overlayfs.rst, and mount(8) "Mount options for overlay".

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::statfs::{statfs, OVERLAYFS_SUPER_MAGIC};

use crate::errors::HintExt;
use crate::id::ContainerId;
use crate::trace::trace;

/// Where each container's writable layer lives: on disk, not in /run's memory.
const SCRATCH_ROOT: &str = "/var/tmp";

// ANCHOR: check_layers
/// The image's layers, bottom first: the base image, then each `--layer` in the order given.
/// The kernel answers most mistakes in an overlay mount with a bare EINVAL, so each one is
/// checked here, with a message of its own, before anything is created.
pub fn check_layers(base: &Path, extra: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut layers = vec![base.to_path_buf()];
    for layer in extra {
        let path = layer
            .canonicalize()
            .with_context(|| format!("layer not found: {}", layer.display()))
            .hint("build the workshop's layers with scripts/setup.sh, or check the path")?;
        if !path.is_dir() {
            bail!("layer is not a directory: {}", path.display());
        }
        layers.push(path);
    }
    for layer in &layers {
        // The mount options are "lowerdir=a:b,upperdir=…": these characters would split them.
        if layer.to_string_lossy().contains([':', ',']) {
            bail!(
                "layer path contains ':' or ',', which overlay mount options cannot hold: {}",
                layer.display()
            );
        }
    }
    Ok(layers)
}
// ANCHOR_END: check_layers

/// Without overlayfs in the kernel, the mount fails with ENODEV.
pub fn check_kernel() -> Result<()> {
    let filesystems = fs::read_to_string("/proc/filesystems").context("failed to read /proc/filesystems")?;
    if !filesystems
        .lines()
        .any(|line| line.split_whitespace().last() == Some("overlay"))
    {
        return Err(anyhow::anyhow!("this kernel has no overlay filesystem"))
            .hint("load it with `modprobe overlay` (the module is in every distribution kernel)");
    }
    Ok(())
}

/// A container's scratch area, /var/tmp/box-ID: `upper` (its writes), `work` (overlayfs's own
/// scratch space) and `merged` (where the view is mounted). Removed when dropped, except
/// `upper` (and the marker `kept`) with `--keep`.
pub struct Scratch {
    pub dir: PathBuf,
    pub keep: bool,
}

impl Scratch {
    // ANCHOR: scratch_create
    pub fn create(id: &ContainerId, keep: bool) -> Result<Scratch> {
        let root = Path::new(SCRATCH_ROOT);
        // An upper layer on an overlay is refused by the kernel (and happens when this runs
        // inside another container).
        let fs = statfs(root).with_context(|| format!("failed to look at {}", root.display()))?;
        if fs.filesystem_type() == OVERLAYFS_SUPER_MAGIC {
            return Err(anyhow::anyhow!(
                "{} is on an overlay filesystem, which cannot hold a container's writable layer",
                root.display()
            ))
            .hint("run the workshop on the host or in a VM, not inside another container");
        }
        let scratch = Scratch {
            dir: Scratch::dir_for(id),
            keep,
        };
        // The area is root's alone (0700): what the container writes lands in `upper` as files
        // of the host, set-uid programs included, and no other user of the host may reach them
        // (the class of CVE-2021-41091). The directories inside need no mode of their own.
        for (dir, mode) in [
            (scratch.dir.clone(), 0o700),
            (scratch.upper(), 0o755),
            (scratch.dir.join("work"), 0o755),
            (scratch.merged(), 0o755),
        ] {
            trace!("mkdir({dir:?}, {mode:#o})");
            fs::DirBuilder::new()
                .mode(mode)
                .create(&dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
        }
        if keep {
            // Says "kept on purpose" to scripts/cleanup.sh, which then leaves it alone.
            let marker = scratch.dir.join("kept");
            trace!("write({marker:?}, \"\")");
            fs::write(&marker, "").with_context(|| format!("failed to write {}", marker.display()))?;
        }
        Ok(scratch)
    }
    // ANCHOR_END: scratch_create

    /// Where the scratch area of container `id` is: recorded before it is made.
    pub fn dir_for(id: &ContainerId) -> PathBuf {
        Path::new(SCRATCH_ROOT).join(format!("box-{id}"))
    }

    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }

    pub fn merged(&self) -> PathBuf {
        self.dir.join("merged")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep {
            let _ = fs::remove_dir_all(self.dir.join("work"));
            let _ = fs::remove_dir(self.dir.join("merged"));
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

// ANCHOR: mount_overlay
/// Mount the merged view of the layers and the container's upper layer. Called by init, in its
/// private mount namespace: the mount disappears with the container, whatever happens.
pub fn mount_overlay(layers: &[PathBuf], scratch: &Scratch) -> Result<()> {
    // ANCHOR: exercise08_overlay
    // lowerdir lists the layers top first.
    let lower: Vec<String> = layers
        .iter()
        .rev()
        .map(|layer| layer.display().to_string())
        .collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        scratch.upper().display(),
        scratch.dir.join("work").display()
    );
    let merged = scratch.merged();
    trace!("mount(\"overlay\", {merged:?}, \"overlay\", 0, {options:?})");
    mount(
        Some("overlay"),
        &merged,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .with_context(|| format!("failed to mount the overlay on {}", merged.display()))
    .hint("check `dmesg | tail` for overlayfs's reason")
    // ANCHOR_END: exercise08_overlay
}
// ANCHOR_END: mount_overlay
