//! Netlink (netlink(7), rtnetlink(7)) is how a program asks the kernel to change the network
//! configuration: a socket of the family AF_NETLINK, on which each request is one message (make
//! this link, give it this address, add this route) and the kernel answers each with an
//! acknowledgement or an errno. iproute2's `ip` is a front end to it. The runtime sends the
//! same messages itself (built with the netlink-packet-route crate), and `--trace` shows each
//! one as the `ip` command that sends it.

use std::fmt;
use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{anyhow, bail, Context, Result};
use netlink_packet_core::{
    ErrorBuffer, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload, NLMSG_ERROR, NLM_F_ACK,
    NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkHeader, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{self, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType};
use nix::unistd::Pid;

use crate::errors::HintExt;
use crate::trace::trace;

// ANCHOR: change
/// One change to the network configuration, as you would ask `ip` for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `ip link add LINK type veth peer name PEER netns PID`: a veth pair, its PEER end created
    /// right in the network namespace of process PID.
    AddVeth { link: String, peer: String, netns: Pid },
    /// `ip link add NAME type bridge` (step 10's bridge)
    #[allow(dead_code)]
    AddBridge { name: String },
    /// `ip link set LINK alias TEXT`: a note of our own on the link (step 10's bridge).
    #[allow(dead_code)]
    SetAlias { link: String, alias: String },
    /// `ip link set LINK master BRIDGE`: plug the link into the bridge (step 10).
    #[allow(dead_code)]
    SetMaster { link: String, bridge: String },
    /// `ip link set LINK up`
    SetUp { link: String },
    /// `ip addr add ADDRESS/PREFIX dev LINK`; with `replace`, `ip addr replace`, which is not
    /// an error when the address is there already.
    AddAddress {
        link: String,
        address: Ipv4Addr,
        prefix: u8,
        replace: bool,
    },
    /// `ip route add default via GATEWAY`
    AddDefaultRoute { gateway: Ipv4Addr },
    /// `ip link delete LINK`
    DeleteLink { link: String },
}
// ANCHOR_END: change

/// The arguments of the `ip` command that makes the change.
impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::AddVeth { link, peer, netns } => {
                write!(f, "link add {link} type veth peer name {peer} netns {netns}")
            }
            Change::AddBridge { name } => write!(f, "link add {name} type bridge"),
            Change::SetAlias { link, alias } => write!(f, "link set {link} alias {alias:?}"),
            Change::SetMaster { link, bridge } => write!(f, "link set {link} master {bridge}"),
            Change::SetUp { link } => write!(f, "link set {link} up"),
            Change::AddAddress {
                link,
                address,
                prefix,
                replace,
            } => {
                let verb = if *replace { "replace" } else { "add" };
                write!(f, "addr {verb} {address}/{prefix} dev {link}")
            }
            Change::AddDefaultRoute { gateway } => write!(f, "route add default via {gateway}"),
            Change::DeleteLink { link } => write!(f, "link delete {link}"),
        }
    }
}

// ANCHOR: message
impl Change {
    /// The link whose number (its ifindex) the message needs: an address and a bridge port name
    /// their link by number, as `ip` looks it up before it sends the request.
    fn needs_index_of(&self) -> Option<&str> {
        match self {
            Change::AddAddress { link, .. } => Some(link),
            Change::SetMaster { bridge, .. } => Some(bridge),
            _ => None,
        }
    }

    /// The rtnetlink message that makes the change, and the flags that say how: CREATE makes
    /// something new, EXCL refuses to touch what exists, REPLACE overwrites it. `index` is the
    /// number of the link `needs_index_of` names. A link is named by IFLA_IFNAME otherwise.
    fn message(&self, index: u32) -> (RouteNetlinkMessage, u16) {
        let named = |name: &str| {
            let mut link = LinkMessage::default();
            link.attributes.push(LinkAttribute::IfName(name.to_string()));
            link
        };
        match self {
            Change::AddVeth { link, peer, netns } => {
                // The peer is a whole link message of its own, nested in the request: its name,
                // and the namespace it is born in (IFLA_NET_NS_PID).
                let mut peer = named(peer);
                peer.attributes
                    .push(LinkAttribute::NetNsPid(netns.as_raw() as u32));
                let mut message = named(link);
                message.attributes.push(LinkAttribute::LinkInfo(vec![
                    LinkInfo::Kind(InfoKind::Veth),
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
                ]));
                (RouteNetlinkMessage::NewLink(message), NLM_F_CREATE | NLM_F_EXCL)
            }
            Change::AddBridge { name } => {
                let mut message = named(name);
                message
                    .attributes
                    .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Bridge)]));
                (RouteNetlinkMessage::NewLink(message), NLM_F_CREATE | NLM_F_EXCL)
            }
            Change::SetAlias { link, alias } => {
                let mut message = named(link);
                message.attributes.push(LinkAttribute::IfAlias(alias.clone()));
                (RouteNetlinkMessage::SetLink(message), 0)
            }
            Change::SetMaster { link, .. } => {
                let mut message = named(link);
                message.attributes.push(LinkAttribute::Controller(index));
                (RouteNetlinkMessage::SetLink(message), 0)
            }
            Change::SetUp { link } => {
                // `flags` says what to set, `change_mask` which flags to touch at all.
                let mut message = named(link);
                message.header.flags = LinkFlags::Up;
                message.header.change_mask = LinkFlags::Up;
                (RouteNetlinkMessage::SetLink(message), 0)
            }
            Change::AddAddress {
                address,
                prefix,
                replace,
                ..
            } => {
                // IFA_LOCAL is the interface's own address; IFA_ADDRESS the other end's on a
                // point-to-point link, and the same as IFA_LOCAL on any other (as `ip` sends it).
                let mut message = AddressMessage::default();
                message.header.family = AddressFamily::Inet;
                message.header.prefix_len = *prefix;
                message.header.index = index;
                message
                    .attributes
                    .push(AddressAttribute::Local((*address).into()));
                message
                    .attributes
                    .push(AddressAttribute::Address((*address).into()));
                let how = if *replace { NLM_F_REPLACE } else { NLM_F_EXCL };
                (RouteNetlinkMessage::NewAddress(message), NLM_F_CREATE | how)
            }
            Change::AddDefaultRoute { gateway } => {
                // "default" is the destination 0.0.0.0/0: a prefix length of 0 and no
                // RTA_DST. The kernel finds the link from the gateway's address.
                let mut message = RouteMessage::default();
                message.header.address_family = AddressFamily::Inet;
                message.header.table = RouteHeader::RT_TABLE_MAIN;
                message.header.protocol = RouteProtocol::Boot;
                message.header.scope = RouteScope::Universe;
                message.header.kind = RouteType::Unicast;
                message
                    .attributes
                    .push(RouteAttribute::Gateway(RouteAddress::Inet(*gateway)));
                (RouteNetlinkMessage::NewRoute(message), NLM_F_CREATE | NLM_F_EXCL)
            }
            Change::DeleteLink { link } => (RouteNetlinkMessage::DelLink(named(link)), 0),
        }
    }
}
// ANCHOR_END: message

/// What to do when the kernel refuses a change for a known reason.
fn hint(change: &Change, errno: Option<&Errno>) -> Option<&'static str> {
    let adds_a_link = matches!(change, Change::AddVeth { .. } | Change::AddBridge { .. });
    match errno? {
        Errno::EOPNOTSUPP if adds_a_link => {
            Some("this kernel has no driver for that kind of link: load it (modprobe veth, modprobe bridge)")
        }
        Errno::EEXIST if adds_a_link => {
            Some("a link of that name is left from an earlier run: scripts/cleanup.sh removes it")
        }
        _ => None,
    }
}

/// A socket to the kernel's rtnetlink, in one network namespace: the runtime's own (the host's),
/// or the container's.
pub struct Netlink {
    socket: OwnedFd,
    /// Each request has a number, and the kernel's answer carries it.
    sequence: u32,
    /// The container's init, when the socket is in its namespace (for the trace).
    inside: Option<Pid>,
}

/// socket(2) with AF_NETLINK, connected to the kernel (port 0): the kernel answers on the same
/// socket. A netlink socket belongs to the network namespace it was made in, for good.
fn open_socket() -> Result<OwnedFd> {
    let socket = socket::socket(
        socket::AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .context("failed to open a netlink socket")?;
    socket::connect(socket.as_raw_fd(), &NetlinkAddr::new(0, 0))
        .context("failed to connect a netlink socket to the kernel")?;
    Ok(socket)
}

impl Netlink {
    /// A socket in the runtime's own network namespace: the host's.
    pub fn on_host() -> Result<Netlink> {
        Ok(Netlink {
            socket: open_socket()?,
            sequence: 0,
            inside: None,
        })
    }

    // ANCHOR: inside
    /// A socket in the network namespace of process `init`, without starting a process there
    /// (as `nsenter` would). setns(2) moves only the thread that calls it, and into a network
    /// namespace any thread may move (into a mount namespace, only one that shares no
    /// filesystem information, CLONE_FS, with others); and a socket stays in the namespace it
    /// was made in. So a short-lived thread of ours joins the container's namespace, opens the
    /// socket there, and ends: the runtime keeps the socket, and never leaves the host's
    /// namespace itself, so nothing else it does can land in the container's by mistake.
    pub fn inside(init: Pid) -> Result<Netlink> {
        let path = format!("/proc/{init}/ns/net");
        let namespace = File::open(&path).with_context(|| format!("failed to open {path}"))?;
        let socket = std::thread::scope(|scope| {
            scope
                .spawn(|| -> Result<OwnedFd> {
                    setns(namespace.as_fd(), CloneFlags::CLONE_NEWNET)
                        .with_context(|| format!("failed to setns({path}, CLONE_NEWNET)"))?;
                    open_socket()
                })
                .join()
        })
        .map_err(|_| anyhow!("the thread that joins the container's network namespace panicked"))??;
        Ok(Netlink {
            socket,
            sequence: 0,
            inside: Some(init),
        })
    }
    // ANCHOR_END: inside

    /// Make each change in turn, or stop at the first the kernel refuses.
    pub fn apply_all(&mut self, changes: &[Change]) -> Result<()> {
        changes.iter().try_for_each(|change| self.apply(change))
    }

    /// Make one change: send its message and wait for the kernel's answer.
    pub fn apply(&mut self, change: &Change) -> Result<()> {
        match self.inside {
            Some(init) => trace!("nsenter --target={init} --net ip {change}"),
            None => trace!("ip {change}"),
        }
        let index = match change.needs_index_of() {
            Some(link) => self.index_of(link)?,
            None => 0,
        };
        let (message, flags) = change.message(index);
        let Err(err) = self.request(message, flags | NLM_F_ACK) else {
            return Ok(());
        };
        let hint = hint(change, err.downcast_ref::<Errno>());
        let failed = Err(err).with_context(|| format!("failed to apply `ip {change}`"));
        match hint {
            Some(hint) => failed.hint(hint),
            None => failed,
        }
    }

    /// The number of the link `name` (RTM_GETLINK by name), as `ip` looks it up.
    fn index_of(&mut self, name: &str) -> Result<u32> {
        let mut message = LinkMessage::default();
        message.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(message), 0) {
            Ok(Some(index)) => Ok(index),
            Ok(None) => bail!("the kernel sent no link for {name}"),
            Err(err) => Err(err).with_context(|| format!("failed to find the link {name}")),
        }
    }

    /// Send one request and read the kernel's answer: an acknowledgement, which is an error
    /// message whose errno is 0, or, to a question about a link, the link (of which we read its
    /// number). Only the headers are read: the runtime needs nothing else from the kernel.
    fn request(&mut self, message: RouteNetlinkMessage, flags: u16) -> Result<Option<u32>> {
        self.sequence += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        socket::send(self.socket.as_raw_fd(), &bytes, MsgFlags::empty())
            .context("failed to send to netlink")?;

        let mut buffer = vec![0; 64 * 1024];
        loop {
            // MSG_TRUNC: recv(2) returns the whole answer's length, even if it did not fit.
            let length = socket::recv(self.socket.as_raw_fd(), &mut buffer, MsgFlags::MSG_TRUNC)
                .context("failed to receive from netlink")?;
            if length > buffer.len() {
                bail!("the kernel's answer ({length} bytes) is longer than expected");
            }
            // One read may hold several messages, one after the other, each 4-byte aligned.
            let mut at = 0;
            while at < length {
                let answer = NetlinkBuffer::new_checked(&buffer[at..length])
                    .map_err(|err| anyhow!("failed to read the kernel's answer: {err}"))?;
                at += (answer.length() as usize).next_multiple_of(4).max(4);
                if answer.sequence_number() != self.sequence {
                    continue;
                }
                let read_error = |err| anyhow!("failed to read the kernel's answer: {err}");
                match answer.message_type() {
                    NLMSG_ERROR => {
                        return match ErrorBuffer::new_checked(answer.payload())
                            .map_err(read_error)?
                            .code()
                        {
                            None => Ok(None),
                            Some(code) => Err(Errno::from_raw(-code.get()).into()),
                        }
                    }
                    libc::RTM_NEWLINK => {
                        return Ok(Some(
                            LinkHeader::parse(answer.payload()).map_err(read_error)?.index,
                        ))
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str) -> String {
        name.to_string()
    }

    #[test]
    fn each_change_is_traced_as_the_ip_command_that_makes_it() {
        let changes = [
            Change::AddVeth {
                link: link("box-a"),
                peer: link("eth0"),
                netns: Pid::from_raw(4242),
            },
            Change::AddBridge {
                name: link("box-br0"),
            },
            Change::SetAlias {
                link: link("box-br0"),
                alias: "box workshop bridge; ip_forward was 0".into(),
            },
            Change::SetMaster {
                link: link("box-a"),
                bridge: link("box-br0"),
            },
            Change::SetUp { link: link("lo") },
            Change::AddAddress {
                link: link("eth0"),
                address: Ipv4Addr::new(10, 200, 0, 2),
                prefix: 30,
                replace: false,
            },
            Change::AddAddress {
                link: link("box-br0"),
                address: Ipv4Addr::new(10, 201, 0, 1),
                prefix: 24,
                replace: true,
            },
            Change::AddDefaultRoute {
                gateway: Ipv4Addr::new(10, 200, 0, 1),
            },
            Change::DeleteLink { link: link("box-a") },
        ];
        let lines: Vec<String> = changes.iter().map(|change| change.to_string()).collect();
        assert_eq!(
            lines,
            [
                "link add box-a type veth peer name eth0 netns 4242",
                "link add box-br0 type bridge",
                "link set box-br0 alias \"box workshop bridge; ip_forward was 0\"",
                "link set box-a master box-br0",
                "link set lo up",
                "addr add 10.200.0.2/30 dev eth0",
                "addr replace 10.201.0.1/24 dev box-br0",
                "route add default via 10.200.0.1",
                "link delete box-a",
            ]
        );
    }

    #[test]
    fn the_veth_peer_is_born_in_the_containers_namespace() {
        let change = Change::AddVeth {
            link: link("box-a"),
            peer: link("eth0"),
            netns: Pid::from_raw(4242),
        };
        let (RouteNetlinkMessage::NewLink(message), flags) = change.message(0) else {
            panic!("not a new link");
        };
        assert_eq!(flags, NLM_F_CREATE | NLM_F_EXCL);
        let Some(LinkAttribute::LinkInfo(info)) = message.attributes.last() else {
            panic!("no link info");
        };
        assert_eq!(info[0], LinkInfo::Kind(InfoKind::Veth));
        let LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))) = &info[1] else {
            panic!("no peer");
        };
        assert_eq!(
            peer.attributes,
            [
                LinkAttribute::IfName("eth0".into()),
                LinkAttribute::NetNsPid(4242)
            ]
        );
    }

    #[test]
    fn an_address_names_its_link_by_number() {
        let change = Change::AddAddress {
            link: link("eth0"),
            address: Ipv4Addr::new(10, 200, 0, 2),
            prefix: 30,
            replace: false,
        };
        assert_eq!(change.needs_index_of(), Some("eth0"));
        let (RouteNetlinkMessage::NewAddress(message), flags) = change.message(7) else {
            panic!("not a new address");
        };
        assert_eq!(flags, NLM_F_CREATE | NLM_F_EXCL);
        assert_eq!((message.header.index, message.header.prefix_len), (7, 30));
    }

    #[test]
    fn the_default_route_has_no_destination_and_a_gateway() {
        let change = Change::AddDefaultRoute {
            gateway: Ipv4Addr::new(10, 200, 0, 1),
        };
        let (RouteNetlinkMessage::NewRoute(message), _) = change.message(0) else {
            panic!("not a new route");
        };
        assert_eq!(message.header.destination_prefix_length, 0);
        assert_eq!(
            message.attributes,
            [RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(
                10, 200, 0, 1
            )))]
        );
    }
}
