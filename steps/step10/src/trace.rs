//! `--trace`: one line per kernel operation, in the order the step performs them, written the
//! way strace would (`chroot("/path")`, `fork() = 4242`). The line is printed just before the
//! call, or just after it when the call returns something worth seeing (a pid, a status).
//!
//! A child may have to act before the parent lets it go on (init arms its parent-death
//! signal first thing). Its lines are held until the go, so that they come after the parent's
//! `clone(...) = PID` line and the trace reads in order.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Which process prints: "parent" until the fork, then "child" in the child.
static ROLE: Mutex<&str> = Mutex::new("parent");
/// Lines held back until `release` (None: print at once).
static HELD: Mutex<Option<String>> = Mutex::new(None);

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

/// Hold this process's lines until `release` (called in a child that acts before its go).
pub fn hold() {
    *HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(String::new());
}

/// Print the held lines and print at once from now on.
pub fn release() {
    let held = HELD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if let Some(text) = held {
        let _ = std::io::stderr().write_all(text.as_bytes());
    }
}

/// Print one trace line with a single write, so lines from two processes never interleave.
pub fn line(args: std::fmt::Arguments) {
    let role = *ROLE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let text = format!("[{role}] {args}\n");
    if let Some(held) = HELD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .as_mut()
    {
        held.push_str(&text);
        return;
    }
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
