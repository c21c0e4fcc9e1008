//! The image in layers, from the step that adds overlayfs (step08) on: writes stay in the
//! container's own upper layer, the layers never change, a deleted file of the image is only
//! hidden (a whiteout), --keep keeps the upper layer, and two containers from the same image do
//! not see each other's writes.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use box_tests::binaries::{step_name, steps_from, workspace, FIRST_STEP_WITH_OVERLAY};
use box_tests::{require_root, Lab};

#[test]
fn a_write_stays_in_the_container() {
    require_root!();
    let lab = Lab::new();
    let web = workspace().join("layers/web");
    let web = web.to_str().unwrap();
    for step in steps_from(FIRST_STEP_WITH_OVERLAY) {
        let run = lab.run(
            step,
            &[
                "--layer",
                web,
                "--",
                "/bin/sh",
                "-c",
                "echo mine > /note; cat /note; echo more >> /var/www/index.html",
            ],
        );
        assert_eq!((run.status, run.stdout.as_str()), (0, "mine\n"), "{run}");
        assert!(
            !lab.image().join("note").exists(),
            "{}: the write landed in the image",
            step_name(step)
        );
        let page = fs::read_to_string(workspace().join("layers/web/var/www/index.html")).unwrap();
        assert!(
            !page.contains("more"),
            "{}: the write landed in the layer",
            step_name(step)
        );
        let next = lab.run(step, &["--", "/bin/cat", "/note"]);
        assert_ne!(
            next.status,
            0,
            "{}: the next container saw the write: {next}",
            step_name(step)
        );
    }
}

#[test]
fn keep_keeps_the_upper_layer_with_copy_ups_and_whiteouts() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_OVERLAY) {
        let run = lab.run(
            step,
            &[
                "--keep",
                "--",
                "/bin/sh",
                "-c",
                "echo mine > /note; rm /etc/hostname; echo copied-up >> /etc/group",
            ],
        );
        assert_eq!(run.status, 0, "{run}");
        let name = lab.names().last().cloned().unwrap();
        let upper = format!("/var/tmp/box-{name}/upper");
        assert!(
            run.stderr
                .contains(&format!("kept the container's writes in {upper}")),
            "{run}"
        );
        let upper = Path::new(&upper);
        assert_eq!(fs::read_to_string(upper.join("note")).unwrap(), "mine\n");
        // The deleted file is a whiteout: a character device 0/0 in the upper layer.
        let whiteout = fs::symlink_metadata(upper.join("etc/hostname")).unwrap();
        assert!(
            whiteout.file_type().is_char_device() && whiteout.rdev() == 0,
            "no whiteout"
        );
        // The changed file was copied up whole; the image's copy is untouched.
        assert!(fs::read_to_string(upper.join("etc/group"))
            .unwrap()
            .ends_with("copied-up\n"));
        assert!(lab.image().join("etc/hostname").exists());
        assert!(!fs::read_to_string(lab.image().join("etc/group"))
            .unwrap()
            .contains("copied-up"));
        fs::remove_dir_all(format!("/var/tmp/box-{name}")).unwrap();
    }
}

#[test]
fn two_containers_from_one_image_do_not_see_each_others_writes() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_OVERLAY) {
        let write_then_read = |text: &str| format!("echo {text} > /shared; sleep 0.5; cat /shared");
        let first = lab.start(step, &["--", "/bin/sh", "-c", &write_then_read("first")]);
        let second = lab.start(step, &["--", "/bin/sh", "-c", &write_then_read("second")]);
        let (first, second) = (first.wait(), second.wait());
        assert_eq!(first.stdout, "first\n", "{first}");
        assert_eq!(second.stdout, "second\n", "{second}");
    }
}

#[test]
fn nothing_is_left_after_the_command_crashes() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_OVERLAY) {
        let run = lab.run(step, &["--", "/bin/sh", "-c", "echo x > /note; kill -SEGV $$"]);
        assert_eq!(run.status, 128 + 11, "{run}");
        // The leak guard checks the scratch area and mounts when the lab is dropped; check now
        // too, so the failure names the step.
        assert_eq!(lab.leftovers(), Vec::<String>::new(), "{}", step_name(step));
    }
}

/// Run `program` as an unprivileged user of the host (nobody) would: setpriv(1) keeps root's
/// capabilities up to its own execve, so it starts a shell, which runs as nobody with none.
fn as_nobody(program: &str) -> std::process::Output {
    let mut command = std::process::Command::new("setpriv");
    command.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "/bin/sh",
        "-c",
    ]);
    command.args([r#"exec "$0" id -u"#, program]);
    box_tests::guard::output(&mut command).expect("setpriv")
}

#[test]
fn other_users_of_the_host_cannot_reach_what_a_container_writes() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_OVERLAY) {
        let name = lab.new_name();
        // A set-uid copy of a shell-sized program, written by root in the container.
        let script = "cp /bin/busybox /bb && chmod 4755 /bb && sleep 30";
        let container = lab.start(step, &["--name", &name, "--keep", "--", "/bin/sh", "-c", script]);
        container.wait_for_command("sleep");
        let area = format!("/var/tmp/box-{name}");
        let setuid_copy = format!("{area}/upper/bb");
        let check = |when: &str| {
            let mode = fs::metadata(&area).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}: {area} is {mode:o} {when}", step_name(step));
            let attempt = as_nobody(&setuid_copy);
            assert!(
                !attempt.status.success()
                    && String::from_utf8_lossy(&attempt.stderr).contains("Permission denied"),
                "{}: nobody ran {setuid_copy} {when}: {attempt:?}",
                step_name(step)
            );
        };
        check("while the container runs");
        container.signal(nix::sys::signal::Signal::SIGTERM);
        container.wait();
        assert!(Path::new(&setuid_copy).exists(), "--keep kept nothing");
        check("once it is kept");
        fs::remove_dir_all(&area).unwrap();
    }
}
