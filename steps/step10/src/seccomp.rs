//! seccomp(2) lets a process install a filter, a small BPF program the kernel runs on every
//! system call it makes from then on, and on every call of every process it starts. The filter
//! looks at the call's number and arguments and says allow, or fail with an errno, or kill.
//! A container's filter refuses the calls it has no business making, even when a capability
//! would allow them, and even calls no capability guards. See seccomp(2), prctl(2) for
//! PR_SET_NO_NEW_PRIVS, and the kernel's userspace-api/seccomp_filter.rst.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use nix::errno::Errno;
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
};

use crate::trace::trace;

// ANCHOR: denied
/// Refused with EPERM. A deny-list, as docker's default profile is in spirit: every call not
/// listed is allowed.
pub const DENIED: [(&str, i64); 36] = [
    // Mounting, and so unmasking /proc or reaching the host's disks; changing the root.
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("move_mount", libc::SYS_move_mount),
    ("open_tree", libc::SYS_open_tree),
    ("mount_setattr", libc::SYS_mount_setattr),
    // New namespaces, or joining the host's.
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    // The kernel's key rings are not namespaced.
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    // Programs run inside the kernel, and kernel-wide tracing.
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("userfaultfd", libc::SYS_userfaultfd),
    // Replacing or extending the kernel.
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    // Opening files by handle walks around the mount namespace (the "shocker" escape).
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    // The machine, not the container: power, swap, clocks, accounting, the kernel log.
    ("reboot", libc::SYS_reboot),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("acct", libc::SYS_acct),
    ("syslog", libc::SYS_syslog),
    ("quotactl", libc::SYS_quotactl),
    // Direct hardware I/O ports.
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
];
// ANCHOR_END: denied

/// clone is allowed, but not with a flag that makes a namespace: one rule per flag, any match
/// refuses. (clone3 passes its flags in memory, where a filter cannot look: see below.)
const NAMESPACE_FLAGS: [(&str, i32); 7] = [
    ("CLONE_NEWNS", libc::CLONE_NEWNS),
    ("CLONE_NEWUTS", libc::CLONE_NEWUTS),
    ("CLONE_NEWIPC", libc::CLONE_NEWIPC),
    ("CLONE_NEWUSER", libc::CLONE_NEWUSER),
    ("CLONE_NEWPID", libc::CLONE_NEWPID),
    ("CLONE_NEWNET", libc::CLONE_NEWNET),
    ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP),
];

fn arch() -> Result<seccompiler::TargetArch> {
    std::env::consts::ARCH
        .try_into()
        .context("seccomp filters are built for x86_64 and aarch64 only")
}

fn compile(rules: BTreeMap<i64, Vec<SeccompRule>>, errno: Errno) -> Result<BpfProgram> {
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno as u32),
        arch()?,
    )
    .context("failed to build the seccomp filter")?;
    filter.try_into().context("failed to compile the seccomp filter")
}

/// The deny-list, compiled to BPF.
fn deny_list() -> Result<BpfProgram> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = DENIED.iter().map(|(_, nr)| (*nr, vec![])).collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|(_, flag)| {
            let flag = *flag as u64;
            let condition =
                SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(flag), flag)?;
            SeccompRule::new(vec![condition])
        })
        .collect::<Result<Vec<_>, _>>()
        .context("failed to build the clone rules")?;
    rules.insert(libc::SYS_clone, clone_rules);
    compile(rules, Errno::EPERM)
}

// ANCHOR: no_new_privs
/// From now on, execve(2) can never give this process or its children more privileges: no
/// setuid bit, no file capability takes effect. The kernel also requires it (or
/// CAP_SYS_ADMIN) before an unprivileged process may install a seccomp filter.
pub fn set_no_new_privs() -> Result<()> {
    trace!("prctl(PR_SET_NO_NEW_PRIVS, 1)");
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Errno::result(rc).map(drop).context("failed to set no_new_privs")
}
// ANCHOR_END: no_new_privs

// ANCHOR: install_filter
/// Install the filters; they stay for this process and everything it starts.
pub fn install_filter() -> Result<()> {
    let denied = deny_list()?;
    trace!(
        "seccomp(SECCOMP_SET_MODE_FILTER, {} instructions: EPERM for {} calls, and clone with CLONE_NEW*)",
        denied.len(),
        DENIED.len()
    );
    seccompiler::apply_filter(&denied).context("failed to install the seccomp filter")?;
    // clone3 reads its flags from memory, which a filter cannot inspect. Answer ENOSYS, as
    // docker does, and the C library falls back to clone, whose flags the first filter checks.
    let clone3 = compile([(libc::SYS_clone3, vec![])].into_iter().collect(), Errno::ENOSYS)?;
    trace!(
        "seccomp(SECCOMP_SET_MODE_FILTER, {} instructions: ENOSYS for clone3)",
        clone3.len()
    );
    seccompiler::apply_filter(&clone3).context("failed to install the clone3 filter")
}
// ANCHOR_END: install_filter
