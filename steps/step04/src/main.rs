//! step04: the container gets a mount table of its own, a real root, and its own /proc.
//!
//! Step 3, plus a new mount namespace: init makes its copy of the mount tree private,
//! pivot_root's into the image (closing the chroot escape), and mounts a /proc that shows only
//! the container's processes. Chapter 4 of the book walks through the change.

mod clone;
mod errors;
mod exec;
mod handshake;
mod id;
mod image;
mod init;
mod mounts;
mod status;
mod supervise;
mod trace;
mod uts;

use std::convert::Infallible;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use nix::sched::CloneFlags;
use nix::unistd::{fork, ForkResult, Pid};

use crate::clone::Cloned;
use crate::errors::Failure;
use crate::exec::CommandLine;
use crate::handshake::ChildSide;
use crate::id::ContainerId;
use crate::trace::trace;

// ANCHOR: args
/// Run a command in the workshop image, with its own hostname, processes and mounts.
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

    /// Seconds between passing SIGTERM on to the container and killing it (at most a day)
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(..=86_400))]
    stop_timeout: u64,

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
    mounts::check_image(&image)?;
    let container = Container {
        image,
        hostname,
        command: CommandLine::new(args.command),
    };

    let (mut parent, child) = handshake::channel()?;
    // SIGTERM, SIGHUP and Ctrl-C wait for us to pass them on; SIGCHLD says init has exited.
    supervise::block_signals()?;

    let namespaces = CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS;
    let pid = match clone::clone_process(namespaces)? {
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
        // Init has exited; collect it before we report.
        status::wait_for(pid)?;
        return Err(failure);
    }
    let stop_timeout = Duration::from_secs(args.stop_timeout);
    Ok(supervise::wait_for_container(pid, stop_timeout)?)
}
// ANCHOR_END: run

// ANCHOR: start_container
/// Init's side, as PID 1 of the new PID namespace: prepare the container, start the command,
/// then look after it until it exits.
fn start_container(mut runtime: ChildSide, container: &Container) -> ! {
    trace::set_role("init");
    trace::hold();
    match prepare_and_start(&mut runtime, container) {
        Ok(command) => {
            // The command runs: close our end of the report pipe, so the runtime reads
            // end-of-file, and keep nothing of the host open in PID 1.
            drop(runtime);
            init::close_all_fds(command);
            let status = init::supervise(command);
            // SAFETY: _exit(2) ends init at once; the kernel then ends the whole namespace.
            unsafe { libc::_exit(status.into()) }
        }
        Err(failure) => runtime.report_and_exit(failure),
    }
}

/// Everything init does before the command runs. Returns the command's pid once it has
/// exec'd.
fn prepare_and_start(runtime: &mut ChildSide, container: &Container) -> Result<Pid, Failure> {
    init::block_signals()?;
    init::die_with_parent()?;
    init::leave_the_callers_session()?;
    init::hide_the_host()?;
    runtime.wait_for_parent()?;
    trace::release();
    uts::set_hostname(&container.hostname)?;
    mounts::make_mounts_private()?;
    mounts::pivot_into(&container.image)?;
    mounts::mount_proc()?;

    // Init starts the command the way the runtime started init: fork, a go, and a report.
    let (mut init_side, command_side) = handshake::channel()?;
    // SAFETY: init is single-threaded, so the child's copy of memory is consistent.
    let pid = match unsafe { fork() }.context("failed to fork the command")? {
        ForkResult::Child => {
            drop(init_side);
            run_command(command_side, container)
        }
        ForkResult::Parent { child } => child,
    };
    drop(command_side);
    trace!("fork() = {pid}");
    init_side.release_child()?;
    if let Some(failure) = init_side.wait_for_exec()? {
        status::wait_for(pid)?;
        return Err(failure);
    }
    Ok(pid)
}
// ANCHOR_END: start_container

// ANCHOR: run_command
/// The command's side, as PID 2: wait for init, then become the command.
fn run_command(mut init: ChildSide, container: &Container) -> ! {
    trace::set_role("command");
    let result = (|| -> Result<Infallible, Failure> {
        init.wait_for_parent()?;
        init::unblock_signals()?;
        exec::exec_command(&container.command, &container.image)
    })();
    // exec_command only returns on failure: report it to init, which passes it on.
    let Err(failure) = result;
    init.report_and_exit(failure)
}
// ANCHOR_END: run_command
