//! The parent and the child talk over two pipes (pipe(7)):
//!
//! - `go`, parent to child: the child waits on it until the parent has done its part (in
//!   later steps: cgroups, network links) and closes it.
//! - `report`, child to parent: if anything fails before exec, the child writes the failure
//!   here and exits. Both ends are close-on-exec, so a successful execve(2) closes the pipe
//!   with nothing written: the parent reads end-of-file and knows the command is running.
//!
//! The child never returns an error across the fork: it reports it, and the parent prints it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

use anyhow::{bail, Context, Result};
use nix::fcntl::OFlag;

use crate::errors::Failure;

/// The parent's ends of both pipes.
pub struct ParentSide {
    go: File,
    report: File,
}

/// The child's ends of both pipes.
pub struct ChildSide {
    go: File,
    report: File,
}

/// Make both pipes before the fork; each process then drops the other's side.
pub fn channel() -> Result<(ParentSide, ChildSide)> {
    let (go_read, go_write) = pipe()?;
    let (report_read, report_write) = pipe()?;
    Ok((
        ParentSide {
            go: File::from(go_write),
            report: File::from(report_read),
        },
        ChildSide {
            go: File::from(go_read),
            report: File::from(report_write),
        },
    ))
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).context("failed to create a pipe")
}

impl ParentSide {
    /// Let the child go on: everything it needs from the parent is in place.
    pub fn release_child(&mut self) -> Result<()> {
        self.go
            .write_all(b"go")
            .context("failed to tell the child to go on")
    }

    /// Wait until the child has exec'd the command (`Ok(None)`) or reported why it could not.
    pub fn wait_for_exec(&mut self) -> Result<Option<Failure>> {
        let mut text = String::new();
        self.report
            .read_to_string(&mut text)
            .context("failed to read the child's report")?;
        if text.is_empty() {
            return Ok(None);
        }
        // The child writes three lines: status, message, hint (maybe empty).
        let mut lines = text.splitn(3, '\n');
        let status = lines
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(crate::errors::RUNTIME_FAILED);
        let message = lines
            .next()
            .unwrap_or("the child failed without saying why")
            .to_string();
        let hint = lines
            .next()
            .map(str::trim_end)
            .filter(|h| !h.is_empty())
            .map(String::from);
        Ok(Some(Failure {
            status,
            message,
            hint,
        }))
    }
}

impl ChildSide {
    /// Block until the parent says go. End-of-file means the parent died: stop here.
    pub fn wait_for_parent(&mut self) -> Result<()> {
        let mut buf = [0u8; 2];
        let n = self.go.read(&mut buf).context("failed to wait for the parent")?;
        if n == 0 {
            bail!("the parent went away before the container started");
        }
        Ok(())
    }

    /// Tell the parent why the command could not start, then exit with the failure's status.
    pub fn report_and_exit(mut self, failure: Failure) -> ! {
        let text = format!(
            "{}\n{}\n{}",
            failure.status,
            failure.message,
            failure.hint.unwrap_or_default()
        );
        // If even this write fails there is nobody left to tell; the exit status still says it.
        let _ = self.report.write_all(text.as_bytes());
        // _exit, not exit: the parent owns stdio buffers and atexit handlers copied by fork.
        // SAFETY: _exit(2) ends the process at once; no Rust state is used after it.
        unsafe { libc::_exit(failure.status.into()) }
    }
}
