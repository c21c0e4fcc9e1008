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
    // The host's hostname, wherever the container prints it.
    let host = nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !host.is_empty() {
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
