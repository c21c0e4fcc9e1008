//! Ctrl-C and Ctrl-\ make the terminal send SIGINT and SIGQUIT to every process in its
//! foreground process group: the command inside, and the runtime that waits for it. Like
//! system(3), the runtime ignores both while it waits, so they stop the command, not us.
//! The child puts them back to their defaults before exec, because ignored signals stay
//! ignored across execve(2). See signal(7), "Signal mask and pending signals" and "execve".

use anyhow::{Context, Result};
use nix::sys::signal::{signal, SigHandler, Signal};

const TERMINAL_SIGNALS: [Signal; 2] = [Signal::SIGINT, Signal::SIGQUIT];

/// In the runtime, before the fork: the command inside is the one that gets Ctrl-C.
pub fn ignore_terminal_signals() -> Result<()> {
    for sig in TERMINAL_SIGNALS {
        // SAFETY: SigIgn installs no handler code, so nothing can run at an unsafe moment.
        unsafe { signal(sig, SigHandler::SigIgn) }.with_context(|| format!("failed to ignore {sig}"))?;
    }
    Ok(())
}

/// In the child, before exec: the command starts with the default dispositions.
pub fn restore_terminal_signals() -> Result<()> {
    for sig in TERMINAL_SIGNALS {
        // SAFETY: SigDfl installs no handler code.
        unsafe { signal(sig, SigHandler::SigDfl) }.with_context(|| format!("failed to restore {sig}"))?;
    }
    Ok(())
}
