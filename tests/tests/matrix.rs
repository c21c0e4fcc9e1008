//! The behaviour matrix: every behaviour, declared once with the step that introduces it, is
//! observed in every step that exists. The snapshot (`snapshots/behaviour_matrix.snap`, a
//! Markdown table the book includes) shows, step by step, where each behaviour flips; a
//! change in any step shows up as a diff in its column. Gaps are rows too: the chroot escape
//! works in the early steps and the table says so.

use std::sync::OnceLock;

use box_tests::binaries::{
    step_name, steps, FIRST_STEP_WITH_BRIDGE, FIRST_STEP_WITH_CGROUPS, FIRST_STEP_WITH_NET,
};
use box_tests::disk::{LoopDisk, DISK_TEXT};
use box_tests::lab::HOST_SECRET;
use box_tests::lab::{container_address, http_get};
use box_tests::{require_root, Lab};

/// One step's probe report, run once and shared by the rows that read it.
struct Observer<'a> {
    lab: &'a Lab,
    /// A loop device over a file of the lab's: the stand-in for one of the host's disks.
    disk: &'a LoopDisk,
    step: u32,
    report: OnceLock<String>,
}

impl Observer<'_> {
    fn report(&self) -> &str {
        self.report.get_or_init(|| {
            let host_pid = std::process::id().to_string();
            let run = self
                .lab
                .run(self.step, &["--", "/bin/box-probe", "report", &host_pid]);
            assert_eq!(run.status, 0, "the probe failed:\n{run}");
            run.stdout
        })
    }

    /// The value of `key: value` in the probe's report.
    fn fact(&self, key: &str) -> String {
        let prefix = format!("{key}: ");
        self.report()
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| {
                panic!(
                    "the probe's report has no {key:?} in {}:\n{}",
                    step_name(self.step),
                    self.report()
                )
            })
            .to_string()
    }

    /// Run `command`, with `limit` flags in the steps that have cgroups (and without them in the
    /// steps before, which do not know the flags: their column shows what no limit does).
    fn run_with_limit(&self, limit: &[&str], command: &[&str]) -> box_tests::Run {
        let mut args: Vec<&str> = Vec::new();
        if self.step >= FIRST_STEP_WITH_CGROUPS {
            args.extend(limit);
        }
        args.push("--");
        args.extend(command);
        self.lab.run(self.step, &args)
    }

    /// The exit status of `sh -c SCRIPT` in the container.
    fn status_of(&self, script: &str) -> String {
        self.lab
            .run(self.step, &["--", "/bin/sh", "-c", script])
            .status
            .to_string()
    }
}

struct Behaviour {
    /// What is observed, as the row's title.
    name: &'static str,
    /// The step that introduces the mechanism this row is about.
    since: u32,
    /// The values (or their beginnings) that are holes: a cell that has one is marked ✗ in the
    /// book, every other cell of the row ✓ (but cells such as "n/a" or "no /proc", which say
    /// nothing about it).
    /// Rows that describe rather than judge have none.
    holes: &'static [&'static str],
    observe: fn(&Observer) -> String,
}

/// A System V message queue on the host, removed when dropped.
struct HostQueue {
    key: i32,
    id: i32,
}

impl HostQueue {
    fn create() -> HostQueue {
        loop {
            let mut bytes = [0u8; 4];
            std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom").unwrap(), &mut bytes).unwrap();
            let key = i32::from_ne_bytes(bytes) & 0x7fff_ffff;
            // SAFETY: msgget takes integers only.
            let id = unsafe { libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
            if id >= 0 {
                return HostQueue { key, id };
            }
        }
    }
}

impl Drop for HostQueue {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no buffer.
        unsafe { libc::msgctl(self.id, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

/// The host's interfaces, as the probe lists them.
fn host_interfaces() -> String {
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .expect("/sys/class/net")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| !name.starts_with("box-"))
        .collect();
    names.sort();
    names.join(" ")
}

/// How many capabilities root has here: the effective set of this test process (CapEff).
fn host_capability_count() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .map_or(0, u64::count_ones)
}

fn host_hostname() -> String {
    nix::unistd::gethostname()
        .expect("gethostname")
        .to_string_lossy()
        .into_owned()
}

const BEHAVIOURS: &[Behaviour] = &[
    // step01: chroot, fork/exec/wait
    Behaviour {
        name: "root directory",
        since: 1,
        holes: &["host's"],
        observe: |o| {
            if o.fact("root") == "the image" {
                "image".into()
            } else {
                "host's".into()
            }
        },
    },
    Behaviour {
        name: "inherited fd 7",
        since: 1,
        holes: &["open"],
        observe: |o| {
            let run = o
                .lab
                .run_with_inherited_fd(o.step, &["--", "/bin/box-probe", "report"]);
            let fds = run
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix("fds: "))
                .unwrap_or("no report")
                .to_string();
            if fds == "0 1 2" {
                "closed".into()
            } else {
                format!("open (fds {fds})")
            }
        },
    },
    Behaviour {
        name: "exit status of `exit 42`",
        since: 1,
        holes: &[],
        observe: |o| o.status_of("exit 42"),
    },
    Behaviour {
        name: "exit status of `kill -9 $$`",
        since: 1,
        holes: &[],
        observe: |o| o.status_of("kill -9 $$"),
    },
    Behaviour {
        name: "exit status of a missing command",
        since: 1,
        holes: &[],
        observe: |o| o.lab.run(o.step, &["--", "no-such-command"]).status.to_string(),
    },
    // step02: UTS namespace
    Behaviour {
        name: "hostname",
        since: 2,
        holes: &["host's"],
        observe: |o| {
            if o.fact("hostname") == host_hostname() {
                "host's".into()
            } else {
                "own".into()
            }
        },
    },
    Behaviour {
        name: "`hostname x` inside renames the host",
        since: 2,
        holes: &["yes"],
        observe: |o| {
            // In a throwaway UTS namespace of the test's: the real host keeps its name.
            let run = o
                .lab
                .run_in_outer_uts(o.step, &["--", "/bin/hostname", "renamed-by-container"]);
            match run
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix("outer hostname: "))
            {
                Some("renamed-by-container") => "yes".into(),
                Some(_) => "no".into(),
                None => format!("unexpected: {}", run.all_output().trim()),
            }
        },
    },
    // step03: PID namespace and init
    Behaviour {
        name: "pid of the command",
        since: 3,
        holes: &[],
        observe: |o| match o.fact("pid").as_str() {
            small if small.len() < 3 => small.to_string(),
            _ => "a host pid".into(),
        },
    },
    Behaviour {
        name: "parent of the command",
        since: 3,
        holes: &[],
        observe: |o| match o.fact("ppid").as_str() {
            "1" => "1 (init)".into(),
            _ => "a host pid".into(),
        },
    },
    Behaviour {
        name: "host processes (kill -0)",
        since: 3,
        holes: &["visible"],
        observe: |o| o.fact("host process"),
    },
    Behaviour {
        name: "an orphan is reaped in the container",
        since: 3,
        holes: &["no"],
        observe: |o| {
            let run = o.lab.run(o.step, &["--", "/bin/box-probe", "orphan"]);
            match run.stdout.trim() {
                "orphan: reaped" => "yes".into(),
                "orphan: left a zombie" => "no".into(),
                _ => format!("unexpected: {}", run.all_output().trim()),
            }
        },
    },
    Behaviour {
        name: "`kill 0` inside reaches the caller's process group",
        since: 3,
        holes: &["yes"],
        observe: |o| {
            // The caller is a shell in a process group of its own, as a terminal's job is.
            let script = r#"trap 'echo the caller got SIGTERM' TERM; STEP -- /bin/sh -c 'kill -TERM 0'; echo "status $?""#;
            let run = o.lab.run_in_own_group(o.step, script);
            if run.stdout.contains("the caller got SIGTERM") {
                "yes".into()
            } else if run.stdout.contains("status") {
                "no".into()
            } else {
                format!("unexpected: {}", run.all_output().trim())
            }
        },
    },
    Behaviour {
        name: "the caller's environment, read through /proc",
        since: 3,
        holes: &["visible"],
        observe: |o| {
            // The probe mounts a /proc where there is none (in a throwaway mount namespace).
            let secret = "hunter2-of-the-caller";
            let run = o.lab.run_in_outer_mount_ns_with_env(
                o.step,
                &["--", "/bin/box-probe", "environ", secret],
                &[("SECRET", secret)],
            );
            run.stdout
                .lines()
                .find_map(|l| l.strip_prefix("environ: "))
                .map_or_else(
                    || format!("unexpected: {}", run.all_output().trim()),
                    String::from,
                )
        },
    },
    // step04: mount namespace, pivot_root, /proc
    Behaviour {
        name: "/proc",
        since: 4,
        holes: &[],
        observe: |o| o.fact("proc"),
    },
    Behaviour {
        name: "mount points inside",
        since: 4,
        holes: &[],
        observe: |o| {
            // From step 5 on there are many: the first few (chapter 5's trace shows them all).
            // (How many depends on the kernel: a masked /proc entry is a mount only where it
            // exists.)
            let mounts = o.fact("mounts");
            let points: Vec<&str> = mounts.split(' ').collect();
            if points.len() <= 3 {
                mounts.clone()
            } else {
                format!("{} …", points[..3].join(" "))
            }
        },
    },
    Behaviour {
        name: "host paths in /proc/self/mountinfo",
        since: 4,
        holes: &["the image's", "the layers'"],
        observe: |o| {
            let run = o.lab.run(o.step, &["--", "/bin/cat", "/proc/self/mountinfo"]);
            if run.status != 0 {
                return "unknown (no /proc)".into();
            }
            // The line of the container's `/`: field 4 is the mount's root within its
            // filesystem, and after " - " come the type, the source and the options.
            let Some(root) = run.stdout.lines().find(|l| l.split(' ').nth(4) == Some("/")) else {
                return format!("unexpected: {}", run.all_output().trim());
            };
            let options = root.split(" - ").nth(1).unwrap_or("");
            if options.starts_with("overlay ") && options.contains("upperdir=/var/tmp/box-") {
                "the layers' (overlay's options)".into()
            } else if root
                .split(' ')
                .nth(3)
                .is_some_and(|path| path.ends_with("/rootfs"))
            {
                "the image's (the bind mount's root)".into()
            } else {
                "none".into()
            }
        },
    },
    Behaviour {
        name: "`mount` inside reaches the host",
        since: 4,
        holes: &["yes"],
        observe: |o| {
            let script = "mount -t tmpfs scratch /tmp && echo mounted";
            let run = o
                .lab
                .run_in_outer_mount_ns(o.step, &["--", "/bin/sh", "-c", script]);
            match run
                .stdout
                .lines()
                .find_map(|l| l.strip_prefix("mounts on the image: "))
            {
                Some("0") => "no".into(),
                Some(_) => "yes".into(),
                None => format!("unexpected: {}", run.all_output().trim()),
            }
        },
    },
    Behaviour {
        name: "chroot escape to a host file",
        since: 4,
        holes: &["escapes"],
        observe: |o| {
            let host_file = o.lab.host_file().to_str().expect("UTF-8 path").to_string();
            let run = o.lab.run(o.step, &["--", "/bin/box-probe", "escape", &host_file]);
            if run.stdout.contains(HOST_SECRET) {
                "escapes".into()
            } else if run.stdout.starts_with("escape: blocked") {
                "blocked".into()
            } else {
                format!("unexpected: {}", run.all_output().trim())
            }
        },
    },
    // step05: a safe /dev, /sys and /proc; IPC namespace
    Behaviour {
        name: "/dev",
        since: 5,
        holes: &[],
        observe: |o| o.fact("dev"),
    },
    Behaviour {
        name: "kernel internals in /proc",
        since: 5,
        holes: &["readable"],
        observe: |o| o.fact("proc internals"),
    },
    Behaviour {
        name: "/proc/sys/kernel/core_pattern",
        since: 5,
        holes: &["writable"],
        observe: |o| o.fact("core_pattern"),
    },
    Behaviour {
        name: "/sys",
        since: 5,
        holes: &["writable"],
        observe: |o| o.fact("sys"),
    },
    Behaviour {
        name: "TIOCSTI into the caller's terminal",
        since: 5,
        holes: &["injected"],
        observe: |o| {
            // On a terminal of the harness's own: after the step exits, is the pushed line
            // waiting in that terminal's input, for the caller's shell to read and run?
            let session = o
                .lab
                .on_terminal(o.step, &["--", "/bin/box-probe", "tiocsti", "echo injected\n"]);
            let run = session.finish();
            if run.typed_ahead.contains("echo injected") {
                "injected".into()
            } else if run.status == 0 {
                // From step 5 the pushed line lands in the container's own terminal, if the
                // kernel lets it push at all (dev.tty.legacy_tiocsti).
                "not injected (own terminal)".into()
            } else {
                format!("unexpected: exit status {}: {}", run.status, run.output.trim())
            }
        },
    },
    Behaviour {
        name: "the host's System V message queue",
        since: 5,
        holes: &["visible"],
        observe: |o| {
            let queue = HostQueue::create();
            let key = queue.key.to_string();
            let run = o.lab.run(o.step, &["--", "/bin/box-probe", "ipc", &key]);
            run.stdout
                .trim()
                .strip_prefix("ipc: the host's queue is ")
                .unwrap_or(run.stdout.trim())
                .to_string()
        },
    },
    // step06: capabilities, no_new_privs, seccomp
    Behaviour {
        name: "effective capabilities",
        since: 6,
        holes: &["all of root's"],
        observe: |o| {
            // Root's full set differs between kernels (40 or 41 today): name it rather than count it.
            let count = o.fact("capabilities");
            if count == host_capability_count().to_string() {
                "all of root's".into()
            } else {
                count
            }
        },
    },
    Behaviour {
        name: "no_new_privs",
        since: 6,
        holes: &["0"],
        observe: |o| o.fact("no_new_privs"),
    },
    Behaviour {
        name: "seccomp mode",
        since: 6,
        holes: &["0 (off)"],
        observe: |o| match o.fact("seccomp").as_str() {
            "0" => "0 (off)".into(),
            "2" => "2 (filter)".into(),
            other => other.into(),
        },
    },
    Behaviour {
        name: "mount(2) inside",
        since: 6,
        holes: &["allowed"],
        observe: |o| {
            // In a throwaway mount namespace: in the steps without one of their own, the tmpfs
            // (undone at once by the probe) would otherwise land in the host's mount table.
            let run = o
                .lab
                .run_in_outer_mount_ns(o.step, &["--", "/bin/box-probe", "try", "mount"]);
            run.stdout
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("mount: "))
                .unwrap_or("no answer")
                .to_string()
        },
    },
    Behaviour {
        name: "unshare(2) inside",
        since: 6,
        holes: &["allowed"],
        observe: |o| {
            let run = o.lab.run(o.step, &["--", "/bin/box-probe", "try", "unshare"]);
            run.stdout
                .trim()
                .strip_prefix("unshare: ")
                .unwrap_or("no answer")
                .to_string()
        },
    },
    Behaviour {
        name: "io_uring_setup(2) inside",
        since: 6,
        holes: &["allowed"],
        observe: |o| {
            let run = o.lab.run(o.step, &["--", "/bin/box-probe", "try", "io_uring"]);
            run.stdout
                .trim()
                .strip_prefix("io_uring: ")
                .unwrap_or("no answer")
                .to_string()
        },
    },
    // step07: cgroups
    Behaviour {
        name: "cgroup",
        since: 7,
        holes: &["the runtime's"],
        observe: |o| o.fact("cgroup"),
    },
    Behaviour {
        name: "/sys/fs/cgroup",
        since: 7,
        holes: &[],
        observe: |o| o.fact("cgroupfs"),
    },
    Behaviour {
        name: "a block device node it makes itself (a loop device)",
        since: 7,
        holes: &["reads the host's disk"],
        observe: |o| {
            let (major, minor) = (o.disk.major.to_string(), o.disk.minor.to_string());
            let run = o
                .lab
                .run(o.step, &["--", "/bin/box-probe", "blockdev", &major, &minor]);
            match run.stdout.trim().strip_prefix("blockdev: ") {
                Some(read) if read.contains(DISK_TEXT) => "reads the host's disk".into(),
                Some(other) => other.to_string(),
                None => format!("unexpected: {}", run.all_output().trim()),
            }
        },
    },
    Behaviour {
        name: "children it can start (`--pids 16` from step07)",
        since: 7,
        holes: &["40 of 40"],
        observe: |o| {
            let run = o.run_with_limit(&["--pids", "16"], &["/bin/box-probe", "forks", "40"]);
            run.stdout
                .trim()
                .strip_prefix("forks: ")
                .unwrap_or(run.stdout.trim())
                .to_string()
        },
    },
    Behaviour {
        name: "a 256 MiB hog (`--memory 32m` from step07)",
        since: 7,
        holes: &["survives"],
        observe: |o| {
            let run = o.run_with_limit(&["--memory", "32m"], &["/bin/box-probe", "hog", "256"]);
            match (run.status, run.stderr.contains("ran out of memory")) {
                (0, _) => "survives".into(),
                (137, true) => "OOM-killed, reported".into(),
                (status, _) => format!("exit status {status}"),
            }
        },
    },
    // step08: overlayfs
    Behaviour {
        name: "a write to / inside",
        since: 8,
        holes: &["lands in the image"],
        observe: |o| {
            // One file per step: the columns run at the same time on the same image.
            let file = format!("written-by-step{:02}", o.step);
            let run = o.lab.run(o.step, &["--", "/bin/touch", &format!("/{file}")]);
            let landed = o.lab.image().join(&file);
            let value = match (run.status, landed.exists()) {
                (0, true) => "lands in the image".to_string(),
                (0, false) => "stays in the container".to_string(),
                (status, _) => format!("exit status {status}"),
            };
            let _ = std::fs::remove_file(landed);
            value
        },
    },
    Behaviour {
        name: "`rm` of a file of the image",
        since: 8,
        holes: &["deletes it from the image"],
        observe: |o| {
            let file = format!("victim-of-step{:02}", o.step);
            let victim = o.lab.image().join(&file);
            std::fs::write(&victim, "part of the image\n").unwrap();
            let run = o.lab.run(o.step, &["--", "/bin/rm", &format!("/{file}")]);
            let value = match (run.status, victim.exists()) {
                (0, false) => "deletes it from the image".to_string(),
                (0, true) => "hides it (whiteout)".to_string(),
                (status, _) => format!("exit status {status}"),
            };
            let _ = std::fs::remove_file(victim);
            value
        },
    },
    // step09: network namespace and a veth pair
    Behaviour {
        name: "network interfaces",
        since: 9,
        holes: &["the host's"],
        observe: |o| {
            // Links that other tests' containers add to the host meanwhile (box-…) do not count.
            let inside = o.fact("interfaces");
            let inside: Vec<&str> = inside
                .split(' ')
                .filter(|name| !name.starts_with("box-"))
                .collect();
            let inside = inside.join(" ");
            if inside == host_interfaces() {
                "the host's".into()
            } else {
                inside
            }
        },
    },
    Behaviour {
        name: "ping the host's end of the veth",
        since: 9,
        holes: &[],
        observe: |o| {
            // Only where the container has a network of its own: before step09, the default
            // route is the host's, and its gateway is no address of ours to ping.
            if o.step < FIRST_STEP_WITH_NET {
                return "n/a (the host's network)".into();
            }
            let script = "ping -c 1 -W 2 $(ip route | awk '/default/ {print $3}') >/dev/null && echo answers";
            let run = o.lab.run(o.step, &["--", "/bin/sh", "-c", script]);
            if run.stdout.trim() == "answers" {
                "answers".into()
            } else {
                format!("no answer: {}", run.all_output().trim())
            }
        },
    },
    // step10: bridge networking
    Behaviour {
        name: "ping another container",
        since: 10,
        holes: &[],
        observe: |o| {
            if o.step < FIRST_STEP_WITH_BRIDGE {
                return "n/a (no bridge)".into();
            }
            let other = o.lab.start(o.step, &["--", "/bin/sleep", "30"]);
            let address = container_address(other.wait_for_command("sleep")).unwrap_or_default();
            let run = o
                .lab
                .run(o.step, &["--", "/bin/ping", "-c", "1", "-W", "2", &address]);
            other.signal(nix::sys::signal::Signal::SIGTERM);
            other.wait();
            if run.status == 0 {
                "answers".into()
            } else {
                format!("no answer: {}", run.all_output().trim())
            }
        },
    },
    Behaviour {
        name: "`--publish PORT:80` on the host's localhost",
        since: 10,
        holes: &[],
        observe: |o| {
            if o.step < FIRST_STEP_WITH_BRIDGE {
                return "n/a (no --publish)".into();
            }
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let server = o.lab.start_web_server(o.step, port);
            let page = http_get(&format!("127.0.0.1:{port}"));
            server.signal(nix::sys::signal::Signal::SIGTERM);
            server.wait();
            if page.contains("Hello from a container") {
                "serves the page".into()
            } else {
                format!("no page: {page:?}")
            }
        },
    },
];

/// A cell as the book shows it: ✗ before a hole, ✓ before a value of the same row that is not
/// one (the book's theme colours both), nothing where the row has no holes or the cell says
/// nothing about them.
fn mark(behaviour: &Behaviour, cell: &str) -> String {
    let says_nothing = ["n/a", "unknown", "no /proc", "absent"]
        .iter()
        .any(|nothing| cell.starts_with(nothing));
    if behaviour.holes.is_empty() || says_nothing {
        cell.to_string()
    } else if behaviour.holes.iter().any(|hole| cell.starts_with(hole)) {
        format!("✗ {cell}")
    } else {
        format!("✓ {cell}")
    }
}

fn render(steps: &[u32], cells: &[Vec<String>]) -> String {
    let mut table = String::from("| behaviour | since |");
    for step in steps {
        table.push_str(&format!(" {} |", step_name(*step)));
    }
    table.push_str("\n|---|---|");
    table.push_str(&"---|".repeat(steps.len()));
    table.push('\n');
    for (behaviour, row) in BEHAVIOURS.iter().zip(cells) {
        table.push_str(&format!("| {} | {:02} |", behaviour.name, behaviour.since));
        for cell in row {
            table.push_str(&format!(" {} |", mark(behaviour, cell)));
        }
        table.push('\n');
    }
    table
}

#[test]
fn behaviour_matrix() {
    require_root!();
    let lab = Lab::new();
    let (disk, _) = LoopDisk::attach(lab.dir());
    let steps = steps();
    // One thread per step: each step's column is independent of the others.
    let columns: Vec<Vec<String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = steps
            .iter()
            .map(|&step| {
                let lab = &lab;
                let disk = &disk;
                scope.spawn(move || {
                    let observer = Observer {
                        lab,
                        disk,
                        step,
                        report: OnceLock::new(),
                    };
                    BEHAVIOURS
                        .iter()
                        .map(|behaviour| (behaviour.observe)(&observer))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a step's column panicked"))
            .collect()
    });
    let rows: Vec<Vec<String>> = (0..BEHAVIOURS.len())
        .map(|row| columns.iter().map(|column| column[row].clone()).collect())
        .collect();
    box_tests::snapshot::settings()
        .bind(|| insta::assert_snapshot!("behaviour_matrix", render(steps, &rows)));
}

#[test]
fn behaviours_are_declared_in_step_order() {
    let since: Vec<u32> = BEHAVIOURS.iter().map(|b| b.since).collect();
    let mut sorted = since.clone();
    sorted.sort_unstable();
    assert_eq!(
        since, sorted,
        "declare each behaviour with the rows of the step that introduces it"
    );
    assert!(
        since.iter().all(|step| (1..=10).contains(step)),
        "the workshop has steps 1 to 10"
    );
}

/// Step `step`'s column of the recorded matrix: each row's name and its cell, as the book
/// shows them (marks included).
fn recorded_column(step: u32) -> Vec<(String, String)> {
    let path = box_tests::binaries::workspace().join("tests/snapshots/behaviour_matrix.snap");
    let text = std::fs::read_to_string(&path).expect("the recorded matrix");
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split(" | ")
            .map(|cell| cell.trim().to_string())
            .collect()
    };
    let mut lines = text.lines().filter(|line| line.starts_with("| "));
    let header = cells(lines.next().expect("the matrix's header"));
    let column = header
        .iter()
        .position(|cell| *cell == step_name(step))
        .unwrap_or_else(|| panic!("the recorded matrix has no {} column", step_name(step)));
    lines
        .map(|line| {
            let row = cells(line);
            (row[0].clone(), row[column].clone())
        })
        .collect()
}

/// What a learner needs to read of a row that failed with `message` (the run's whole output).
fn why_it_failed(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    if let Some(todo) = lines.iter().find(|line| line.contains("not yet implemented")) {
        return format!("a todo!() is left: {todo}");
    }
    if let Some(at) = lines.iter().position(|line| line.contains("panicked at")) {
        if let Some(what) = lines.get(at + 1) {
            return format!("your code panicked: {what}");
        }
    }
    match (lines.first(), lines.last()) {
        (Some(first), Some(last)) if first != last => format!("{first} … {last}"),
        (Some(first), _) => first.to_string(),
        _ => "the check failed".into(),
    }
}

/// `scripts/exercise.sh check NN`: every row up to step NN, observed in the learner's exercise
/// (BOX_EXERCISE_STEP and BOX_EXERCISE_BINARY, see `binaries::exercise`) and compared with step
/// NN's column of the recorded matrix. The rows of step NN itself are listed one by one, the
/// earlier steps' as a count. A row whose run panics (the learner's `todo!()`) or hangs (killed
/// after BOX_RUN_TIMEOUT) does not hold; after a hang the check stops. With
/// BOX_EXERCISE_FIRST_FAILURE set, it stops at the first row that does not hold. The lab's leak
/// guard checks what the runs left on the host, as in every test.
#[test]
#[ignore = "run by scripts/exercise.sh check NN, against a learner's exercise"]
fn exercise_check() {
    require_root!();
    let (step, binary) = box_tests::binaries::exercise().expect("BOX_EXERCISE_STEP and BOX_EXERCISE_BINARY");
    assert!(binary.exists(), "no exercise binary at {}", binary.display());
    let first_failure_only = std::env::var_os("BOX_EXERCISE_FIRST_FAILURE").is_some();
    let recorded = recorded_column(step);
    let lab = Lab::new();
    let (disk, _) = LoopDisk::attach(lab.dir());
    let observer = Observer {
        lab: &lab,
        disk: &disk,
        step,
        report: OnceLock::new(),
    };
    // A learner's todo!() panics in the rows' runs: say so in the row, not on stderr.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let (mut earlier, mut earlier_holding) = (0, 0);
    let mut failures: Vec<(&str, String, String)> = Vec::new();
    for behaviour in BEHAVIOURS.iter().filter(|b| b.since <= step) {
        let expected = recorded
            .iter()
            .find(|(name, _)| name == behaviour.name)
            .map(|(_, cell)| cell.clone())
            .unwrap_or_else(|| panic!("the recorded matrix has no row {:?}", behaviour.name));
        let observed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (behaviour.observe)(&observer)));
        let (actual, hung) = match observed {
            Ok(cell) => (mark(behaviour, &cell), false),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let hung = message.contains("did not finish within");
                (format!("({})", why_it_failed(&message)), hung)
            }
        };
        let holds = actual == expected;
        if behaviour.since < step {
            earlier += 1;
            earlier_holding += usize::from(holds);
        } else {
            println!(
                "exercise: {} {}",
                if holds { "holds  " } else { "not yet" },
                behaviour.name
            );
        }
        if !holds {
            failures.push((behaviour.name, expected, actual));
            if hung || first_failure_only {
                break;
            }
        }
    }
    // The leak guard, before the verdict: what the learner's code left on the host is a failure too.
    drop(observer);
    drop(disk);
    let leaks = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(lab)));
    std::panic::set_hook(default_hook);
    if let Err(panic) = leaks {
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        for line in message.lines() {
            println!("exercise: {line}");
        }
        failures.push((
            "nothing is left on the host",
            "nothing".into(),
            "see above".into(),
        ));
    }
    if earlier > 0 {
        println!("exercise: {earlier_holding} of {earlier} checks of the earlier steps hold");
    }
    if let Some((name, expected, actual)) = failures.first() {
        println!("exercise: first check that does not hold: {name}");
        println!("exercise:   expected: {expected}");
        println!("exercise:   actual:   {actual}");
        panic!("{} check(s) do not hold yet", failures.len());
    }
    let yours = binary
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    println!("exercise: done: your {yours} behaves as {} does", step_name(step));
}
