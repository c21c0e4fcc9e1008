//! A bridge is a virtual Ethernet switch inside the kernel (see ip-link(8), "bridge"). Every
//! container's veth host end is plugged into it, so containers reach each other directly, and
//! the bridge's own address (10.201.0.1) is their gateway to the host. To reach the outside
//! world, their packets are *forwarded* by the host (net.ipv4.ip_forward) and *masqueraded*
//! (source NAT to the host's address) on the way out: iptables-extensions(8), MASQUERADE.
//!
//! The first container creates the bridge (through netlink, netlink.rs) and its rules (in one
//! run of iptables-restore(8)); the last one removes them, and puts ip_forward back as it was
//! if it is still as the bridge left it (the old value is kept in the bridge's alias). Every
//! rule carries the comment "box-br0", so exactly those are removed. A lock (flock(2) on /run)
//! keeps two runtimes from creating or removing the bridge at the same time.

use std::fs::{self, File};
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::errors::HintExt;
use crate::netlink::{Change, Netlink};
use crate::trace::trace;

pub const BRIDGE: &str = "box-br0";
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
pub const SUBNET: &str = "10.201.0.0/24";
/// Only bridges this workshop made carry this alias.
const ALIAS: &str = "box workshop bridge";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
/// The workshop's own chain in the filter table, which the top of FORWARD jumps to.
const CHAIN: &str = "box-forward";
/// The comment every rule of the bridge carries (iptables-extensions(8), "comment").
const TAG: &str = "-m comment --comment box-br0";

// ANCHOR: rules
/// One rule of the bridge's: its table and chain, what it matches and does, and whether it
/// goes first in its chain rather than last.
struct Rule {
    table: &'static str,
    chain: &'static str,
    rule: String,
    first: bool,
}

/// Masquerade what leaves the bridge's subnet through another interface; let through FORWARD
/// what comes from the bridge and the answers that go back to it, which matters on hosts whose
/// FORWARD policy is DROP (docker's, for one). The two ACCEPT rules are in a chain of the
/// workshop's own that the *top* of FORWARD jumps to, so that no rule of the host's firewall
/// comes before them (Docker's DOCKER-USER chain is arranged the same way).
fn rules() -> [Rule; 4] {
    // ANCHOR: exercise10_rules
    let rule = |table, chain, rule: String, first| Rule {
        table,
        chain,
        rule,
        first,
    };
    [
        rule(
            "nat",
            "POSTROUTING",
            format!("-s {SUBNET} ! -o {BRIDGE} {TAG} -j MASQUERADE"),
            false,
        ),
        rule("filter", CHAIN, format!("-i {BRIDGE} {TAG} -j ACCEPT"), false),
        rule(
            "filter",
            CHAIN,
            format!("-o {BRIDGE} -m conntrack --ctstate RELATED,ESTABLISHED {TAG} -j ACCEPT"),
            false,
        ),
        rule("filter", "FORWARD", format!("-j {CHAIN} {TAG}"), true),
    ]
    // ANCHOR_END: exercise10_rules
}
// ANCHOR_END: rules

/// What iptables-save(8) shows of the bridge's rules.
#[derive(Debug, Default, PartialEq)]
struct Saved {
    /// Our rules (with the comment) in the host's chains, as (table, chain, rule).
    ours: Vec<(String, String, String)>,
    /// How many rules our chain holds; None when there is no such chain.
    in_chain: Option<usize>,
    /// Whether the first rule of FORWARD is the jump to our chain.
    jump_first: bool,
}

impl Saved {
    /// Read iptables-save's output: `*table` starts a table, `:chain` declares a chain, and
    /// `-A chain rule` is a rule, in order.
    fn parse(text: &str) -> Saved {
        let mut saved = Saved::default();
        let mut table = "";
        let mut forward_seen = false;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix('*') {
                table = name.trim();
            } else if table == "filter" && line.starts_with(&format!(":{CHAIN} ")) {
                saved.in_chain.get_or_insert(0);
            } else if let Some((chain, rule)) = line.strip_prefix("-A ").and_then(|rest| rest.split_once(' '))
            {
                let words: Vec<&str> = rule.split_whitespace().collect();
                if table == "filter" && chain == CHAIN {
                    *saved.in_chain.get_or_insert(0) += 1;
                    continue;
                }
                if table == "filter" && chain == "FORWARD" && !forward_seen {
                    forward_seen = true;
                    saved.jump_first = words.windows(2).any(|pair| pair == ["-j", CHAIN]);
                }
                let tagged = words
                    .windows(2)
                    .any(|pair| pair[0] == "--comment" && pair[1].trim_matches('"') == BRIDGE);
                if tagged {
                    saved.ours.push((table.into(), chain.into(), rule.into()));
                }
            }
        }
        saved
    }

    /// Whether every rule is there, once, and the jump comes first.
    fn is_whole(&self) -> bool {
        let ours_expected = rules().iter().filter(|rule| rule.chain != CHAIN).count();
        let in_chain_expected = rules().iter().filter(|rule| rule.chain == CHAIN).count();
        let masquerades = self
            .ours
            .iter()
            .filter(|(table, _, rule)| table == "nat" && rule.contains("-j MASQUERADE"))
            .count();
        self.jump_first
            && masquerades == 1
            && self.ours.len() == ours_expected
            && self.in_chain == Some(in_chain_expected)
    }
}

/// The input for iptables-restore(8) that deletes the rules `old` of ours in the host's chains
/// and then, with `add`, adds all of the bridge's rules, or else deletes our chain. Each table
/// is one transaction. Declaring our chain (`:box-forward`) creates it, or empties it if it
/// exists, so its rules are never deleted one by one.
fn restore_input(old: &[(String, String, String)], add: bool) -> String {
    let mut input = String::new();
    for table in ["nat", "filter"] {
        input.push_str(&format!("*{table}\n"));
        if table == "filter" {
            input.push_str(&format!(":{CHAIN} - [0:0]\n"));
        }
        for (_, chain, rule) in old.iter().filter(|(of, _, _)| of == table) {
            input.push_str(&format!("-D {chain} {rule}\n"));
        }
        if add {
            for Rule {
                chain, rule, first, ..
            } in rules().into_iter().filter(|rule| rule.table == table)
            {
                match first {
                    true => input.push_str(&format!("-I {chain} 1 {rule}\n")),
                    false => input.push_str(&format!("-A {chain} {rule}\n")),
                }
            }
        } else if table == "filter" {
            input.push_str(&format!("-X {CHAIN}\n"));
        }
        input.push_str("COMMIT\n");
    }
    input
}

/// Run a command (with `input` on its stdin), traced as typed; fail with its stderr. Returns
/// its output.
fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String> {
    let command = [program]
        .iter()
        .chain(args)
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    trace!("{command}{}", if input.is_some() { " <<EOF" } else { "" });
    for line in input
        .iter()
        .flat_map(|text| text.lines())
        .chain(input.map(|_| "EOF"))
    {
        trace!("{line}");
    }
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to run {program}"))?;
    let mut stdin = child.stdin.take().context("the command's stdin")?;
    stdin
        .write_all(input.unwrap_or_default().as_bytes())
        .with_context(|| format!("failed to write to {program}"))?;
    drop(stdin);
    let output = child
        .wait_with_output()
        .with_context(|| format!("failed to wait for {program}"))?;
    if !output.status.success() {
        let message = String::from_utf8_lossy(&output.stderr);
        let message = message
            .lines()
            .filter(|line| !line.starts_with("# Warning"))
            .collect::<Vec<_>>();
        bail!("{command} failed: {}", message.join("; "));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn iptables_save() -> Result<Saved> {
    Ok(Saved::parse(&run("iptables-save", &[], None)?))
}

fn iptables_restore(input: &str) -> Result<()> {
    // --noflush: change only what the input names; -w: wait for another iptables to finish.
    run("iptables-restore", &["-w", "--noflush"], Some(input)).map(|_| ())
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

/// The bridge's way out needs iptables-save and iptables-restore.
pub fn check_tools() -> Result<()> {
    for tool in ["iptables-save", "iptables-restore"] {
        let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
            .iter()
            .any(|dir| Path::new(dir).join(tool).exists());
        if !found {
            return Err(anyhow::anyhow!(
                "the {tool} command is missing: the bridge network needs it for NAT"
            ))
            .hint("install iptables, or run with --net veth");
        }
    }
    Ok(())
}

fn exists() -> bool {
    Path::new("/sys/class/net").join(BRIDGE).exists()
}

fn alias() -> String {
    fs::read_to_string(Path::new("/sys/class/net").join(BRIDGE).join("ifalias"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

// ANCHOR: ensure_bridge
/// Make sure the bridge is there and whole: the link (with its alias), its address, up,
/// refusing router advertisements, IP forwarding on, and its rules. Every piece is checked and
/// made if missing: a bridge that a killed runtime half made, or whose rules another tool
/// flushed, is repaired, not trusted.
pub fn ensure_bridge(_lock: &Lock, host: &mut Netlink) -> Result<()> {
    if !exists() {
        host.apply(&Change::AddBridge { name: BRIDGE.into() })?;
    }
    // The kernel takes no alias in the request that makes a link: it is a second request. A
    // runtime killed in between leaves a bridge with none, ours all the same (its name says
    // so), which gets it now; ip_forward is still as it was then.
    if alias().is_empty() {
        let forward_was = fs::read_to_string(IP_FORWARD).context("failed to read ip_forward")?;
        let alias = format!("{ALIAS}; ip_forward was {}", forward_was.trim());
        host.apply(&Change::SetAlias {
            link: BRIDGE.into(),
            alias,
        })?;
    }
    host.apply(&Change::AddAddress {
        link: BRIDGE.into(),
        address: GATEWAY,
        prefix: 24,
        replace: true,
    })?;
    crate::net::refuse_router_advertisements(BRIDGE)?;
    host.apply(&Change::SetUp { link: BRIDGE.into() })?;
    if fs::read_to_string(IP_FORWARD).unwrap_or_default().trim() != "1" {
        trace!("write({IP_FORWARD:?}, \"1\")");
        fs::write(IP_FORWARD, "1").context("failed to switch IP forwarding on")?;
    }
    // One look at the rules; if any is missing, all are made again in one transaction.
    let saved = iptables_save()?;
    if !saved.is_whole() {
        iptables_restore(&restore_input(&saved.ours, true))?;
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
    let alias = alias();
    if !exists() || ports > 0 || !alias.starts_with(ALIAS) {
        return;
    }
    // The rules as the bridge made them, in one run; if some were gone already (removed by
    // hand, say), that run fails, and a look at what is there says what to remove.
    let made: Vec<_> = rules()
        .into_iter()
        .filter(|rule| rule.chain != CHAIN)
        .map(|rule| (rule.table.to_string(), rule.chain.to_string(), rule.rule))
        .collect();
    if iptables_restore(&restore_input(&made, false)).is_err() {
        if let Ok(saved) = iptables_save() {
            let _ = iptables_restore(&restore_input(&saved.ours, false));
        }
    }
    let switched_on = alias == format!("{ALIAS}; ip_forward was 0");
    if switched_on && fs::read_to_string(IP_FORWARD).unwrap_or_default().trim() == "1" {
        trace!("write({IP_FORWARD:?}, \"0\")");
        let _ = fs::write(IP_FORWARD, "0");
    }
    if let Ok(mut host) = Netlink::on_host() {
        let _ = host.apply(&Change::DeleteLink { link: BRIDGE.into() });
    }
}
// ANCHOR_END: remove_if_unused

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_names_the_bridge() {
        assert_eq!(TAG, format!("-m comment --comment {BRIDGE}"));
    }

    /// iptables-save's output on a host with the bridge's rules, and one rule of the host's.
    const SAVED: &str = "\
# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:box-forward - [0:0]
-A FORWARD -m comment --comment box-br0 -j box-forward
-A FORWARD -i eth0 -j DROP
-A box-forward -i box-br0 -m comment --comment box-br0 -j ACCEPT
-A box-forward -o box-br0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment box-br0 -j ACCEPT
COMMIT
*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -s 10.201.0.0/24 ! -o box-br0 -m comment --comment \"box-br0\" -j MASQUERADE
COMMIT
";

    #[test]
    fn whole_rules_are_left_alone() {
        let saved = Saved::parse(SAVED);
        assert_eq!(saved.in_chain, Some(2));
        assert!(saved.jump_first);
        assert_eq!(saved.ours.len(), 2);
        assert!(saved.is_whole(), "{saved:?}");
    }

    #[test]
    fn a_host_rule_before_the_jump_or_a_flushed_chain_is_repaired() {
        let shadowed = SAVED.replace(
            "-A FORWARD -m comment --comment box-br0 -j box-forward\n-A FORWARD -i eth0 -j DROP\n",
            "-A FORWARD -i eth0 -j DROP\n-A FORWARD -m comment --comment box-br0 -j box-forward\n",
        );
        assert!(!Saved::parse(&shadowed).is_whole());
        let flushed: String = SAVED
            .lines()
            .filter(|line| !line.starts_with("-A box-forward"))
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(!Saved::parse(&flushed).is_whole());
        assert!(!Saved::parse("*filter\nCOMMIT\n*nat\nCOMMIT\n").is_whole());
    }

    #[test]
    fn repairing_deletes_what_is_there_and_adds_everything() {
        let saved = Saved::parse(SAVED);
        assert_eq!(
            restore_input(&saved.ours, true),
            "\
*nat
-D POSTROUTING -s 10.201.0.0/24 ! -o box-br0 -m comment --comment \"box-br0\" -j MASQUERADE
-A POSTROUTING -s 10.201.0.0/24 ! -o box-br0 -m comment --comment box-br0 -j MASQUERADE
COMMIT
*filter
:box-forward - [0:0]
-D FORWARD -m comment --comment box-br0 -j box-forward
-A box-forward -i box-br0 -m comment --comment box-br0 -j ACCEPT
-A box-forward -o box-br0 -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment box-br0 -j ACCEPT
-I FORWARD 1 -j box-forward -m comment --comment box-br0
COMMIT
"
        );
    }

    #[test]
    fn removing_deletes_the_jump_and_the_chain() {
        assert_eq!(
            restore_input(&Saved::parse(SAVED).ours, false),
            "\
*nat
-D POSTROUTING -s 10.201.0.0/24 ! -o box-br0 -m comment --comment \"box-br0\" -j MASQUERADE
COMMIT
*filter
:box-forward - [0:0]
-D FORWARD -m comment --comment box-br0 -j box-forward
-X box-forward
COMMIT
"
        );
    }
}
