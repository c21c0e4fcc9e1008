//! Resource limits, from the step that adds cgroups (step07) on, on whatever cgroup layout this
//! host has: the limits read back from the cgroup files while the container runs, the kernel
//! enforces them (a bounded fork loop sees fork fail, a memory hog is OOM-killed and the runtime
//! says so, a busy loop is throttled), and the cgroup is gone afterwards, also after the runtime
//! was killed (the next run sweeps it).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use box_tests::binaries::{no_network, step_name, steps_from, FIRST_STEP_WITH_CGROUPS};
use box_tests::{require_root, Lab};
use nix::sys::signal::Signal;

/// Wait until the running container's state file lists its cgroups.
fn cgroups_of(lab: &Lab) -> Vec<PathBuf> {
    let name = lab.names().last().cloned().expect("the lab named a container");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dirs = Lab::recorded_cgroups(&name);
        if !dirs.is_empty() || Instant::now() > deadline {
            return dirs;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The file in the container's cgroups that exists, of the names given (v1 or v2 spelling).
fn read_limit(dirs: &[PathBuf], names: &[&str]) -> String {
    for dir in dirs {
        for name in names {
            if let Ok(text) = fs::read_to_string(dir.join(name)) {
                return text.trim().to_string();
            }
        }
    }
    panic!("none of {names:?} in {dirs:?}");
}

fn all_gone(dirs: &[PathBuf]) -> bool {
    dirs.iter().all(|dir| !Path::new(dir).exists())
}

#[test]
fn limits_read_back_from_the_cgroup_files_while_the_container_runs() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_CGROUPS) {
        let running = lab.start(
            step,
            &[
                "--memory",
                "32m",
                "--pids",
                "16",
                "--cpus",
                "0.5",
                "--",
                "/bin/sleep",
                "30",
            ],
        );
        running.wait_for_command("sleep");
        let dirs = cgroups_of(&lab);
        assert!(!dirs.is_empty(), "{}: no cgroups recorded", step_name(step));
        assert_eq!(
            read_limit(&dirs, &["memory.limit_in_bytes", "memory.max"]),
            "33554432"
        );
        assert_eq!(read_limit(&dirs, &["pids.max"]), "16");
        let cpu = read_limit(&dirs, &["cpu.max", "cpu.cfs_quota_us"]);
        assert!(cpu == "50000 100000" || cpu == "50000", "cpu limit: {cpu}");
        // The container's processes are in the cgroup, and the runtime is not.
        let procs = read_limit(&dirs, &["cgroup.procs"]);
        assert!(
            !procs
                .split_whitespace()
                .any(|pid| pid == running.pid().to_string()),
            "the runtime joined"
        );
        assert!(running
            .descendants()
            .iter()
            .all(|pid| procs.split_whitespace().any(|p| p == pid.to_string())));
        running.signal(Signal::SIGTERM);
        let run = running.wait();
        assert_eq!(run.status, 143, "{run}");
        assert!(all_gone(&dirs), "{}: cgroups left: {dirs:?}", step_name(step));
    }
}

#[test]
fn the_pids_limit_stops_a_fork_loop() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_CGROUPS) {
        // Bounded, so that even a broken limit cannot hurt the host.
        let run = lab.run(step, &["--pids", "16", "--", "/bin/box-probe", "forks", "100"]);
        assert_eq!(run.status, 0, "{run}");
        // init and the probe count too: 16 - 2 children.
        assert_eq!(run.stdout.trim(), "forks: 14 of 100 (EAGAIN)", "{run}");
    }
}

#[test]
fn a_memory_hog_is_oom_killed_and_the_runtime_says_so() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_CGROUPS) {
        let run = lab.run(step, &["--memory", "32m", "--", "/bin/box-probe", "hog", "256"]);
        assert_eq!(run.status, 137, "{run}");
        assert!(
            run.stderr
                .contains("the container ran out of memory: the kernel killed 1 of its processes"),
            "{run}"
        );
        // The same status without a memory limit is not called an OOM kill.
        let run = lab.run(step, &["--memory", "32m", "--", "/bin/sh", "-c", "kill -9 $$"]);
        assert_eq!(run.status, 137, "{run}");
        assert!(!run.stderr.contains("out of memory"), "{run}");
    }
}

#[test]
fn the_cpu_limit_throttles_a_busy_loop() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_CGROUPS) {
        let running = lab.start(step, &["--cpus", "0.5", "--", "/bin/box-probe", "spin", "1.5"]);
        running.wait_for_command("box-probe");
        let dirs = cgroups_of(&lab);
        std::thread::sleep(Duration::from_millis(1000));
        // The kernel's own counters: periods in which the cgroup ran out of quota.
        let stat = dirs
            .iter()
            .find_map(|dir| fs::read_to_string(dir.join("cpu.stat")).ok())
            .expect("cpu.stat");
        let throttled: u64 = stat
            .lines()
            .find_map(|line| line.strip_prefix("nr_throttled "))
            .and_then(|n| n.trim().parse().ok())
            .expect("nr_throttled in cpu.stat");
        let run = running.wait();
        assert_eq!(run.status, 0, "{run}");
        assert!(throttled > 0, "{}: not throttled: {stat}", step_name(step));
    }
}

#[test]
fn a_killed_runtimes_cgroup_is_swept_by_the_next_run() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_CGROUPS) {
        let args: Vec<&str> = no_network(step)
            .iter()
            .copied()
            .chain(["--pids", "16", "--", "/bin/sleep", "30"])
            .collect();
        let running = lab.start(step, &args);
        running.wait_for_command("sleep");
        let dirs = cgroups_of(&lab);
        let name = lab.names().last().cloned().unwrap();
        running.signal(Signal::SIGKILL);
        running.wait();
        // Nobody removed them: the runtime was killed. (Unless the runtime ran in a systemd scope
        // of its own, as on cgroup v2 with systemd: systemd removes an ended scope's whole
        // subtree itself.)
        if box_tests::binaries::scope_prefix().is_empty() {
            assert!(dirs.iter().all(|dir| dir.exists()), "{dirs:?}");
        }
        // Any next run sweeps them, once init's death has emptied them, and the record in /run.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let args: Vec<&str> = no_network(step)
                .iter()
                .copied()
                .chain(["--", "/bin/true"])
                .collect();
            let run = lab.run(step, &args);
            assert_eq!(run.status, 0, "{run}");
            if all_gone(&dirs) || Instant::now() > deadline {
                break;
            }
        }
        assert!(all_gone(&dirs), "{}: not swept: {dirs:?}", step_name(step));
        assert!(!Path::new(&format!("/run/box-{name}")).exists());
    }
}
