//! Where the image is. An image is only a directory holding a root filesystem: programs,
//! libraries and /etc, but no kernel. The workshop's own image is `rootfs/` at the top of the
//! workspace, built by `scripts/setup.sh`; `--rootfs DIR` picks another one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::errors::HintExt;

/// The workspace's `rootfs/`, found from where this crate was built, so `cargo run -p stepNN`
/// works from any directory.
pub fn default_rootfs() -> PathBuf {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // steps/stepNN -> the workspace root
    let workspace = crate_dir.parent().and_then(Path::parent).unwrap_or(crate_dir);
    workspace.join("rootfs")
}

/// Check the image before anything is created, and return its absolute path.
pub fn locate(rootfs: Option<&Path>) -> Result<PathBuf> {
    let (path, is_default) = match rootfs {
        Some(path) => (path.to_path_buf(), false),
        None => (default_rootfs(), true),
    };
    let not_found_hint = if is_default {
        "run scripts/setup.sh to build the workshop image"
    } else {
        "check the path given to --rootfs"
    };
    let path = path
        .canonicalize()
        .with_context(|| format!("image not found: {}", path.display()))
        .hint(not_found_hint)?;
    if !path.is_dir() {
        bail!("image is not a directory: {}", path.display());
    }
    // A fresh clone has rootfs/ with only its README in it.
    if is_default && !path.join("bin/sh").exists() {
        return Err(anyhow::anyhow!(
            "the workshop image is not built yet: {} has no /bin/sh",
            path.display()
        ))
        .hint("run scripts/setup.sh to build it");
    }
    Ok(path)
}
