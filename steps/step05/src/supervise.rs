//! The runtime's side of a running container: wait for init to exit, pass SIGTERM and SIGHUP
//! on to it (so `kill RUNTIME` stops the container cleanly), and if the container has not
//! stopped `--stop-timeout` seconds later, kill init with SIGKILL, which ends the whole PID
//! namespace. The same contract as `docker stop`. The container has a session of its own, so
//! the terminal's Ctrl-C and Ctrl-\ (SIGINT, SIGQUIT) reach only the runtime: it passes them
//! on too. See sigtimedwait(2).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::trace::trace;

fn runtime_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGCHLD,
    ] {
        set.add(sig);
    }
    set
}

/// Before the clone: queue SIGTERM, SIGHUP, SIGINT, SIGQUIT and SIGCHLD for
/// `wait_for_container` instead of letting them kill the runtime and leave the container
/// without its runtime.
pub fn block_signals() -> Result<()> {
    runtime_signals()
        .thread_block()
        .context("failed to block signals in the runtime")
}

/// Wait up to `timeout` for one of the runtime's signals.
fn wait_for_signal(signals: &SigSet, timeout: Duration) -> Option<Signal> {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: both pointers are to values we own for the duration of the call.
    let sig = unsafe { libc::sigtimedwait(signals.as_ref(), std::ptr::null_mut(), &timeout) };
    Signal::try_from(sig).ok()
}

// ANCHOR: wait_for_container
/// Wait until init exits and return the runtime's exit status.
pub fn wait_for_container(init: Pid, stop_timeout: Duration) -> Result<u8> {
    let signals = runtime_signals();
    let mut kill_at: Option<Instant> = None;
    let mut killed = false;
    loop {
        match waitpid(init, Some(WaitPidFlag::WNOHANG)).context("failed to wait for init")? {
            WaitStatus::Exited(_, code) => {
                trace!("waitpid({init}) = exited with {code}");
                return Ok(code as u8);
            }
            WaitStatus::Signaled(_, sig, _) => {
                trace!("waitpid({init}) = killed by {sig}");
                if killed {
                    eprintln!(
                        "{}: the container did not stop within {}s of SIGTERM: killed it",
                        env!("CARGO_PKG_NAME"),
                        stop_timeout.as_secs_f64()
                    );
                }
                return Ok(128 + sig as u8);
            }
            _ => {}
        }
        let timeout = kill_at.map_or(Duration::from_secs(3600), |at| {
            at.saturating_duration_since(Instant::now())
        });
        match wait_for_signal(&signals, timeout) {
            Some(sig @ (Signal::SIGTERM | Signal::SIGHUP)) => {
                trace!("kill({init}, {sig})");
                let _ = kill(init, sig);
                // The grace period starts now, at the first stop signal.
                // (The command line allows at most a day, so the deadline cannot overflow.)
                kill_at.get_or_insert_with(|| Instant::now() + stop_timeout);
            }
            Some(sig @ (Signal::SIGINT | Signal::SIGQUIT)) => {
                // Ctrl-C or Ctrl-\ at the terminal: for the command, which decides what it means.
                trace!("kill({init}, {sig})");
                let _ = kill(init, sig);
            }
            Some(_) => {} // SIGCHLD: look at init again
            None if kill_at.is_some_and(|at| Instant::now() >= at) => {
                trace!("kill({init}, SIGKILL)");
                let _ = kill(init, Signal::SIGKILL);
                killed = true;
                kill_at = None;
            }
            None => {}
        }
    }
}
// ANCHOR_END: wait_for_container
