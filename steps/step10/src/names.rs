//! The three files that tell a program who it is and where to look names up, written for every
//! container as docker writes them: /etc/hostname, /etc/hosts (localhost, and the container's
//! own name at its address) and /etc/resolv.conf (the name servers, see resolv.conf(5)).
//! They go into the container's own writable layer, so the image is not changed.
//!
//! The name servers are the host's, less the ones on the host's loopback: a local stub such as
//! systemd-resolved's 127.0.0.53 cannot be reached from the container's network namespace (its
//! 127.0.0.53 is its own). systemd-resolved keeps the servers it forwards to in
//! /run/systemd/resolve/resolv.conf: those are used instead, as docker does. `--dns` overrides.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};

use anyhow::{Context, Result};

use crate::trace::trace;

/// The host's resolver configuration, and where systemd-resolved lists its upstream servers.
const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
const RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// What docker falls back to when the host has no server a container can reach.
const FALLBACK: [&str; 2] = ["8.8.8.8", "8.8.4.4"];

/// The contents of the three files, decided in the runtime before the clone.
#[derive(Debug, Clone)]
pub struct NameFiles {
    hostname: String,
    hosts: String,
    resolv_conf: String,
}

// ANCHOR: name_files
impl NameFiles {
    /// For a container called `hostname` at `address` (none without a network of its own), with
    /// the name servers given by `--dns`, or else the host's.
    pub fn new(hostname: &str, address: Option<Ipv4Addr>, dns: &[Ipv4Addr]) -> NameFiles {
        let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        if let Some(address) = address {
            hosts.push_str(&format!("{address}\t{hostname}\n"));
        }
        let resolv_conf = if dns.is_empty() {
            let host = fs::read_to_string(HOST_RESOLV_CONF).unwrap_or_default();
            let upstream = fs::read_to_string(RESOLVED_UPSTREAM).ok();
            for_the_container(&host, upstream.as_deref())
        } else {
            dns.iter()
                .map(|server| format!("nameserver {server}\n"))
                .collect()
        };
        NameFiles {
            hostname: format!("{hostname}\n"),
            hosts,
            resolv_conf,
        }
    }

    /// In init, after the pivot: write the files into the container's /etc.
    pub fn write(&self) -> Result<()> {
        fs::create_dir_all("/etc").context("failed to create /etc")?;
        for (path, text) in [
            ("/etc/hostname", &self.hostname),
            ("/etc/hosts", &self.hosts),
            ("/etc/resolv.conf", &self.resolv_conf),
        ] {
            trace!("write({path:?}, …)");
            // A link in the image (resolv.conf often is one) must not send the write elsewhere.
            let _ = fs::remove_file(path);
            fs::write(path, text).with_context(|| format!("failed to write {path}"))?;
        }
        Ok(())
    }
}
// ANCHOR_END: name_files

// ANCHOR: for_the_container
/// The host's resolv.conf made fit for a container: its `search` and `options` lines, and its
/// IPv4 name servers that are not on the host's loopback; if it named a loopback server (a
/// local stub), the servers that stub forwards to (`upstream`, systemd-resolved's list).
pub fn for_the_container(host: &str, upstream: Option<&str>) -> String {
    let servers = |text: &str| -> Vec<IpAddr> {
        text.lines()
            .filter_map(|line| line.trim().strip_prefix("nameserver"))
            .filter_map(|rest| rest.trim().parse().ok())
            .collect()
    };
    let reachable = |server: &IpAddr| matches!(server, IpAddr::V4(v4) if !v4.is_loopback());
    let host_servers = servers(host);
    let mut chosen: Vec<IpAddr> = host_servers.iter().copied().filter(reachable).collect();
    if host_servers.iter().any(IpAddr::is_loopback) {
        for server in upstream
            .map(servers)
            .unwrap_or_default()
            .into_iter()
            .filter(reachable)
        {
            if !chosen.contains(&server) {
                chosen.push(server);
            }
        }
    }
    let mut text: String = host
        .lines()
        .filter(|line| line.starts_with("search") || line.starts_with("options"))
        .map(|line| format!("{line}\n"))
        .collect();
    if chosen.is_empty() {
        text.push_str("# The host has no name server a container can reach: docker's fallback.\n");
        text.extend(FALLBACK.iter().map(|server| format!("nameserver {server}\n")));
    }
    text.extend(chosen.iter().map(|server| format!("nameserver {server}\n")));
    text
}
// ANCHOR_END: for_the_container

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_stub_is_replaced_by_the_servers_it_forwards_to() {
        let host = "# systemd-resolved\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
        let upstream = "nameserver 192.168.1.1\nnameserver fd00::1\nnameserver 9.9.9.9\n";
        assert_eq!(
            for_the_container(host, Some(upstream)),
            "options edns0 trust-ad\nsearch lan\nnameserver 192.168.1.1\nnameserver 9.9.9.9\n"
        );
    }

    #[test]
    fn plain_servers_are_kept_and_loopback_and_ipv6_ones_dropped() {
        let host = "nameserver 10.0.0.2\nnameserver ::1\nnameserver 127.0.0.1\nnameserver 2001:db8::53\n";
        assert_eq!(for_the_container(host, None), "nameserver 10.0.0.2\n");
    }

    #[test]
    fn without_a_reachable_server_the_container_gets_dockers_fallback() {
        let text = for_the_container("nameserver 127.0.0.53\n", None);
        assert!(
            text.ends_with("nameserver 8.8.8.8\nnameserver 8.8.4.4\n"),
            "{text}"
        );
    }

    #[test]
    fn dns_flags_replace_the_hosts_servers_and_hosts_names_the_container() {
        let files = NameFiles::new(
            "web",
            Some(Ipv4Addr::new(10, 201, 0, 7)),
            &[Ipv4Addr::new(10, 250, 0, 2)],
        );
        assert_eq!(files.resolv_conf, "nameserver 10.250.0.2\n");
        assert!(files.hosts.ends_with("10.201.0.7\tweb\n"), "{}", files.hosts);
        assert_eq!(files.hostname, "web\n");
        assert!(!NameFiles::new("web", None, &[]).hosts.contains("web"));
    }
}
