//! A stand-in for one of the host's disks: a loop device (loop(4)) over a small file in the
//! lab, holding known bytes. Tests that try to reach the host's block devices from inside a
//! container use it, never a real disk; it is detached when dropped.

use std::path::Path;

use crate::lab::host_session;
use crate::run::Run;

/// What the stand-in disk holds at its start.
pub const DISK_TEXT: &str = "a secret on the host's disk";

pub struct LoopDisk {
    /// `/dev/loopN` on the host.
    pub path: String,
    pub major: u64,
    pub minor: u64,
}

impl LoopDisk {
    /// Make `DIR/disk.img` (64 KiB, starting with [`DISK_TEXT`]) and attach a free loop device
    /// to it. Returns the device and the `losetup` run, for transcripts.
    pub fn attach(dir: &Path) -> (LoopDisk, Run) {
        let image = dir.join("disk.img");
        let mut bytes = DISK_TEXT.as_bytes().to_vec();
        bytes.resize(64 * 1024, 0);
        std::fs::write(&image, bytes).expect("write the disk image");
        let run = host_session(
            "losetup",
            &["--find", "--show", image.to_str().expect("UTF-8 path")],
        );
        assert_eq!(
            run.status, 0,
            "losetup failed (is the loop module there?):\n{run}"
        );
        let path = run.stdout.trim().to_string();
        let rdev = nix::sys::stat::stat(path.as_str())
            .expect("stat the loop device")
            .st_rdev;
        let disk = LoopDisk {
            major: nix::sys::stat::major(rdev),
            minor: nix::sys::stat::minor(rdev),
            path,
        };
        (disk, run)
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        let _ = crate::guard::status(std::process::Command::new("losetup").args(["--detach", &self.path]));
    }
}
