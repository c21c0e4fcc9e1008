//! The container's terminal (from step 5): each test drives a step through a real
//! pseudo-terminal of the harness's own, as a learner's shell does, and looks at that terminal
//! afterwards as the learner's shell would find it.

use std::time::{Duration, Instant};

use box_tests::binaries::{step_name, steps, FIRST_STEP_WITH_PTY};
use box_tests::terminal::{COLUMNS, ROWS};
use box_tests::{require_root, Lab};

fn steps_with_a_pty() -> impl Iterator<Item = u32> {
    steps()
        .iter()
        .copied()
        .filter(|&step| step >= FIRST_STEP_WITH_PTY)
}

/// The pid of a process below `parent` (children first, then theirs) that runs `comm`.
fn find_below(parent: u32, comm: &str) -> Option<u32> {
    box_tests::lab::descendants(parent).into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|name| name.trim() == comm)
    })
}

#[test]
fn the_container_has_a_terminal_of_its_own_with_the_callers_size() {
    require_root!();
    let lab = Lab::new();
    for step in steps_with_a_pty() {
        let session = lab.on_terminal(step, &["--", "/bin/sh", "-c", "stty size; tty"]);
        let run = session.finish();
        let name = step_name(step);
        assert_eq!(run.status, 0, "{name}: {}", run.output);
        assert!(
            run.output.contains(&format!("{ROWS} {COLUMNS}")),
            "{name}: `stty size` inside should match the outer terminal: {:?}",
            run.output
        );
        assert!(run.output.contains("/dev/pts/0"), "{name}: {:?}", run.output);
        assert!(run.mode_restored, "{name}: the outer terminal's mode changed");
    }
}

#[test]
fn the_terminal_is_put_back_when_the_container_is_killed() {
    require_root!();
    let lab = Lab::new();
    for step in steps_with_a_pty() {
        let name = step_name(step);
        let session = lab.on_terminal(step, &["--", "/bin/sleep", "30"]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while find_below(session.pid(), "sleep").is_none() {
            assert!(Instant::now() < deadline, "{name}: sleep never started");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Kill the container from the host, as `kill -9` of its init would.
        let init = find_below(session.pid(), name.as_str()).expect("init");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(init as i32), nix::sys::signal::SIGKILL).unwrap();
        let run = session.finish();
        assert_eq!(run.status, 137, "{name}: {:?}", run.output);
        assert!(
            run.mode_restored,
            "{name}: the outer terminal stayed raw after the container was killed"
        );
    }
}

#[test]
fn the_shell_inside_has_job_control() {
    require_root!();
    let lab = Lab::new();
    for step in steps_with_a_pty() {
        let mut session = lab.on_terminal(step, &["--", "/bin/sh", "-i"]);
        session.wait_for("# ");
        session.type_keys(b"sleep 30\n");
        let deadline = Instant::now() + Duration::from_secs(20);
        while find_below(session.pid(), "sleep").is_none() {
            assert!(
                Instant::now() < deadline,
                "{}: sleep never started",
                step_name(step)
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // Ctrl-Z: the container's terminal stops its foreground job, and the shell says so.
        session.type_keys(b"\x1a");
        session.wait_for("Stopped");
        session.type_keys(b"kill -9 %1; sleep 0.5; jobs\n");
        session.wait_for("Killed");
        session.type_keys(b"exit 3\n");
        let run = session.finish();
        assert_eq!(run.status, 3, "{}: {:?}", step_name(step), run.output);
        assert!(!run.output.contains("job control turned off"), "{:?}", run.output);
        assert!(run.mode_restored, "{}", step_name(step));
    }
}

#[test]
fn a_resized_window_reaches_the_container() {
    require_root!();
    let lab = Lab::new();
    for step in steps_with_a_pty() {
        let script = "trap 'stty size' WINCH; echo ready; while sleep 0.1; do :; done";
        let mut session = lab.on_terminal(step, &["--", "/bin/sh", "-c", script]);
        session.wait_for("ready");
        session.resize(50, 120);
        session.wait_for("50 120");
        // Ctrl-C ends the loop: the shell dies of SIGINT, and the runtime says so.
        session.type_keys(b"\x03");
        let run = session.finish();
        assert_eq!(run.status, 130, "{}: {:?}", step_name(step), run.output);
        assert!(run.mode_restored, "{}", step_name(step));
    }
}
