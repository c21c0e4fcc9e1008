//! The leak guard. After every test it looks for what the test's containers could have left
//! on the host, and fails the test if it finds anything:
//!
//! - mounts below the test's scratch directory, or named after one of its containers;
//! - processes: the test process is a child subreaper (PR_SET_CHILD_SUBREAPER), so a container
//!   process that outlives its runtime is re-parented to it and shows up as an orphan;
//! - `/run/box-NAME` state and `/var/tmp/box-NAME` scratch directories, `box-NAME` cgroups,
//!   links and network namespaces.
//!
//! Tests run concurrently, so each lab only looks for the names it used itself. An orphan
//! cannot say which runtime it came from; whichever test sees it first reports it (either way
//! it is a real leak). The whole-host check runs serially at the end (`scripts/cleanup.sh
//! --check` in scripts/test.sh).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, Once};

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

/// The prefix of everything the workshop creates: `/run/box-ID`, cgroup `box-ID`, link `box-ID`.
pub const PREFIX: &str = "box-";

/// Children the harness started itself and still waits for (not orphans).
static OURS: Mutex<Option<HashSet<i32>>> = Mutex::new(None);

/// Start a process the harness will wait for. Spawning and recording happen under one lock,
/// so a concurrent orphan scan never mistakes a child that has just started for an orphan.
pub fn spawn(command: &mut Command) -> std::io::Result<Child> {
    become_subreaper();
    let mut ours = OURS.lock().unwrap();
    let child = command.spawn()?;
    ours.get_or_insert_with(HashSet::new).insert(child.id() as i32);
    Ok(child)
}

/// Run a host command to completion (mount, cargo, …) without it ever looking like an orphan.
pub fn status(command: &mut Command) -> std::io::Result<ExitStatus> {
    let mut child = spawn(command)?;
    let status = child.wait();
    untrack(child.id());
    status
}

/// Like `Command::output`, without the child ever looking like an orphan.
pub fn output(command: &mut Command) -> std::io::Result<std::process::Output> {
    command.stdin(std::process::Stdio::null());
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = spawn(command)?;
    let pid = child.id();
    let output = child.wait_with_output();
    untrack(pid);
    output
}

pub fn untrack(pid: u32) {
    OURS.lock()
        .unwrap()
        .get_or_insert_with(HashSet::new)
        .remove(&(pid as i32));
}

fn become_subreaper() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(
            rc,
            0,
            "PR_SET_CHILD_SUBREAPER failed: {}",
            std::io::Error::last_os_error()
        );
    });
}

/// Children of this process that the harness did not start: leaked container processes.
fn orphans() -> Vec<i32> {
    let ours_guard = OURS.lock().unwrap();
    let ours = ours_guard.clone().unwrap_or_default();
    let mut found = Vec::new();
    let Ok(tasks) = fs::read_dir("/proc/self/task") else {
        return found;
    };
    for task in tasks.flatten() {
        let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
        found.extend(
            children
                .split_whitespace()
                .filter_map(|pid| pid.parse::<i32>().ok()),
        );
    }
    drop(ours_guard);
    found.retain(|pid| !ours.contains(pid));
    found.sort_unstable();
    found.dedup();
    found
}

/// The state letter of /proc/PID/stat ("pid (comm) S ..."); comm may hold spaces and ')'.
fn state(pid: i32) -> String {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')')
        .and_then(|end| stat[end + 1..].split_whitespace().next())
        .unwrap_or("?")
        .to_string()
}

/// A process that has exited and waits for its parent to collect it.
pub fn is_zombie(pid: i32) -> bool {
    state(pid) == "Z"
}

fn describe_process(pid: i32) -> String {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline)
        .replace('\0', " ")
        .trim()
        .to_string();
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let what = if cmdline.is_empty() {
        comm.trim().to_string()
    } else {
        cmdline
    };
    format!("process {pid} ({what}, state {})", state(pid))
}

/// What a lab's containers could have made: its scratch directory and its container names.
pub struct Scope<'a> {
    pub dir: &'a Path,
    pub names: &'a [String],
}

/// Everything in scope that is still on the host, described one item per line. What is found
/// is also removed (orphans killed and reaped, directories and empty cgroups removed), so one
/// leak does not break the next test.
pub fn leftovers(scope: &Scope) -> Vec<String> {
    let mut left = Vec::new();
    let tags: Vec<String> = scope.names.iter().map(|name| format!("{PREFIX}{name}")).collect();
    let tagged = |text: &str| tags.iter().any(|tag| text.contains(tag.as_str()));

    for mount_point in mount_points() {
        if mount_point.starts_with(scope.dir) || tagged(&mount_point.to_string_lossy()) {
            left.push(format!("mount: {}", mount_point.display()));
        }
    }
    // A container's init whose runtime was killed is still dying for a moment (as PID 1 it
    // waits in the kernel for the rest of its namespace), possibly another test's: a leak is a
    // process that stays.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while orphans().iter().any(|pid| !is_zombie(*pid)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for pid in orphans() {
        // A zombie is a process that has already ended: it is only waiting for its parent,
        // which is us because we are a subreaper (outside the tests, the host's init).
        if !is_zombie(pid) {
            left.push(describe_process(pid));
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = waitpid(Pid::from_raw(pid), None);
    }
    for tag in &tags {
        // Reported, then removed, so one failing test does not fail the ones after it.
        let state = Path::new("/run").join(tag);
        if state.exists() {
            left.push(format!("state directory: {}", state.display()));
            let _ = fs::remove_dir_all(&state);
        }
        let scratch = Path::new("/var/tmp").join(tag);
        if scratch.exists() {
            left.push(format!("scratch directory: {}", scratch.display()));
            let _ = fs::remove_dir_all(&scratch);
        }
        let netns = Path::new("/run/netns").join(tag);
        if netns.exists() {
            left.push(format!("network namespace: {}", netns.display()));
        }
    }
    // Subnet claims (/run/box-net-N -> /run/box-NAME).
    for entry in fs::read_dir("/run").into_iter().flatten().flatten() {
        let claim = entry.path();
        let target = fs::read_link(&claim).unwrap_or_default();
        let target = target.to_string_lossy();
        if entry.file_name().to_string_lossy().starts_with("box-net-")
            && tags.iter().any(|tag| target.ends_with(tag.as_str()))
        {
            left.push(format!("subnet claim: {} -> {target}", claim.display()));
            let _ = fs::remove_file(&claim);
        }
    }
    // The kernel removes a dead namespace's links in the background: give it a moment.
    let links = || -> Vec<String> {
        fs::read_dir("/sys/class/net")
            .into_iter()
            .flatten()
            .flatten()
            .map(|link| link.file_name().to_string_lossy().into_owned())
            .filter(|name| tags.iter().any(|tag| name.starts_with(tag.as_str())))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while !links().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    for name in links() {
        left.push(format!("network link: {name}"));
    }
    for cgroup in cgroups_named(&tags) {
        left.push(format!("cgroup: {}", cgroup.display()));
        let _ = fs::remove_dir(&cgroup);
    }
    left
}

/// Mount points from /proc/self/mountinfo (field 5), with the kernel's octal escapes undone.
pub fn mount_points() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_octal(field)))
        .collect()
}

fn unescape_octal(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let code: String = chars.by_ref().take(3).collect();
            if let Ok(byte) = u8::from_str_radix(&code, 8) {
                out.push(byte as char);
                continue;
            }
            out.push(c);
            out.push_str(&code);
        } else {
            out.push(c);
        }
    }
    out
}

/// Cgroup directories whose name starts with one of `tags`, in every mounted hierarchy.
fn cgroups_named(tags: &[String]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if tags.is_empty() {
        return found;
    }
    let mut stack = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            // Only real directories: cgroup hierarchies do not nest through symlinks.
            if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if tags.iter().any(|tag| name.starts_with(tag.as_str())) {
                found.push(entry.path());
            } else {
                stack.push(entry.path());
            }
        }
    }
    found
}
