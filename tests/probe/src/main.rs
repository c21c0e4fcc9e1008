//! box-probe: runs inside a test container and prints what the container sees, one
//! `name: value` line per fact, so the harness can snapshot it. It asks the kernel directly
//! (syscalls, not tools) and needs nothing from the image, not even /proc.
//!
//! Usage, inside the container:
//!   box-probe report [HOST_PID]   facts about this process and what it can see
//!   box-probe escape HOST_FILE    try the classic chroot escape, then read a file of the host
//!   box-probe orphan              make an orphan, and see whether anyone reaps it
//!   box-probe linger SECONDS      leave a process behind that lives on for SECONDS
//!   box-probe ipc KEY             can we see the host's System V message queue KEY?
//!   box-probe try mount|unshare|io_uring
//!                                 try a privileged call (a tmpfs on /tmp, undone at once; a
//!                                 new UTS namespace for the probe alone; an io_uring ring,
//!                                 closed at once) and say if it worked
//!   box-probe forks N             start N children (each sleeps 2 s); say how many started
//!   box-probe hog MIB             allocate and touch MIB mebibytes, then say so
//!   box-probe spin SECONDS        keep one CPU busy for SECONDS
//!   box-probe environ TEXT        mount /proc if there is none (as root may), then say whether
//!                                 any process's /proc/N/environ holds TEXT
//!   box-probe tiocsti TEXT        push TEXT into the controlling terminal (/dev/tty, or stdin
//!                                 when that is a terminal) with the TIOCSTI ioctl
//!   box-probe blockdev MAJ MIN    make a block device node for MAJ:MIN in /tmp (mknod(2)), read
//!                                 its first bytes, remove it: can it reach a host disk?
//!   box-probe resolve NAME        ask the first name server of /etc/resolv.conf for NAME's
//!                                 address (one DNS query over UDP, as a resolver would)
//!   box-probe check PATH...       for each path: does reading give anything, would a write be
//!                                 allowed (asked with access(2): nothing is written)

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
        Some("ipc") if args.len() == 2 => ipc(&args[1]),
        Some("try") if args.len() == 2 => try_call(&args[1]),
        Some("forks") => forks(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(40)),
        Some("hog") => hog(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(64)),
        Some("spin") => spin(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1.0)),
        Some("check") => args[1..].iter().for_each(|path| check(path)),
        Some("environ") if args.len() == 2 => environ(&args[1]),
        Some("blockdev") if args.len() == 3 => blockdev(&args[1], &args[2]),
        Some("resolve") if args.len() == 2 => resolve(&args[1]),
        Some("tiocsti") if args.len() == 2 => tiocsti(&args[1]),
        Some("linger") => linger(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(30)),
        _ => {
            eprintln!(
                "usage: box-probe report [HOST_PID] | escape HOST_FILE | orphan | linger SECONDS | ipc KEY"
            );
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
    println!("dev: {}", dev_listing());
    println!("proc internals: {}", proc_internals());
    println!("core_pattern: {}", writable("/proc/sys/kernel/core_pattern"));
    println!("sys: {}", sys_view());
    println!("capabilities: {}", effective_capabilities());
    // SAFETY (both): prctl with integer arguments only.
    println!("no_new_privs: {}", unsafe {
        libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)
    });
    println!("seccomp: {}", unsafe {
        libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0)
    });
    println!("interfaces: {}", interfaces());
    println!("cgroup: {}", own_cgroup());
    println!("cgroupfs: {}", cgroup_fs());
}

/// How many capabilities are in our effective set (capget(2), no /proc needed).
fn effective_capabilities() -> String {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: 0x2008_0522,
        pid: 0,
    }; // _LINUX_CAPABILITY_VERSION_3
    let mut data = [Data::default(); 2];
    // SAFETY: both pointers are to values we own, of the layout capget(2) expects.
    if unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } != 0 {
        return format!("capget failed: {}", io::Error::last_os_error());
    }
    let count = data[0].effective.count_ones() + data[1].effective.count_ones();
    format!("{count}")
}

fn try_call(what: &str) {
    let c = |text: &str| CString::new(text).unwrap();
    let result = match what {
        // SAFETY: valid NUL-terminated strings; a null data pointer is allowed.
        "mount" => unsafe {
            let rc = libc::mount(
                c("tmpfs").as_ptr(),
                c("/tmp").as_ptr(),
                c("tmpfs").as_ptr(),
                0,
                std::ptr::null(),
            );
            if rc == 0 {
                libc::umount(c("/tmp").as_ptr());
            }
            rc
        },
        // SAFETY: unshare takes flags only; the new namespace is the probe's alone.
        "unshare" => unsafe { libc::unshare(libc::CLONE_NEWUTS) },
        // SAFETY: io_uring_setup writes a struct io_uring_params (120 bytes) into our buffer;
        // the ring it makes is closed at once.
        "io_uring" => unsafe {
            let mut params = [0u8; 120];
            let fd = libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr());
            if fd >= 0 {
                libc::close(fd as i32);
                0
            } else {
                -1
            }
        },
        _ => {
            println!("{what}: unknown call");
            return;
        }
    };
    if result == 0 {
        println!("{what}: allowed");
    } else {
        println!("{what}: refused ({})", errno_name(&io::Error::last_os_error()));
    }
}

fn dev_listing() -> String {
    let mut names: Vec<String> = match fs::read_dir("/dev") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect(),
        Err(err) => return format!("unreadable ({})", errno_name(&err)),
    };
    names.sort();
    if names.is_empty() {
        "empty".into()
    } else {
        names.join(" ")
    }
}

/// Kernel internals that runtimes mask: which of them show anything here?
fn proc_internals() -> String {
    if fs::metadata("/proc/self").is_err() {
        return "no /proc".into();
    }
    // Two that every kernel has; kcore, sched_debug and others exist only on some.
    let readable: Vec<&str> = ["/proc/keys", "/proc/timer_list"]
        .into_iter()
        .filter(|path| {
            let mut buf = [0u8; 1];
            fs::File::open(path)
                .and_then(|mut f| io::Read::read(&mut f, &mut buf))
                .is_ok_and(|n| n > 0)
        })
        .collect();
    if readable.is_empty() {
        "hidden".into()
    } else {
        format!("readable: {}", readable.join(" "))
    }
}

fn check(path: &str) {
    if fs::symlink_metadata(path).is_err() {
        println!("{path}: absent");
        return;
    }
    let mut buf = [0u8; 1];
    let content = match fs::File::open(path).and_then(|mut f| io::Read::read(&mut f, &mut buf)) {
        Ok(0) => "empty".to_string(),
        Ok(_) => "has content".to_string(),
        Err(err) if err.raw_os_error() == Some(libc::EISDIR) => "a directory".to_string(),
        Err(err) => format!("unreadable ({})", errno_name(&err)),
    };
    println!("{path}: {content}, {}", writable(path));
}

/// Would a write be allowed? access(2) answers without writing anything.
fn writable(path: &str) -> String {
    let c_path = CString::new(path).unwrap();
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::access(c_path.as_ptr(), libc::W_OK) } == 0 {
        return "writable".into();
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EROFS) => "read-only".into(),
        Some(libc::ENOENT) => "absent".into(),
        _ => format!("not writable ({})", errno_name(&io::Error::last_os_error())),
    }
}

fn sys_view() -> String {
    if fs::metadata("/sys/kernel").is_err() {
        return "not mounted".into();
    }
    let c_path = CString::new("/sys").unwrap();
    // SAFETY: statvfs fills the struct we own.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
        return format!("statvfs failed: {}", io::Error::last_os_error());
    }
    if stat.f_flag & libc::ST_RDONLY != 0 {
        "read-only".into()
    } else {
        "writable".into()
    }
}

/// msgget(KEY, 0) finds a queue only if it exists in our IPC namespace.
fn ipc(key: &str) {
    let Ok(key) = key.parse::<i32>() else {
        println!("ipc: bad key {key}");
        return;
    };
    // SAFETY: msgget takes integers only.
    if unsafe { libc::msgget(key, 0) } >= 0 {
        println!("ipc: the host's queue is visible");
    } else {
        println!(
            "ipc: the host's queue is invisible ({})",
            errno_name(&io::Error::last_os_error())
        );
    }
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

/// Our cgroup in the pids hierarchy (v1) or the unified one (v2): the container's own (named
/// box-ID, or seen as `/` from a cgroup namespace of its own), or the runtime's.
fn own_cgroup() -> String {
    let Ok(text) = fs::read_to_string("/proc/self/cgroup") else {
        return "unknown (no /proc)".into();
    };
    let line = text
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "pids"))
        })
        .or_else(|| text.lines().find(|l| l.starts_with("0::")));
    // The initial cgroup namespace has a fixed inode number (PROC_CGROUP_INIT_INO).
    let own_namespace =
        fs::read_link("/proc/self/ns/cgroup").is_ok_and(|ns| ns.as_os_str() != "cgroup:[4026531835]");
    match line.and_then(|l| l.splitn(3, ':').nth(2)) {
        Some("/") if own_namespace => "own, seen as / (cgroup namespace)".into(),
        Some(path)
            if path
                .rsplit('/')
                .next()
                .is_some_and(|name| name.starts_with("box-")) =>
        {
            "own (box-ID)".into()
        }
        Some(_) => "the runtime's".into(),
        None => "unknown".into(),
    }
}

/// What /sys/fs/cgroup shows: the processes of the cgroup at its root (v2, or v1's pids
/// hierarchy), and whether it can be written.
fn cgroup_fs() -> String {
    let Ok(entries) = fs::read_dir("/sys/fs/cgroup") else {
        return "not mounted".into();
    };
    if entries.count() == 0 {
        return "empty".into();
    }
    let Some(procs) = ["/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/pids/cgroup.procs"]
        .iter()
        .find_map(|path| fs::read_to_string(path).ok())
    else {
        return "no cgroup.procs".into();
    };
    let procs: Vec<&str> = procs.split_whitespace().collect();
    let c_path = CString::new("/sys/fs/cgroup").unwrap();
    // SAFETY: statvfs fills the struct we own.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let read_only =
        unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } == 0 && stat.f_flag & libc::ST_RDONLY != 0;
    let access = if read_only { "read-only" } else { "writable" };
    format!("cgroup.procs {}, {access}", procs.join(" "))
}

/// Start up to `n` children that sleep, and count how many the kernel allowed.
fn forks(n: u32) {
    let mut started = 0;
    let mut refusal = String::new();
    for _ in 0..n {
        // SAFETY: the child only sleeps and exits.
        match unsafe { libc::fork() } {
            0 => {
                std::thread::sleep(std::time::Duration::from_secs(2));
                unsafe { libc::_exit(0) };
            }
            -1 => {
                let err = io::Error::last_os_error();
                refusal = match err.raw_os_error() {
                    Some(libc::EAGAIN) => " (EAGAIN)".to_string(),
                    _ => format!(" ({err})"),
                };
                break;
            }
            _ => started += 1,
        }
    }
    println!("forks: {started} of {n}{refusal}");
    // SAFETY: reap every child we started.
    while unsafe { libc::wait(std::ptr::null_mut()) } > 0 {}
}

/// Allocate `mib` MiB and write to every page, so the memory is really used.
fn hog(mib: usize) {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mib {
        chunks.push(vec![1u8; 1 << 20]);
    }
    println!("hog: holding {} MiB", chunks.len());
}

/// Keep one CPU busy for `seconds`.
fn spin(seconds: f64) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs_f64(seconds);
    let mut x: u64 = 0;
    while std::time::Instant::now() < end {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    println!("spin: done ({})", x % 2);
}

/// The network interfaces this process can see, by name (if_nameindex(3): no /sys needed).
fn interfaces() -> String {
    // SAFETY: if_nameindex returns an array we read up to its zero entry, then free.
    unsafe {
        let list = libc::if_nameindex();
        if list.is_null() {
            return format!("unknown ({})", io::Error::last_os_error());
        }
        let mut names = Vec::new();
        let mut entry = list;
        while (*entry).if_index != 0 {
            names.push(
                std::ffi::CStr::from_ptr((*entry).if_name)
                    .to_string_lossy()
                    .into_owned(),
            );
            entry = entry.add(1);
        }
        libc::if_freenameindex(list);
        names.sort();
        names.join(" ")
    }
}

/// Is TEXT in the environment of any process this container can see through /proc? Without
/// a /proc, mount one, as a hostile command with root's powers would (the harness runs this in
/// a throwaway mount namespace), and undo it afterwards.
fn environ(text: &str) {
    let c = |text: &str| CString::new(text).unwrap();
    let mut mounted = false;
    if fs::metadata("/proc/self").is_err() {
        // SAFETY: valid NUL-terminated strings; a null data pointer is allowed.
        let rc = unsafe {
            libc::mount(
                c("proc").as_ptr(),
                c("/proc").as_ptr(),
                c("proc").as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            println!("environ: no /proc ({})", errno_name(&io::Error::last_os_error()));
            return;
        }
        mounted = true;
    }
    let found = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            let name = entry.file_name();
            name.to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
                && fs::read(entry.path().join("environ"))
                    .is_ok_and(|bytes| bytes.windows(text.len()).any(|w| w == text.as_bytes()))
        });
    if mounted {
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount(c("/proc").as_ptr()) };
    }
    println!("environ: {}", if found { "visible" } else { "hidden" });
}

/// Push TEXT into the terminal, as if typed, with TIOCSTI (ioctl_tty(2)): whoever reads the
/// terminal next reads it.
fn tiocsti(text: &str) {
    let c_path = CString::new("/dev/tty").unwrap();
    // SAFETY: a valid NUL-terminated path.
    let tty = unsafe { libc::open(c_path.as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
    // SAFETY: isatty takes a descriptor number.
    let fd = if tty >= 0 {
        tty
    } else if unsafe { libc::isatty(0) } == 1 {
        0
    } else {
        println!("tiocsti: no terminal");
        return;
    };
    for byte in text.bytes() {
        // SAFETY: TIOCSTI reads one byte through the pointer, which is ours.
        if unsafe { libc::ioctl(fd, libc::TIOCSTI, &byte) } != 0 {
            println!("tiocsti: refused ({})", errno_name(&io::Error::last_os_error()));
            return;
        }
    }
    println!("tiocsti: pushed");
}

/// Make a node for block device MAJ:MIN, as root in a container may (CAP_MKNOD), and read it.
fn blockdev(major: &str, minor: &str) {
    let (Ok(major), Ok(minor)) = (major.parse::<u32>(), minor.parse::<u32>()) else {
        println!("blockdev: bad device numbers");
        return;
    };
    // A name of this run's own: steps 1 to 4 share the lab's image, and the matrix runs their
    // columns at the same time.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let name = format!("/tmp/box-probe-disk-{}-{nanos}", std::process::id());
    let path = CString::new(name.as_str()).unwrap();
    // SAFETY: a valid NUL-terminated path; makedev and mknod take plain integers.
    if unsafe { libc::mknod(path.as_ptr(), libc::S_IFBLK | 0o600, libc::makedev(major, minor)) } != 0 {
        println!(
            "blockdev: mknod refused ({})",
            errno_name(&io::Error::last_os_error())
        );
        return;
    }
    let answer = match fs::File::open(&name) {
        Err(err) => format!("open refused ({})", errno_name(&err)),
        Ok(mut disk) => {
            let mut buf = [0u8; 64];
            match io::Read::read(&mut disk, &mut buf) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    format!("read {:?}", text.trim_end_matches('\0'))
                }
                Err(err) => format!("read refused ({})", errno_name(&err)),
            }
        }
    };
    let _ = fs::remove_file(&name);
    println!("blockdev: {answer}");
}

/// One DNS query (RFC 1035) for NAME's A record, to the first name server in /etc/resolv.conf.
fn resolve(name: &str) {
    let conf = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let Some(server) = conf
        .lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .find_map(|rest| rest.trim().parse::<std::net::Ipv4Addr>().ok())
    else {
        println!("resolve: no name server in /etc/resolv.conf");
        return;
    };
    // Header: id 0x2b0c, flags "recursion desired", one question.
    let mut query = vec![0x2b, 0x0c, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]); // end of name, type A, class IN
    let answer = (|| -> io::Result<Vec<u8>> {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
        socket.set_read_timeout(Some(std::time::Duration::from_secs(3)))?;
        socket.send_to(&query, (server, 53))?;
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf)?;
        Ok(buf[..n].to_vec())
    })();
    let reply = match answer {
        Ok(reply) => reply,
        Err(err) => {
            println!("resolve: {server} did not answer ({err})");
            return;
        }
    };
    // The answer follows the question we sent; its first record's data is the address (this
    // reads the simple answers a test's server gives: one A record, the name as a pointer).
    let answers = u16::from_be_bytes([
        reply.get(6).copied().unwrap_or(0),
        reply.get(7).copied().unwrap_or(0),
    ]);
    let record = query.len();
    match (answers, reply.get(record + 12..record + 16)) {
        (1.., Some(a)) => println!(
            "resolve: {name} is {}.{}.{}.{} (from {server})",
            a[0], a[1], a[2], a[3]
        ),
        _ => println!("resolve: {server} knows no address for {name}"),
    }
}
