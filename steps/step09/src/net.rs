//! A network namespace (network_namespaces(7)) has its own interfaces, addresses, routes,
//! firewall and ports. A new one holds only a loopback interface, and that one is down. To
//! reach the container, the runtime makes a *veth pair* (veth(4)): two virtual interfaces
//! joined like the two ends of a cable. One end stays on the host; the other is created right
//! inside the container's namespace, as `eth0`. Each end gets an address on a small subnet of
//! its own, and the container's default route points at the host's end.
//!
//! The runtime asks the kernel through netlink (netlink.rs), with the requests `ip` would send
//! for the commands you would type yourself: some on the host, the others inside the
//! container's namespace.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::unistd::Pid;

use crate::id::ContainerId;
use crate::netlink::{Change, Netlink};
use crate::trace::trace;

/// Each container gets a /30 of this /16: 16384 subnets of two addresses.
const SUBNETS: u32 = 16384;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Only a loopback interface: the empty namespace
    None,
    /// A veth pair to the host, with an address on a small subnet of its own
    Veth,
}

/// The two ends' addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub host: Ipv4Addr,
    pub container: Ipv4Addr,
}

impl Subnet {
    /// Subnet `n` of 10.200.0.0/16: 10.200.0.0/30, 10.200.0.4/30, …
    pub fn nth(n: u32) -> Subnet {
        let base = u32::from(Ipv4Addr::new(10, 200, 0, 0)) + 4 * (n % SUBNETS);
        Subnet {
            host: Ipv4Addr::from(base + 1),
            container: Ipv4Addr::from(base + 2),
        }
    }
}

/// A claim on a subnet: the symlink /run/box-net-N, pointing at the container's state
/// directory. symlink(2) either creates it or fails, so two runtimes can never claim the same
/// one. A claim whose state directory is gone is stale and may be taken. Released when dropped.
pub struct Claim {
    link: PathBuf,
    pub subnet: Subnet,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.link);
    }
}

/// Where to start looking: a number from the container id, so the same name tends to get the
/// same subnet.
fn preferred(id: &ContainerId) -> u32 {
    id.to_string().bytes().fold(2166136261u32, |hash, byte| {
        (hash ^ byte as u32).wrapping_mul(16777619)
    }) % SUBNETS
}

// ANCHOR: claim_subnet
/// Claim a free subnet for the container whose state directory is `state_dir`.
pub fn claim_subnet(id: &ContainerId, state_dir: &Path) -> Result<Claim> {
    let start = preferred(id);
    for offset in 0..SUBNETS {
        let n = (start + offset) % SUBNETS;
        let link = PathBuf::from(format!("/run/box-net-{n}"));
        match symlink(state_dir, &link) {
            Ok(()) => {
                return Ok(Claim {
                    link,
                    subnet: Subnet::nth(n),
                })
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                // Taken; unless its container is gone, then take it over.
                if !link.exists() && fs::remove_file(&link).is_ok() && symlink(state_dir, &link).is_ok() {
                    return Ok(Claim {
                        link,
                        subnet: Subnet::nth(n),
                    });
                }
            }
            Err(err) => {
                return Err(err).with_context(|| format!("failed to claim a subnet with {}", link.display()))
            }
        }
    }
    bail!("all {SUBNETS} container subnets of 10.200.0.0/16 are in use")
}
// ANCHOR_END: claim_subnet

// ANCHOR: network
/// The container's network, from the claim on its subnet (made before the clone) to its links
/// (made after it, before init goes on). Dropping it undoes both, in order.
pub struct Network {
    claim: Option<Claim>,
    /// The host's end of the veth pair, once it exists.
    host_link: Option<String>,
}

impl Network {
    /// Before the clone: with `Mode::Veth`, claim a subnet for the container whose state
    /// directory is `state_dir`.
    pub fn prepare(mode: Mode, id: &ContainerId, state_dir: &Path) -> Result<Network> {
        let claim = match mode {
            Mode::Veth => Some(claim_subnet(id, state_dir)?),
            Mode::None => None,
        };
        Ok(Network {
            claim,
            host_link: None,
        })
    }

    /// After the clone, before init goes on: connect the container whose init is `init`, with
    /// `link` as the name of the host's end.
    pub fn attach(&mut self, init: Pid, link: &str) -> Result<()> {
        let (on_host, inside) = changes(self.claim.as_ref().map(|claim| claim.subnet), init, link);
        if let Some((create, configure)) = on_host.split_first() {
            let mut host = Netlink::on_host()?;
            host.apply(create)?;
            // The link exists: whatever fails from here on, dropping the network removes it.
            self.host_link = Some(link.to_string());
            host.apply_all(configure)?;
            refuse_router_advertisements(link)?;
        }
        Netlink::inside(init)?.apply_all(&inside)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some(link) = self.host_link.take() {
            delete_host_link(&link);
        }
        // The subnet is free again.
        self.claim.take();
    }
}
// ANCHOR_END: network

// ANCHOR: connect
/// What connects the container (whose init is `init`): the changes on the host, and those in
/// the container's namespace. Always `lo`; with a subnet, a veth pair named `link` on the host
/// and `eth0` inside, an address for each end, and a default route through the host's end.
fn changes(subnet: Option<Subnet>, init: Pid, link: &str) -> (Vec<Change>, Vec<Change>) {
    // ANCHOR: exercise09_connect
    let up = |link: &str| Change::SetUp { link: link.into() };
    let Some(Subnet { host, container }) = subnet else {
        return (vec![], vec![up("lo")]);
    };
    let on_host = vec![
        // The peer is created directly in the container's namespace: one request, instead of
        // creating it on the host and moving it there (see scripts/bench.sh).
        Change::AddVeth {
            link: link.into(),
            peer: "eth0".into(),
            netns: init,
        },
        Change::AddAddress {
            link: link.into(),
            address: host,
            prefix: 30,
            replace: false,
        },
        up(link),
    ];
    let inside = vec![
        up("lo"),
        Change::AddAddress {
            link: "eth0".into(),
            address: container,
            prefix: 30,
            replace: false,
        },
        up("eth0"),
        Change::AddDefaultRoute { gateway: host },
    ];
    (on_host, inside)
    // ANCHOR_END: exercise09_connect
}
// ANCHOR_END: connect

/// Once the container has ended: the kernel deletes the veth pair with the container's
/// namespace, but in the background, once nothing holds the namespace any more, in a queue
/// shared by every namespace that goes (measured: from 1 ms to more than half a second).
/// Deleting the host's end, which takes the pair with it, is one request, and no link outlives
/// the runtime. Gone already is fine.
fn delete_host_link(link: &str) {
    if let Ok(mut host) = Netlink::on_host() {
        let _ = host.apply(&Change::DeleteLink { link: link.into() });
    }
}

// ANCHOR: refuse_router_advertisements
/// accept_ra = 0 on a link of the host (where the kernel has IPv6 at all): the host must not
/// take router advertisements from a container, which keeps CAP_NET_RAW and could send them to
/// change the host's own routes (CVE-2020-13401).
pub fn refuse_router_advertisements(link: &str) -> Result<()> {
    let knob = format!("/proc/sys/net/ipv6/conf/{link}/accept_ra");
    if !Path::new(&knob).exists() {
        return Ok(());
    }
    trace!("write({knob:?}, \"0\")");
    fs::write(&knob, "0").with_context(|| format!("failed to write {knob}"))
}
// ANCHOR_END: refuse_router_advertisements

/// Remove claims whose container is gone (left by a killed runtime). Quiet, like the sweep of
/// stale records.
pub fn sweep_stale_claims() {
    let Ok(entries) = fs::read_dir("/run") else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_claim = entry.file_name().to_string_lossy().starts_with("box-net-");
        // A claim is a symlink; exists() follows it, so a dangling one is stale.
        if is_claim && !path.exists() {
            let _ = fs::remove_file(&path);
        }
    }
}
