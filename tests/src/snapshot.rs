//! insta settings shared by every snapshot: where they live, a plain header (so the book can
//! include a snapshot from its fourth line on), and the filters that replace host-dependent
//! facts, from the most specific to the most generic. Facts inside the container (PID 1) are
//! never filtered.

pub fn settings() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    let tmp = regex_escape(&std::env::temp_dir().to_string_lossy());
    let tmp = tmp.trim_end_matches('/');
    // Paths in this checkout, as a learner reads them from the top of the workspace.
    let workspace = regex_escape(&crate::binaries::workspace().to_string_lossy());
    settings.add_filter(&format!(r"{workspace}/"), "");
    // The lab's image, then anything else in the lab's scratch directory.
    settings.add_filter(&format!(r"{tmp}/boxtest-[A-Za-z0-9]+/rootfs"), "[ROOTFS]");
    settings.add_filter(&format!(r"{tmp}/boxtest-[A-Za-z0-9]+"), "[LAB]");
    // The names the lab gives containers (`t` and eight hex digits), and what is named after them.
    settings.add_filter(r"\bt[0-9a-f]{8}\b", "[ID]");
    // The test's own cgroups (the runtime's, under which containers get theirs) differ from
    // machine to machine: show them as "…".
    for line in std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
    {
        if let Some(path) = line.splitn(3, ':').nth(2).filter(|path| path.len() > 1) {
            settings.add_filter(&regex_escape(path), "/…");
        }
    }
    // Host pids: three digits or more where a pid is printed. Container pids stay.
    settings.add_filter(
        r#"(fork\(\) = |clone\([^)]*\) = |waitpid\(|pid: |kill\(|cgroup\.procs", "|netns |--target=)\d{3,}"#,
        "$1[PID]",
    );
    // Which loop device stands in for a host disk (loop(4): the major is always 7).
    settings.add_filter(r"/dev/loop\d+", "/dev/loop[N]");
    settings.add_filter(r"\bb 7 \d+", "b 7 [N]");
    // iptables-nft's note when the host also has iptables-legacy tables (a fact of the host).
    settings.add_filter(r"(?m)^# Warning: iptables-legacy tables present[^\n]*\n", "");
    // How many CPUs the recording machine has, where an error message says it.
    settings.add_filter(r"this machine has \d+", "this machine has [N]");
    // How many capabilities init drops from its bounding set: all the kernel knows (its
    // CAP_LAST_CAP, which grows with new kernels) but the fourteen it keeps.
    settings.add_filter(r"for \d+ capabilities", "for [N] capabilities");
    // The transient systemd scope each runtime gets on a cgroup v2 host with systemd.
    settings.add_filter(r"run-r[0-9a-f]+\.scope", "run-r[SCOPE].scope");
    // Which /proc entries a runtime masks depends on the kernel: these exist only on some (sound
    // cards, SCSI, ACPI, kcore, sysrq, debug options), so their masks are left out of traces.
    settings.add_filter(
        r#"(?m)^\[init\] mount\([^\n]*"(/proc/(acpi|asound|kcore|latency_stats|timer_stats|sched_debug|scsi|sysrq-trigger)|/sys/devices/virtual/powercap)"[^\n]*\n"#,
        "",
    );
    // The host's hostname, wherever the container prints it.
    let host = nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !host.is_empty() && host != "localhost" {
        settings.add_filter(&format!(r"\b{}\b", regex_escape(&host)), "[HOST]");
    }
    settings
}

fn regex_escape(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, c| {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// The host's cgroup layout, found as the steps find it: "v2" (unified), "hybrid" or "v1"; and
/// "v2-systemd" where each runtime gets a systemd scope of its own (see
/// [`crate::binaries::scope_prefix`]), which shows in the cgroup paths.
pub fn cgroup_layout() -> &'static str {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let has = |fstype: &str| {
        mountinfo
            .lines()
            .any(|line| line.split(" - ").nth(1).and_then(|rest| rest.split(' ').next()) == Some(fstype))
    };
    match (has("cgroup2"), has("cgroup")) {
        (true, false) if !crate::binaries::scope_prefix().is_empty() => "v2-systemd",
        (true, false) => "v2",
        (true, true) => "hybrid",
        _ => "v1",
    }
}

/// Every layout a transcript may be recorded for.
const LAYOUTS: [&str; 4] = ["v2-systemd", "v2", "hybrid", "v1"];

/// Snapshot a session that shows the host's cgroup files, which differ from one cgroup layout
/// to another, as `NAME@LAYOUT`. The repository holds what its CI machine (hybrid) recorded,
/// which the book shows, and what the VM with systemd recorded (`scripts/vm-test.sh --record`). On a layout for which another one is recorded but not this one
/// (most learners' machines are v2), the transcript is not compared, and the test says so: the
/// cgroup tests check the behaviour on every layout. `INSTA_UPDATE=always` records it.
pub fn assert_layout_snapshot(name: &str, text: &str) {
    use std::io::Write;
    let layout = cgroup_layout();
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
    let recorded = |layout: &str| dir.join(format!("{name}@{layout}.snap")).exists();
    let recording = std::env::var("INSTA_UPDATE").is_ok_and(|mode| mode == "always");
    if !compared(layout, recorded, recording) {
        // Straight to stderr, past the test harness's capture: a passing test should say this too.
        let _ = writeln!(
            std::io::stderr(),
            "note: {name}: this host's cgroups are {layout}, and only another layout's transcript is \
             recorded: not compared (record one with INSTA_UPDATE=always)"
        );
        return;
    }
    let mut settings = settings();
    settings.set_snapshot_suffix(layout);
    settings.bind(|| insta::assert_snapshot!(name, text));
}

/// Whether a layout-dependent transcript is compared: always, unless another layout's is
/// recorded and this one's is not (and we are not recording). With none recorded at all,
/// insta's usual rules apply: a missing snapshot fails.
fn compared(layout: &str, recorded: impl Fn(&str) -> bool, recording: bool) -> bool {
    recording || recorded(layout) || !LAYOUTS.into_iter().any(recorded)
}

/// Container addresses on the bridge depend on the container's id.
pub fn mask_bridge_address(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("10.201.0.") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 9..];
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        if &tail[..digits] == "1" || &tail[..digits] == "0" {
            out.push_str(&rest[at..at + 9 + digits]);
        } else {
            out.push_str("[CONTAINER]");
        }
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

/// Replace the number that follows each `prefix` (a claim number, say) with `[N]`.
pub fn mask_number_after(text: &str, prefix: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        out.push_str(&rest[..at + prefix.len()]);
        let tail = &rest[at + prefix.len()..];
        let digits = tail.chars().take_while(char::is_ascii_digit).count();
        out.push_str(if digits > 0 { "[N]" } else { "" });
        rest = &tail[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::compared;

    #[test]
    fn a_recorded_layout_is_compared_and_a_missing_one_only_when_none_is_recorded() {
        let hybrid_only = |layout: &str| layout == "hybrid";
        assert!(compared("hybrid", hybrid_only, false));
        assert!(!compared("v2", hybrid_only, false));
        assert!(compared("v2", hybrid_only, true));
        assert!(compared("v2", |_: &str| false, false));
    }
}
