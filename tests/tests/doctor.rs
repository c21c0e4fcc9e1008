//! `scripts/doctor`, which `scripts/setup.sh` runs last: it passes on a machine that can run
//! every step (this one), and a missing piece is a FAIL line with a hint, and exit status 1.
//! (The VM test runs it on cgroup v2, with and without systemd.)

use std::process::Command;

use box_tests::binaries::workspace;
use box_tests::{guard, require_root};

fn doctor(args: &[&str]) -> (Option<i32>, String) {
    let output =
        guard::output(Command::new(workspace().join("scripts/doctor")).args(args)).expect("scripts/doctor");
    let text =
        String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[test]
fn the_doctor_finds_this_machine_ready_for_every_step() {
    require_root!();
    let (status, text) = doctor(&[]);
    assert_eq!(status, Some(0), "{text}");
    assert!(
        text.ends_with("doctor: this machine can run every step\n"),
        "{text}"
    );
    for check in [
        "kernel",
        "namespaces",
        "image",
        "cgroups",
        "memory",
        "pids",
        "cpu",
        "overlay",
        "veth",
        "bridge",
        "iptables",
    ] {
        assert!(
            text.lines()
                .any(|line| line.split_whitespace().take(2).eq(["ok", check])),
            "no ok line for {check}:\n{text}"
        );
    }
}

#[test]
fn the_doctor_names_what_is_missing_and_how_to_fix_it() {
    require_root!();
    let (status, text) = doctor(&["--rootfs", "/no/such/image"]);
    assert_eq!(status, Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|line| line.starts_with("FAIL  image"))
        .unwrap_or_else(|| panic!("no FAIL line for the image:\n{text}"));
    assert!(lines[at].ends_with("no image at /no/such/image"), "{text}");
    assert_eq!(
        lines[at + 1].trim(),
        "hint: run scripts/setup.sh, which builds it",
        "{text}"
    );
    assert!(
        text.ends_with("doctor: some steps cannot run here; see the FAIL lines above\n"),
        "{text}"
    );
}
