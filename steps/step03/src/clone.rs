//! clone(2) is fork(2) with options. glibc's fork() is clone(SIGCHLD); each CLONE_NEW* flag
//! also puts the child into a new namespace of that kind. Called the way fork is called (no new
//! stack: the child continues on a copy of ours), clone returns twice, like fork.
//! See clone(2) and namespaces(7).

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use crate::trace::trace;

/// Which side of the clone we are on.
pub enum Cloned {
    Parent { child: Pid },
    Child,
}

/// The flags as `--trace` and the book spell them: `CLONE_NEWUTS|CLONE_NEWPID`.
pub fn flag_names(flags: CloneFlags) -> String {
    let names: Vec<&str> = flags.iter_names().map(|(name, _)| name).collect();
    names.join("|")
}

// ANCHOR: clone_process
/// Start a child process in the new namespaces `flags` asks for.
pub fn clone_process(flags: CloneFlags) -> Result<Cloned> {
    // ANCHOR: exercise02_clone
    // SIGCHLD: tell the parent when the child ends, as fork does, so waitpid works as usual.
    let raw = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: with a null stack the child runs on a copy of our memory, exactly as after fork;
    // the runtime is single-threaded, so that copy is consistent. All other arguments are 0,
    // which also makes their order (it differs between architectures) irrelevant.
    let ret = unsafe { libc::syscall(libc::SYS_clone, raw, 0usize, 0usize, 0usize, 0usize) };
    let ret = Errno::result(ret).with_context(|| format!("failed to clone({})", flag_names(flags)))?;
    if ret == 0 {
        return Ok(Cloned::Child);
    }
    let child = Pid::from_raw(ret as i32);
    trace!("clone({}|SIGCHLD) = {child}", flag_names(flags));
    Ok(Cloned::Parent { child })
    // ANCHOR_END: exercise02_clone
}
// ANCHOR_END: clone_process
