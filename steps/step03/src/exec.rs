//! Starting the command inside the container: a clean environment, the program looked up in
//! the *image's* PATH, no file descriptors inherited from the host, then execve(2), which
//! replaces this process's program and keeps everything else (root, namespaces, limits).

use std::convert::Infallible;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nix::errno::Errno;

use crate::errors::{Failure, HintExt, NOT_EXECUTABLE, NOT_FOUND, RUNTIME_FAILED};
use crate::trace::trace;

/// The PATH a container starts with: the one docker and runc use.
pub const CONTAINER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The command to run and its arguments (`/bin/sh` when none is given), and the environment
/// it starts with, decided in the runtime before anything is forked.
#[derive(Debug, Clone)]
pub struct CommandLine {
    pub argv: Vec<String>,
    pub env: Vec<String>,
}

impl CommandLine {
    pub fn new(argv: Vec<String>) -> Self {
        let argv = if argv.is_empty() {
            vec!["/bin/sh".to_string()]
        } else {
            argv
        };
        CommandLine {
            argv,
            env: environment(),
        }
    }

    pub fn program(&self) -> &str {
        &self.argv[0]
    }
}

/// The environment the command starts with. Nothing of the host's leaks in but TERM, which
/// describes the terminal we share with it.
fn environment() -> Vec<String> {
    let mut env = vec![
        format!("PATH={CONTAINER_PATH}"),
        "HOME=/root".to_string(),
        // busybox sh shows user, hostname and directory: watch the hostname change in step02.
        r"PS1=\u@\h:\w\$ ".to_string(),
    ];
    if let Ok(term) = std::env::var("TERM") {
        env.push(format!("TERM={term}"));
    }
    env
}

// ANCHOR: close_inherited_fds
/// Close every descriptor above stderr that the runtime inherited from whoever started it: an
/// open file, a socket, a directory of the host is a way out of the container. The runtime does
/// this first, before it forks, so no process of the container holds one at any moment.
pub fn close_inherited_fds() -> Result<()> {
    trace!("close_range(3, ~0, 0)");
    // SAFETY: close_range(2) takes no pointers; the runtime has opened nothing of its own yet.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    match Errno::result(rc) {
        Ok(_) => return Ok(()),
        // Kernels before 5.9 lack close_range: close what /proc/self/fd lists instead.
        Err(Errno::ENOSYS) => {}
        Err(errno) => return Err(errno).context("failed to close the inherited descriptors"),
    }
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .context("failed to list /proc/self/fd")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        match nix::unistd::close(fd) {
            // EBADF: the descriptor the listing itself used, closed when it ended.
            Ok(()) | Err(Errno::EBADF) => {}
            Err(errno) => return Err(errno).with_context(|| format!("failed to close descriptor {fd}")),
        }
    }
    Ok(())
}
// ANCHOR_END: close_inherited_fds

/// Find the program the way a shell would, but in the image: we are already inside its root.
fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    CONTAINER_PATH
        .split(':')
        .map(|dir| Path::new(dir).join(program))
        .find(|candidate| candidate.exists())
}

fn cstring(text: &[u8]) -> Result<CString> {
    CString::new(text).map_err(|_| {
        anyhow!(
            "argument contains a NUL byte: {:?}",
            String::from_utf8_lossy(text)
        )
    })
}

// ANCHOR: exec_command
/// Replace this process with the command. Returns only on failure, with the exit status a
/// shell would use: 127 when the program is not in the image, 126 when it cannot be run.
pub fn exec_command(command: &CommandLine, image: &Path) -> Result<Infallible, Failure> {
    let not_found = |path: &str| {
        let err = Err::<(), _>(anyhow!(
            "command not found in the image {}: {path}",
            image.display()
        ))
        .hint("give the full path inside the image, or list its programs with `ls rootfs/bin`");
        Failure::new(NOT_FOUND, &err.unwrap_err())
    };
    let path = find_program(command.program()).ok_or_else(|| not_found(command.program()))?;
    let argv = command
        .argv
        .iter()
        .map(|arg| cstring(arg.as_bytes()))
        .collect::<Result<Vec<_>>>()
        .map_err(Failure::from)?;
    let env = command
        .env
        .iter()
        .map(|var| cstring(var.as_bytes()))
        .collect::<Result<Vec<_>>>()
        .map_err(Failure::from)?;
    let c_path = cstring(path.as_os_str().as_bytes()).map_err(Failure::from)?;

    trace!("execve({:?}, {:?})", path, command.argv);
    // ANCHOR: exercise01_execve
    // execve only ever returns an error: on success this process is the command now.
    let Err(errno) = nix::unistd::execve(&c_path, &argv, &env);
    // ANCHOR_END: exercise01_execve
    let status = match errno {
        Errno::ENOENT => return Err(not_found(&path.display().to_string())),
        Errno::EACCES | Errno::ENOEXEC | Errno::EPERM | Errno::EISDIR => NOT_EXECUTABLE,
        _ => RUNTIME_FAILED,
    };
    let err = anyhow::Error::from(errno).context(format!("cannot execute {}", path.display()));
    Err(Failure::new(status, &err))
}
// ANCHOR_END: exec_command
