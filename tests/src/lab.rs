//! A lab is one test's private workspace: a scratch directory holding a copy of the image with
//! the probe in it, a file that exists only on the host (what an escape would read), and the
//! leak guard that checks, when the lab is dropped, that the host is as it was.

use std::fs;
use std::os::unix::fs::symlink;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::binaries::{probe_binary, scope_prefix, step_binary, step_name, workspace, FIRST_STEP_WITH_NAME};
use crate::guard::{self, Scope};
use crate::run::{execute, read_all, Run};

/// What the host-only file says; an escape that prints it has read the host's filesystem.
pub const HOST_SECRET: &str = "host-only file, outside the image";

pub struct Lab {
    dir: Option<TempDir>,
    image: PathBuf,
    host_file: PathBuf,
    names: Mutex<Vec<String>>,
}

// A lab copies an image and writes files: not what `Default` promises.
#[allow(clippy::new_without_default)]
impl Lab {
    /// A fresh lab. Call `require_root!()` first.
    pub fn new() -> Lab {
        let source = workspace().join("rootfs");
        assert!(
            source.join("bin/busybox").exists(),
            "the workshop image is not built: run scripts/setup.sh (or scripts/mkrootfs.sh)"
        );
        let probe = probe_binary();
        let dir = tempfile::Builder::new()
            .prefix("boxtest-")
            .tempdir()
            .expect("create a scratch directory");
        let image = dir.path().join("rootfs");
        copy_tree(&source, &image).expect("copy the image into the lab");
        fs::copy(&probe, image.join("bin/box-probe")).expect("copy the probe into the image");
        let host_file = dir.path().join("host-secret");
        fs::write(&host_file, format!("{HOST_SECRET}\n")).expect("write the host-only file");
        Lab {
            dir: Some(dir),
            image,
            host_file,
            names: Mutex::new(Vec::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("lab is open").path()
    }

    /// The lab's copy of the image (with `/bin/box-probe` in it).
    pub fn image(&self) -> &Path {
        &self.image
    }

    /// A file on the host outside the image.
    pub fn host_file(&self) -> &Path {
        &self.host_file
    }

    /// The names this lab has given its containers so far, newest last.
    pub fn names(&self) -> Vec<String> {
        self.names.lock().unwrap().clone()
    }

    /// A container name no other test uses, recorded so the leak guard looks for it.
    pub fn new_name(&self) -> String {
        let mut bytes = [0u8; 4];
        fs::File::open("/dev/urandom")
            .and_then(|mut random| std::io::Read::read_exact(&mut random, &mut bytes))
            .expect("read /dev/urandom");
        let name = format!(
            "t{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        self.names.lock().unwrap().push(name.clone());
        name
    }

    /// The step's command with the lab's image, a clean environment, and `args`. From the
    /// step that has `--name` on, every container gets a fresh name, so that the leak guard
    /// knows what to look for.
    fn command(&self, step: u32, args: &[&str]) -> (Command, String) {
        let mut command = match scope_prefix() {
            [] => Command::new(step_binary(step)),
            [program, words @ ..] => {
                let mut command = Command::new(program);
                command.args(words).arg(step_binary(step));
                command
            }
        };
        command.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        command.arg("--rootfs").arg(&self.image);
        if step >= FIRST_STEP_WITH_NAME && !args.contains(&"--name") {
            command.arg("--name").arg(self.new_name());
        }
        command.args(args);
        // Shown as a learner types it: the lab's copy of the image and the name are left out.
        (command, display_command(step, args))
    }

    /// The step's command (binary, the lab's image, a name, `args`), for tests that run it
    /// their own way; spawn it with [`guard::spawn`].
    pub fn step_command(&self, step: u32, args: &[&str]) -> Command {
        self.command(step, args).0
    }

    /// The step's whole command line (binary, the lab's image, a name, `args`), quoted for a
    /// shell: for tools that take one command string, like script(1).
    pub fn command_line(&self, step: u32, args: &[&str]) -> String {
        let (command, _) = self.command(step, args);
        let words: Vec<String> = std::iter::once(command.get_program())
            .chain(command.get_args())
            .map(|word| word.to_string_lossy().into_owned())
            .collect();
        shell_words(words.iter().map(String::as_str))
    }

    /// Run `stepNN --rootfs <lab image> ARGS`, with stdout and stderr kept apart.
    pub fn run(&self, step: u32, args: &[&str]) -> Run {
        let (command, display) = self.command(step, args);
        execute(command, display, false)
    }

    /// Like [`Lab::run`], with stdout and stderr merged as a terminal shows them.
    pub fn session(&self, step: u32, args: &[&str]) -> Run {
        let (command, display) = self.command(step, args);
        execute(command, display, true)
    }

    /// Like [`Lab::session`], but without the lab's `--rootfs`: for runs about the image itself.
    pub fn session_without_image(&self, step: u32, args: &[&str]) -> Run {
        let mut command = Command::new(step_binary(step));
        command
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .args(args);
        execute(command, display_command(step, args), true)
    }

    /// Run the step inside a throwaway UTS namespace of the test's own, then print that
    /// namespace's hostname (`outer hostname: …`): a step that lets the container rename its
    /// host renames only the throwaway namespace.
    pub fn run_in_outer_uts(&self, step: u32, args: &[&str]) -> Run {
        let (inner, display) = self.command(step, args);
        let mut command = Command::new("unshare");
        command.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        command.args([
            "--uts",
            "--",
            "/bin/sh",
            "-c",
            r#""$@"; echo "outer hostname: $(hostname)""#,
            "sh",
        ]);
        command.arg(inner.get_program()).args(inner.get_args());
        execute(command, format!("unshare --uts {display}"), false)
    }

    /// Run the step inside a throwaway mount namespace of the test's own, then print how many
    /// mounts on or below the image that namespace sees (`mounts on the image: N`). The throwaway
    /// namespace is a slave of the host's, so nothing in it can reach the host, and shared among
    /// its own mounts, as "/" is on systemd hosts: a mount the container makes without a private
    /// mount namespace of its own shows up in it.
    pub fn run_in_outer_mount_ns(&self, step: u32, args: &[&str]) -> Run {
        self.run_in_outer_mount_ns_with_env(step, args, &[])
    }

    /// Like [`Lab::run_in_outer_mount_ns`], with `env` added to the step's environment, as a
    /// caller's shell would pass its variables on.
    pub fn run_in_outer_mount_ns_with_env(&self, step: u32, args: &[&str], env: &[(&str, &str)]) -> Run {
        let (inner, display) = self.command(step, args);
        let mut command = Command::new("unshare");
        command.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        let script = r#"mount --make-rshared / && "$@"; echo "mounts on the image: $(awk -v image="$IMAGE" '$5 == image || index($5, image "/") == 1' /proc/self/mountinfo | wc -l)""#;
        command.env("IMAGE", &self.image);
        command.envs(env.iter().copied());
        command.args([
            "--mount",
            "--propagation",
            "slave",
            "--",
            "/bin/sh",
            "-c",
            script,
            "sh",
        ]);
        command.arg(inner.get_program()).args(inner.get_args());
        execute(command, format!("unshare --mount {display}"), false)
    }

    /// Run a host shell script in a process group of its own (so that nothing it does can
    /// signal the test's group), in which `STEP` stands for the step's command line.
    pub fn run_in_own_group(&self, step: u32, script: &str) -> Run {
        let (inner, _) = self.command(step, &[]);
        let words: Vec<String> = std::iter::once(inner.get_program())
            .chain(inner.get_args())
            .map(|word| format!("'{}'", word.to_string_lossy()))
            .collect();
        let mut command = Command::new("/bin/sh");
        command.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        command.process_group(0);
        command.arg("-c").arg(script.replace("STEP", &words.join(" ")));
        execute(command, script.replace("STEP", &step_name(step)), false)
    }

    /// Start the step on a terminal of the harness's own (see [`crate::terminal`]).
    pub fn on_terminal(&self, step: u32, args: &[&str]) -> crate::terminal::TerminalSession {
        let (command, _) = self.command(step, args);
        crate::terminal::TerminalSession::start(command)
    }

    /// Run the step with descriptor 7 open on a host file, as a careless parent would leave it.
    pub fn run_with_inherited_fd(&self, step: u32, args: &[&str]) -> Run {
        let (inner, display) = self.command(step, args);
        let mut command = Command::new("/bin/sh");
        command.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        command
            .arg("-c")
            .arg(r#"exec 7<"$0"; exec "$@""#)
            .arg(&self.host_file);
        command.arg(inner.get_program()).args(inner.get_args());
        execute(command, format!("{display} 7<host-file"), false)
    }

    /// Start the step in the background, for tests that look at a running container from
    /// the host. Wait for it with [`Running::wait`], which returns the run's output.
    pub fn start(&self, step: u32, args: &[&str]) -> Running {
        let (command, display) = self.command(step, args);
        self.start_command(command, display)
    }

    /// Like [`Lab::start`], with RLIMIT_NOFILE set to `nofile` (prlimit(1) execs the step).
    pub fn start_with_nofile(&self, step: u32, args: &[&str], nofile: u32) -> Running {
        let (inner, display) = self.command(step, args);
        let mut command = Command::new("prlimit");
        command.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        command.arg(format!("--nofile={nofile}:{nofile}")).arg("--");
        command.arg(inner.get_program()).args(inner.get_args());
        self.start_command(command, format!("ulimit -n {nofile}; {display}"))
    }

    fn start_command(&self, mut command: Command, display: String) -> Running {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child =
            guard::spawn(&mut command).unwrap_or_else(|err| panic!("failed to start {display}: {err}"));
        let stdout = read_all(child.stdout.take().expect("piped stdout"));
        let stderr = read_all(child.stderr.take().expect("piped stderr"));
        Running {
            waited: false,
            child,
            display,
            stdout: Mutex::new(Some(stdout)),
            stderr: Mutex::new(Some(stderr)),
        }
    }

    /// Run a host shell script in which `STEP` stands for the step's command line (with the
    /// lab's image and a fresh name), shown with `STEP` as the learner would type the step.
    pub fn shell_session(&self, step: u32, script: &str) -> Run {
        let (inner, _) = self.command(step, &[]);
        let words: Vec<String> = std::iter::once(inner.get_program())
            .chain(inner.get_args())
            .map(|word| format!("'{}'", word.to_string_lossy()))
            .collect();
        let mut command = Command::new("/bin/sh");
        command.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        // From the top of the workspace, as a learner types it.
        command.current_dir(workspace());
        command.arg("-c").arg(script.replace("STEP", &words.join(" ")));
        execute(command, script.replace("STEP", &step_name(step)), true)
    }

    /// The cgroups a running step (07 and later) recorded in /run/box-NAME/cgroups.
    pub fn recorded_cgroups(name: &str) -> Vec<PathBuf> {
        let text = fs::read_to_string(format!("/run/box-{name}/cgroups")).unwrap_or_default();
        text.lines().map(PathBuf::from).collect()
    }

    /// Start the web layer's server (step 10 on), published on the host's `port`; wait until
    /// it serves.
    pub fn start_web_server(&self, step: u32, port: u16) -> Running {
        self.web_server(step, port, None)
    }

    /// Like [`Lab::start_web_server`], with the runtime's descriptor limit (RLIMIT_NOFILE) set to
    /// `nofile`, as `ulimit -n` would.
    pub fn start_web_server_with_nofile(&self, step: u32, port: u16, nofile: u32) -> Running {
        self.web_server(step, port, Some(nofile))
    }

    fn web_server(&self, step: u32, port: u16, nofile: Option<u32>) -> Running {
        let web = workspace().join("layers/web");
        let publish = format!("{port}:80");
        let web = web.to_str().expect("UTF-8 path");
        let args = [
            "--publish",
            &publish,
            "--layer",
            web,
            "--",
            "/usr/local/bin/serve",
        ];
        let server = match nofile {
            None => self.start(step, &args),
            Some(nofile) => self.start_with_nofile(step, &args, nofile),
        };
        server.wait_for_command("httpd");
        server
    }

    /// What this lab's containers left on the host.
    pub fn leftovers(&self) -> Vec<String> {
        let names = self.names.lock().unwrap().clone();
        guard::leftovers(&Scope {
            dir: self.dir(),
            names: &names,
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let left = self.leftovers();
        let dir = self.dir.take().expect("lab is open");
        let path = dir.path().to_path_buf();
        let removed = dir.close();
        if std::thread::panicking() {
            return;
        }
        assert!(
            left.is_empty(),
            "the test left these on the host:\n  {}",
            left.join("\n  ")
        );
        if let Err(err) = removed {
            panic!("failed to remove the lab directory {}: {err}", path.display());
        }
    }
}

/// A step started with [`Lab::start`]. If the test ends (or panics) without waiting for it, the
/// runtime is killed and reaped; its init's parent-death signal then ends the container.
pub struct Running {
    waited: bool,
    child: Child,
    pub display: String,
    stdout: Mutex<Option<std::thread::JoinHandle<String>>>,
    stderr: Mutex<Option<std::thread::JoinHandle<String>>>,
}

/// Every process below `pid` (children of any of its threads, then theirs), children first.
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(pid) = queue.pop() {
        for task in fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let children = fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                found.push(child);
                queue.push(child);
            }
        }
    }
    found
}

impl Running {
    /// The runtime's pid on the host.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every process below the runtime: init, the command, what the command started.
    pub fn descendants(&self) -> Vec<u32> {
        descendants(self.pid())
    }

    /// What the runtime printed, once it has exited.
    fn output(&self) -> (String, String) {
        let join = |reader: &Mutex<Option<std::thread::JoinHandle<String>>>| {
            reader
                .lock()
                .unwrap()
                .take()
                .map(|r| r.join().expect("output reader"))
                .unwrap_or_default()
        };
        (join(&self.stdout), join(&self.stderr))
    }

    /// Wait (up to thirty seconds: creating and destroying many network namespaces at once is
    /// slow in the kernel) until a process below the runtime runs `comm`; return its pid.
    pub fn wait_for_command(&self, comm: &str) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let pid = self.pid();
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat
                .rfind(')')
                .and_then(|end| stat[end + 1..].split_whitespace().next())
                == Some("Z")
            {
                let (stdout, stderr) = self.output();
                panic!(
                    "{} exited before running {comm}:\n--- stdout\n{stdout}--- stderr\n{stderr}",
                    self.display
                );
            }
            for pid in self.descendants() {
                let name = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if name.trim() == comm {
                    return pid;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("{} never ran {comm}", self.display);
    }

    /// Send the runtime a signal, as `kill` on the host would.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid() as i32), signal)
            .expect("signal the runtime");
    }

    /// Wait for the runtime to exit; its status and output as a [`Run`].
    pub fn wait(mut self) -> Run {
        self.waited = true;
        let status = self.child.wait().expect("wait for the runtime");
        guard::untrack(self.child.id());
        let status = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let (stdout, stderr) = self.output();
        Run {
            command: self.display.clone(),
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.waited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            guard::untrack(self.child.id());
        }
    }
}

/// The IPv4 address of eth0 in the network namespace of process `pid` (a container's).
pub fn container_address(pid: u32) -> Option<String> {
    let output = guard::output(Command::new("nsenter").args([
        &format!("--target={pid}"),
        "--net",
        "--",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]))
    .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = text.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
    Some(field.split('/').next()?.to_string())
}

/// GET / from `address` (host:port) over HTTP/1.0; the whole answer, or "" on failure.
pub fn http_get(address: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut page = String::new();
    let _ = stream.read_to_string(&mut page);
    page
}

/// Run a command on the host and return a transcript of it (for "look from the host" sessions).
pub fn host_session(program: &str, args: &[&str]) -> Run {
    let mut command = Command::new(program);
    command.args(args);
    execute(
        command,
        shell_words(std::iter::once(program).chain(args.iter().copied())),
        true,
    )
}

/// Words as a shell needs them typed: quoted where they hold anything but plain characters.
pub fn shell_words<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let plain = |arg: &str| {
        !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:,[]".contains(c))
    };
    words
        .into_iter()
        .map(|arg| {
            if plain(arg) {
                arg.to_string()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The command line as a learner would type it in a shell, quoted where the shell needs it.
fn display_command(step: u32, args: &[&str]) -> String {
    let name = step_name(step);
    shell_words(std::iter::once(name.as_str()).chain(args.iter().copied()))
}

/// Copy a directory tree, keeping symlinks as symlinks (busybox's applets are symlinks).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    fs::set_permissions(to, fs::metadata(from)?.permissions())?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_symlink() {
            symlink(fs::read_link(entry.path())?, &target)?;
        } else if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
