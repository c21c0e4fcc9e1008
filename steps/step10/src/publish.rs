//! `--publish HOSTPORT:CONTAINERPORT` makes a port of the container a port of the host. The
//! runtime listens on the host's port, on every address of the host (so `localhost:HOSTPORT`
//! works, and so does the bridge's address from another container), and copies each connection
//! to the container's address and port: a small TCP proxy, like docker's docker-proxy. It lives
//! in the runtime, so it goes away with the container. (Docker also adds DNAT rules, so that
//! packets from other machines skip the proxy; see the chapter.)

use std::io;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::thread;

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

// ANCHOR: listen
/// Take the host's ports now, before the container exists: a port in use is bad input.
pub fn listen(ports: &[Port]) -> Result<Vec<(Port, TcpListener)>> {
    let mut listeners = Vec::new();
    for port in ports {
        trace!("bind(0.0.0.0:{}) and listen", port.host);
        let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port.host))
            .with_context(|| format!("cannot publish on port {} of the host", port.host))
            .hint("another program (or container) has that port: pick another HOSTPORT")?;
        listeners.push((*port, listener));
    }
    if ports
        .iter()
        .enumerate()
        .any(|(i, p)| ports[..i].iter().any(|q| q.host == p.host))
    {
        bail!("the same host port is published twice");
    }
    Ok(listeners)
}
// ANCHOR_END: listen

// ANCHOR: forward
/// Copy every connection to `listener` to `container`'s port, in threads of the runtime.
pub fn forward(listener: TcpListener, container: Ipv4Addr, port: Port) {
    let target = SocketAddr::from((container, port.container));
    thread::spawn(move || {
        for client in listener.incoming().flatten() {
            thread::spawn(move || {
                if let Ok(server) = TcpStream::connect(target) {
                    splice(client, server);
                }
            });
        }
    });
}

/// Both directions at once, each half-closed when its side is done.
fn splice(client: TcpStream, server: TcpStream) {
    let (mut client_read, mut server_write) = (client.try_clone(), server.try_clone());
    let upstream = thread::spawn(move || {
        if let (Ok(from), Ok(to)) = (client_read.as_mut(), server_write.as_mut()) {
            let _ = io::copy(from, to);
            let _ = to.shutdown(Shutdown::Write);
        }
    });
    let (mut server_read, mut client_write) = (server, client);
    let _ = io::copy(&mut server_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = upstream.join();
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
