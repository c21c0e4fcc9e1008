//! The mount namespace: a copy of the mount table that the container can change on its own.
//! With it the container gets a real root of its own (pivot_root(2), which moves the root of
//! the whole mount tree, where chroot(2) moved one process's pointer into it) and a /proc that
//! shows its own PID namespace. See mount_namespaces(7), pivot_root(2), mount(2), proc(5).

use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use crate::errors::HintExt;
use crate::trace::trace;

const NONE: Option<&str> = None;

/// Mounts are made inside the image, so refuse an image whose /proc could lead elsewhere: a
/// symlink there would make us mount over whatever it points to, on the host.
pub fn check_image(image: &Path) -> Result<()> {
    let proc_dir = image.join("proc");
    let meta = std::fs::symlink_metadata(&proc_dir)
        .with_context(|| format!("the image has no /proc: {}", proc_dir.display()))
        .hint("create an empty proc/ directory in the image")?;
    if meta.file_type().is_symlink() {
        bail!(
            "the image's /proc is a symlink: {}: refusing to mount through it",
            proc_dir.display()
        );
    }
    if !meta.is_dir() {
        bail!("the image's /proc is not a directory: {}", proc_dir.display());
    }
    Ok(())
}

// ANCHOR: make_mounts_private
/// The new mount namespace starts as a copy of the host's, and on most hosts "/" is a *shared*
/// mount (systemd makes it so): a mount under it would propagate back to the host. Make every
/// mount in our copy private first, before we mount anything.
pub fn make_mounts_private() -> Result<()> {
    // ANCHOR: exercise04_private
    trace!("mount(NULL, \"/\", NULL, MS_REC|MS_PRIVATE)");
    mount(NONE, "/", NONE, MsFlags::MS_REC | MsFlags::MS_PRIVATE, NONE)
        .context("failed to make the mount tree private")
    // ANCHOR_END: exercise04_private
}
// ANCHOR_END: make_mounts_private

// ANCHOR: pivot_into
/// Make `image` the root of this mount namespace and detach the host's root from it.
pub fn pivot_into(image: &Path) -> Result<()> {
    // ANCHOR: exercise04_pivot
    // pivot_root needs the new root to be a mount point: bind-mount the image onto itself.
    trace!("mount({image:?}, {image:?}, NULL, MS_BIND|MS_REC)");
    mount(Some(image), image, NONE, MsFlags::MS_BIND | MsFlags::MS_REC, NONE)
        .with_context(|| format!("failed to bind-mount the image {}", image.display()))?;
    trace!("chdir({image:?})");
    nix::unistd::chdir(image).with_context(|| format!("failed to chdir to {}", image.display()))?;
    // pivot_root(".", "."): the image becomes "/", and the old root is stacked on top of it,
    // at "/" too (pivot_root(2), NOTES). No directory inside the image is needed for it.
    trace!("pivot_root(\".\", \".\")");
    nix::unistd::pivot_root(".", ".")
        .context("failed to pivot_root into the image")
        .hint("pivot_root refuses a root on a shared mount or on the initramfs (rootfs)")?;
    // Detach the old root, the top of the stack. MNT_DETACH: the host's mounts are busy.
    trace!("umount2(\".\", MNT_DETACH)");
    umount2(".", MntFlags::MNT_DETACH).context("failed to detach the old root")?;
    trace!("chdir(\"/\")");
    nix::unistd::chdir("/").context("failed to chdir to the new root")?;
    Ok(())
    // ANCHOR_END: exercise04_pivot
}
// ANCHOR_END: pivot_into

// ANCHOR: mount_proc
/// Mount a fresh proc at /proc. It shows the PID namespace of the process that mounts it, so
/// init (PID 1 of the container) mounts it after the pivot, by its path inside the container.
pub fn mount_proc() -> Result<()> {
    // ANCHOR: exercise04_proc
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    trace!("mount(\"proc\", \"/proc\", \"proc\", MS_NOSUID|MS_NODEV|MS_NOEXEC)");
    mount(Some("proc"), "/proc", Some("proc"), flags, NONE).context("failed to mount /proc")
    // ANCHOR_END: exercise04_proc
}
// ANCHOR_END: mount_proc
