//! PID 1 of the container. The first process in a new PID namespace is its PID 1, and the
//! kernel treats it as that namespace's init:
//!
//! - Every orphan in the namespace is re-parented to it. A process that has exited stays a
//!   zombie until its parent calls waitpid(2), so an init that does not reap fills the
//!   process table with zombies.
//! - Signals from inside the namespace reach it only if it handles them: SIGTERM with the
//!   default action would be ignored, so `kill 1` does nothing to a naive init.
//! - When it exits, the kernel kills every other process in the namespace.
//!
//! Our init is a function of the step binary (like `docker run --init`'s tini, but built in):
//! it starts the command, forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT to it, reaps every
//! child, and exits with the command's status. See pid_namespaces(7), sigwait(3), prctl(2).

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::trace::trace;

/// The signals init passes on to the command.
const FORWARDED: [Signal; 4] = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT];

fn init_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in FORWARDED {
        set.add(sig);
    }
    set.add(Signal::SIGCHLD);
    set
}

// ANCHOR: die_with_parent
/// If the runtime dies, take the container with us: the kernel sends SIGKILL to init when its
/// parent exits, and init's death ends every process in the namespace.
/// The runtime could die before this call; the handshake catches that case, because the read
/// of the parent's "go" then returns end-of-file.
pub fn die_with_parent() -> Result<()> {
    trace!("prctl(PR_SET_PDEATHSIG, SIGKILL)");
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    Errno::result(rc)
        .map(drop)
        .context("failed to set the parent-death signal")
}
// ANCHOR_END: die_with_parent

/// Hold the signals init handles until it asks for them with sigwait: blocked signals are
/// queued, even for a namespace's PID 1, so none is lost or ignored.
pub fn block_signals() -> Result<()> {
    init_signals()
        .thread_block()
        .context("failed to block signals in init")?;
    // The runtime ignores SIGINT and SIGQUIT; an ignored signal is dropped even when blocked.
    crate::signals::restore_terminal_signals()
}

/// In the command's process, before exec: the signal mask survives execve(2), so unblock all.
pub fn unblock_signals() -> Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .context("failed to unblock signals for the command")
}

/// Close every descriptor init still has above stderr: init is never exec'd, so marking them
/// close-on-exec is not enough, and from step 4 on a process in the container could reach
/// them through /proc/1/fd. Not traced: the command is running by now, and a trace line would
/// land in the middle of its output.
pub fn close_all_fds() {
    // SAFETY: close_range(2) takes no pointers and only closes our own descriptors.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
}

// ANCHOR: supervise
/// Init's loop: wait for a signal; forward the ones meant for the command; on SIGCHLD reap
/// every child that has exited, orphans included. Returns the command's exit status once the
/// command has exited; init then exits, and the kernel ends whatever is left.
pub fn supervise(command: Pid) -> u8 {
    let signals = init_signals();
    loop {
        let sig = match signals.wait() {
            Ok(sig) => sig,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            trace!("kill({command}, {sig})");
            let _ = kill(command, sig);
            continue;
        }
        // One SIGCHLD may stand for several children: reap until none is left.
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == command => {
                    trace!("waitpid(-1) = {pid}, exited with {code}");
                    return code as u8;
                }
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == command => {
                    trace!("waitpid(-1) = {pid}, killed by {sig}");
                    return 128 + sig as u8;
                }
                Ok(WaitStatus::Exited(pid, _) | WaitStatus::Signaled(pid, _, _)) => {
                    trace!("waitpid(-1) = {pid}, an orphan, reaped");
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}
// ANCHOR_END: supervise
