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
//! child, and exits with the command's status. Being a copy of the runtime, it first gives up
//! what it inherited from the host: the caller's session and the caller's environment.
//! See pid_namespaces(7), sigwait(3), prctl(2), setsid(2), credentials(7).

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
        .context("failed to block signals in init")
}

// ANCHOR: leave_the_callers_session
/// Start a session of our own, with init as its leader and no controlling terminal. Until now
/// the container was in the caller's session and process group: `kill 0` inside reached the
/// runtime and whatever started it (a shell script, cargo, a test harness), and the terminal's
/// Ctrl-C reached the container directly. From here on no signal to or from the caller's
/// group crosses; the runtime passes on the ones meant for the container.
pub fn leave_the_callers_session() -> Result<()> {
    trace!("setsid()");
    nix::unistd::setsid()
        .map(drop)
        .context("failed to start a session of the container's own")
}
// ANCHOR_END: leave_the_callers_session

// ANCHOR: hide_the_host
/// Init is a copy of the runtime made by clone, so it still holds what the runtime was started
/// with: the caller's environment (which /proc/1/environ shows, and which may hold secrets),
/// the runtime's command line with the host's paths in it (/proc/1/cmdline, and so `ps`), and
/// readable memory. Mark init not dumpable, so that /proc/1/environ, /proc/1/mem, /proc/1/exe
/// and /proc/1/fd need CAP_SYS_PTRACE (which step 6 takes away), and overwrite the bytes of
/// both, so that there is nothing to read even for a process that has it.
pub fn hide_the_host() -> Result<()> {
    trace!("prctl(PR_SET_DUMPABLE, 0)");
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    Errno::result(rc).context("failed to make init not dumpable")?;
    // /proc/PID/cmdline and /proc/PID/environ show the bytes between arg_start and arg_end, and
    // between env_start and env_end (fields 48 to 51 of /proc/PID/stat): the strings execve(2)
    // put on the runtime's stack. Overwrite them.
    let stat = std::fs::read_to_string("/proc/self/stat").context("failed to read /proc/self/stat")?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let field = |n: usize| fields.get(n - 3).and_then(|value| value.parse::<usize>().ok());
    let (Some(arg_start), Some(arg_end), Some(env_start), Some(env_end)) =
        (field(48), field(49), field(50), field(51))
    else {
        anyhow::bail!("failed to find the command line and environment in /proc/self/stat");
    };
    // What `ps` shows for init from now on, inside and on the host: a name, not a command line.
    let title = concat!(env!("CARGO_PKG_NAME"), " init");
    trace!("memset(arg_start, 0, arg_end - arg_start), memset(env_start, 0, env_end - env_start)");
    for (start, end) in [(arg_start, arg_end), (env_start, env_end)] {
        if end > start {
            // SAFETY: [start, end) is this process's own argument or environment block, mapped
            // and writable (it is on the stack). Nothing reads either after this: the arguments
            // were parsed and the command's environment decided in the runtime, before the clone.
            unsafe { std::ptr::write_bytes(start as *mut u8, 0, end - start) };
        }
    }
    let room = arg_end
        .saturating_sub(arg_start)
        .saturating_sub(1)
        .min(title.len());
    // SAFETY: `room` bytes fit in the argument block (one byte is left for its final NUL).
    unsafe { std::ptr::copy_nonoverlapping(title.as_ptr(), arg_start as *mut u8, room) };
    Ok(())
}
// ANCHOR_END: hide_the_host

/// In the command's process, before exec: the signal mask survives execve(2), so unblock all.
pub fn unblock_signals() -> Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .context("failed to unblock signals for the command")
}

/// Close every descriptor init still has above stderr (its pipes to the runtime and to the
/// command): init is never exec'd, so close-on-exec does not close them. Should that fail,
/// init must not go on holding them: it says so on stderr (no one reads the report pipe any
/// more), stops the command and exits. Not traced: the command is running by now, and a trace
/// line would land in the middle of its output.
pub fn close_all_fds(command: Pid) {
    // SAFETY: close_range(2) takes no pointers and only closes our own descriptors.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    let closed = match Errno::result(rc) {
        Ok(_) => Ok(()),
        // Kernels before 5.9 lack close_range: the runtime's own fallback does the same.
        Err(Errno::ENOSYS) => crate::exec::close_inherited_fds(),
        Err(errno) => Err(errno).context("failed to close init's descriptors"),
    };
    if let Err(err) = closed {
        eprintln!("{}: error: {err:#}", env!("CARGO_PKG_NAME"));
        let _ = kill(command, Signal::SIGKILL);
        // SAFETY: _exit(2) ends init at once; the kernel then ends the whole namespace.
        unsafe { libc::_exit(crate::errors::RUNTIME_FAILED.into()) }
    }
}

// ANCHOR: supervise
/// Init's loop: wait for a signal; forward the ones meant for the command; on SIGCHLD reap
/// every child that has exited, orphans included. Returns the command's exit status once the
/// command has exited; init then exits, and the kernel ends whatever is left.
pub fn supervise(command: Pid) -> u8 {
    // ANCHOR: exercise03_supervise
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
    // ANCHOR_END: exercise03_supervise
}
// ANCHOR_END: supervise
