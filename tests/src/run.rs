//! One run of a step binary: its command line, exit status and output, formatted for failure
//! messages (status, stdout, stderr) and for the book (a terminal transcript).

use std::fmt;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::guard;

/// A run that takes longer than this is killed and fails its test.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// [`TIMEOUT`], or `BOX_RUN_TIMEOUT` seconds: scripts/exercise.sh gives a learner's code less
/// time, so that a hang is reported in seconds.
pub fn timeout() -> Duration {
    std::env::var("BOX_RUN_TIMEOUT")
        .ok()
        .and_then(|secs| secs.parse().ok())
        .map_or(TIMEOUT, Duration::from_secs)
}

#[derive(Debug, Clone)]
pub struct Run {
    /// The command line as a learner would type it (`step01 -- /bin/echo hello`).
    pub command: String,
    /// The exit status as a shell reports it: the code, or 128+N for signal N.
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The run as a terminal shows it: the prompt, the output, then `echo $?`. Only
    /// meaningful for a run made with merged output (stdout holds both streams).
    pub fn transcript(&self) -> String {
        let mut text = format!("$ {}\n{}", self.command, self.stdout);
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("$ echo $?\n{}\n", self.status));
        text
    }

    /// Both streams, for tests that look for a line in either.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "command: {}", self.command)?;
        writeln!(f, "status: {}", self.status)?;
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        write!(f, "--- stderr\n{}", self.stderr)
    }
}

pub fn read_all(mut source: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = source.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Run `command` to completion (killing it after [`TIMEOUT`]). With `merged`, stdout and
/// stderr share one pipe, in the order a terminal would show them, and land in `stdout`.
pub fn execute(mut command: Command, display: String, merged: bool) -> Run {
    command.stdin(Stdio::null());
    let (stdout_reader, stderr_reader);
    if merged {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        let write_copy = write.try_clone().expect("dup");
        command.stdout(Stdio::from(write)).stderr(Stdio::from(write_copy));
        let mut child =
            guard::spawn(&mut command).unwrap_or_else(|err| panic!("failed to start {display}: {err}"));
        // Drop our copies of the write end (they live in `command`) so the read sees EOF.
        drop(command);
        stdout_reader = read_all(std::fs::File::from(read));
        stderr_reader = thread::spawn(String::new);
        return finish(&mut child, display, stdout_reader, stderr_reader);
    }
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child =
        guard::spawn(&mut command).unwrap_or_else(|err| panic!("failed to start {display}: {err}"));
    stdout_reader = read_all(child.stdout.take().expect("piped stdout"));
    stderr_reader = read_all(child.stderr.take().expect("piped stderr"));
    finish(&mut child, display, stdout_reader, stderr_reader)
}

fn finish(
    child: &mut std::process::Child,
    display: String,
    stdout: thread::JoinHandle<String>,
    stderr: thread::JoinHandle<String>,
) -> Run {
    let started = Instant::now();
    let limit = timeout();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the runtime") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let status = child.wait().expect("wait for the killed runtime");
            guard::untrack(child.id());
            panic!("{display} did not finish within {limit:?} and was killed ({status})");
        }
        thread::sleep(Duration::from_millis(5));
    };
    guard::untrack(child.id());
    let status = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Run {
        command: display,
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}
