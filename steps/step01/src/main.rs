//! step01: a container is a process with another root directory.
//!
//! The parent forks. The child changes its root to the image with chroot(2) and execs the
//! command; the parent waits and exits with the command's status. Chapter 1 of the book walks
//! through this file from top to bottom.

mod chroot;
mod errors;
mod exec;
mod handshake;
mod image;
mod signals;
mod status;
mod trace;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use nix::unistd::{fork, ForkResult};

use crate::errors::Failure;
use crate::exec::CommandLine;
use crate::handshake::ChildSide;
use crate::trace::trace;

// ANCHOR: args
/// Run a command in a chroot of the workshop image.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The image to use as the container's root [default: the workshop's rootfs/]
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,

    /// Print every kernel operation the step performs, in order
    #[arg(long)]
    trace: bool,

    /// The command to run in the container, and its arguments [default: /bin/sh]
    #[arg(value_name = "COMMAND", trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}
// ANCHOR_END: args

fn main() -> ExitCode {
    let args = match errors::parse_args::<Args>() {
        Ok(args) => args,
        Err(status) => return status,
    };
    trace::enable(args.trace);
    match run(args) {
        Ok(status) => ExitCode::from(status),
        Err(failure) => ExitCode::from(failure.print()),
    }
}

// ANCHOR: run
/// The parent's side: check the input, fork, let the child go, wait for it.
fn run(args: Args) -> Result<u8, Failure> {
    // Nothing the caller left open may reach the container: close it before anything else.
    exec::close_inherited_fds()?;
    errors::require_root()?;
    let image = image::locate(args.rootfs.as_deref())?;
    let command = CommandLine::new(args.command);

    let (mut parent, child) = handshake::channel()?;
    // Ctrl-C from the terminal is for the command inside, not for us.
    signals::ignore_terminal_signals()?;

    // ANCHOR: exercise01_fork
    // SAFETY: the runtime is single-threaded, so the child's copy of memory is consistent.
    let pid = match unsafe { fork() }.context("failed to fork")? {
        ForkResult::Child => {
            // The parent's ends of the pipes are of no use here.
            drop(parent);
            start_container(child, &image, &command)
        }
        ForkResult::Parent { child: pid } => pid,
    };
    // ANCHOR_END: exercise01_fork
    // Close the child's ends: the report pipe only reaches end-of-file once no one holds them.
    drop(child);
    trace!("fork() = {pid}");

    parent.release_child()?;
    if let Some(failure) = parent.wait_for_exec()? {
        // The child has exited; collect it before we report.
        status::wait_for(pid)?;
        return Err(failure);
    }
    Ok(status::wait_for(pid)?)
}
// ANCHOR_END: run

// ANCHOR: start_container
/// The child's side: wait for the parent, move into the image, become the command.
fn start_container(mut parent: ChildSide, image: &Path, command: &CommandLine) -> ! {
    trace::set_role("child");
    let result = (|| -> Result<Infallible, Failure> {
        signals::restore_terminal_signals()?;
        parent.wait_for_parent()?;
        chroot::enter_root(image)?;
        exec::exec_command(command, image)
    })();
    // exec_command only returns on failure: report it to the parent, which prints it.
    let Err(failure) = result;
    parent.report_and_exit(failure)
}
// ANCHOR_END: start_container
