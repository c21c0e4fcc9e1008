//! A bridge is a virtual Ethernet switch inside the kernel (see ip-link(8), "bridge"). Every
//! container's veth host end is plugged into it, so containers reach each other directly, and
//! the bridge's own address (10.201.0.1) is their gateway to the host. To reach the outside
//! world, their packets are *forwarded* by the host (net.ipv4.ip_forward) and *masqueraded*
//! (source NAT to the host's address) on the way out: iptables-extensions(8), MASQUERADE.
//!
//! The first container creates the bridge and its rules; the last one removes them, and puts
//! ip_forward back as it was if it is still as the bridge left it (the old value is kept in
//! the bridge's alias). Every rule carries
//! the comment "box-br0", so exactly those are removed. A lock (flock(2) on /run) keeps two
//! runtimes from creating or removing the bridge at the same time.

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::errors::HintExt;
use crate::trace::trace;

pub const BRIDGE: &str = "box-br0";
pub const GATEWAY: &str = "10.201.0.1";
pub const SUBNET: &str = "10.201.0.0/24";
/// Only bridges this workshop made carry this alias.
const ALIAS: &str = "box workshop bridge";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

/// The rules that come and go with the bridge: (table, chain, rule), `-A` to add, `-D` to
/// delete. FORWARD matters on hosts whose FORWARD policy is DROP (docker's, for one).
fn rules() -> [(&'static str, &'static str, String); 3] {
    let tag = format!("-m comment --comment {BRIDGE}");
    [
        (
            "nat",
            "POSTROUTING",
            format!("-s {SUBNET} ! -o {BRIDGE} -j MASQUERADE {tag}"),
        ),
        ("filter", "FORWARD", format!("-i {BRIDGE} -j ACCEPT {tag}")),
        (
            "filter",
            "FORWARD",
            format!("-o {BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT {tag}"),
        ),
    ]
}

/// Run a command, traced as typed; fail with its stderr.
fn run(program: &str, args: &[&str]) -> Result<()> {
    trace!("{program} {}", args.join(" "));
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("failed to run {program}"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn iptables(action: &str, table: &str, chain: &str, rule: &str) -> Result<()> {
    let mut args = vec!["-w", "-t", table, action, chain];
    args.extend(rule.split(' '));
    run("iptables", &args)
}

/// Held while the bridge is set up or taken down: flock(2) on /run itself, which every
/// runtime can open and which leaves nothing behind.
pub struct Lock {
    _held: File,
}

pub fn lock() -> Result<Lock> {
    let run = File::open("/run").context("failed to open /run")?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(run.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error()).context("failed to lock /run");
    }
    Ok(Lock { _held: run })
}

/// Membership of the bridge: dropping it leaves the bridge, and the last container out removes
/// it. Made *before* the bridge is set up, so that a failure half-way through removes the half.
pub struct Membership;

impl Drop for Membership {
    fn drop(&mut self) {
        if let Ok(lock) = lock() {
            remove_if_unused(&lock);
        }
    }
}

/// The bridge's way out needs iptables.
pub fn check_tools() -> Result<()> {
    let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|dir| Path::new(dir).join("iptables").exists());
    if !found {
        return Err(anyhow::anyhow!(
            "the iptables command is missing: the bridge network needs it for NAT"
        ))
        .hint("install iptables, or run with --net veth");
    }
    Ok(())
}

fn exists() -> bool {
    Path::new("/sys/class/net").join(BRIDGE).exists()
}

// ANCHOR: ensure_bridge
/// Make sure the bridge is there and whole: the link (with its alias), its address, up, refusing router advertisements,
/// IP forwarding on, and each rule. Every piece is checked and made if missing: a bridge that a
/// killed runtime half made, or whose rules another tool flushed, is repaired, not trusted.
pub fn ensure_bridge(_lock: &Lock) -> Result<()> {
    if !exists() {
        let forward_was = fs::read_to_string(IP_FORWARD)
            .context("failed to read ip_forward")?
            .trim()
            .to_string();
        // One run of ip for both: the runtime may be killed at any moment, but the ip it
        // started goes on, so no bridge of ours is ever left without its alias.
        crate::net::ip_batch(
            &[
                format!("link add {BRIDGE} type bridge"),
                format!("link set {BRIDGE} alias \"{ALIAS}; ip_forward was {forward_was}\""),
            ],
            None,
        )?;
    }
    run(
        "ip",
        &["addr", "replace", &format!("{GATEWAY}/24"), "dev", BRIDGE],
    )?;
    crate::net::refuse_router_advertisements(BRIDGE)?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    if fs::read_to_string(IP_FORWARD).unwrap_or_default().trim() != "1" {
        trace!("write({IP_FORWARD:?}, \"1\")");
        fs::write(IP_FORWARD, "1").context("failed to switch IP forwarding on")?;
    }
    for (table, chain, rule) in rules() {
        if iptables("-C", table, chain, &rule).is_err() {
            iptables("-A", table, chain, &rule)?;
        }
    }
    Ok(())
}
// ANCHOR_END: ensure_bridge

// ANCHOR: remove_if_unused
/// After a container's link has left the bridge: if no link is left on a bridge this workshop
/// made, remove its rules and the bridge. IP forwarding goes back to 0 only if the bridge
/// switched it on and it is still on: a change another tool made meanwhile stays.
pub fn remove_if_unused(_lock: &Lock) {
    let ports = fs::read_dir(Path::new("/sys/class/net").join(BRIDGE).join("brif"))
        .map(|d| d.count())
        .unwrap_or(0);
    let alias =
        fs::read_to_string(Path::new("/sys/class/net").join(BRIDGE).join("ifalias")).unwrap_or_default();
    if !exists() || ports > 0 || !alias.starts_with(ALIAS) {
        return;
    }
    for (table, chain, rule) in rules() {
        let _ = iptables("-D", table, chain, &rule);
    }
    let switched_on = alias.trim() == format!("{ALIAS}; ip_forward was 0");
    if switched_on && fs::read_to_string(IP_FORWARD).unwrap_or_default().trim() == "1" {
        trace!("write({IP_FORWARD:?}, \"0\")");
        let _ = fs::write(IP_FORWARD, "0");
    }
    let _ = run("ip", &["link", "delete", BRIDGE]);
}
// ANCHOR_END: remove_if_unused
