//! `scripts/cleanup.sh` on what a killed runtime really leaves: step 10, SIGKILLed, cannot remove its cgroups, state and scratch directories, subnet claim, bridge and
//! firewall rules. `--check` lists them and fails, a plain run removes them (and puts the
//! host's ip_forward back), and a second `--check` finds nothing. Appendix C shows this session.
//!
//! cleanup.sh acts on everything named `box-…` on the host, so this is the only test in its
//! binary: cargo runs test binaries one after another, so no other test's containers exist.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use box_tests::binaries::workspace;
use box_tests::run::{execute, Run};
use box_tests::snapshot::{assert_layout_snapshot, mask_bridge_address, mask_number_after};
use box_tests::{require_root, Lab};
use nix::sys::signal::Signal;

fn cleanup(args: &[&str]) -> Run {
    let mut command = Command::new(workspace().join("scripts/cleanup.sh"));
    command.args(args).current_dir(workspace());
    let display = std::iter::once("scripts/cleanup.sh")
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    execute(command, display, true)
}

fn ip_forward() -> String {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap()
        .trim()
        .to_string()
}

/// The tests here take turns: each expects cleanup.sh to find only its own containers' leftovers.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn wait_until_gone(path: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(path).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cleanup_removes_what_a_killed_runtime_left() {
    require_root!();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    let forward_before = ip_forward();
    let running = lab.start(10, &["--", "/bin/sleep", "30"]);
    running.wait_for_command("sleep");
    let link = format!("/sys/class/net/box-{}", lab.names().last().unwrap());
    running.signal(Signal::SIGKILL);
    running.wait();
    // The container's end of the veth pair goes with its namespace, a moment after init dies.
    wait_until_gone(&link);

    let runs = [cleanup(&["--check"]), cleanup(&[]), cleanup(&["--check"])];
    assert_eq!(runs[0].status, 1, "{}", runs[0]);
    assert_eq!(runs[1].status, 0, "{}", runs[1]);
    assert_eq!(runs[2].status, 0, "{}", runs[2]);
    assert_eq!(runs[2].stdout, "cleanup: nothing left behind by the workshop\n");
    assert_eq!(ip_forward(), forward_before, "ip_forward not put back");
    assert_eq!(lab.leftovers(), Vec::<String>::new());

    // Container addresses and claim numbers come from the random id; ip_forward's old value
    // is the host's.
    let text: String = runs.iter().map(Run::transcript).collect();
    let text = mask_number_after(&mask_bridge_address(&text), "/run/box-ip-")
        .replace("ip_forward = 0", "ip_forward = [as before]")
        .replace("ip_forward = 1", "ip_forward = [as before]");
    assert_layout_snapshot("cleanup_after_a_killed_runtime", &text);
}

/// A live container's resources, and the bridge it is on with its rules, are not leftovers:
/// cleanup.sh removes only the killed runtime's, and the live container's runtime still removes
/// the bridge when it ends.
#[test]
fn cleanup_leaves_a_running_container_and_its_bridge_alone() {
    require_root!();
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    let forward_before = ip_forward();
    let live = lab.start(10, &["--", "/bin/sleep", "30"]);
    live.wait_for_command("sleep");
    let live_name = lab.names().last().unwrap().clone();
    let killed = lab.start(10, &["--", "/bin/sleep", "30"]);
    killed.wait_for_command("sleep");
    let killed_name = lab.names().last().unwrap().clone();
    killed.signal(Signal::SIGKILL);
    killed.wait();
    wait_until_gone(&format!("/sys/class/net/box-{killed_name}"));

    let run = cleanup(&[]);
    assert_eq!(run.status, 0, "{run}");
    assert!(
        run.stdout
            .contains(&format!("removed: directory /run/box-{killed_name}")),
        "{run}"
    );
    assert!(!run.stdout.contains(&live_name), "{run}");
    assert!(
        !run.stdout.contains("box-br0"),
        "the bridge in use was touched: {run}"
    );
    assert!(Path::new(&format!("/run/box-{live_name}")).exists());
    assert!(Path::new("/sys/class/net/box-br0").exists());

    // The live container still works, and its runtime, the bridge's last user, removes it all.
    live.signal(Signal::SIGTERM);
    let run = live.wait();
    assert_eq!(run.status, 143, "{run}");
    assert!(!Path::new("/sys/class/net/box-br0").exists(), "bridge left");
    assert_eq!(ip_forward(), forward_before);
    let check = cleanup(&["--check"]);
    assert_eq!(check.status, 0, "{check}");
}
