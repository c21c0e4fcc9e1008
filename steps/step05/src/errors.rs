//! How a step reports failure: one line on stderr, `stepNN: error: what failed: why`, then a
//! `hint:` line where we know what the user can do about it, and an exit status that tells the
//! runtime's own failures (125) from a command that cannot run (126, 127), as docker does.

use std::fmt;

use anyhow::Result;

/// The runtime itself failed (bad input, a syscall refused, …).
pub const RUNTIME_FAILED: u8 = 125;
/// The command exists but cannot be executed (not executable, wrong format).
pub const NOT_EXECUTABLE: u8 = 126;
/// The command is not in the image.
pub const NOT_FOUND: u8 = 127;

/// A hint travels in the error chain as one more context. It shows as nothing in the error
/// line; `Failure` finds it and prints it on a line of its own.
#[derive(Debug)]
pub struct Hint(pub String);

impl fmt::Display for Hint {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

impl std::error::Error for Hint {}

/// `.hint("run scripts/setup.sh")` on any result attaches what to do about the error.
pub trait HintExt<T> {
    fn hint(self, hint: impl Into<String>) -> Result<T>;
}

impl<T, E: Into<anyhow::Error>> HintExt<T> for std::result::Result<T, E> {
    fn hint(self, hint: impl Into<String>) -> Result<T> {
        self.map_err(|err| err.into().context(Hint(hint.into())))
    }
}

/// Everything the user is told about a failure: the message, a hint, the exit status.
#[derive(Debug, PartialEq)]
pub struct Failure {
    pub status: u8,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    pub fn new(status: u8, err: &anyhow::Error) -> Self {
        // The whole chain on one line, outermost context first; hints display as nothing.
        let message = err
            .chain()
            .map(|cause| cause.to_string())
            .filter(|text| !text.is_empty())
            .collect::<Vec<_>>()
            .join(": ");
        let hint = err.downcast_ref::<Hint>().map(|hint| hint.0.clone());
        Failure {
            status,
            message,
            hint,
        }
    }

    /// Print the failure the way every step does and return the exit status.
    pub fn print(&self) -> u8 {
        eprintln!("{}: error: {}", env!("CARGO_PKG_NAME"), self.message);
        if let Some(hint) = &self.hint {
            eprintln!("hint: {hint}");
        }
        self.status
    }
}

// ANCHOR: parse_args
/// Read the command line. A usage error is told like every other failure of the runtime (one
/// line, a hint, exit status 125, as docker does); `--help` and `--version` print and exit 0.
pub fn parse_args<T: clap::Parser>() -> Result<T, std::process::ExitCode> {
    T::try_parse().map_err(|err| {
        if !err.use_stderr() {
            let _ = err.print();
            return std::process::ExitCode::SUCCESS;
        }
        let text = err.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        let failure = Failure {
            status: RUNTIME_FAILED,
            message: format!("bad arguments: {}", first.trim_start_matches("error: ")),
            hint: Some(format!("see `{} --help`", env!("CARGO_PKG_NAME"))),
        };
        std::process::ExitCode::from(failure.print())
    })
}
// ANCHOR_END: parse_args

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Self {
        Failure::new(RUNTIME_FAILED, &err)
    }
}

/// Every step needs root: chroot, namespaces, mounts and cgroups are all privileged.
/// Checking first gives one clear message instead of an EPERM from deep inside.
pub fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    Err(anyhow::anyhow!(
        "must run as root: changing a process's root directory needs CAP_SYS_CHROOT"
    ))
    .hint(format!(
        "use `cargo run -p {0}`, which runs it through scripts/as-root, or `sudo {0}`",
        env!("CARGO_PKG_NAME")
    ))
}
