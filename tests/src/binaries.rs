//! Finds the step binaries and the probe, building them first so a test never runs a binary
//! older than its sources. Cargo releases its build lock while tests run, so a nested build is
//! safe; it takes a fraction of a second when nothing changed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The workspace root (the directory holding `steps/` and `rootfs/`).
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
}

/// Steps that exist in this checkout, in order: 1 for steps/step01, and so on.
pub fn steps() -> &'static [u32] {
    static STEPS: OnceLock<Vec<u32>> = OnceLock::new();
    STEPS.get_or_init(|| {
        let mut steps: Vec<u32> = std::fs::read_dir(workspace().join("steps"))
            .expect("steps/ is readable")
            .filter_map(|entry| {
                entry
                    .ok()?
                    .file_name()
                    .to_str()?
                    .strip_prefix("step")?
                    .parse()
                    .ok()
            })
            .collect();
        steps.sort_unstable();
        steps
    })
}

/// The first step with `--name` (the container id that names what it creates on the host).
pub const FIRST_STEP_WITH_NAME: u32 = 2;
/// The first step with a PID namespace and an init.
pub const FIRST_STEP_WITH_INIT: u32 = 3;
/// The first step that gives the container a terminal of its own when stdin is a terminal.
pub const FIRST_STEP_WITH_PTY: u32 = 5;
/// The first step with `--memory`, `--pids` and `--cpus`.
pub const FIRST_STEP_WITH_CGROUPS: u32 = 7;
/// The first step with image layers (overlayfs).
pub const FIRST_STEP_WITH_OVERLAY: u32 = 8;
/// The first step with the bridge and `--publish`.
pub const FIRST_STEP_WITH_BRIDGE: u32 = 10;

/// The steps of this checkout from `first` on: the ones a behaviour test applies to.
pub fn steps_from(first: u32) -> impl Iterator<Item = u32> {
    steps().iter().copied().filter(move |step| *step >= first)
}

/// The first step with `--net` (a network namespace of its own).
pub const FIRST_STEP_WITH_NET: u32 = 9;

/// `--net none` where the step has it: for tests about something else that kill a runtime,
/// so that no shared network state (step 10's bridge) waits for a later run to sweep it.
pub fn no_network(step: u32) -> &'static [&'static str] {
    if step >= FIRST_STEP_WITH_NET {
        &["--net", "none"]
    } else {
        &[]
    }
}

pub fn step_name(step: u32) -> String {
    format!("step{step:02}")
}

/// Where cargo puts what it builds: the test binary lives in `<target>/<profile>/deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    exe.parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps/<test>")
        .to_path_buf()
}

fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its path");
    exe.parent()
        .and_then(Path::parent)
        .expect("<target>/<profile>/deps/<test>")
        .to_path_buf()
}

/// Build with cargo, unless `BOX_PREBUILT` says the binaries are in place already (where there is
/// no cargo: the VM in which scripts/vm-test.sh runs this test suite).
fn cargo(args: &[&str]) {
    if std::env::var_os("BOX_PREBUILT").is_some() {
        return;
    }
    let cargo = option_env!("CARGO").unwrap_or("cargo");
    let status = crate::guard::status(cargo_as_learner(cargo).args(args).current_dir(workspace()))
        .unwrap_or_else(|err| panic!("failed to run {cargo}: {err}"));
    assert!(
        status.success(),
        "`cargo {}` failed: see its output above",
        args.join(" ")
    );
}

/// The tests run as root, through sudo for a learner who is not (scripts/as-root), but what they
/// build belongs to the learner: a target/ with files owned by root would stop their next
/// `cargo build`. So cargo runs as the user who called sudo, with that user's home (their
/// ~/.cargo), and is told where rustc is: sudo's `secure_path` has no ~/.cargo/bin, and the
/// cargo that built this test (rustup's toolchain directory, or /usr/bin) has rustc beside it.
fn cargo_as_learner(cargo: &str) -> Command {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(cargo);
    let beside = Path::new(cargo).with_file_name("rustc");
    if std::env::var_os("RUSTC").is_none() && beside.is_absolute() && beside.is_file() {
        command.env("RUSTC", beside);
    }
    let id = |name| std::env::var(name).ok().and_then(|id| id.parse::<u32>().ok());
    if let (Some(uid), Some(gid)) = (id("SUDO_UID"), id("SUDO_GID")) {
        if uid != 0 && nix::unistd::geteuid().is_root() {
            command.uid(uid).gid(gid);
            if let Ok(Some(user)) = nix::unistd::User::from_uid(uid.into()) {
                command.env("HOME", user.dir).env("USER", user.name);
            }
        }
    }
    command
}

/// The learner's binary that stands in for step `BOX_EXERCISE_STEP`, from
/// `BOX_EXERCISE_BINARY` (scripts/exercise.sh check builds it and sets both).
pub fn exercise() -> Option<(u32, PathBuf)> {
    let step = std::env::var("BOX_EXERCISE_STEP").ok()?.parse().ok()?;
    let binary = std::env::var_os("BOX_EXERCISE_BINARY")?;
    Some((step, PathBuf::from(binary)))
}

/// The path of `stepNN`, built with the same profile as the tests (or the learner's exercise
/// for that step, see [`exercise`]).
pub fn step_binary(step: u32) -> PathBuf {
    if let Some((exercise_step, binary)) = exercise() {
        if exercise_step == step {
            return binary;
        }
    }
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut args = vec!["build", "--quiet", "--bins"];
        let names: Vec<String> = steps().iter().map(|s| step_name(*s)).collect();
        for name in &names {
            args.extend(["-p", name]);
        }
        let release = profile_dir().file_name().is_some_and(|name| name == "release");
        if release {
            args.push("--release");
        }
        let target = target_dir();
        let target = target.to_str().expect("target dir is UTF-8");
        args.extend(["--target-dir", target]);
        cargo(&args);
    });
    profile_dir().join(step_name(step))
}

/// The probe, linked statically so it runs in the busybox image, which has no libc.
pub fn probe_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = target_dir().join("probe");
            let dir_str = dir.to_str().expect("target dir is UTF-8");
            cargo(&[
                "rustc",
                "--quiet",
                "-p",
                "box-probe",
                "--release",
                "--target-dir",
                dir_str,
                "--",
                "-C",
                "target-feature=+crt-static",
            ]);
            dir.join("release/box-probe")
        })
        .clone()
}

/// On a cgroup v2 host run by systemd, the words that start a step in a delegated scope of its
/// own (as scripts/as-root does for `cargo run`): cgroup v2 lets step 7 switch controllers on
/// for its containers only from a cgroup it is alone in, and each test's runtime must be.
/// `systemd-run --scope` execs the command in place, so the runtime's pid is the child's.
pub fn scope_prefix() -> &'static [&'static str] {
    static PREFIX: OnceLock<Vec<&'static str>> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let systemd = Path::new("/run/systemd/system").is_dir();
        let has_systemd_run = ["/usr/bin/systemd-run", "/bin/systemd-run"]
            .iter()
            .any(|p| Path::new(p).exists());
        if v2 && systemd && has_systemd_run && std::env::var_os("BOX_NO_SCOPE").is_none() {
            vec![
                "systemd-run",
                "--quiet",
                "--collect",
                "--scope",
                "-p",
                "Delegate=yes",
                "--",
            ]
        } else {
            Vec::new()
        }
    })
}

/// How many times a soak or fault-injection test repeats: all of them, unless `BOX_QUICK` is
/// set (scripts/vm-test.sh sets it: the VMs run under software emulation, where one container
/// start takes a second, and these tests run in full on the host anyway).
pub fn repetitions(full: usize, quick: usize) -> usize {
    if std::env::var_os("BOX_QUICK").is_some() {
        quick
    } else {
        full
    }
}
