//! The leak guard must itself be able to fail: these tests leave something behind on purpose
//! and check that the guard sees it (and cleans it up).

use std::process::Command;

use box_tests::{guard, require_root, Lab};

#[test]
fn guard_sees_a_process_that_outlives_its_container() {
    require_root!();
    let lab = Lab::new();
    // step01 has no PID namespace: a process the command leaves behind outlives the container.
    let run = lab.run(1, &["--", "/bin/box-probe", "linger", "30"]);
    assert_eq!(run.status, 0, "{run}");
    let left = lab.leftovers();
    assert!(
        left.iter().any(|item| item.starts_with("process ")),
        "the guard missed the orphan: {left:?}"
    );
    assert!(
        lab.leftovers().is_empty(),
        "the guard should have killed the orphan"
    );
}

#[test]
fn guard_sees_a_mount_left_in_the_lab() {
    require_root!();
    let lab = Lab::new();
    let target = lab.dir().join("mnt");
    std::fs::create_dir(&target).unwrap();
    let mounted = guard::status(Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(&target)).unwrap();
    assert!(mounted.success());
    let left = lab.leftovers();
    let unmounted = guard::status(Command::new("umount").arg(&target)).unwrap();
    assert!(unmounted.success());
    assert!(
        left.iter().any(|item| item.starts_with("mount: ")),
        "the guard missed the mount: {left:?}"
    );
}
