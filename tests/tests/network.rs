//! Networking, from the step that adds a network namespace (step09) on. Only addresses inside
//! the namespaces the steps create are ever contacted.

use std::process::Command;

use box_tests::binaries::{step_name, steps};
use box_tests::{guard, require_root, Lab};
use nix::sys::signal::Signal;

const FIRST_STEP_WITH_NETWORK: u32 = 9;

fn steps_with_network() -> impl Iterator<Item = u32> {
    steps()
        .iter()
        .copied()
        .filter(|step| *step >= FIRST_STEP_WITH_NETWORK)
}

/// The IPv4 address of eth0 in the network namespace of process `pid`.
fn address_of(pid: u32) -> String {
    let output = Command::new("nsenter")
        .args([
            &format!("--target={pid}"),
            "--net",
            "--",
            "ip",
            "-4",
            "-o",
            "addr",
            "show",
            "eth0",
        ])
        .output()
        .expect("nsenter ip");
    let text = String::from_utf8_lossy(&output.stdout);
    let field = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .expect("an inet address");
    field.split('/').next().unwrap().to_string()
}

fn host_pings(address: &str) -> bool {
    guard::status(
        Command::new("busybox")
            .args(["ping", "-c", "1", "-W", "2", address])
            .stdout(std::process::Stdio::null()),
    )
    .map(|status| status.success())
    .unwrap_or(false)
}

#[test]
fn the_host_reaches_the_container_and_the_link_goes_with_it() {
    require_root!();
    let lab = Lab::new();
    for step in steps_with_network() {
        let running = lab.start(step, &["--", "/bin/sleep", "30"]);
        let sleep = running.wait_for_command("sleep");
        let address = address_of(sleep);
        assert!(address.starts_with("10.200."), "{address}");
        assert!(
            host_pings(&address),
            "{}: the host cannot ping {address}",
            step_name(step)
        );
        let link = format!("box-{}", lab.names().last().unwrap());
        assert!(
            std::path::Path::new("/sys/class/net").join(&link).exists(),
            "no host end {link}"
        );
        running.signal(Signal::SIGTERM);
        let run = running.wait();
        assert_eq!(run.status, 143, "{run}");
        assert!(
            !std::path::Path::new("/sys/class/net").join(&link).exists(),
            "{link} is still there"
        );
        assert_eq!(lab.leftovers(), Vec::<String>::new());
    }
}

#[test]
fn two_containers_at_once_get_different_subnets() {
    require_root!();
    let lab = Lab::new();
    for step in steps_with_network() {
        let first = lab.start(step, &["--", "/bin/sleep", "30"]);
        let second = lab.start(step, &["--", "/bin/sleep", "30"]);
        let (a, b) = (
            address_of(first.wait_for_command("sleep")),
            address_of(second.wait_for_command("sleep")),
        );
        assert_ne!(a, b);
        assert!(host_pings(&a) && host_pings(&b), "{a} {b}");
        for running in [first, second] {
            running.signal(Signal::SIGTERM);
            assert_eq!(running.wait().status, 143);
        }
    }
}

#[test]
fn a_killed_runtime_leaves_no_link() {
    require_root!();
    let lab = Lab::new();
    for step in steps_with_network() {
        let running = lab.start(step, &["--", "/bin/sleep", "30"]);
        running.wait_for_command("sleep");
        let link = format!("box-{}", lab.names().last().unwrap());
        running.signal(Signal::SIGKILL);
        running.wait();
        // Init dies of its parent-death signal, its namespace with it, and the veth pair too.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::path::Path::new("/sys/class/net").join(&link).exists()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            !std::path::Path::new("/sys/class/net").join(&link).exists(),
            "{link} outlived its runtime"
        );
        // The cgroups, scratch area and claim are swept by the next run.
        let run = lab.run(step, &["--net", "none", "--", "/bin/true"]);
        assert_eq!(run.status, 0, "{run}");
    }
}
