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
//!
//! From step 10 on, the host's end is plugged into a bridge instead (bridge.rs), and the
//! container's address is one of the bridge's /24.

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::unistd::Pid;

use crate::bridge;
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
    /// A veth pair plugged into the workshop's bridge, with other containers and a way out
    Bridge,
}

/// The host's side (its end of the veth, or the bridge) and the container's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub host: Ipv4Addr,
    pub container: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// Subnet `n` of 10.200.0.0/16: 10.200.0.0/30, 10.200.0.4/30, …
    pub fn nth(n: u32) -> Subnet {
        let base = u32::from(Ipv4Addr::new(10, 200, 0, 0)) + 4 * (n % SUBNETS);
        Subnet {
            host: Ipv4Addr::from(base + 1),
            container: Ipv4Addr::from(base + 2),
            prefix: 30,
        }
    }

    /// Address `n` (2 to 254) on the bridge's 10.201.0.0/24.
    pub fn on_bridge(n: u32) -> Subnet {
        let container = Ipv4Addr::from(u32::from(bridge::GATEWAY) - 1 + n);
        Subnet {
            host: bridge::GATEWAY,
            container,
            prefix: 24,
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
/// Claim one of `count` numbered places (a subnet, or an address on the bridge) named
/// `/run/PREFIXn`, for the container whose state directory is `state_dir`.
fn claim(prefix: &str, first: u32, count: u32, id: &ContainerId, state_dir: &Path) -> Result<(u32, PathBuf)> {
    let start = preferred(id);
    for offset in 0..count {
        let n = first + (start + offset) % count;
        let link = PathBuf::from(format!("/run/{prefix}{n}"));
        match symlink(state_dir, &link) {
            Ok(()) => return Ok((n, link)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                // Taken; unless its container is gone, then take it over.
                if !link.exists() && fs::remove_file(&link).is_ok() && symlink(state_dir, &link).is_ok() {
                    return Ok((n, link));
                }
            }
            Err(err) => return Err(err).with_context(|| format!("failed to claim {}", link.display())),
        }
    }
    bail!("all {count} places for containers ({prefix}*) are in use")
}

/// Claim a free /30 of 10.200.0.0/16 for a veth pair of its own.
pub fn claim_subnet(id: &ContainerId, state_dir: &Path) -> Result<Claim> {
    let (n, link) = claim("box-net-", 0, SUBNETS, id, state_dir)?;
    Ok(Claim {
        link,
        subnet: Subnet::nth(n),
    })
}

/// Claim a free address on the bridge (10.201.0.2 to .254).
pub fn claim_bridge_address(id: &ContainerId, state_dir: &Path) -> Result<Claim> {
    let (n, link) = claim("box-ip-", 2, 253, id, state_dir)?;
    Ok(Claim {
        link,
        subnet: Subnet::on_bridge(n),
    })
}
// ANCHOR_END: claim_subnet

/// What the mode needs, checked before anything is made: `--publish` only on the bridge, and
/// the bridge's tools.
pub fn check(mode: Mode, publishing: bool) -> Result<()> {
    if publishing && mode != Mode::Bridge {
        bail!("--publish needs the bridge network (--net bridge)");
    }
    if mode == Mode::Bridge {
        bridge::check_tools()?;
    }
    Ok(())
}

// ANCHOR: network
/// The container's network, from the claim on its address (made before the clone) to its
/// links (made after it, before init goes on). Dropping it undoes all of it, in order.
pub struct Network {
    mode: Mode,
    claim: Option<Claim>,
    /// The host's end of the veth pair, once it exists.
    host_link: Option<String>,
    /// On the bridge: leaving it, the last container out removes it.
    membership: Option<bridge::Membership>,
}

impl Network {
    /// Before the clone: claim the container's address, a /30 of its own with `Mode::Veth`,
    /// one of the bridge's with `Mode::Bridge`, for the container whose state directory is
    /// `state_dir`.
    pub fn prepare(mode: Mode, id: &ContainerId, state_dir: &Path) -> Result<Network> {
        let claim = match mode {
            Mode::Bridge => Some(claim_bridge_address(id, state_dir)?),
            Mode::Veth => Some(claim_subnet(id, state_dir)?),
            Mode::None => None,
        };
        Ok(Network {
            mode,
            claim,
            host_link: None,
            membership: None,
        })
    }

    /// After the clone, before init goes on: connect the container whose init is `init`, with
    /// `link` as the name of the host's end.
    pub fn attach(&mut self, init: Pid, link: &str) -> Result<()> {
        let subnet = self.claim.as_ref().map(|claim| claim.subnet);
        let (on_host, inside) = changes(self.mode, subnet, init, link);
        if let Some((create, configure)) = on_host.split_first() {
            let mut host = Netlink::on_host()?;
            let _lock = self.join_bridge(&mut host)?;
            host.apply(create)?;
            // The link exists: whatever fails from here on, dropping the network removes it.
            self.host_link = Some(link.to_string());
            host.apply_all(configure)?;
            refuse_router_advertisements(link)?;
        }
        Netlink::inside(init)?.apply_all(&inside)
    }

    /// With `Mode::Bridge`: lock the bridge, become its member, and make sure it is whole. The
    /// first container makes it; the lock, held until our link is plugged in, keeps the last
    /// container of another runtime from removing it in between. A member before the bridge
    /// is set up: a failure half-way through removes the half.
    fn join_bridge(&mut self, host: &mut Netlink) -> Result<Option<bridge::Lock>> {
        if self.mode != Mode::Bridge {
            return Ok(None);
        }
        let lock = bridge::lock()?;
        self.membership = Some(bridge::Membership);
        bridge::ensure_bridge(&lock, host)?;
        Ok(Some(lock))
    }

    /// The container's address, where it has one besides loopback.
    pub fn container_address(&self) -> Option<Ipv4Addr> {
        self.claim.as_ref().map(|claim| claim.subnet.container)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some(link) = self.host_link.take() {
            delete_host_link(&link);
        }
        // With the link gone from the bridge, leave it: the last one out removes it.
        self.membership.take();
        // The address is free again.
        self.claim.take();
    }
}
// ANCHOR_END: network

// ANCHOR: connect
/// What connects the container (whose init is `init`): the changes on the host, and those in
/// the container's namespace. Always `lo`; with a subnet, a veth pair named `link` on the host
/// and `eth0` inside, an address for each end, and a default route through the host's end;
/// on the bridge, the same pair, its host end plugged into the bridge, which is the gateway.
fn changes(mode: Mode, subnet: Option<Subnet>, init: Pid, link: &str) -> (Vec<Change>, Vec<Change>) {
    let up = |link: &str| Change::SetUp { link: link.into() };
    let Some(Subnet {
        host,
        container,
        prefix,
    }) = subnet
    else {
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
        // ANCHOR: exercise10_port
        match mode {
            // A port of the bridge has no address: the bridge has it.
            Mode::Bridge => Change::SetMaster {
                link: link.into(),
                bridge: bridge::BRIDGE.into(),
            },
            _ => Change::AddAddress {
                link: link.into(),
                address: host,
                prefix,
                replace: false,
            },
        },
        // ANCHOR_END: exercise10_port
        up(link),
    ];
    let inside = vec![
        up("lo"),
        Change::AddAddress {
            link: "eth0".into(),
            address: container,
            prefix,
            replace: false,
        },
        up("eth0"),
        Change::AddDefaultRoute { gateway: host },
    ];
    (on_host, inside)
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
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_claim = name.starts_with("box-net-") || name.starts_with("box-ip-");
        // A claim is a symlink; exists() follows it, so a dangling one is stale.
        if is_claim && !path.exists() {
            let _ = fs::remove_file(&path);
        }
    }
}
