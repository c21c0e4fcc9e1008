//! box-probe: runs inside a test container and prints what the container sees, one
//! `name: value` line per fact, so the harness can snapshot it. It asks the kernel directly
//! (syscalls, not tools) and needs nothing from the image, not even /proc.
//!
//! Usage, inside the container:
//!   box-probe report [HOST_PID]   facts about this process and what it can see
//!   box-probe escape HOST_FILE    try the classic chroot escape, then read a file of the host
//!   box-probe orphan              make an orphan, and see whether anyone reaps it
//!   box-probe linger SECONDS      leave a process behind that lives on for SECONDS

use std::ffi::CString;
use std::fs;
use std::io;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("report") => report(args.get(1).and_then(|pid| pid.parse().ok())),
        Some("escape") if args.len() == 2 => escape(&args[1]),
        Some("orphan") => orphan(),
        Some("linger") => linger(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30)),
        _ => {
            eprintln!("usage: box-probe report [HOST_PID] | escape HOST_FILE | orphan | linger SECONDS");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn errno_name(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(libc::EPERM) => "EPERM".into(),
        Some(libc::ENOENT) => "ENOENT".into(),
        Some(libc::ESRCH) => "ESRCH".into(),
        Some(libc::EACCES) => "EACCES".into(),
        Some(libc::EINVAL) => "EINVAL".into(),
        Some(libc::EROFS) => "EROFS".into(),
        _ => err.to_string(),
    }
}

fn report(host_pid: Option<i32>) {
    // SAFETY (all three): plain syscalls without pointers.
    println!("pid: {}", unsafe { libc::getpid() });
    println!("ppid: {}", unsafe { libc::getppid() });
    println!("hostname: {}", hostname());
    println!("root: {}", root_kind());
    println!("fds: {}", open_fds());
    if let Some(pid) = host_pid {
        println!("host process: {}", host_process(pid));
    }
    println!("proc: {}", proc_view());
    println!("mounts: {}", mount_points());
}

/// Mount points this process can see (field 5 of /proc/self/mountinfo), in order.
fn mount_points() -> String {
    match fs::read_to_string("/proc/self/mountinfo") {
        Ok(text) => text
            .lines()
            .filter_map(|line| line.split(' ').nth(4))
            .collect::<Vec<_>>()
            .join(" "),
        Err(_) => "unknown (no /proc)".into(),
    }
}

fn hostname() -> String {
    // SAFETY: uname fills the struct we own.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut name) } != 0 {
        return format!("uname failed: {}", io::Error::last_os_error());
    }
    // SAFETY: the kernel NUL-terminates nodename.
    unsafe { std::ffi::CStr::from_ptr(name.nodename.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// The workshop image carries /etc/box-image (scripts/mkrootfs.sh writes it); the host does not.
fn root_kind() -> &'static str {
    match fs::read_to_string("/etc/box-image") {
        Ok(text) if text.starts_with("box workshop image") => "the image",
        _ => "not the image",
    }
}

/// Descriptors open in this process: F_GETFD answers for an open one, EBADF for a closed one.
fn open_fds() -> String {
    (0..1024)
        // SAFETY: F_GETFD takes no pointers.
        .filter(|fd| unsafe { libc::fcntl(*fd, libc::F_GETFD) } != -1)
        .map(|fd| fd.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Can we signal a process of the host? kill(pid, 0) checks without sending anything. In a
/// PID namespace the host's pid numbers mean nothing (or another process: hence ESRCH).
fn host_process(pid: i32) -> String {
    // SAFETY: signal 0 only checks for existence and permission.
    if unsafe { libc::kill(pid, 0) } == 0 {
        return "visible".into();
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EPERM) => "visible (EPERM)".into(),
        _ => format!("invisible ({})", errno_name(&err)),
    }
}

/// What /proc shows: nothing when it is not mounted, else the process ids it lists.
fn proc_view() -> String {
    if fs::metadata("/proc/self").is_err() {
        return "not mounted".into();
    }
    let mut pids: Vec<u32> = match fs::read_dir("/proc") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(err) => return format!("unreadable ({})", errno_name(&err)),
    };
    pids.sort_unstable();
    let count = pids.len();
    // The harness filters host pids; a handful of small ones means a PID namespace of our own.
    if count > 8 {
        return format!("{count} processes");
    }
    format!(
        "pids {}",
        pids.iter().map(u32::to_string).collect::<Vec<_>>().join(" ")
    )
}

// ANCHOR: escape
/// The classic chroot escape. chroot(2) moves the root but not the current directory, and
/// ".." only stops at the root: so chroot into a subdirectory while standing outside it,
/// climb with ".." until the host's real root, and chroot there.
fn escape(host_file: &str) {
    let step = |what: &str, ret: libc::c_int| -> Result<(), String> {
        if ret == 0 {
            Ok(())
        } else {
            Err(format!("{what}: {}", errno_name(&io::Error::last_os_error())))
        }
    };
    let attempt = || -> Result<String, String> {
        let _ = fs::create_dir("/tmp/escape");
        let dir = CString::new("/tmp/escape").unwrap();
        let up = CString::new("..").unwrap();
        let here = CString::new(".").unwrap();
        // SAFETY: each call gets a valid NUL-terminated path.
        step("chroot(\"/tmp/escape\")", unsafe { libc::chroot(dir.as_ptr()) })?;
        // Our current directory is now *above* our root: ".." is never checked against it.
        for _ in 0..64 {
            step("chdir(\"..\")", unsafe { libc::chdir(up.as_ptr()) })?;
        }
        step("chroot(\".\")", unsafe { libc::chroot(here.as_ptr()) })?;
        fs::read_to_string(host_file).map_err(|err| format!("open({host_file:?}): {}", errno_name(&err)))
    };
    match attempt() {
        Ok(text) => println!("escape: read the host's file: {}", text.trim_end()),
        Err(why) => println!("escape: blocked: {why}"),
    }
}
// ANCHOR_END: escape

/// A child forks a grandchild and exits at once, so the grandchild is an orphan. It exits 50 ms
/// later. If nobody reaps it, it stays a zombie, and kill(pid, 0) still finds it.
fn orphan() {
    let mut fds = [0; 2];
    // SAFETY: pipe fills the array we own; fork in a single-threaded program; the children
    // only call async-signal-safe functions (fork, write, nanosleep, _exit).
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            println!("orphan: pipe failed: {}", io::Error::last_os_error());
            return;
        }
        let child = libc::fork();
        if child == 0 {
            let grandchild = libc::fork();
            if grandchild == 0 {
                let nap = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 50_000_000,
                };
                libc::nanosleep(&nap, std::ptr::null_mut());
                libc::_exit(0);
            }
            let bytes = grandchild.to_ne_bytes();
            libc::write(fds[1], bytes.as_ptr().cast(), bytes.len());
            libc::_exit(0);
        }
        libc::waitpid(child, std::ptr::null_mut(), 0);
        let mut bytes = [0u8; 4];
        libc::read(fds[0], bytes.as_mut_ptr().cast(), bytes.len());
        let grandchild = i32::from_ne_bytes(bytes);
        std::thread::sleep(std::time::Duration::from_millis(400));
        if libc::kill(grandchild, 0) == 0 {
            println!("orphan: left a zombie");
        } else {
            println!("orphan: reaped");
        }
    }
}

/// Fork a child that sleeps on after we exit: what a daemon, or a careless script, leaves.
fn linger(seconds: u64) {
    // SAFETY: fork in a single-threaded program; the child only sleeps and exits.
    if unsafe { libc::fork() } == 0 {
        // Like a daemon, let go of the terminal (or the test's pipes).
        for fd in 0..3 {
            unsafe { libc::close(fd) };
        }
        std::thread::sleep(std::time::Duration::from_secs(seconds));
        unsafe { libc::_exit(0) };
    }
    println!("linger: left a process behind for {seconds}s");
}
