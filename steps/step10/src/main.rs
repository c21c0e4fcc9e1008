//! step10: bridge networking: containers that reach each other, the outside, and the host's ports.
//!
//! Step 9, with the host's end of each container's veth pair plugged into a bridge the first
//! container creates (with IP forwarding and NAT for the way out) and the last one removes;
//! and --publish HOSTPORT:CONTAINERPORT, which the runtime serves on the host and forwards to
//! the container. The small but honest `docker run`. Chapter 10 of the book walks through the
//! change.

mod bridge;
mod capabilities;
mod cgroup;
mod cgroup_v2;
mod cgroupns;
mod clone;
mod dev;
mod devices;
mod errors;
mod exec;
mod handshake;
mod id;
mod image;
mod init;
mod masks;
mod mounts;
mod names;
mod net;
mod netlink;
mod overlay;
mod publish;
mod seccomp;
mod size;
mod state;
mod status;
mod supervise;
mod terminal;
mod trace;
mod uts;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;
use nix::sched::CloneFlags;
use nix::unistd::{fork, ForkResult, Pid};

use crate::cgroup::{Cgroup, Limits};
use crate::clone::Cloned;
use crate::errors::Failure;
use crate::exec::CommandLine;
use crate::handshake::ChildSide;
use crate::id::ContainerId;
use crate::names::NameFiles;
use crate::overlay::Scratch;
use crate::state::State;
use crate::terminal::ContainerEnd;
use crate::trace::trace;

// ANCHOR: args
/// Run a command in a container: a small but honest `docker run`.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// The image to use as the container's root [default: the workshop's rootfs/]
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,

    /// A read-only layer to put on top of the image (repeatable; the last one is on top)
    #[arg(long, value_name = "DIR")]
    layer: Vec<PathBuf>,

    /// Keep the container's writable layer when it ends, and say where it is
    #[arg(long)]
    keep: bool,

    /// The container's network: the workshop's bridge, a veth pair of its own, or none
    #[arg(long, value_enum, default_value = "bridge")]
    net: net::Mode,

    /// A name server for the container's /etc/resolv.conf (repeatable) [default: the host's]
    #[arg(long, value_name = "IP")]
    dns: Vec<std::net::Ipv4Addr>,

    /// Serve the container's port on the host's (repeatable), like 8080:80
    #[arg(long, value_name = "HOSTPORT:CONTAINERPORT")]
    publish: Vec<String>,

    /// Print every kernel operation the step performs, in order
    #[arg(long)]
    trace: bool,

    /// The container's hostname [default: the container's id]
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,

    /// The container's id, used to name what it creates on the host [default: random]
    #[arg(long, value_name = "NAME")]
    name: Option<String>,

    /// Give the container a capability it does not have by default (repeatable; ALL for all)
    #[arg(long, value_name = "CAP")]
    cap_add: Vec<String>,

    /// Take a capability from the container (repeatable; ALL for all)
    #[arg(long, value_name = "CAP")]
    cap_drop: Vec<String>,

    /// Memory limit, like 64m or 1g (k, m, g suffixes, as docker)
    #[arg(long, value_name = "SIZE")]
    memory: Option<String>,

    /// Limit on the number of processes (and threads) in the container
    #[arg(long, value_name = "N")]
    pids: Option<String>,

    /// CPU time limit, in CPUs: 0.5 is half of one CPU
    #[arg(long, value_name = "CPUS")]
    cpus: Option<String>,

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
    layers: Vec<PathBuf>,
    scratch: Scratch,
    hostname: String,
    names: NameFiles,
    capabilities: caps::CapsHashSet,
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
    let hostname = args.hostname.clone().unwrap_or_else(|| id.to_string());
    uts::validate_hostname(&hostname)?;
    let capabilities = capabilities::to_keep(&args.cap_add, &args.cap_drop)?;
    let limits = limits_from(&args)?;
    let ports = publish::parse_all(&args.publish)?;
    net::check(args.net, !ports.is_empty())?;
    errors::require_root()?;
    let listeners = publish::listen(&ports)?;
    let image = image::locate(args.rootfs.as_deref())?;
    mounts::check_image(&image)?;
    let layers = overlay::check_layers(&image, &args.layer)?;
    overlay::check_kernel()?;

    // The cgroup exists before the container does, so its first process is born limited.
    let host = cgroup::detect_host()?;
    state::sweep_stale();
    net::sweep_stale_claims();
    let state = State::create(&id)?;
    // Each thing is recorded before it is made: a runtime killed at any moment leaves only
    // what the next run's sweep, or scripts/cleanup.sh, finds and removes.
    state.record_cgroups(&host.cgroup_dirs(&state.name()))?;
    let cgroup = Cgroup::create(&host, &state.name(), &limits)?;
    state.record_scratch(&Scratch::dir_for(&id), args.keep)?;
    let scratch = Scratch::create(&id, args.keep)?;
    // The container's address is claimed now; its links are made once it exists.
    let mut network = net::Network::prepare(args.net, &id, &Path::new("/run").join(state.name()))?;
    let address = network.container_address();
    let container = Container {
        image,
        layers,
        scratch,
        names: NameFiles::new(&hostname, address, &args.dns),
        hostname,
        capabilities,
        command: CommandLine::new(args.command),
    };

    let (mut parent, child) = handshake::channel()?;
    // When stdin is a terminal, the container gets one of its own: its master comes back here.
    let (terminal, container_terminal) = terminal::channel()?;
    // SIGTERM, SIGHUP and Ctrl-C wait for us to pass them on; SIGCHLD says init has exited.
    supervise::block_signals()?;

    let namespaces = CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWNET;
    let pid = match clone::clone_process(namespaces)? {
        Cloned::Child => {
            // The parent's ends of the pipes are of no use here.
            drop(parent);
            drop(terminal);
            start_container(child, container_terminal, &container)
        }
        Cloned::Parent { child: pid } => pid,
    };
    // Close the child's ends: the report pipe only reaches end-of-file once no one holds them.
    drop(child);
    drop(container_terminal);

    // Init joins the cgroup before it may go on: all it forks, the command too, is born there.
    cgroup.add_process(pid)?;
    // And it has a network before it goes on (on the bridge, which the first container makes).
    network.attach(pid, &state.name())?;
    parent.release_child()?;
    // From here until `finish`, our terminal is raw and relays to the container's.
    let console = terminal.take_console()?;
    if let Some(failure) = parent.wait_for_exec()? {
        // Init has exited; collect it before we report.
        status::wait_for(pid)?;
        return Err(failure);
    }
    // The container runs: serve its published ports.
    publish::forward_all(listeners, network.container_address());
    let stop_timeout = Duration::from_secs(args.stop_timeout);
    let status = supervise::wait_for_container(pid, stop_timeout)?;
    console.finish();
    report_oom(&cgroup, args.memory.as_deref());
    if args.keep {
        eprintln!(
            "{}: kept the container's writes in {}",
            env!("CARGO_PKG_NAME"),
            container.scratch.upper().display()
        );
    }
    // Dropped here, in reverse order: the network (its link goes with the container; the last
    // one out removes the bridge), the scratch area, the cgroup, then the record.
    Ok(status)
}
// ANCHOR_END: run

/// The limits as given on the command line, checked before anything is created.
fn limits_from(args: &Args) -> Result<Limits> {
    let online = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    Ok(Limits {
        memory: args.memory.as_deref().map(size::parse_memory).transpose()?,
        pids: args.pids.as_deref().map(size::parse_pids).transpose()?,
        cpu_quota: args
            .cpus
            .as_deref()
            .map(|cpus| size::parse_cpus(cpus, online))
            .transpose()?,
    })
}

// ANCHOR: report_oom
/// Say so when the kernel killed a process of the container for going over its memory limit:
/// the exit status alone (137, SIGKILL) cannot tell an OOM kill from `kill -9`.
fn report_oom(cgroup: &Cgroup, memory: Option<&str>) {
    let kills = cgroup.oom_kills();
    if kills > 0 {
        eprintln!(
            "{}: the container ran out of memory: the kernel killed {kills} of its processes (--memory {})",
            env!("CARGO_PKG_NAME"),
            memory.unwrap_or("?")
        );
    }
}
// ANCHOR_END: report_oom

// ANCHOR: start_container
/// Init's side, as PID 1 of the new PID namespace: prepare the container, start the command,
/// then look after it until it exits.
fn start_container(mut runtime: ChildSide, terminal: ContainerEnd, container: &Container) -> ! {
    trace::set_role("init");
    trace::hold();
    match prepare_and_start(&mut runtime, terminal, container) {
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
fn prepare_and_start(
    runtime: &mut ChildSide,
    terminal: ContainerEnd,
    container: &Container,
) -> Result<Pid, Failure> {
    init::block_signals()?;
    init::die_with_parent()?;
    init::leave_the_callers_session()?;
    init::hide_the_host()?;
    runtime.wait_for_parent()?;
    trace::release();
    uts::set_hostname(&container.hostname)?;
    mounts::make_mounts_private()?;
    overlay::mount_overlay(&container.layers, &container.scratch)?;
    mounts::pivot_into(&container.scratch.merged())?;
    container.names.write()?;
    mounts::mount_proc()?;
    dev::mount_dev()?;
    masks::mount_sys()?;
    cgroupns::mount_own_cgroup()?;
    masks::mask_paths()?;
    masks::make_read_only()?;
    let has_terminal = terminal.open_pty()?;
    // Everything that needed root's powers is done: give them up, for init and the command.
    capabilities::drop_capabilities(&container.capabilities)?;
    seccomp::set_no_new_privs()?;
    seccomp::install_filter()?;

    // Init starts the command the way the runtime started init: fork, a go, and a report.
    let (mut init_side, command_side) = handshake::channel()?;
    // SAFETY: init is single-threaded, so the child's copy of memory is consistent.
    let pid = match unsafe { fork() }.context("failed to fork the command")? {
        ForkResult::Child => {
            drop(init_side);
            run_command(command_side, has_terminal, container)
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
fn run_command(mut init: ChildSide, has_terminal: bool, container: &Container) -> ! {
    trace::set_role("command");
    let result = (|| -> Result<Infallible, Failure> {
        init.wait_for_parent()?;
        init::unblock_signals()?;
        if has_terminal {
            terminal::take_controlling_terminal()?;
        }
        exec::exec_command(&container.command, &container.image)
    })();
    // exec_command only returns on failure: report it to init, which passes it on.
    let Err(failure) = result;
    init.report_and_exit(failure)
}
// ANCHOR_END: run_command
