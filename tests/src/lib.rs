//! The workshop's test harness.
//!
//! Every test gets a [`Lab`]: a scratch directory with its own copy of the image (plus the
//! probe), a file that exists only on the host, and a leak guard that fails the test when a
//! run leaves a mount, a process, a cgroup, a link or a scratch directory behind. Step
//! binaries always run as subprocesses, never forked from the test process.

pub mod binaries;
pub mod disk;
pub mod guard;
pub mod lab;
pub mod run;
pub mod snapshot;
pub mod terminal;

pub use lab::Lab;
pub use run::Run;

/// Skip a test that needs root, saying why, instead of failing with EPERM.
#[macro_export]
macro_rules! require_root {
    () => {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: this test runs containers and needs root (try `sudo -E cargo test`)");
            return;
        }
    };
}
