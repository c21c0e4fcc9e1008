//! Root's powers are split into capabilities (capabilities(7)): CAP_SYS_ADMIN to mount,
//! CAP_SYS_MODULE to load kernel modules, CAP_NET_ADMIN to reconfigure the network, about forty
//! in all. A container keeps only the few an ordinary program running as root needs. The
//! *bounding set* caps what the process and everything it execs can ever regain; the
//! effective, permitted and inheritable sets are what it has now.

use anyhow::{bail, Context, Result};
use caps::{CapSet, Capability, CapsHashSet};

use crate::trace::trace;

// ANCHOR: default_capabilities
/// The capabilities a container keeps by default: docker's (and containerd's) list. Enough to
/// change file owners and modes, switch users, bind low ports and use ping; not enough to
/// mount, load modules, change the clock, trace other processes or reconfigure the network.
pub const DEFAULT: [Capability; 14] = [
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];
// ANCHOR_END: default_capabilities

/// `sys_admin`, `SYS_ADMIN` and `CAP_SYS_ADMIN` all name CAP_SYS_ADMIN; `ALL` names them all.
fn parse(name: &str) -> Result<Vec<Capability>> {
    if name.eq_ignore_ascii_case("all") {
        return Ok(caps::all().into_iter().collect());
    }
    match caps::to_canonical(name).parse::<Capability>() {
        Ok(cap) => Ok(vec![cap]),
        Err(_) => bail!("unknown capability {name:?}: see capabilities(7) for the names (CAP_ is optional)"),
    }
}

/// The set to keep: the defaults, minus `--cap-drop`, plus `--cap-add` (as docker orders them).
pub fn to_keep(add: &[String], drop: &[String]) -> Result<CapsHashSet> {
    let mut keep: CapsHashSet = DEFAULT.into_iter().collect();
    for name in drop {
        for cap in parse(name)? {
            keep.remove(&cap);
        }
    }
    for name in add {
        keep.extend(parse(name)?);
    }
    Ok(keep)
}

fn names(set: &CapsHashSet) -> String {
    let mut names: Vec<String> = set.iter().map(|cap| cap.to_string()).collect();
    names.sort();
    if names.is_empty() {
        return "{}".into();
    }
    format!("{{{}}}", names.join(","))
}

// ANCHOR: drop_capabilities
/// Keep only `keep`: drop the rest from the bounding set for good, then set the effective,
/// permitted and inheritable sets to `keep` (the order keeps effective within permitted at
/// every moment), and clear the ambient set.
pub fn drop_capabilities(keep: &CapsHashSet) -> Result<()> {
    // ANCHOR: exercise06_capabilities
    let supported = caps::runtime::thread_all_supported();
    let mut dropped: Vec<Capability> = supported.difference(keep).copied().collect();
    dropped.sort_by_key(|cap| cap.index());
    trace!("prctl(PR_CAPBSET_DROP, …) for {} capabilities", dropped.len());
    for cap in dropped {
        caps::drop(None, CapSet::Bounding, cap)
            .with_context(|| format!("failed to drop {cap} from the bounding set"))?;
    }
    let keep: CapsHashSet = keep.intersection(&supported).copied().collect();
    trace!("capset(effective = permitted = inheritable = {})", names(&keep));
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
        caps::set(None, set, &keep).with_context(|| format!("failed to set the {set:?} capabilities"))?;
    }
    trace!("prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)");
    caps::clear(None, CapSet::Ambient).context("failed to clear the ambient capabilities")?;
    Ok(())
    // ANCHOR_END: exercise06_capabilities
}
// ANCHOR_END: drop_capabilities
