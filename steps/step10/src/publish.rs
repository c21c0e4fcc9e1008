//! `--publish HOSTPORT:CONTAINERPORT` makes a port of the container a port of the host. The
//! runtime listens on the host's port, on every address of the host (so `localhost:HOSTPORT`
//! works, and so does the bridge's address from another container), and copies each connection
//! to the container's address and port: a small TCP proxy, like docker's docker-proxy. It lives
//! in the runtime, so it goes away with the container. (Docker also adds DNAT rules, so that
//! packets from other machines skip the proxy; see the chapter.)

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::thread;
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};

use anyhow::{bail, Context, Result};

use crate::errors::HintExt;
use crate::trace::trace;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub host: u16,
    pub container: u16,
}

/// "8080:80"
pub fn parse(spec: &str) -> Result<Port> {
    let invalid = || anyhow::anyhow!("invalid --publish {spec:?}: use HOSTPORT:CONTAINERPORT, like 8080:80");
    let (host, container) = spec.split_once(':').ok_or_else(invalid)?;
    let port = |text: &str| text.parse::<u16>().ok().filter(|port| *port > 0);
    match (port(host), port(container)) {
        (Some(host), Some(container)) => Ok(Port { host, container }),
        _ => Err(invalid()),
    }
}

/// Every `--publish` of the command line.
pub fn parse_all(specs: &[String]) -> Result<Vec<Port>> {
    specs.iter().map(|spec| parse(spec)).collect()
}

// ANCHOR: listen
/// Take the host's ports now, before the container exists: a port in use is bad input.
pub fn listen(ports: &[Port]) -> Result<Vec<(Port, TcpListener)>> {
    for (i, port) in ports.iter().enumerate() {
        if let Some(first) = ports[..i].iter().find(|earlier| earlier.host == port.host) {
            bail!(
                "--publish names host port {} twice ({}:{} and {}:{}): a host port goes to one container port",
                port.host,
                first.host,
                first.container,
                port.host,
                port.container
            );
        }
    }
    let mut listeners = Vec::new();
    for port in ports {
        trace!("bind(0.0.0.0:{}) and listen", port.host);
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port.host))
            .with_context(|| format!("cannot publish on port {} of the host", port.host))
            .hint("another program (or container) has that port: pick another HOSTPORT")?;
        listeners.push((*port, listener));
    }
    Ok(listeners)
}
// ANCHOR_END: listen

/// Serve every published port, once the container runs at `container`: only a container on
/// the bridge has ports to publish, and it always has an address.
pub fn forward_all(listeners: Vec<(Port, TcpListener)>, container: Option<Ipv4Addr>) {
    let Some(container) = container else { return };
    for (port, listener) in listeners {
        forward(listener, container, port);
    }
}

// ANCHOR: forward
// ANCHOR: proxy_loop
/// Copy every connection to `listener` to `container`'s port, on one thread of the runtime per
/// published port. One thread and two descriptors per connection would let a few hundred idle
/// clients exhaust the runtime's descriptors: instead one poll(2) loop serves them all, holds
/// at most as many as the descriptor limit allows, and waits when the kernel has none left.
pub fn forward(listener: TcpListener, container: Ipv4Addr, port: Port) {
    let target = SocketAddr::from((container, port.container));
    thread::spawn(move || serve(listener, target));
}

/// One proxied connection: the client's socket, the container's, and what is on its way.
struct Connection {
    client: TcpStream,
    server: TcpStream,
    /// The connection to the container is still being made (a non-blocking connect(2)).
    connecting: bool,
    to_server: Vec<u8>,
    to_client: Vec<u8>,
    client_done: bool,
    server_done: bool,
}

/// Bytes read at once from one side; a side is not read while its data waits to be written.
const CHUNK: usize = 16 * 1024;

/// How many connections fit: two descriptors each, within RLIMIT_NOFILE, less a reserve for the
/// rest of the runtime.
fn most_connections() -> usize {
    let (soft, _) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    (soft.min(1 << 20) as usize).saturating_sub(64) / 2
}

fn serve(listener: TcpListener, target: SocketAddr) {
    if listener.set_nonblocking(true).is_err() {
        return;
    }
    let most = most_connections().max(1);
    let mut connections: Vec<Connection> = Vec::new();
    loop {
        // Stop taking clients at the limit: they wait in the listen queue until one leaves.
        let accepting = if connections.len() < most {
            PollFlags::POLLIN
        } else {
            PollFlags::empty()
        };
        let mut fds = vec![PollFd::new(listener.as_fd(), accepting)];
        for c in &connections {
            let (client, server) = c.interest();
            fds.push(PollFd::new(c.client.as_fd(), client));
            fds.push(PollFd::new(c.server.as_fd(), server));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let events: Vec<PollFlags> = fds
            .iter()
            .map(|fd| fd.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        for (i, c) in connections.iter_mut().enumerate() {
            c.handle(events[1 + 2 * i], events[2 + 2 * i]);
        }
        connections.retain(|c| !c.finished());
        if !events[0].is_empty() {
            accept_all(&listener, target, &mut connections, most);
        }
    }
}
// ANCHOR_END: proxy_loop

// ANCHOR: accept_all
/// Take every waiting client, up to `most` connections in all.
fn accept_all(listener: &TcpListener, target: SocketAddr, connections: &mut Vec<Connection>, most: usize) {
    while connections.len() < most {
        match listener.accept() {
            Ok((client, _)) => {
                // Not waiting for the container to answer: one slow to accept (its listen queue
                // full) must not hold up the other clients.
                let Ok(server) = connect_without_waiting(target) else {
                    continue;
                };
                if client.set_nonblocking(true).is_ok() {
                    connections.push(Connection {
                        client,
                        server,
                        connecting: true,
                        to_server: Vec::new(),
                        to_client: Vec::new(),
                        client_done: false,
                        server_done: false,
                    });
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
            Err(err) => {
                // Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS): wait for some to be
                // given back instead of spinning on a listener that stays ready.
                let errno = err.raw_os_error();
                if matches!(
                    errno,
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                ) {
                    thread::sleep(Duration::from_millis(100));
                }
                return;
            }
        }
    }
}

/// Start a TCP connection to `target` with a non-blocking socket: connect(2) returns at once
/// (EINPROGRESS), and poll(2) says when it is made.
fn connect_without_waiting(target: SocketAddr) -> io::Result<TcpStream> {
    let SocketAddr::V4(target) = target else {
        return Err(io::ErrorKind::Unsupported.into());
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let socket = socket(AddressFamily::Inet, SockType::Stream, flags, None)?;
    match connect(socket.as_raw_fd(), &SockaddrIn::from(target)) {
        Ok(()) | Err(Errno::EINPROGRESS) => Ok(TcpStream::from(socket)),
        Err(errno) => Err(errno.into()),
    }
}
// ANCHOR_END: accept_all

impl Connection {
    /// What to poll each side for: read while its data has room, write while data waits for
    /// it; the container's side, while connecting, for the connection being made.
    fn interest(&self) -> (PollFlags, PollFlags) {
        let side = |waiting_for_it: &[u8], its_data_waiting: usize, done: bool| {
            let mut flags = PollFlags::empty();
            if !done && its_data_waiting < CHUNK {
                flags |= PollFlags::POLLIN;
            }
            if !waiting_for_it.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            flags
        };
        if self.connecting {
            // The client's bytes wait in its socket until there is somewhere to send them.
            return (PollFlags::empty(), PollFlags::POLLOUT);
        }
        let client = side(&self.to_client, self.to_server.len(), self.client_done);
        let server = side(&self.to_server, self.to_client.len(), self.server_done);
        (client, server)
    }

    /// Act on what poll said of each side.
    fn handle(&mut self, client: PollFlags, server: PollFlags) {
        // A client that has gone away entirely gets nothing more; a container that has, once
        // the client has what it sent. (A hung-up socket is always ready: keeping it would make
        // poll spin.)
        let hung_up = |flags: PollFlags| flags.intersects(PollFlags::POLLHUP | PollFlags::POLLERR);
        if self.connecting {
            if hung_up(client) {
                self.close();
                return;
            }
            if server.is_empty() {
                return;
            }
            // Made, or refused: SO_ERROR says which.
            self.connecting = false;
            if !matches!(self.server.take_error(), Ok(None)) {
                self.close();
                return;
            }
        }
        if !client.is_empty() || !server.is_empty() {
            self.pump();
        }
        if hung_up(client) || (hung_up(server) && self.to_client.is_empty()) {
            self.close();
        }
    }

    fn close(&mut self) {
        self.client_done = true;
        self.server_done = true;
        self.to_client.clear();
        self.to_server.clear();
    }

    fn finished(&self) -> bool {
        self.client_done && self.server_done && self.to_client.is_empty() && self.to_server.is_empty()
    }

    /// Move what can move without blocking, both ways; half-close a side once the other is done.
    fn pump(&mut self) {
        let (client_done, server_done) = (self.client_done, self.server_done);
        read_some(&mut self.client, &mut self.to_server, &mut self.client_done);
        read_some(&mut self.server, &mut self.to_client, &mut self.server_done);
        write_some(&mut self.server, &mut self.to_server, &mut self.server_done);
        write_some(&mut self.client, &mut self.to_client, &mut self.client_done);
        if self.client_done && !client_done && self.to_server.is_empty() {
            let _ = self.server.shutdown(Shutdown::Write);
        }
        if self.server_done && !server_done && self.to_client.is_empty() {
            let _ = self.client.shutdown(Shutdown::Write);
        }
    }
}

fn read_some(from: &mut TcpStream, into: &mut Vec<u8>, done: &mut bool) {
    if *done || into.len() >= CHUNK {
        return;
    }
    let mut buf = [0u8; CHUNK];
    match from.read(&mut buf[..CHUNK - into.len()]) {
        Ok(0) => *done = true,
        Ok(n) => into.extend_from_slice(&buf[..n]),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
        Err(_) => *done = true,
    }
}

fn write_some(to: &mut TcpStream, from: &mut Vec<u8>, peer_done: &mut bool) {
    if from.is_empty() {
        return;
    }
    match to.write(from) {
        Ok(n) => {
            from.drain(..n);
        }
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
        // The other side is gone: drop what was meant for it.
        Err(_) => {
            from.clear();
            *peer_done = true;
        }
    }
}
// ANCHOR_END: forward

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs() {
        assert_eq!(
            parse("8080:80").unwrap(),
            Port {
                host: 8080,
                container: 80
            }
        );
        for bad in ["8080", "0:80", "8080:0", "70000:80", "a:b", ":80", "8080:"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
