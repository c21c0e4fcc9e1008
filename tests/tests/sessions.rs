//! What the book shows when it says "run it": real runs of each step, as a terminal would show
//! them, snapshotted. The chapters include these snapshot files, so the book always shows what
//! the code prints today.

use box_tests::disk::{LoopDisk, DISK_TEXT};
use box_tests::lab::host_session;
use box_tests::snapshot::{assert_layout_snapshot, mask_bridge_address, settings};
use box_tests::{require_root, Lab, Run};

/// `ps` pads pid columns to the width of the pids, which differs from run to run and machine to
/// machine: squeeze the spaces on its header and on lines where host pids were replaced.
fn squeeze_pid_columns(text: &str) -> String {
    text.lines()
        .map(|line| {
            // ps pads its header to the width of the largest pid the kernel allows (pid_max).
            let header = line.split_whitespace().next() == Some("PID");
            if (line.contains("-PID]") || header) && !line.starts_with('$') {
                line.split_whitespace().collect::<Vec<_>>().join(" ")
            } else {
                line.to_string()
            }
        })
        .map(|line| line + "\n")
        .collect()
}

/// Several runs, one after the other, as one terminal session.
fn transcript(runs: &[Run]) -> String {
    runs.iter().map(Run::transcript).collect()
}

fn check(name: &str, runs: &[Run]) {
    settings().bind(|| insta::assert_snapshot!(name, transcript(runs)));
}

/// A test that makes a fresh lab, runs `$runs` in it (an expression that gives the runs, in
/// order) and snapshots their transcript under the test's own name.
macro_rules! session_test {
    ($(#[$doc:meta])* $name:ident, |$lab:ident| $runs:expr) => {
        session_test!(@checked_by check, $(#[$doc])* $name, |$lab| $runs);
    };
    (@checked_by $check:ident, $(#[$doc:meta])* $name:ident, |$lab:ident| $runs:expr) => {
        $(#[$doc])*
        #[test]
        fn $name() {
            require_root!();
            let $lab = Lab::new();
            let runs = $runs;
            $check(stringify!($name), &runs);
        }
    };
}

/// Like `session_test!`, for sessions that show the host's cgroup files: snapshotted per cgroup
/// layout (see [`assert_layout_snapshot`]).
macro_rules! cgroup_session_test {
    ($(#[$doc:meta])* $name:ident, |$lab:ident| $runs:expr) => {
        session_test!(@checked_by check_per_layout, $(#[$doc])* $name, |$lab| $runs);
    };
}

fn check_per_layout(name: &str, runs: &[Run]) {
    assert_layout_snapshot(name, &transcript(runs));
}

session_test!(
    step01_hello,
    |lab| [lab.session(1, &["--", "/bin/echo", "hello"])]
);

session_test!(step01_inside, |lab| [
    lab.session(1, &["--", "/bin/ls", "/"]),
    lab.session(1, &["--", "/bin/sh", "-c", "echo \"pid: $$\"; hostname; id"]),
    lab.session(1, &["--", "/bin/ps"]),
]);

session_test!(step01_trace, |lab| [
    lab.session(1, &["--trace", "--", "/bin/echo", "hello"])
]);

session_test!(step01_exit_statuses, |lab| [
    lab.session(1, &["--", "/bin/sh", "-c", "exit 42"]),
    lab.session(1, &["--", "/bin/sh", "-c", "kill -9 $$"]),
    lab.session(1, &["--", "no-such-command"]),
    lab.session(1, &["--", "/etc/passwd"]),
    lab.session_without_image(1, &["--rootfs", "/no/such/image", "--", "/bin/true"]),
]);

session_test!(step01_escape, |lab| {
    let host_file = lab.host_file().to_str().unwrap().to_string();
    [
        lab.session(1, &["--", "/bin/cat", &host_file]),
        lab.session(1, &["--", "/bin/box-probe", "escape", &host_file]),
    ]
});

session_test!(
    /// What a learner sees who runs the binary without sudo (here as the user nobody, from a
    /// copy of the binary that nobody may run).
    step01_not_root,
    |lab| {
        use std::os::unix::fs::PermissionsExt;
        let dir = lab.dir().join("as-nobody");
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(box_tests::binaries::step_binary(1), dir.join("step01")).unwrap();
        for path in [lab.dir(), dir.as_path()] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let mut command = std::process::Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(dir.join("step01"))
            .args(["--", "/bin/true"]);
        let display = "target/debug/step01 -- /bin/true".to_string();
        [box_tests::run::execute(command, display, true)]
    }
);

#[test]
fn step01_from_the_host() {
    require_root!();
    let lab = Lab::new();
    let running = lab.start(1, &["--", "/bin/sleep", "30"]);
    let container = running.wait_for_command("sleep").to_string();
    let runtime = running.pid().to_string();
    let runs = [
        host_session(
            "ps",
            &[
                "-o",
                "pid,ppid,user,args",
                "-p",
                &format!("{runtime},{container}"),
            ],
        ),
        host_session("readlink", &[&format!("/proc/{container}/root")]),
        host_session("kill", &[&container]),
    ];
    let run = running.wait();
    assert_eq!(run.status, 128 + 15, "the container should end by SIGTERM: {run}");
    let shell = std::process::id().to_string();
    let text = transcript(&runs)
        .replace(&container, "[CONTAINER-PID]")
        .replace(&runtime, "[RUNTIME-PID]")
        .replace(&shell, "[SHELL-PID]");
    // The runtime's own path on this machine is not the point: show it as the learner's.
    let binary = box_tests::binaries::step_binary(1).to_string_lossy().into_owned();
    let text = text.replace(&binary, "target/debug/step01");
    let text = squeeze_pid_columns(&text);
    settings().bind(|| insta::assert_snapshot!("step01_from_the_host", text));
}

session_test!(step02_hostname, |lab| [
    lab.session(2, &["--hostname", "box", "--", "/bin/hostname"]),
    lab.session(2, &["--", "/bin/hostname"]),
    lab.session(
        2,
        &[
            "--hostname",
            "box",
            "--",
            "/bin/sh",
            "-c",
            "hostname renamed; hostname",
        ],
    ),
    host_session("hostname", &[]),
]);

session_test!(step02_trace, |lab| [
    lab.session(2, &["--trace", "--hostname", "box", "--", "/bin/hostname"])
]);

session_test!(step02_bad_input, |lab| [
    lab.session(2, &["--hostname", "my box", "--", "/bin/true"]),
    lab.session(2, &["--hostname", &"x".repeat(65), "--", "/bin/true"]),
    lab.session(2, &["--name", "My_Box", "--", "/bin/true"]),
]);

#[test]
fn step02_from_the_host() {
    require_root!();
    let lab = Lab::new();
    let running = lab.start(2, &["--hostname", "box", "--", "/bin/sleep", "30"]);
    let container = running.wait_for_command("sleep").to_string();
    let runtime = running.pid().to_string();
    let namespace = |pid: &str| std::fs::read_link(format!("/proc/{pid}/ns/uts")).unwrap();
    let (host_ns, container_ns) = (namespace(&runtime), namespace(&container));
    assert_ne!(
        host_ns, container_ns,
        "the container should be in a UTS namespace of its own"
    );
    let runs = [
        host_session(
            "readlink",
            &[
                &format!("/proc/{runtime}/ns/uts"),
                &format!("/proc/{container}/ns/uts"),
            ],
        ),
        host_session("nsenter", &["--target", &container, "--uts", "hostname"]),
        host_session("hostname", &[]),
        host_session("kill", &[&container]),
    ];
    let run = running.wait();
    assert_eq!(run.status, 128 + 15, "{run}");
    let text = transcript(&runs)
        .replace(&container_ns.to_string_lossy().to_string(), "uts:[CONTAINER-NS]")
        .replace(&host_ns.to_string_lossy().to_string(), "uts:[HOST-NS]")
        .replace(&container, "[CONTAINER-PID]")
        .replace(&runtime, "[RUNTIME-PID]");
    settings().bind(|| insta::assert_snapshot!("step02_from_the_host", text));
}

session_test!(step03_pids, |lab| [
    lab.session(
        3,
        &["--", "/bin/sh", "-c", "echo \"my pid: $$, my parent: $PPID\""],
    ),
    lab.session(3, &["--", "/bin/sh", "-c", "kill -0 1 && echo pid 1 is here"]),
    lab.session(3, &["--", "/bin/ps"]),
]);

session_test!(step03_trace, |lab| [
    lab.session(3, &["--trace", "--hostname", "box", "--", "/bin/echo", "hello"])
]);

session_test!(step03_orphans, |lab| [lab.session(
    3,
    &["--trace", "--hostname", "box", "--", "/bin/box-probe", "orphan"],
)]);

session_test!(step03_stopping, |lab| [
    lab.shell_session(3, "STEP -- /bin/sleep 30 & sleep 2; kill $!; wait $!"),
    lab.shell_session(
        3,
        "STEP --stop-timeout 1 -- /bin/sh -c \"trap '' TERM; sleep 30\" & sleep 1; kill $!; wait $!",
    ),
]);

#[test]
fn step03_from_the_host() {
    require_root!();
    let lab = Lab::new();
    let running = lab.start(3, &["--", "/bin/sleep", "30"]);
    let sleep = running.wait_for_command("sleep").to_string();
    let runtime = running.pid().to_string();
    let init = running.descendants()[0].to_string();
    let runs = [
        host_session(
            "ps",
            &["-o", "pid,ppid,args", "-p", &format!("{runtime},{init},{sleep}")],
        ),
        host_session(
            "grep",
            &[
                "NSpid",
                &format!("/proc/{init}/status"),
                &format!("/proc/{sleep}/status"),
            ],
        ),
        host_session("kill", &[&runtime]),
    ];
    let run = running.wait();
    assert_eq!(run.status, 143, "{run}");
    let binary = box_tests::binaries::step_binary(3).to_string_lossy().into_owned();
    let text = transcript(&runs)
        .replace(&binary, "target/debug/step03")
        .replace(&sleep, "[SLEEP-PID]")
        .replace(&init, "[INIT-PID]")
        .replace(&runtime, "[RUNTIME-PID]")
        .replace(&std::process::id().to_string(), "[SHELL-PID]");
    let text = squeeze_pid_columns(&text);
    settings().bind(|| insta::assert_snapshot!("step03_from_the_host", text));
}

session_test!(step04_inside, |lab| [
    lab.session(4, &["--", "/bin/ps"]),
    lab.session(4, &["--", "cut", "-d", " ", "-f", "5", "/proc/self/mountinfo"]),
    lab.session(4, &["--", "/bin/ls", "/proc/1/root/"]),
]);

session_test!(step04_trace, |lab| [
    lab.session(4, &["--trace", "--hostname", "box", "--", "/bin/echo", "hello"])
]);

session_test!(step04_escape, |lab| {
    let host_file = lab.host_file().to_str().unwrap().to_string();
    [lab.session(4, &["--", "/bin/box-probe", "escape", &host_file])]
});

session_test!(step04_bad_image, |lab| {
    let bad = lab.dir().join("bad-image");
    std::fs::create_dir_all(bad.join("bin")).unwrap();
    std::os::unix::fs::symlink("/", bad.join("proc")).unwrap();
    let bad = bad.to_str().unwrap().to_string();
    [lab.session_without_image(4, &["--rootfs", &bad, "--", "/bin/true"])]
});

#[test]
fn step04_from_the_host() {
    require_root!();
    let lab = Lab::new();
    let running = lab.start(4, &["--", "/bin/sleep", "30"]);
    let sleep = running.wait_for_command("sleep").to_string();
    let runtime = running.pid().to_string();
    let runs = [
        host_session("nsenter", &["--target", &sleep, "--mount", "--pid", "ps"]),
        host_session("ls", &[&format!("/proc/{sleep}/root/")]),
        host_session("kill", &[&runtime]),
    ];
    let run = running.wait();
    assert_eq!(run.status, 143, "{run}");
    let text = transcript(&runs)
        .replace(&sleep, "[SLEEP-PID]")
        .replace(&runtime, "[RUNTIME-PID]");
    settings().bind(|| insta::assert_snapshot!("step04_from_the_host", text));
}

/// What chapter 5 looks at, in step 4 (the hole) and step 5 (closed). The probe's `check`
/// reads one byte and asks access(2) whether a write would be allowed: nothing is written.
const SAFE_VIEW_CHECKS: [&str; 6] = [
    "/bin/box-probe",
    "check",
    "/proc/sys/kernel/core_pattern",
    "/proc/keys",
    "/proc/timer_list",
    "/sys/kernel",
];

fn safe_view(lab: &Lab, step: u32) -> Vec<Run> {
    let mut args = vec!["--"];
    args.extend(SAFE_VIEW_CHECKS);
    vec![
        lab.session(step, &["--", "/bin/ls", "/dev"]),
        lab.session(step, &args),
    ]
}

session_test!(step05_the_hole, |lab| { safe_view(&lab, 4) });

session_test!(step05_closed, |lab| {
    let mut runs = safe_view(&lab, 5);
    let background = "sleep 0.1 & wait $! && echo 'a background job works: /dev/null exists'";
    runs.push(lab.session(5, &["--", "/bin/sh", "-c", background]));
    runs
});

session_test!(step05_trace, |lab| [
    lab.session(5, &["--trace", "--hostname", "box", "--", "/bin/true"])
]);

/// Undo a mask from chapter 5, in the container's own mount namespace: harmless to the host.
const UNMASK: &str = "umount /proc/keys; /bin/box-probe check /proc/keys";

session_test!(step06_the_hole, |lab| [
    lab.session(5, &["--", "/bin/sh", "-c", UNMASK])
]);

session_test!(step06_closed, |lab| [
    lab.session(6, &["--", "/bin/sh", "-c", UNMASK]),
    lab.session(
        6,
        &[
            "--",
            "/bin/sh",
            "-c",
            "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status",
        ],
    ),
    lab.session(
        6,
        &[
            "--",
            "/bin/sh",
            "-c",
            "mount -t tmpfs scratch /mnt; unshare --uts true; echo still here",
        ],
    ),
]);

session_test!(step06_capability_flags, |lab| [
    lab.session(6, &["--", "/bin/chown", "nobody", "/tmp"]),
    lab.session(6, &["--cap-drop", "CHOWN", "--", "/bin/chown", "nobody", "/tmp"]),
    lab.session(
        6,
        &[
            "--cap-drop",
            "ALL",
            "--",
            "/bin/grep",
            "CapEff",
            "/proc/self/status",
        ],
    ),
    lab.session(
        6,
        &[
            "--cap-add",
            "SYS_ADMIN",
            "--",
            "/bin/grep",
            "CapEff",
            "/proc/self/status",
        ],
    ),
    lab.session(6, &["--cap-add", "SUPERPOWERS", "--", "/bin/true"]),
]);

session_test!(step06_trace, |lab| [
    lab.session(6, &["--trace", "--hostname", "box", "--", "/bin/true"])
]);

/// A block device node made inside, for a stand-in for a host disk (a loop device over a file
/// of the lab's): read it, in `step` (the hole in step 6, closed in step 7).
fn read_a_host_disk(lab: &Lab, step: u32) -> Vec<Run> {
    let (disk, losetup) = LoopDisk::attach(lab.dir());
    let script = format!(
        "mknod /tmp/disk b {} {} && head -c {} /tmp/disk && echo && rm /tmp/disk",
        disk.major,
        disk.minor,
        DISK_TEXT.len()
    );
    vec![losetup, lab.session(step, &["--", "/bin/sh", "-c", &script])]
}

session_test!(step07_the_hole, |lab| read_a_host_disk(&lab, 6));

cgroup_session_test!(step07_devices, |lab| {
    let mut runs = read_a_host_disk(&lab, 7);
    // What /dev holds still works; the container's cgroup is its own, and read-only.
    let allowed = "echo hello > /dev/null && head -c 4 /dev/zero | wc -c";
    runs.push(lab.session(7, &["--", "/bin/sh", "-c", allowed]));
    let cgroup = "cat /proc/self/cgroup | head -n 3; echo 100 > /sys/fs/cgroup/pids.max";
    runs.push(lab.session(7, &["--", "/bin/sh", "-c", cgroup]));
    runs
});

session_test!(step07_limits, |lab| [
    lab.session(7, &["--memory", "32m", "--", "/bin/box-probe", "hog", "256"]),
    lab.session(
        7,
        &[
            "--pids",
            "16",
            "--",
            "/bin/sh",
            "-c",
            "for i in $(seq 20); do sleep 5 & done; wait",
        ],
    ),
]);

session_test!(step07_bad_input, |lab| {
    let runs: Vec<Run> = [
        ["--memory", "0"],
        ["--memory", "12x"],
        ["--memory", "1m"],
        ["--memory", "9999999999g"],
        ["--pids", "1"],
        ["--pids", "5000000"],
        ["--cpus", "4096"],
        ["--cpus", "half"],
        ["--stop-timeout", "18446744073709551615"],
    ]
    .iter()
    .map(|flag| lab.session(7, &[flag[0], flag[1], "--", "/bin/true"]))
    .collect();
    runs
});

// Every one is refused before anything exists (the leak guard checks), with status 125.
session_test!(step10_bad_input, |lab| {
    let runs: Vec<Run> = [
        &["--publish", "8080:80", "--publish", "8080:81", "--", "/bin/true"][..],
        &["--name", "br0", "--", "/bin/true"],
        &["--name", "ip-7", "--", "/bin/true"],
        &["--publish", "8080", "--", "/bin/true"],
        &["--net", "wifi", "--", "/bin/true"],
        &["--cpus"],
    ]
    .iter()
    .map(|args| lab.session(10, args))
    .collect();
    runs
});

cgroup_session_test!(step07_trace, |lab| {
    let args = [
        "--trace",
        "--hostname",
        "box",
        "--memory",
        "32m",
        "--pids",
        "16",
        "--cpus",
        "0.5",
        "--",
        "/bin/true",
    ];
    [lab.session(7, &args)]
});

#[test]
fn step07_from_the_host() {
    require_root!();
    let lab = Lab::new();
    let running = lab.start(7, &["--pids", "16", "--", "/bin/sleep", "30"]);
    let sleep = running.wait_for_command("sleep").to_string();
    let runtime = running.pid().to_string();
    let name = lab.names().last().cloned().unwrap();
    let pids_dir = Lab::recorded_cgroups(&name)
        .into_iter()
        .find(|dir| dir.join("pids.max").exists())
        .expect("a cgroup with the pids controller");
    let pids_max = pids_dir.join("pids.max").display().to_string();
    let pids_current = pids_dir.join("pids.current").display().to_string();
    let runs = [
        host_session("cat", &[&format!("/run/box-{name}/cgroups")]),
        // The pids hierarchy's line (v1), and the unified hierarchy's (v2, and hybrid).
        host_session("grep", &["-E", "pids|^0::", &format!("/proc/{sleep}/cgroup")]),
        host_session("cat", &[&pids_max, &pids_current]),
        host_session("sh", &["-c", &format!("echo 20 > {pids_max}; cat {pids_max}")]),
        host_session("kill", &[&runtime]),
    ];
    let run = running.wait();
    assert_eq!(run.status, 143, "{run}");
    let text = transcript(&runs)
        .replace(&sleep, "[SLEEP-PID]")
        .replace(&runtime, "[RUNTIME-PID]");
    assert_layout_snapshot("step07_from_the_host", &text);
}

session_test!(step08_the_hole, |lab| {
    let note = lab.image().join("note");
    let runs = [
        lab.session(7, &["--", "/bin/sh", "-c", "echo written by a container > /note"]),
        host_session("cat", &[note.to_str().unwrap()]),
        lab.session(7, &["--", "/bin/cat", "/note"]),
    ];
    std::fs::remove_file(note).unwrap();
    runs
});

session_test!(step08_layers, |lab| {
    let web = box_tests::binaries::workspace().join("layers/web");
    let web = web.to_str().unwrap();
    [
        lab.session(8, &["--", "/bin/ls", "/var/www"]),
        lab.session(8, &["--layer", web, "--", "/bin/cat", "/var/www/index.html"]),
        // In name order: the order of a directory's entries depends on its filesystem.
        host_session("sh", &["-c", &format!("find {web} -type f | sort")]),
    ]
});

#[test]
fn step08_copy_on_write() {
    require_root!();
    let lab = Lab::new();
    let run = lab.session(
        8,
        &[
            "--keep",
            "--",
            "/bin/sh",
            "-c",
            "echo hello > /note; rm /etc/hostname; echo more >> /etc/group",
        ],
    );
    let name = lab.names().last().cloned().unwrap();
    let upper = format!("/var/tmp/box-{name}/upper");
    let image_hostname = lab.image().join("etc/hostname");
    let runs = [
        run,
        host_session("find", &[&upper, "-printf", "%y %P\\n"]),
        host_session("ls", &["-l", &format!("{upper}/etc/hostname")]),
        host_session("cat", &[image_hostname.to_str().unwrap()]),
    ];
    std::fs::remove_dir_all(format!("/var/tmp/box-{name}")).unwrap();
    // ls -l shows a date: keep the line's type, mode and device numbers.
    let text: String = transcript(&runs)
        .lines()
        .map(|line| match line.strip_prefix("c---------") {
            Some(rest) => format!(
                "c--------- {}\n",
                rest.split_whitespace()
                    .skip(3)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            None => format!("{line}\n"),
        })
        .collect();
    settings().bind(|| insta::assert_snapshot!("step08_copy_on_write", text));
}

session_test!(step08_bad_input, |lab| [
    lab.session(8, &["--layer", "/no/such/layer", "--", "/bin/true"]),
    lab.session(8, &["--layer", "/etc/passwd", "--", "/bin/true"]),
]);

cgroup_session_test!(step08_trace, |lab| {
    let web = box_tests::binaries::workspace().join("layers/web");
    let args = [
        "--trace",
        "--hostname",
        "box",
        "--layer",
        web.to_str().unwrap(),
        "--",
        "/bin/true",
    ];
    [lab.session(8, &args)]
});

/// Replace the container subnet's addresses (they come from the random test names).
fn mask_subnet(text: &str) -> String {
    let mut out = String::new();
    for word in
        text.split_inclusive(|c: char| c.is_whitespace() || c == '/' || c == ':' || c == '(' || c == ')')
    {
        let trimmed = word
            .trim_end_matches(|c: char| c.is_whitespace() || c == '/' || c == ':' || c == '(' || c == ')');
        let rest = &word[trimmed.len()..];
        match trimmed
            .strip_prefix("10.200.")
            .and_then(|tail| tail.rsplit('.').next()?.parse::<u8>().ok())
        {
            Some(last) if last % 4 == 1 => out.push_str(&format!("[HOST-END]{rest}")),
            Some(last) if last % 4 == 2 => out.push_str(&format!("[CONTAINER]{rest}")),
            Some(last) if last % 4 == 0 => out.push_str(&format!("[SUBNET]{rest}")),
            _ => out.push_str(word),
        }
    }
    out
}

#[test]
fn step09_network() {
    require_root!();
    let lab = Lab::new();
    let runs = [
        lab.session(9, &["--net", "none", "--", "ip", "-o", "link"]),
        lab.session(
            9,
            &["--", "/bin/sh", "-c", "ip -4 -o addr | cut -d' ' -f2,7; ip route"],
        ),
        lab.session(
            9,
            &[
                "--",
                "/bin/sh",
                "-c",
                "ping -c 1 -W 2 $(ip route | awk '/default/ {print $3}') | head -2",
            ],
        ),
    ];
    let text = mask_subnet(&transcript(&runs));
    // ping prints its time, which varies.
    let text: String = text
        .lines()
        .map(|line| match line.find(" time=") {
            Some(at) => format!("{} time=…\n", &line[..at]),
            None => format!("{line}\n"),
        })
        .collect();
    settings().bind(|| insta::assert_snapshot!("step09_network", text));
}

#[test]
fn step09_trace() {
    require_root!();
    let lab = Lab::new();
    let run = lab.session(9, &["--trace", "--hostname", "box", "--", "/bin/true"]);
    assert_layout_snapshot("step09_trace", &mask_subnet(&run.transcript()));
}

#[test]
fn step09_from_the_host() {
    require_root!();
    let lab = Lab::new();
    let running = lab.start(9, &["--", "/bin/sleep", "30"]);
    let sleep = running.wait_for_command("sleep").to_string();
    let link = format!("box-{}", lab.names().last().unwrap());
    let runs = [
        host_session("ip", &["-o", "-4", "addr", "show", "dev", &link]),
        host_session(
            "nsenter",
            &[
                &format!("--target={sleep}"),
                "--net",
                "ip",
                "-o",
                "-4",
                "addr",
                "show",
                "dev",
                "eth0",
            ],
        ),
    ];
    let address = runs[1]
        .stdout
        .split_whitespace()
        .nth(3)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let ping = host_session("busybox", &["ping", "-c", "1", "-W", "2", &address]);
    let runs = [runs[0].clone(), runs[1].clone(), ping];
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let run = running.wait();
    assert_eq!(run.status, 143, "{run}");
    let gone = host_session("ip", &["link", "show", "dev", &link]);
    let text = mask_subnet(&transcript(&[
        runs[0].clone(),
        runs[1].clone(),
        runs[2].clone(),
        gone,
    ]))
    .replace(&sleep, "[SLEEP-PID]");
    // Interface indexes, ping times and round-trip lines vary.
    let text: String = text
        .lines()
        .filter(|line| !line.starts_with("round-trip"))
        .map(|line| {
            let line = match line.find(" time=") {
                Some(at) => format!("{} time=…", &line[..at]),
                None => line.to_string(),
            };
            match line.split_once(": ") {
                Some((index, rest)) if index.chars().all(|c| c.is_ascii_digit()) => format!("N: {rest}\n"),
                _ => format!("{line}\n"),
            }
        })
        .collect();
    settings().bind(|| insta::assert_snapshot!("step09_from_the_host", text));
}

/// The step10 sessions take turns: the bridge, its rules and their removal appear in a trace
/// only for the first and the last container on it.
static BRIDGE: std::sync::Mutex<()> = std::sync::Mutex::new(());

session_test!(step10_web, |lab| {
    let _turn = BRIDGE.lock().unwrap_or_else(|p| p.into_inner());
    let run = lab.shell_session(
        10,
        "STEP --publish 8080:80 --layer layers/web -- /usr/local/bin/serve 2>/dev/null & \
         until busybox wget -q -O - http://localhost:8080/ 2>/dev/null; do sleep 0.1; done; \
         kill $!; wait $!",
    );
    [run]
});

#[test]
fn step10_trace() {
    require_root!();
    let _turn = BRIDGE.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    let run = lab.session(
        10,
        &[
            "--trace",
            "--hostname",
            "box",
            "--publish",
            "8080:80",
            "--",
            "/bin/true",
        ],
    );
    let text = mask_bridge_address(&run.transcript());
    assert_layout_snapshot("step10_trace", &text);
}

session_test!(step10_from_the_host, |lab| {
    let _turn = BRIDGE.lock().unwrap_or_else(|p| p.into_inner());
    let running = lab.start(10, &["--", "/bin/sleep", "30"]);
    running.wait_for_command("sleep");
    let runs = vec![
        host_session("sh", &["-c", "ip -o link show master box-br0 | cut -d' ' -f2"]),
        host_session(
            "sh",
            &[
                "-c",
                "iptables -w -S | grep box-br0; iptables -w -t nat -S | grep box-br0",
            ],
        ),
        host_session("cat", &["/proc/sys/net/ipv4/ip_forward"]),
    ];
    running.signal(nix::sys::signal::Signal::SIGTERM);
    let run = running.wait();
    assert_eq!(run.status, 143, "{run}");
    let mut runs = runs;
    runs.push(host_session("ip", &["link", "show", "box-br0"]));
    runs.push(host_session("sh", &["-c", "iptables -w -S | grep -c box-br0"]));
    runs
});
