//! step02: the container gets a hostname of its own.
//!
//! Step 1, with clone(2) instead of fork(2): the child starts in a new UTS namespace and sets
//! the hostname there, where the host cannot see it. Chapter 2 of the book walks through the
//! change.

mod chroot;
mod clone;
mod errors;
mod exec;
mod handshake;
mod id;
mod image;
mod signals;
mod status;
mod trace;
mod uts;

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;
use nix::sched::CloneFlags;

use crate::clone::Cloned;
use crate::errors::Failure;
use crate::exec::CommandLine;
use crate::handshake::ChildSide;
use crate::id::ContainerId;

// ANCHOR: args
/// Run a command in a chroot of the workshop image, with a hostname of its own.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The image to use as the container's root [default: the workshop's rootfs/]
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,

    /// Print every kernel operation the step performs, in order
    #[arg(long)]
    trace: bool,

    /// The container's hostname [default: the container's id]
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,

    /// The container's id, used to name what it creates on the host [default: random]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

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

// ANCHOR: container
/// Everything the child needs to know to become the container.
struct Container {
    image: PathBuf,
    hostname: String,
    command: CommandLine,
}
// ANCHOR_END: container

// ANCHOR: run
/// The parent's side: check the input, clone, let the child go, wait for it.
fn run(args: Args) -> Result<u8, Failure> {
    // Nothing the caller left open may reach the container: close it before anything else.
    exec::close_inherited_fds()?;
    // Bad input is refused before anything is created.
    let id = match &args.name {
        Some(name) => ContainerId::from_name(name)?,
        None => ContainerId::random()?,
    };
    let hostname = args.hostname.unwrap_or_else(|| id.to_string());
    uts::validate_hostname(&hostname)?;
    errors::require_root()?;
    let image = image::locate(args.rootfs.as_deref())?;
    let container = Container {
        image,
        hostname,
        command: CommandLine::new(args.command),
    };

    let (mut parent, child) = handshake::channel()?;
    // Ctrl-C from the terminal is for the command inside, not for us.
    signals::ignore_terminal_signals()?;

    let pid = match clone::clone_process(CloneFlags::CLONE_NEWUTS)? {
        Cloned::Child => {
            // The parent's ends of the pipes are of no use here.
            drop(parent);
            start_container(child, &container)
        }
        Cloned::Parent { child: pid } => pid,
    };
    // Close the child's ends: the report pipe only reaches end-of-file once no one holds them.
    drop(child);

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
/// The child's side, in its new UTS namespace: wait for the parent, name the container,
/// move into the image, become the command.
fn start_container(mut parent: ChildSide, container: &Container) -> ! {
    trace::set_role("child");
    let result = (|| -> Result<Infallible, Failure> {
        signals::restore_terminal_signals()?;
        parent.wait_for_parent()?;
        uts::set_hostname(&container.hostname)?;
        chroot::enter_root(&container.image)?;
        exec::exec_command(&container.command, &container.image)
    })();
    // exec_command only returns on failure: report it to the parent, which prints it.
    let Err(failure) = result;
    parent.report_and_exit(failure)
}
// ANCHOR_END: start_container
