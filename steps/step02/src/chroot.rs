//! chroot(2): change the root directory of this process, so that every absolute path it opens
//! (and every process it starts) resolves inside the image. It is the oldest container
//! mechanism (1979) and the weakest: it changes one pointer in the process, nothing else.
//! See chroot(2) and, for why it is not a security boundary, the escape in chapter 1.

use std::path::Path;

use anyhow::{Context, Result};

use crate::trace::trace;

// ANCHOR: enter_root
/// Make `rootfs` this process's `/`, and stand in it.
pub fn enter_root(rootfs: &Path) -> Result<()> {
    // ANCHOR: exercise01_chroot
    trace!("chroot({:?})", rootfs);
    nix::unistd::chroot(rootfs).with_context(|| format!("failed to chroot into {}", rootfs.display()))?;
    // chroot(2) does not move the current directory: without this chdir, the process would
    // still stand in a host directory outside its new root (the first step of every escape).
    trace!("chdir(\"/\")");
    nix::unistd::chdir("/").context("failed to chdir to the new root")?;
    Ok(())
    // ANCHOR_END: exercise01_chroot
}
// ANCHOR_END: enter_root
