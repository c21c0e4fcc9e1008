//! What the book shows when it says "run it": real runs of each step, as a terminal would show
//! them, snapshotted. The chapters include these snapshot files, so the book always shows what
//! the code prints today.

use box_tests::lab::host_session;
use box_tests::snapshot::settings;
use box_tests::{require_root, Lab, Run};

/// Several runs, one after the other, as one terminal session.
fn transcript(runs: &[Run]) -> String {
    runs.iter().map(Run::transcript).collect()
}

fn check(name: &str, runs: &[Run]) {
    settings().bind(|| insta::assert_snapshot!(name, transcript(runs)));
}

#[test]
fn step01_hello() {
    require_root!();
    let lab = Lab::new();
    check("step01_hello", &[lab.session(1, &["--", "/bin/echo", "hello"])]);
}

#[test]
fn step01_inside() {
    require_root!();
    let lab = Lab::new();
    check(
        "step01_inside",
        &[
            lab.session(1, &["--", "/bin/ls", "/"]),
            lab.session(1, &["--", "/bin/sh", "-c", "echo \"pid: $$\"; hostname; id"]),
            lab.session(1, &["--", "/bin/ps"]),
        ],
    );
}

#[test]
fn step01_trace() {
    require_root!();
    let lab = Lab::new();
    check(
        "step01_trace",
        &[lab.session(1, &["--trace", "--", "/bin/echo", "hello"])],
    );
}

#[test]
fn step01_exit_statuses() {
    require_root!();
    let lab = Lab::new();
    check(
        "step01_exit_statuses",
        &[
            lab.session(1, &["--", "/bin/sh", "-c", "exit 42"]),
            lab.session(1, &["--", "/bin/sh", "-c", "kill -9 $$"]),
            lab.session(1, &["--", "no-such-command"]),
            lab.session(1, &["--", "/etc/passwd"]),
            lab.session_without_image(1, &["--rootfs", "/no/such/image", "--", "/bin/true"]),
        ],
    );
}

#[test]
fn step01_escape() {
    require_root!();
    let lab = Lab::new();
    let host_file = lab.host_file().to_str().unwrap().to_string();
    check(
        "step01_escape",
        &[
            lab.session(1, &["--", "/bin/cat", &host_file]),
            lab.session(1, &["--", "/bin/box-probe", "escape", &host_file]),
        ],
    );
}

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
    let status = running.wait();
    assert_eq!(status, 128 + 15, "the container should end by SIGTERM");
    let shell = std::process::id().to_string();
    let text = transcript(&runs)
        .replace(&container, "[CONTAINER-PID]")
        .replace(&runtime, "[RUNTIME-PID]")
        .replace(&shell, "[SHELL-PID]");
    // The runtime's own path on this machine is not the point: show it as the learner's.
    let binary = box_tests::binaries::step_binary(1).to_string_lossy().into_owned();
    let text = text.replace(&binary, "target/debug/step01");
    settings().bind(|| insta::assert_snapshot!("step01_from_the_host", text));
}
