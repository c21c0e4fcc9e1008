//! How a container ends, from the step that has an init (step03) on: stopped by SIGTERM to
//! the runtime, killed when it ignores SIGTERM, and taken down when the runtime itself dies.
//! Every step from 3 on is checked; the leak guard then checks nothing is left.

use std::time::{Duration, Instant};

use box_tests::binaries::{no_network, step_name, steps_from, FIRST_STEP_WITH_INIT};
use box_tests::{guard, require_root, Lab};
use nix::sys::signal::Signal;

fn is_running(pid: u32) -> bool {
    std::fs::metadata(format!("/proc/{pid}")).is_ok()
}

#[test]
fn sigterm_to_the_runtime_stops_the_container() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_INIT) {
        let running = lab.start(step, &["--", "/bin/sleep", "30"]);
        running.wait_for_command("sleep");
        running.signal(Signal::SIGTERM);
        let run = running.wait();
        // init passed SIGTERM on to sleep, which died of it: 128 + 15.
        assert_eq!(run.status, 143, "{}: {run}", step_name(step));
    }
}

#[test]
fn a_container_that_ignores_sigterm_is_killed_after_the_stop_timeout() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_INIT) {
        let running = lab.start(
            step,
            &[
                "--stop-timeout",
                "1",
                "--",
                "/bin/sh",
                "-c",
                "trap '' TERM; sleep 30",
            ],
        );
        running.wait_for_command("sleep");
        let sent = Instant::now();
        running.signal(Signal::SIGTERM);
        let run = running.wait();
        let waited = sent.elapsed();
        assert_eq!(run.status, 137, "{}: {run}", step_name(step));
        assert!(
            run.stderr
                .contains("did not stop within 1s of SIGTERM: killed it"),
            "{run}"
        );
        assert!(
            waited >= Duration::from_millis(900),
            "killed too early, after {waited:?}"
        );
    }
}

#[test]
fn the_container_dies_with_its_runtime() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_INIT) {
        let args: Vec<&str> = no_network(step)
            .iter()
            .copied()
            .chain(["--", "/bin/sleep", "30"])
            .collect();
        let running = lab.start(step, &args);
        let sleep = running.wait_for_command("sleep");
        let everything = running.descendants();
        running.signal(Signal::SIGKILL);
        let run = running.wait();
        assert_eq!(run.status, 137, "{run}");
        // Init has the parent-death signal; its death ends the namespace.
        let deadline = Instant::now() + Duration::from_secs(5);
        while everything
            .iter()
            .any(|pid| is_running(*pid) && !guard::is_zombie(*pid as i32))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !is_running(sleep) || guard::is_zombie(sleep as i32),
            "{}: sleep outlived its runtime",
            step_name(step)
        );
        // What the killed runtime could not remove (cgroups, from step07 on), the next run
        // of the step sweeps.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !lab.leftovers().is_empty() && Instant::now() < deadline {
            let args: Vec<&str> = no_network(step)
                .iter()
                .copied()
                .chain(["--", "/bin/true"])
                .collect();
            let run = lab.run(step, &args);
            assert_eq!(run.status, 0, "{run}");
        }
        assert_eq!(
            lab.leftovers(),
            Vec::<String>::new(),
            "{}: not swept",
            step_name(step)
        );
    }
}

/// Ctrl-C in a terminal sends SIGINT to the terminal's foreground process group: the runtime
/// and the container's processes alike. The runtime must ignore it (and, with an init, pass it
/// on), so that it is the command that gets interrupted. script(1) gives the step a pseudo-
/// terminal; the test types ^C into it.
#[test]
fn ctrl_c_reaches_the_command_not_the_runtime() {
    require_root!();
    let lab = Lab::new();
    for step in box_tests::binaries::steps().iter().copied() {
        let inner = lab.command_line(
            step,
            &[
                "--",
                "/bin/sh",
                "-c",
                "trap 'echo interrupted; exit 3' INT; echo ready; sleep 10; echo not interrupted",
            ],
        );
        // script(1) runs its command with `$SHELL -c`; `exec` makes every shell replace itself
        // with the runtime, so no shell waits in between (dash would die of the ^C itself).
        let inner = format!("exec {inner}");
        let mut terminal = guard::spawn(
            std::process::Command::new("script")
                .env("SHELL", "/bin/sh")
                .args(["-qfec", &inner, "/dev/null"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped()),
        )
        .expect("script");
        let mut output = terminal.stdout.take().unwrap();
        let mut seen = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !seen.contains("ready") && Instant::now() < deadline {
            let mut buf = [0u8; 256];
            let n = std::io::Read::read(&mut output, &mut buf).unwrap_or(0);
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        std::thread::sleep(Duration::from_millis(200));
        std::io::Write::write_all(terminal.stdin.as_mut().unwrap(), b"\x03").unwrap();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut output, &mut rest);
        let status = terminal.wait().unwrap();
        guard::untrack(terminal.id());
        let all = format!("{seen}{rest}");
        assert!(
            all.contains("interrupted") && !all.contains("not interrupted"),
            "{}: {all:?}",
            step_name(step)
        );
        assert_eq!(
            status.code(),
            Some(3),
            "{}: the runtime should exit with the command's status: {all:?}",
            step_name(step)
        );
    }
}
