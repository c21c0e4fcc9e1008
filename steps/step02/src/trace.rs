//! `--trace`: one line per kernel operation, in the order the step performs them, written the
//! way strace would (`chroot("/path")`, `fork() = 4242`). The line is printed just before the
//! call, or just after it when the call returns something worth seeing (a pid, a status).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Which process prints: "parent" until the fork, then "child" in the child.
static ROLE: Mutex<&str> = Mutex::new("parent");

pub fn enable(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Name the process that prints from now on (called once, right after the fork).
pub fn set_role(role: &'static str) {
    *ROLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = role;
}

/// Print one trace line with a single write, so lines from two processes never interleave.
pub fn line(args: std::fmt::Arguments) {
    let role = *ROLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let text = format!("[{role}] {args}\n");
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// `trace!("chroot({:?})", path)` prints the line only under `--trace`.
macro_rules! trace {
    ($($arg:tt)*) => {
        if $crate::trace::enabled() {
            $crate::trace::line(format_args!($($arg)*))
        }
    };
}
pub(crate) use trace;
