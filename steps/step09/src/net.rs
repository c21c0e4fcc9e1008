//! A network namespace (network_namespaces(7)) has its own interfaces, addresses, routes,
//! firewall and ports. A new one holds only a loopback interface, and that one is down. To
//! reach the container, the runtime makes a *veth pair* (veth(4)): two virtual interfaces
//! joined like the two ends of a cable. One end stays on the host; the other is created right
//! inside the container's namespace, as `eth0`. Each end gets an address on a small subnet of
//! its own, and the container's default route points at the host's end.
//!
//! The runtime does this with iproute2's `ip`, the commands you would type yourself, in two
//! batches: one on the host, one inside the container's namespace (through nsenter(1)).

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use nix::unistd::Pid;

use crate::errors::HintExt;
use crate::id::ContainerId;
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

/// The tools this step runs must be on the host.
pub fn check_tools() -> Result<()> {
    for (tool, package) in [("ip", "iproute2"), ("nsenter", "util-linux")] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|dir| Path::new(dir).join(tool).exists());
        if !found {
            return Err(anyhow::anyhow!("the {tool} command is missing")).hint(format!("install {package}"));
        }
    }
    Ok(())
}

/// Run `ip -batch -` with `commands`, in the namespace of process `inside` if given. Each
/// command is traced as you would type it.
fn ip_batch(commands: &[String], inside: Option<Pid>) -> Result<()> {
    let mut command = match inside {
        Some(pid) => {
            let mut nsenter = Command::new("nsenter");
            nsenter
                .arg(format!("--target={pid}"))
                .arg("--net")
                .arg("--")
                .arg("ip");
            nsenter
        }
        None => Command::new("ip"),
    };
    for line in commands {
        match inside {
            Some(pid) => trace!("nsenter --target={pid} --net ip {line}"),
            None => trace!("ip {line}"),
        }
    }
    command
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().context("failed to run ip")?;
    let mut stdin = child.stdin.take().context("ip's stdin")?;
    stdin
        .write_all(commands.join("\n").as_bytes())
        .context("failed to write to ip")?;
    drop(stdin);
    let output = child.wait_with_output().context("failed to wait for ip")?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr).trim().replace('\n', "; ");
        bail!("ip failed: {message}");
    }
    Ok(())
}

/// The host's end of the veth pair. The kernel deletes the pair when the container's namespace
/// goes, but does so in the background, a moment later; deleting the host's end (which takes
/// the pair with it) when the container ends means no link outlives the runtime.
#[must_use = "dropping it deletes the container's link"]
pub struct HostLink {
    name: Option<String>,
}

impl Drop for HostLink {
    fn drop(&mut self) {
        if let Some(name) = &self.name {
            // Already gone with the namespace is fine: quietly ignore "Cannot find device".
            trace!("ip link delete {name}");
            let _ = Command::new("ip")
                .args(["link", "delete", name])
                .stderr(Stdio::null())
                .status();
        }
    }
}

// ANCHOR: connect
/// Give the container (whose init is `init`) its network: always `lo`, and with `Mode::Veth`
/// a veth pair named `link` on the host and `eth0` inside, with addresses and a default route.
pub fn connect(mode: Mode, init: Pid, link: &str, subnet: Option<Subnet>) -> Result<HostLink> {
    let mut host_link = HostLink { name: None };
    let mut inside = vec!["link set lo up".to_string()];
    if let (Mode::Veth, Some(Subnet { host, container })) = (mode, subnet) {
        // The peer is created directly in the container's namespace: one request, instead of
        // creating it on the host and moving it there (see scripts/bench.sh).
        ip_batch(
            &[
                format!("link add {link} type veth peer name eth0 netns {init}"),
                format!("addr add {host}/30 dev {link}"),
                format!("link set {link} up"),
            ],
            None,
        )?;
        host_link.name = Some(link.to_string());
        refuse_router_advertisements(link)?;
        inside.extend([
            format!("addr add {container}/30 dev eth0"),
            "link set eth0 up".to_string(),
            format!("route add default via {host}"),
        ]);
    }
    ip_batch(&inside, Some(init))?;
    Ok(host_link)
}
// ANCHOR_END: connect

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
