//! Running a step on a real terminal, as a learner's shell does: the harness makes a
//! pseudo-terminal, starts the step in a session of its own with the pty's slave as its
//! controlling terminal and as stdin, stdout and stderr, and plays the person at the keyboard
//! on the master side. It keeps a descriptor of the slave too, so that afterwards it can read
//! the terminal's settings and whatever is waiting in its input queue, as the caller's shell
//! would find them.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::termios::{tcgetattr, Termios};

use crate::guard;

/// The outer terminal's size, which the container's terminal should take on.
pub const ROWS: u16 = 37;
pub const COLUMNS: u16 = 101;

pub struct TerminalSession {
    master: File,
    slave: OwnedFd,
    child: Child,
    output: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
    before: Termios,
    waited: bool,
}

/// What a terminal session left: the exit status, everything the terminal showed, whether the
/// terminal's settings are what they were before, and what waits in its input queue.
pub struct TerminalRun {
    pub status: i32,
    pub output: String,
    pub mode_restored: bool,
    pub typed_ahead: String,
}

fn winsize(rows: u16, columns: u16) -> libc::winsize {
    libc::winsize {
        ws_row: rows,
        ws_col: columns,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl TerminalSession {
    /// Start `command` on a fresh pty of ROWS x COLUMNS.
    pub fn start(mut command: Command) -> TerminalSession {
        let (mut master_fd, mut slave_fd) = (-1, -1);
        let size = winsize(ROWS, COLUMNS);
        // SAFETY: openpty writes two descriptors into our variables; the name and termios
        // pointers may be null, and the winsize is ours.
        let rc = unsafe {
            libc::openpty(
                &mut master_fd,
                &mut slave_fd,
                std::ptr::null_mut(),
                std::ptr::null(),
                &size,
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: openpty has just opened both; nothing else owns them.
        let (master, slave) = unsafe { (File::from_raw_fd(master_fd), OwnedFd::from_raw_fd(slave_fd)) };
        let before = tcgetattr(&slave).expect("tcgetattr");
        let stdio = || Stdio::from(slave.try_clone().expect("dup the slave"));
        command.stdin(stdio()).stdout(stdio()).stderr(stdio());
        // SAFETY: setsid and ioctl are async-signal-safe, as pre_exec requires.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = guard::spawn(&mut command).expect("start the step on a terminal");
        drop(command);
        let output = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let mut master = master.try_clone().expect("dup the master");
            let output = Arc::clone(&output);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let mut fds = [libc::pollfd {
                        fd: master.as_raw_fd(),
                        events: libc::POLLIN,
                        revents: 0,
                    }];
                    // SAFETY: one pollfd of ours.
                    if unsafe { libc::poll(fds.as_mut_ptr(), 1, 50) } <= 0 {
                        continue;
                    }
                    match master.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => output.lock().unwrap().extend_from_slice(&buf[..n]),
                    }
                }
            })
        };
        TerminalSession {
            master,
            slave,
            child,
            output,
            stop,
            reader: Some(reader),
            before,
            waited: false,
        }
    }

    /// The step's pid on the host.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the terminal has shown so far.
    pub fn shown(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Wait (up to 20 s) until the terminal shows `text` after what it showed at `from` bytes.
    pub fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.shown().contains(text) {
            assert!(
                Instant::now() < deadline,
                "the terminal never showed {text:?}; it shows:\n{}",
                self.shown()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Type `keys` at the keyboard.
    pub fn type_keys(&mut self, keys: &[u8]) {
        self.master.write_all(keys).expect("type on the terminal");
    }

    /// Resize the window, as a terminal emulator does (the kernel then sends SIGWINCH to the
    /// terminal's foreground process group: the step).
    pub fn resize(&self, rows: u16, columns: u16) {
        let size = winsize(rows, columns);
        // SAFETY: TIOCSWINSZ reads one winsize, which is ours.
        let rc = unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0, "TIOCSWINSZ");
    }

    /// Wait for the step to exit (up to 30 s), then look at the terminal as the caller's shell
    /// would find it.
    pub fn finish(mut self) -> TerminalRun {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the step") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the step did not exit; the terminal shows:\n{}", self.shown());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.waited = true;
        guard::untrack(self.child.id());
        // Let the reader take what is still in the pty's buffer.
        std::thread::sleep(Duration::from_millis(100));
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let after = tcgetattr(&self.slave).expect("tcgetattr");
        let mode_restored = same_mode(&self.before, &after);
        TerminalRun {
            status: status
                .code()
                .unwrap_or_else(|| 128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)),
            output: self.shown(),
            mode_restored,
            typed_ahead: self.typed_ahead(),
        }
    }

    /// What waits in the terminal's input queue: what the caller's shell would read next.
    fn typed_ahead(&self) -> String {
        let mut pending: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int, which is ours.
        unsafe { libc::ioctl(self.slave.as_raw_fd(), libc::FIONREAD, &mut pending) };
        if pending <= 0 {
            return String::new();
        }
        let mut buf = vec![0u8; pending as usize];
        // SAFETY: reads at most buf.len() bytes into our buffer; FIONREAD said they are there.
        let n = unsafe { libc::read(self.slave.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        String::from_utf8_lossy(&buf[..n.max(0) as usize]).into_owned()
    }
}

fn same_mode(a: &Termios, b: &Termios) -> bool {
    a.input_flags == b.input_flags
        && a.output_flags == b.output_flags
        && a.control_flags == b.control_flags
        && a.local_flags == b.local_flags
        && a.control_chars == b.control_chars
}

impl Drop for TerminalSession {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if !self.waited {
            let _ = self.child.kill();
            let _ = self.child.wait();
            guard::untrack(self.child.id());
        }
    }
}
