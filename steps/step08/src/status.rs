//! Waiting for the container, and turning how it ended into our exit status, the way a shell
//! does: its own status when it exits, 128+N when signal N kills it. See waitpid(2).

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::trace::trace;

// ANCHOR: wait_for
/// Wait until `child` ends and return the status the runtime should exit with.
pub fn wait_for(child: Pid) -> Result<u8> {
    // ANCHOR: exercise01_wait
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => {
                trace!("waitpid({child}) = exited with {code}");
                return Ok(code as u8);
            }
            Ok(WaitStatus::Signaled(_, signal, _core_dumped)) => {
                trace!("waitpid({child}) = killed by {signal}");
                return Ok(128 + signal as u8);
            }
            // Stopped or continued: the child is still there, keep waiting.
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno).with_context(|| format!("failed to wait for process {child}")),
        }
    }
    // ANCHOR_END: exercise01_wait
}
// ANCHOR_END: wait_for
