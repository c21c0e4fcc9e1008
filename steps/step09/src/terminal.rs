//! A terminal of the container's own. Until now the command's stdin was the caller's terminal:
//! a process inside could push keystrokes into it with the TIOCSTI ioctl, and the shell that
//! started the runtime would read and run them after the container exits. As `docker run -it`
//! does, the container now gets a pseudo-terminal (pty(7)) from its own devpts instance: init
//! opens the master side (/dev/ptmx), sends it back to the runtime over a Unix socket
//! (SCM_RIGHTS, unix(7)), and the command makes the slave side (/dev/pts/N) its controlling
//! terminal. The runtime puts the caller's terminal in raw mode and copies bytes both ways, so
//! Ctrl-C and Ctrl-Z are turned into signals by the container's terminal, for the container's
//! processes. See pty(7), termios(3), ioctl_tty(2), credentials(7) on sessions.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::thread::JoinHandle;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::stat::Mode;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

use crate::trace::trace;

/// The runtime's end of the socket the master comes back on (none without a terminal).
pub struct RuntimeEnd(Option<UnixStream>);

/// Init's end of it.
pub struct ContainerEnd(Option<UnixStream>);

/// Before the clone: a socket pair for the pty's master, when stdin is a terminal. Without a
/// terminal (a pipe, a file, /dev/null) the container keeps the caller's descriptors, and
/// both ends are empty.
pub fn channel() -> Result<(RuntimeEnd, ContainerEnd)> {
    if !nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
        return Ok((RuntimeEnd(None), ContainerEnd(None)));
    }
    // Close-on-exec, like the handshake's pipes: no command inherits either end.
    let (runtime, container) =
        UnixStream::pair().context("failed to create a socket pair for the terminal")?;
    Ok((RuntimeEnd(Some(runtime)), ContainerEnd(Some(container))))
}

fn ioctl_int(fd: RawFd, request: libc::c_ulong, value: &mut libc::c_int, name: &str) -> Result<()> {
    // SAFETY: these requests read or write one int through the pointer, which is ours.
    let rc = unsafe { libc::ioctl(fd, request as _, value as *mut libc::c_int) };
    Errno::result(rc)
        .map(drop)
        .with_context(|| format!("failed to ioctl({name})"))
}

// ANCHOR: open_pty
impl ContainerEnd {
    /// In init, once /dev holds the container's devpts: make a pty, send its master to the
    /// runtime, wait until the runtime has sized it, and make its slave init's stdin, stdout
    /// and stderr (the caller's terminal is then held by no process of the container). The
    /// command inherits them. Returns whether there is a terminal.
    pub fn open_pty(self) -> Result<bool> {
        let Some(socket) = self.0 else {
            return Ok(false);
        };
        trace!("open(\"/dev/ptmx\", O_RDWR|O_NOCTTY|O_CLOEXEC)");
        let flags = OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC;
        let master = open("/dev/ptmx", flags, Mode::empty()).context("failed to open /dev/ptmx")?;
        // A new pty starts locked, so nobody opens the slave before its master is ready.
        let mut unlock = 0;
        trace!("ioctl(ptmx, TIOCSPTLCK, 0)");
        ioctl_int(master.as_raw_fd(), libc::TIOCSPTLCK, &mut unlock, "TIOCSPTLCK")?;
        let mut number = 0;
        ioctl_int(master.as_raw_fd(), libc::TIOCGPTN, &mut number, "TIOCGPTN")?;
        let slave = format!("/dev/pts/{number}");
        trace!("open({slave:?}, O_RDWR|O_NOCTTY)");
        let slave_fd = open(slave.as_str(), OFlag::O_RDWR | OFlag::O_NOCTTY, Mode::empty())
            .with_context(|| format!("failed to open {slave}"))?;

        trace!("sendmsg(terminal socket, SCM_RIGHTS [ptmx])");
        let fds = [master.as_raw_fd()];
        sendmsg::<()>(
            socket.as_raw_fd(),
            &[IoSlice::new(b"m")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .context("failed to send the terminal to the runtime")?;
        // The runtime answers once it has copied its window size onto the pty.
        let mut answer = [0u8; 1];
        if (&socket)
            .read(&mut answer)
            .context("failed to wait for the runtime")?
            == 0
        {
            bail!("the runtime went away before the container started");
        }
        trace!("dup2({slave:?}, 0), dup2({slave:?}, 1), dup2({slave:?}, 2)");
        for target in 0..=2 {
            // SAFETY: dup2(2) takes descriptor numbers; 0-2 are replaced atomically.
            let rc = unsafe { libc::dup2(slave_fd.as_raw_fd(), target) };
            Errno::result(rc).with_context(|| format!("failed to make the pty descriptor {target}"))?;
        }
        Ok(true)
    }
}

/// In the command, before exec: a session of its own, with the pty (its stdin) as controlling
/// terminal. A shell started now has job control, and Ctrl-C typed at the caller's terminal
/// reaches the command's foreground process group through the container's terminal.
pub fn take_controlling_terminal() -> Result<()> {
    trace!("setsid()");
    nix::unistd::setsid().context("failed to start the command's session")?;
    trace!("ioctl(0, TIOCSCTTY, 0)");
    // SAFETY: TIOCSCTTY takes an int argument, not a pointer.
    let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY as _, 0) };
    Errno::result(rc)
        .map(drop)
        .context("failed to make the pty the controlling terminal")
}
// ANCHOR_END: open_pty

// ANCHOR: console
/// The runtime's side of the container's terminal, if it has one: the pty's master, the relay
/// that copies bytes, and the caller's terminal settings to put back however the runtime ends.
pub struct Console(Option<Pty>);

struct Pty {
    saved: Termios,
    relay: JoinHandle<()>,
}

impl RuntimeEnd {
    /// After the go: receive the master from init, give it our window size, put our own
    /// terminal in raw mode and start relaying. Empty when there is no terminal, or when init
    /// failed before it sent one (it reports why).
    pub fn take_console(self) -> Result<Console> {
        let Some(socket) = self.0 else {
            return Ok(Console(None));
        };
        let mut byte = [0u8; 1];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut byte)];
        let message = recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("failed to receive the container's terminal")?;
        let Some(fd) = message.cmsgs()?.find_map(|cmsg| match cmsg {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        }) else {
            return Ok(Console(None));
        };
        trace!("recvmsg(terminal socket) = SCM_RIGHTS [ptmx]");
        // SAFETY: the kernel has just installed this descriptor for us; nothing else owns it.
        let master = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        copy_window_size(std::io::stdin().as_fd(), master.as_fd());

        let stdin = std::io::stdin();
        let saved = tcgetattr(&stdin).context("failed to read the terminal's settings")?;
        let mut raw = saved.clone();
        // Raw: no echo, no line editing, no signals from keys. The container's own terminal
        // does all that now, for the container.
        cfmakeraw(&mut raw);
        trace!("tcsetattr(0, TCSANOW, raw)");
        tcsetattr(&stdin, SetArg::TCSANOW, &raw).context("failed to put the terminal in raw mode")?;
        // From here on, every way out of the runtime puts the terminal back (Console's drop).
        let relay = start_relay(master, &saved)?;
        let console = Console(Some(Pty { saved, relay }));
        (&socket)
            .write_all(b"g")
            .context("failed to tell init the terminal is ready")?;
        Ok(console)
    }
}

/// Copy bytes both ways on a thread of the runtime's own, until the container's side of the
/// pty is closed by its last process. SIGWINCH (the window was resized) is read from a
/// signalfd, so it is blocked for the whole runtime first.
fn start_relay(master: File, saved: &Termios) -> Result<JoinHandle<()>> {
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    let blocked = winch
        .thread_block()
        .context("failed to block SIGWINCH")
        .and_then(|()| {
            SignalFd::with_flags(&winch, SfdFlags::SFD_CLOEXEC).context("failed to create a signalfd")
        });
    match blocked {
        Ok(resized) => Ok(std::thread::spawn(move || copy_both_ways(master, resized))),
        Err(err) => {
            let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
            Err(err)
        }
    }
}

impl Console {
    /// After the container has exited: let the relay copy what the container wrote last, then
    /// give the caller its terminal back.
    pub fn finish(mut self) {
        if let Some(pty) = self.0.take() {
            let _ = pty.relay.join();
            restore(&pty.saved);
        }
    }
}

impl Drop for Console {
    /// Every other way out of the runtime passes here: the caller gets its terminal back.
    fn drop(&mut self) {
        if let Some(pty) = &self.0 {
            restore(&pty.saved);
        }
    }
}

fn restore(saved: &Termios) {
    trace!("tcsetattr(0, TCSANOW, saved)");
    let _ = tcsetattr(std::io::stdin(), SetArg::TCSANOW, saved);
}
// ANCHOR_END: console

fn copy_window_size(from: BorrowedFd, to: BorrowedFd) {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ and TIOCSWINSZ read and write one winsize, which is ours.
    unsafe {
        if libc::ioctl(from.as_raw_fd(), libc::TIOCGWINSZ, &mut size) == 0 {
            libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &size);
        }
    }
}

/// The relay's loop. It ends when reading the master fails with EIO (or returns 0): every
/// process of the container has closed the slave, so the container is gone.
fn copy_both_ways(mut master: File, resized: SignalFd) {
    let mut stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut stdin_open = true;
    let mut buf = [0u8; 4096];
    loop {
        let (master_ready, stdin_ready, winch_ready) = {
            let mut fds = vec![
                PollFd::new(master.as_fd(), PollFlags::POLLIN),
                PollFd::new(resized.as_fd(), PollFlags::POLLIN),
            ];
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => return,
            }
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            (ready(&fds[0]), fds.get(2).is_some_and(ready), ready(&fds[1]))
        };
        if master_ready {
            match master.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let _ = stdout.write_all(&buf[..n]);
                    let _ = stdout.flush();
                }
            }
        }
        if stdin_ready {
            match stdin.read(&mut buf) {
                // End of input: stop reading it; the container goes on with what it has.
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let _ = master.write_all(&buf[..n]);
                }
            }
        }
        if winch_ready && resized.read_signal().is_ok() {
            copy_window_size(stdin.as_fd(), master.as_fd());
        }
    }
}
