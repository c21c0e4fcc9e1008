//! seccomp(2) lets a process install a filter, a small BPF program the kernel runs on every
//! system call it makes from then on, and on every call of every process it starts. The filter
//! looks at the call's number and arguments and says allow, or fail with an errno, or kill.
//! A container's filter refuses the calls it has no business making, even when a capability
//! would allow them, and even calls no capability guards. See seccomp(2), prctl(2) for
//! PR_SET_NO_NEW_PRIVS, and the kernel's userspace-api/seccomp_filter.rst.
//!
//! A filter sees numbers, not names, and each architecture numbers its calls its own way: the
//! tables here give each call's number on x86_64 and on aarch64, and the filters are built for
//! the architecture the runtime runs on.

use std::collections::BTreeMap;
use std::mem::offset_of;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::trace::trace;

/// A system call, with its number on each architecture the steps run on (`None`: that
/// architecture has no such call). The numbers are the kernel's: x86_64's from
/// arch/x86/entry/syscalls/syscall_64.tbl, aarch64's from include/uapi/asm-generic/unistd.h,
/// the generic table newer architectures share, which left out calls already obsolete.
struct Syscall {
    name: &'static str,
    x86_64: Option<i64>,
    aarch64: Option<i64>,
}

/// A call both architectures have: its name, its number on x86_64, its number on aarch64.
const fn call(name: &'static str, x86_64: i64, aarch64: i64) -> Syscall {
    Syscall {
        name,
        x86_64: Some(x86_64),
        aarch64: Some(aarch64),
    }
}

/// A call only x86_64 has.
const fn x86_64_only(name: &'static str, x86_64: i64) -> Syscall {
    Syscall {
        name,
        x86_64: Some(x86_64),
        aarch64: None,
    }
}

// ANCHOR: denied
/// Refused with EPERM: what docker's default profile refuses to a container with docker's
/// default capabilities. A deny-list: every call not listed is allowed. Each row is a call's
/// name, then its number on x86_64 and on aarch64.
const DENIED: &[Syscall] = &[
    // Mounting, and so unmasking /proc or reaching the host's disks; changing the root. From
    // open_tree on, the newer mount API, which does the same in several steps.
    call("mount", 165, 40),
    call("umount2", 166, 39),
    call("pivot_root", 155, 41),
    call("open_tree", 428, 428),
    call("open_tree_attr", 467, 467),
    call("move_mount", 429, 429),
    call("fsopen", 430, 430),
    call("fsconfig", 431, 431),
    call("fsmount", 432, 432),
    call("fspick", 433, 433),
    call("mount_setattr", 442, 442),
    // New namespaces, or joining the host's. A new user namespace needs no privilege at all,
    // and gives back every capability, over namespaces the container would then own.
    call("unshare", 272, 97),
    call("setns", 308, 268),
    // The container's hostname and domain name: the runtime set them, before this filter
    // (docker, like the kernel, leaves them to CAP_SYS_ADMIN).
    call("sethostname", 170, 161),
    call("setdomainname", 171, 162),
    // The kernel's key rings are not namespaced.
    call("keyctl", 250, 219),
    call("add_key", 248, 217),
    call("request_key", 249, 218),
    // Programs run inside the kernel, and watching the whole machine: tracing, performance
    // counters, every file event on a filesystem, the old profiler's lookups.
    call("bpf", 321, 280),
    call("perf_event_open", 298, 241),
    call("fanotify_init", 300, 262),
    call("lookup_dcookie", 212, 18),
    // Tools of kernel exploits: userfaultfd pauses the kernel mid-copy, when the attacker
    // chooses; io_uring does I/O from kernel threads, where this filter never looks, and has
    // been the way in for many attacks (docker refuses it since version 25).
    call("userfaultfd", 323, 282),
    call("io_uring_setup", 425, 425),
    call("io_uring_enter", 426, 426),
    call("io_uring_register", 427, 427),
    // Reaching into another process: comparing its kernel objects, copying its file
    // descriptors, advising on its memory. ptrace stays allowed, as in docker: since Linux 4.8
    // a filter sees a call again after a tracer changes it, and the PID namespace bounds whom
    // a tracer can reach.
    call("kcmp", 312, 272),
    call("pidfd_getfd", 438, 438),
    call("process_madvise", 440, 440),
    // Where memory lives on a machine with several memory nodes (NUMA): the host's business
    // (docker leaves it to CAP_SYS_NICE, which the container does not keep).
    call("mbind", 237, 235),
    call("set_mempolicy", 238, 237),
    call("set_mempolicy_home_node", 450, 450),
    call("get_mempolicy", 239, 236),
    call("migrate_pages", 256, 238),
    call("move_pages", 279, 239),
    // Replacing or extending the kernel.
    call("kexec_load", 246, 104),
    call("kexec_file_load", 320, 294),
    call("init_module", 175, 105),
    call("finit_module", 313, 273),
    call("delete_module", 176, 106),
    // Opening files by handle walks around the mount namespace (the "shocker" escape).
    // name_to_handle_at, which only makes handles, stays allowed, as in docker.
    call("open_by_handle_at", 304, 265),
    // The machine, not the container: power, swap, the clock, process accounting, the kernel
    // log, disk quotas, hanging up terminals. (adjtimex and clock_adjtime stay allowed, as in
    // docker: they also read the clock's state, and the kernel refuses a change to it without
    // CAP_SYS_TIME.)
    call("reboot", 169, 142),
    call("swapon", 167, 224),
    call("swapoff", 168, 225),
    call("settimeofday", 164, 170),
    call("clock_settime", 227, 112),
    call("acct", 163, 89),
    call("syslog", 103, 116),
    call("quotactl", 179, 60),
    call("quotactl_fd", 443, 443),
    call("vhangup", 153, 58),
    // A process's attributes in the security modules (AppArmor, SELinux...): docker keeps
    // these new calls for CAP_SYS_ADMIN until they are better understood.
    call("lsm_get_self_attr", 459, 459),
    call("lsm_set_self_attr", 460, 460),
    call("lsm_list_modules", 461, 461),
    // Direct access to the hardware's I/O ports (x86 has them, arm does not).
    x86_64_only("iopl", 172),
    x86_64_only("ioperm", 173),
    // Calls gone from the kernel, or never in it. _sysctl set kernel parameters without
    // /proc/sys, and so past its read-only mount (until Linux 5.5); uselib loaded a.out
    // libraries; ustat and sysfs are leftovers. The others answer ENOSYS on every kernel since
    // 3.1: refused all the same, as docker does, in case a patched kernel fills the slot.
    // (stime, vm86, vm86old and umount exist for 32-bit programs only, whose calls both
    // filters kill: see enosys_filter.)
    x86_64_only("_sysctl", 156),
    x86_64_only("uselib", 134),
    x86_64_only("ustat", 136),
    x86_64_only("sysfs", 139),
    call("nfsservctl", 180, 42),
    x86_64_only("create_module", 174),
    x86_64_only("get_kernel_syms", 177),
    x86_64_only("query_module", 178),
    x86_64_only("getpmsg", 181),
    x86_64_only("putpmsg", 182),
    x86_64_only("afs_syscall", 183),
    x86_64_only("tuxcall", 184),
    x86_64_only("security", 185),
    x86_64_only("vserver", 236),
];
// ANCHOR_END: denied

// ANCHOR: denied_arguments
// Allowed, but refused with EPERM for some arguments. A filter sees the arguments' values,
// never memory they point to.

/// clone starts every new process, so it stays, but not with a flag that makes a namespace: one
/// rule per flag, any match refuses. (clone3 passes its flags in memory: see enosys_filter.)
const CLONE: Syscall = call("clone", 56, 220);
const NAMESPACE_FLAGS: [(&str, i32); 7] = [
    ("CLONE_NEWNS", libc::CLONE_NEWNS),
    ("CLONE_NEWUTS", libc::CLONE_NEWUTS),
    ("CLONE_NEWIPC", libc::CLONE_NEWIPC),
    ("CLONE_NEWUSER", libc::CLONE_NEWUSER),
    ("CLONE_NEWPID", libc::CLONE_NEWPID),
    ("CLONE_NEWNET", libc::CLONE_NEWNET),
    ("CLONE_NEWCGROUP", libc::CLONE_NEWCGROUP),
];

/// personality(2) changes how the kernel runs a process and what it executes: ADDR_NO_RANDOMIZE
/// turns off address-space randomisation, READ_IMPLIES_EXEC makes readable memory executable,
/// both to an exploit's advantage. As docker, allow only Linux's own personality, the 32-bit
/// one `linux32` asks for, either with UNAME26 (report kernel 2.6 to old programs), and
/// 0xffffffff, which only reads the current one.
const PERSONALITY: Syscall = call("personality", 135, 92);
const PERSONAS_ALLOWED: [(&str, u32); 5] = [
    ("PER_LINUX", 0x0000),
    ("PER_LINUX32", 0x0008),
    ("UNAME26", 0x0002_0000),
    ("UNAME26|PER_LINUX32", 0x0002_0008),
    ("0xffffffff", 0xffff_ffff),
];

/// socket(2), in two address families docker refuses: AF_ALG, the kernel's crypto API, through
/// which "Copy Fail" (CVE-2026-31431) let any user write into the cached pages of a file it may
/// only read; and AF_VSOCK, which reaches past the network namespace to the hypervisor and to
/// virtual machines on the host.
const SOCKET: Syscall = call("socket", 41, 198);
const SOCKET_FAMILIES_DENIED: [(&str, i32); 2] = [("AF_ALG", libc::AF_ALG), ("AF_VSOCK", libc::AF_VSOCK)];
// ANCHOR_END: denied_arguments

/// Answered ENOSYS by the second filter: see enosys_filter.
const CLONE3: Syscall = call("clone3", 435, 435);

/// The architectures the filters are built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture the runtime runs on, and so the container's programs.
    fn running() -> Result<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Ok(Arch::X86_64),
            "aarch64" => Ok(Arch::Aarch64),
            other => bail!("the seccomp filters are built for x86_64 and aarch64 only, not for {other}"),
        }
    }

    fn number(self, call: &Syscall) -> Option<i64> {
        match self {
            Arch::X86_64 => call.x86_64,
            Arch::Aarch64 => call.aarch64,
        }
    }

    /// The number of a call the filters need on every architecture.
    fn required(self, call: &Syscall) -> Result<i64> {
        self.number(call)
            .with_context(|| format!("{} has no number on {self:?}", call.name))
    }

    fn target(self) -> TargetArch {
        match self {
            Arch::X86_64 => TargetArch::x86_64,
            Arch::Aarch64 => TargetArch::aarch64,
        }
    }

    /// What the kernel puts in seccomp_data.arch for a call made with this architecture's own
    /// numbering: AUDIT_ARCH_X86_64 or AUDIT_ARCH_AARCH64 (include/uapi/linux/audit.h), the
    /// ELF machine number marked 64-bit and little-endian.
    fn audit_arch(self) -> u32 {
        const AUDIT_ARCH_64BIT: u32 = 0x8000_0000;
        const AUDIT_ARCH_LE: u32 = 0x4000_0000;
        let machine = match self {
            Arch::X86_64 => 62,   // EM_X86_64
            Arch::Aarch64 => 183, // EM_AARCH64
        };
        machine | AUDIT_ARCH_64BIT | AUDIT_ARCH_LE
    }
}

/// The first filter: the deny-list and the argument rules, compiled to BPF by seccompiler. The
/// program it makes starts by checking seccomp_data.arch and kills the process on a call made
/// with another architecture's numbers (a 32-bit program's), which would mean other calls.
fn deny_list(arch: Arch) -> Result<BpfProgram> {
    let mut rules = BTreeMap::new();
    for call in DENIED {
        if let Some(nr) = arch.number(call) {
            add_rules(&mut rules, call.name, nr, vec![])?;
        }
    }
    add_rules(&mut rules, CLONE.name, arch.required(&CLONE)?, clone_rules()?)?;
    add_rules(
        &mut rules,
        PERSONALITY.name,
        arch.required(&PERSONALITY)?,
        personality_rules()?,
    )?;
    add_rules(&mut rules, SOCKET.name, arch.required(&SOCKET)?, socket_rules()?)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(Errno::EPERM as u32),
        arch.target(),
    )
    .context("failed to build the seccomp filter")?;
    filter.try_into().context("failed to compile the seccomp filter")
}

/// The rules for one call's number; no rules: refused whatever the arguments.
fn add_rules(
    rules: &mut BTreeMap<i64, Vec<SeccompRule>>,
    name: &str,
    nr: i64,
    rules_for_call: Vec<SeccompRule>,
) -> Result<()> {
    if rules.insert(nr, rules_for_call).is_some() {
        bail!("{name} ({nr}) has rules twice in the seccomp filter");
    }
    Ok(())
}

/// clone(flags, ...): refused when `flags & FLAG == FLAG`, one rule per namespace flag.
fn clone_rules() -> Result<Vec<SeccompRule>> {
    NAMESPACE_FLAGS
        .iter()
        .map(|(_, flag)| {
            let flag = *flag as u64;
            let condition =
                SeccompCondition::new(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(flag), flag)?;
            SeccompRule::new(vec![condition])
        })
        .collect::<Result<Vec<_>, _>>()
        .context("failed to build the clone rules")
}

/// personality(persona): refused when the persona is none of the allowed ones, a single rule
/// whose conditions must all hold. The kernel reads an unsigned int, so the comparison is on
/// the low 32 bits (a Dword) only: setting high bits cannot slip past it.
fn personality_rules() -> Result<Vec<SeccompRule>> {
    let conditions = PERSONAS_ALLOWED
        .iter()
        .map(|(_, persona)| {
            SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, u64::from(*persona))
        })
        .collect::<Result<Vec<_>, _>>()
        .context("failed to build the personality rule")?;
    let rule = SeccompRule::new(conditions).context("failed to build the personality rule")?;
    Ok(vec![rule])
}

/// socket(family, ...): refused when the family is one of the denied ones, one rule per family.
/// The kernel reads an int: the comparison is on the low 32 bits, as for personality.
fn socket_rules() -> Result<Vec<SeccompRule>> {
    SOCKET_FAMILIES_DENIED
        .iter()
        .map(|(_, family)| {
            let condition =
                SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *family as u64)?;
            SeccompRule::new(vec![condition])
        })
        .collect::<Result<Vec<_>, _>>()
        .context("failed to build the socket rules")
}

// ANCHOR: enosys_filter
/// The second filter, written by hand to show what a filter is: a classic BPF program over
/// `struct seccomp_data` (the call's number, the architecture whose numbering it uses, its
/// arguments), with one register, A, and jumps that only skip forward. It answers ENOSYS, "no
/// such call", to two kinds of call:
///
/// - clone3, which passes its flags in memory, where a filter cannot look. The C library then
///   falls back to clone, whose flags the first filter checks. Docker does the same.
/// - on x86_64, every call numbered for the x32 ABI (64-bit registers, 32-bit pointers). x32
///   calls reach the same kernel under the same AUDIT_ARCH_X86_64, with numbers from 0x40000000
///   (__X32_SYSCALL_BIT) up: mount is 165 on x86_64 and 0x40000000 + 165 on x32. A deny-list
///   keyed on x86_64 numbers never matches them, so every call it refuses would be one bit away.
///   ENOSYS is what the kernel itself answers when x32 is turned off, as many distributions
///   ship it, and so what programs already handle. (Docker's profile filters x32 calls by name
///   instead, with x32's own table.)
fn enosys_filter(arch: Arch) -> Result<BpfProgram> {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    let enosys = libc::SECCOMP_RET_ERRNO | Errno::ENOSYS as u32;
    let clone3 = u32::try_from(arch.required(&CLONE3)?).context("failed to build the ENOSYS filter")?;
    let mut program = vec![
        // A = seccomp_data.arch: whose numbering the call uses.
        load(offset_of!(libc::seccomp_data, arch)),
        // This architecture's own: skip the next instruction.
        skip_if_equal(arch.audit_arch(), 1, 0),
        // Another's (a 32-bit program's, whose numbers mean other calls): kill, as the first
        // filter does.
        answer(libc::SECCOMP_RET_KILL_PROCESS),
        // A = seccomp_data.nr, the call's number.
        load(offset_of!(libc::seccomp_data, nr)),
    ];
    if arch == Arch::X86_64 {
        program.extend([
            // An x32 number: go on to the next instruction; otherwise skip it.
            skip_if_at_least(X32_SYSCALL_BIT, 0, 1),
            // No such call.
            answer(enosys),
        ]);
    }
    program.extend([
        // clone3: go on to the next instruction; otherwise skip it.
        skip_if_equal(clone3, 0, 1),
        // No such call.
        answer(enosys),
        // Anything else: allowed by this filter (the first one has its own say).
        answer(libc::SECCOMP_RET_ALLOW),
    ]);
    Ok(program)
}

/// `A = ` the 32-bit word at `offset` in struct seccomp_data.
fn load(offset: usize) -> sock_filter {
    let code = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k: offset as u32,
    }
}

/// Skip `then` instructions if A equals `value`, `otherwise` instructions if not.
fn skip_if_equal(value: u32, then: u8, otherwise: u8) -> sock_filter {
    let code = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    sock_filter {
        code: code as u16,
        jt: then,
        jf: otherwise,
        k: value,
    }
}

/// Skip `then` instructions if A is at least `value` (unsigned), `otherwise` instructions if not.
fn skip_if_at_least(value: u32, then: u8, otherwise: u8) -> sock_filter {
    let code = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
    sock_filter {
        code: code as u16,
        jt: then,
        jf: otherwise,
        k: value,
    }
}

/// Stop, with this answer for the call: SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | errno, ...
fn answer(action: u32) -> sock_filter {
    let code = libc::BPF_RET | libc::BPF_K;
    sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k: action,
    }
}
// ANCHOR_END: enosys_filter

// ANCHOR: no_new_privs
/// From now on, execve(2) can never give this process or its children more privileges: no
/// setuid bit, no file capability takes effect. The kernel also requires it (or
/// CAP_SYS_ADMIN) before an unprivileged process may install a seccomp filter.
pub fn set_no_new_privs() -> Result<()> {
    // ANCHOR: exercise06_no_new_privs
    trace!("prctl(PR_SET_NO_NEW_PRIVS, 1)");
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Errno::result(rc).map(drop).context("failed to set no_new_privs")
    // ANCHOR_END: exercise06_no_new_privs
}
// ANCHOR_END: no_new_privs

// ANCHOR: install_filter
/// Install the filters; they stay for this process and everything it starts. Filters stack:
/// the kernel runs every one on every call, and the strictest answer wins (kill, then an
/// errno, then allow).
pub fn install_filter() -> Result<()> {
    // ANCHOR: exercise06_filter
    let arch = Arch::running()?;
    let denied = deny_list(arch)?;
    trace!(
        "seccomp(SECCOMP_SET_MODE_FILTER, EPERM for the calls in DENIED, and clone, personality and socket by argument)"
    );
    seccompiler::apply_filter(&denied).context("failed to install the seccomp filter")?;
    let enosys = enosys_filter(arch)?;
    trace!("seccomp(SECCOMP_SET_MODE_FILTER, ENOSYS for clone3, and on x86_64 for the x32 ABI's numbers)");
    seccompiler::apply_filter(&enosys).context("failed to install the ENOSYS filter")
    // ANCHOR_END: exercise06_filter
}
// ANCHOR_END: install_filter

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const BOTH: [Arch; 2] = [Arch::X86_64, Arch::Aarch64];
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | Errno::EPERM as u32;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | Errno::ENOSYS as u32;
    const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
    const KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    /// seccomp_data.arch for a 32-bit program's calls: EM_386 and EM_ARM, little-endian.
    const AUDIT_ARCH_I386: u32 = 3 | 0x4000_0000;
    const AUDIT_ARCH_ARM: u32 = 40 | 0x4000_0000;

    /// Calls the filters must let through (read, getpid), or that docker allows and we must not
    /// refuse by mistake.
    const READ: Syscall = call("read", 0, 63);
    const GETPID: Syscall = call("getpid", 39, 172);
    const PTRACE: Syscall = call("ptrace", 101, 117);
    const NAME_TO_HANDLE_AT: Syscall = call("name_to_handle_at", 303, 264);
    const ADJTIMEX: Syscall = call("adjtimex", 159, 171);
    const CLOCK_ADJTIME: Syscall = call("clock_adjtime", 305, 266);
    const CHROOT: Syscall = call("chroot", 161, 51);
    const ALLOWED: [&Syscall; 7] = [
        &READ,
        &GETPID,
        &PTRACE,
        &NAME_TO_HANDLE_AT,
        &ADJTIMEX,
        &CLOCK_ADJTIME,
        &CHROOT,
    ];

    /// What docker's default profile (moby/profiles, seccomp/default.json) refuses to a container
    /// with docker's default capabilities, on both architectures: every call in the kernel's
    /// tables that the profile neither allows outright nor allows for one of those capabilities
    /// (chapter 6 says where ours differs). open_tree_attr (Linux 6.15) is newer than the profile, which
    /// refuses it by not naming it.
    #[rustfmt::skip]
    const DOCKER_REFUSES: [&str; 55] = [
        "acct", "add_key", "bpf", "clock_settime", "delete_module", "fanotify_init", "finit_module",
        "fsconfig", "fsmount", "fsopen", "fspick", "get_mempolicy", "init_module", "io_uring_enter",
        "io_uring_register", "io_uring_setup", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
        "lookup_dcookie", "lsm_get_self_attr", "lsm_list_modules", "lsm_set_self_attr", "mbind",
        "migrate_pages", "mount", "mount_setattr", "move_mount", "move_pages", "nfsservctl",
        "open_by_handle_at", "open_tree", "open_tree_attr", "perf_event_open", "pidfd_getfd", "pivot_root",
        "process_madvise", "quotactl", "quotactl_fd", "reboot", "request_key", "set_mempolicy",
        "set_mempolicy_home_node", "setdomainname", "sethostname", "setns", "settimeofday", "swapoff",
        "swapon", "syslog", "umount2", "unshare", "userfaultfd", "vhangup",
    ];
    /// And on x86_64 only, the calls its older table has and aarch64's does not.
    #[rustfmt::skip]
    const DOCKER_REFUSES_ON_X86_64_ONLY: [&str; 15] = [
        "_sysctl", "afs_syscall", "create_module", "get_kernel_syms", "getpmsg", "ioperm", "iopl", "putpmsg",
        "query_module", "security", "sysfs", "tuxcall", "uselib", "ustat", "vserver",
    ];

    fn denied_names(arch: Arch) -> BTreeSet<&'static str> {
        DENIED
            .iter()
            .filter(|call| arch.number(call).is_some())
            .map(|call| call.name)
            .collect()
    }

    fn nr(arch: Arch, call: &Syscall) -> u32 {
        let nr = arch
            .number(call)
            .unwrap_or_else(|| panic!("{} on {arch:?}", call.name));
        u32::try_from(nr).unwrap()
    }

    /// A call as the kernel hands it to a filter.
    struct Call {
        arch: u32,
        nr: u32,
        args: [u64; 6],
    }

    impl Call {
        fn new(arch: Arch, call: &Syscall, args: &[u64]) -> Call {
            Call::numbered(arch.audit_arch(), nr(arch, call), args)
        }

        fn numbered(audit_arch: u32, nr: u32, args: &[u64]) -> Call {
            let mut all = [0; 6];
            all[..args.len()].copy_from_slice(args);
            Call {
                arch: audit_arch,
                nr,
                args: all,
            }
        }

        /// struct seccomp_data as the kernel lays it out, little-endian as both architectures are.
        fn data(&self) -> Vec<u8> {
            let mut data = vec![0; size_of::<libc::seccomp_data>()];
            let mut put =
                |offset: usize, bytes: &[u8]| data[offset..offset + bytes.len()].copy_from_slice(bytes);
            put(offset_of!(libc::seccomp_data, nr), &self.nr.to_le_bytes());
            put(offset_of!(libc::seccomp_data, arch), &self.arch.to_le_bytes());
            for (i, arg) in self.args.iter().enumerate() {
                put(offset_of!(libc::seccomp_data, args) + 8 * i, &arg.to_le_bytes());
            }
            data
        }
    }

    /// Run a filter on a call, as the kernel would: a classic BPF interpreter for the
    /// instructions seccompiler and enosys_filter use, which panics on any other, or on a jump
    /// out of the program.
    fn run(program: &[sock_filter], call: &Call) -> u32 {
        let data = call.data();
        let word = |offset: u32| {
            let offset = offset as usize;
            u32::from_le_bytes(data[offset..offset + 4].try_into().unwrap())
        };
        let mut a = 0u32;
        let mut pc = 0usize;
        loop {
            let instruction = &program[pc];
            pc += 1;
            let skip = |taken: bool| usize::from(if taken { instruction.jt } else { instruction.jf });
            let k = instruction.k;
            match u32::from(instruction.code) {
                code if code == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => a = word(k),
                code if code == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= k,
                code if code == libc::BPF_JMP | libc::BPF_JA => pc += k as usize,
                code if code == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => pc += skip(a == k),
                code if code == libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K => pc += skip(a > k),
                code if code == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => pc += skip(a >= k),
                code if code == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => pc += skip(a & k != 0),
                code if code == libc::BPF_RET | libc::BPF_K => return k,
                code => panic!(
                    "instruction {code:#x} at {} is not one this interpreter knows",
                    pc - 1
                ),
            }
        }
    }

    #[test]
    fn each_call_is_listed_once_with_a_number_of_its_own() {
        let names: BTreeSet<_> = DENIED.iter().map(|call| call.name).collect();
        assert_eq!(names.len(), DENIED.len(), "a name is listed twice in DENIED");
        for arch in BOTH {
            let mut numbers = BTreeSet::new();
            for call in DENIED.iter().chain([&CLONE, &PERSONALITY, &SOCKET, &CLONE3]) {
                if let Some(nr) = arch.number(call) {
                    assert!(numbers.insert(nr), "{} shares number {nr} on {arch:?}", call.name);
                }
            }
            for call in ALLOWED {
                assert!(
                    !numbers.contains(&arch.number(call).unwrap()),
                    "{} on {arch:?}",
                    call.name
                );
            }
        }
    }

    #[test]
    fn every_call_docker_refuses_is_denied_and_no_other() {
        let docker: BTreeSet<_> = DOCKER_REFUSES.into_iter().collect();
        assert_eq!(denied_names(Arch::Aarch64), docker);
        let docker_x86_64: BTreeSet<_> = docker.into_iter().chain(DOCKER_REFUSES_ON_X86_64_ONLY).collect();
        assert_eq!(denied_names(Arch::X86_64), docker_x86_64);
    }

    /// The C library's numbers for the host's architecture, as an independent copy of the
    /// kernel's table; it has no constant yet for the calls in `absent`.
    fn assert_numbers_match(arch: Arch, from_libc: &[(&str, libc::c_long)], absent: &[&str]) {
        let known: BTreeMap<_, _> = from_libc.iter().copied().collect();
        for call in DENIED
            .iter()
            .chain([&CLONE, &PERSONALITY, &SOCKET, &CLONE3])
            .chain(ALLOWED)
        {
            let Some(nr) = arch.number(call) else { continue };
            match known.get(call.name) {
                Some(expected) => assert_eq!(nr, *expected, "{} on {arch:?}", call.name),
                None => assert!(
                    absent.contains(&call.name),
                    "{} has no libc constant to check",
                    call.name
                ),
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_64_numbers_are_the_kernels() {
        // create_module, get_kernel_syms, query_module: gone before libc had constants for them
        // (174, 177, 178 in syscall_64.tbl); lsm_* (459-461) and open_tree_attr (467): newer than
        // the libc crate's table.
        let absent = [
            "create_module",
            "get_kernel_syms",
            "query_module",
            "lsm_get_self_attr",
            "lsm_set_self_attr",
        ];
        let absent = [&absent[..], &["lsm_list_modules", "open_tree_attr"]].concat();
        #[rustfmt::skip]
        let from_libc = [
            ("mount", libc::SYS_mount), ("umount2", libc::SYS_umount2), ("pivot_root", libc::SYS_pivot_root),
            ("open_tree", libc::SYS_open_tree), ("move_mount", libc::SYS_move_mount),
            ("fsopen", libc::SYS_fsopen), ("fsconfig", libc::SYS_fsconfig), ("fsmount", libc::SYS_fsmount),
            ("fspick", libc::SYS_fspick), ("mount_setattr", libc::SYS_mount_setattr),
            ("unshare", libc::SYS_unshare), ("setns", libc::SYS_setns),
            ("sethostname", libc::SYS_sethostname), ("setdomainname", libc::SYS_setdomainname),
            ("keyctl", libc::SYS_keyctl), ("add_key", libc::SYS_add_key), ("request_key", libc::SYS_request_key),
            ("bpf", libc::SYS_bpf), ("perf_event_open", libc::SYS_perf_event_open),
            ("fanotify_init", libc::SYS_fanotify_init), ("lookup_dcookie", libc::SYS_lookup_dcookie),
            ("userfaultfd", libc::SYS_userfaultfd), ("io_uring_setup", libc::SYS_io_uring_setup),
            ("io_uring_enter", libc::SYS_io_uring_enter), ("io_uring_register", libc::SYS_io_uring_register),
            ("kcmp", libc::SYS_kcmp), ("pidfd_getfd", libc::SYS_pidfd_getfd),
            ("process_madvise", libc::SYS_process_madvise),
            ("mbind", libc::SYS_mbind), ("set_mempolicy", libc::SYS_set_mempolicy),
            ("set_mempolicy_home_node", libc::SYS_set_mempolicy_home_node),
            ("get_mempolicy", libc::SYS_get_mempolicy), ("migrate_pages", libc::SYS_migrate_pages),
            ("move_pages", libc::SYS_move_pages),
            ("kexec_load", libc::SYS_kexec_load), ("kexec_file_load", libc::SYS_kexec_file_load),
            ("init_module", libc::SYS_init_module), ("finit_module", libc::SYS_finit_module),
            ("delete_module", libc::SYS_delete_module), ("open_by_handle_at", libc::SYS_open_by_handle_at),
            ("reboot", libc::SYS_reboot), ("swapon", libc::SYS_swapon), ("swapoff", libc::SYS_swapoff),
            ("settimeofday", libc::SYS_settimeofday), ("clock_settime", libc::SYS_clock_settime),
            ("acct", libc::SYS_acct), ("syslog", libc::SYS_syslog), ("quotactl", libc::SYS_quotactl),
            ("quotactl_fd", libc::SYS_quotactl_fd), ("vhangup", libc::SYS_vhangup),
            ("iopl", libc::SYS_iopl), ("ioperm", libc::SYS_ioperm),
            ("_sysctl", libc::SYS__sysctl), ("uselib", libc::SYS_uselib), ("ustat", libc::SYS_ustat),
            ("sysfs", libc::SYS_sysfs), ("nfsservctl", libc::SYS_nfsservctl), ("getpmsg", libc::SYS_getpmsg),
            ("putpmsg", libc::SYS_putpmsg), ("afs_syscall", libc::SYS_afs_syscall),
            ("tuxcall", libc::SYS_tuxcall), ("security", libc::SYS_security), ("vserver", libc::SYS_vserver),
            ("clone", libc::SYS_clone), ("personality", libc::SYS_personality), ("socket", libc::SYS_socket),
            ("clone3", libc::SYS_clone3), ("read", libc::SYS_read), ("getpid", libc::SYS_getpid),
            ("ptrace", libc::SYS_ptrace), ("name_to_handle_at", libc::SYS_name_to_handle_at),
            ("adjtimex", libc::SYS_adjtimex), ("clock_adjtime", libc::SYS_clock_adjtime),
            ("chroot", libc::SYS_chroot),
        ];
        assert_numbers_match(Arch::X86_64, &from_libc, &absent);
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn aarch64_numbers_are_the_kernels() {
        // lsm_* (459-461) and open_tree_attr (467): newer than the libc crate's table.
        let absent = [
            "lsm_get_self_attr",
            "lsm_set_self_attr",
            "lsm_list_modules",
            "open_tree_attr",
        ];
        #[rustfmt::skip]
        let from_libc = [
            ("mount", libc::SYS_mount), ("umount2", libc::SYS_umount2), ("pivot_root", libc::SYS_pivot_root),
            ("open_tree", libc::SYS_open_tree), ("move_mount", libc::SYS_move_mount),
            ("fsopen", libc::SYS_fsopen), ("fsconfig", libc::SYS_fsconfig), ("fsmount", libc::SYS_fsmount),
            ("fspick", libc::SYS_fspick), ("mount_setattr", libc::SYS_mount_setattr),
            ("unshare", libc::SYS_unshare), ("setns", libc::SYS_setns),
            ("sethostname", libc::SYS_sethostname), ("setdomainname", libc::SYS_setdomainname),
            ("keyctl", libc::SYS_keyctl), ("add_key", libc::SYS_add_key), ("request_key", libc::SYS_request_key),
            ("bpf", libc::SYS_bpf), ("perf_event_open", libc::SYS_perf_event_open),
            ("fanotify_init", libc::SYS_fanotify_init), ("lookup_dcookie", libc::SYS_lookup_dcookie),
            ("userfaultfd", libc::SYS_userfaultfd), ("io_uring_setup", libc::SYS_io_uring_setup),
            ("io_uring_enter", libc::SYS_io_uring_enter), ("io_uring_register", libc::SYS_io_uring_register),
            ("kcmp", libc::SYS_kcmp), ("pidfd_getfd", libc::SYS_pidfd_getfd),
            ("process_madvise", libc::SYS_process_madvise),
            ("mbind", libc::SYS_mbind), ("set_mempolicy", libc::SYS_set_mempolicy),
            ("set_mempolicy_home_node", libc::SYS_set_mempolicy_home_node),
            ("get_mempolicy", libc::SYS_get_mempolicy), ("migrate_pages", libc::SYS_migrate_pages),
            ("move_pages", libc::SYS_move_pages),
            ("kexec_load", libc::SYS_kexec_load), ("kexec_file_load", libc::SYS_kexec_file_load),
            ("init_module", libc::SYS_init_module), ("finit_module", libc::SYS_finit_module),
            ("delete_module", libc::SYS_delete_module), ("open_by_handle_at", libc::SYS_open_by_handle_at),
            ("reboot", libc::SYS_reboot), ("swapon", libc::SYS_swapon), ("swapoff", libc::SYS_swapoff),
            ("settimeofday", libc::SYS_settimeofday), ("clock_settime", libc::SYS_clock_settime),
            ("acct", libc::SYS_acct), ("syslog", libc::SYS_syslog), ("quotactl", libc::SYS_quotactl),
            ("quotactl_fd", libc::SYS_quotactl_fd), ("vhangup", libc::SYS_vhangup),
            ("nfsservctl", libc::SYS_nfsservctl),
            ("clone", libc::SYS_clone), ("personality", libc::SYS_personality), ("socket", libc::SYS_socket),
            ("clone3", libc::SYS_clone3), ("read", libc::SYS_read), ("getpid", libc::SYS_getpid),
            ("ptrace", libc::SYS_ptrace), ("name_to_handle_at", libc::SYS_name_to_handle_at),
            ("adjtimex", libc::SYS_adjtimex), ("clock_adjtime", libc::SYS_clock_adjtime),
            ("chroot", libc::SYS_chroot),
        ];
        assert_numbers_match(Arch::Aarch64, &from_libc, &absent);
    }

    #[test]
    fn the_filters_build_for_both_architectures() {
        for arch in BOTH {
            let denied = deny_list(arch).unwrap();
            let enosys = enosys_filter(arch).unwrap();
            for program in [&denied, &enosys] {
                assert!(
                    program.len() < libc::BPF_MAXINSNS as usize,
                    "{arch:?}: {}",
                    program.len()
                );
            }
        }
    }

    #[test]
    fn the_deny_list_refuses_every_listed_call_and_lets_others_through() {
        for arch in BOTH {
            let program = deny_list(arch).unwrap();
            for call in DENIED.iter().filter(|call| arch.number(call).is_some()) {
                assert_eq!(
                    run(&program, &Call::new(arch, call, &[])),
                    EPERM,
                    "{} on {arch:?}",
                    call.name
                );
            }
            for call in ALLOWED {
                assert_eq!(
                    run(&program, &Call::new(arch, call, &[])),
                    ALLOW,
                    "{} on {arch:?}",
                    call.name
                );
            }
        }
    }

    #[test]
    fn clone_is_refused_only_with_a_namespace_flag() {
        let sigchld = libc::SIGCHLD as u64;
        for arch in BOTH {
            let program = deny_list(arch).unwrap();
            let fork = Call::new(arch, &CLONE, &[sigchld]);
            assert_eq!(run(&program, &fork), ALLOW, "{arch:?}");
            let thread = (libc::CLONE_VM | libc::CLONE_FS | libc::CLONE_FILES | libc::CLONE_THREAD) as u64;
            assert_eq!(
                run(&program, &Call::new(arch, &CLONE, &[thread])),
                ALLOW,
                "{arch:?}"
            );
            for (name, flag) in NAMESPACE_FLAGS {
                let call = Call::new(arch, &CLONE, &[sigchld | flag as u64]);
                assert_eq!(run(&program, &call), EPERM, "{name} on {arch:?}");
            }
        }
    }

    #[test]
    fn personality_takes_only_the_values_docker_allows() {
        for arch in BOTH {
            let program = deny_list(arch).unwrap();
            for (name, persona) in PERSONAS_ALLOWED {
                let call = Call::new(arch, &PERSONALITY, &[u64::from(persona)]);
                assert_eq!(run(&program, &call), ALLOW, "{name} on {arch:?}");
            }
            for persona in [
                libc::ADDR_NO_RANDOMIZE,
                libc::READ_IMPLIES_EXEC,
                libc::UNAME26 | 1,
            ] {
                let call = Call::new(arch, &PERSONALITY, &[persona as u64]);
                assert_eq!(run(&program, &call), EPERM, "{persona:#x} on {arch:?}");
            }
            // High bits the kernel ignores change nothing, either way.
            let hidden = Call::new(arch, &PERSONALITY, &[1 << 32 | libc::ADDR_NO_RANDOMIZE as u64]);
            assert_eq!(run(&program, &hidden), EPERM, "{arch:?}");
            assert_eq!(
                run(&program, &Call::new(arch, &PERSONALITY, &[1 << 32])),
                ALLOW,
                "{arch:?}"
            );
        }
    }

    #[test]
    fn socket_refuses_af_alg_and_af_vsock_only() {
        for arch in BOTH {
            let program = deny_list(arch).unwrap();
            for family in [
                libc::AF_UNIX,
                libc::AF_INET,
                libc::AF_INET6,
                libc::AF_NETLINK,
                libc::AF_PACKET,
            ] {
                let call = Call::new(arch, &SOCKET, &[family as u64, libc::SOCK_STREAM as u64]);
                assert_eq!(run(&program, &call), ALLOW, "family {family} on {arch:?}");
            }
            for (name, family) in SOCKET_FAMILIES_DENIED {
                for high_bits in [0, 1 << 32] {
                    let call = Call::new(arch, &SOCKET, &[high_bits | family as u64]);
                    assert_eq!(run(&program, &call), EPERM, "{name} on {arch:?}");
                }
            }
        }
    }

    #[test]
    fn clone3_is_answered_enosys_and_nothing_else_is() {
        for arch in BOTH {
            let program = enosys_filter(arch).unwrap();
            assert_eq!(run(&program, &Call::new(arch, &CLONE3, &[])), ENOSYS, "{arch:?}");
            for call in DENIED
                .iter()
                .chain([&CLONE, &PERSONALITY, &SOCKET])
                .chain(ALLOWED)
            {
                if arch.number(call).is_some() {
                    assert_eq!(
                        run(&program, &Call::new(arch, call, &[])),
                        ALLOW,
                        "{} on {arch:?}",
                        call.name
                    );
                }
            }
        }
    }

    #[test]
    fn x32_numbers_are_answered_enosys_on_x86_64() {
        let program = enosys_filter(Arch::X86_64).unwrap();
        let x86_64 = Arch::X86_64.audit_arch();
        // Every x86_64 number with the x32 bit set, the x32-only numbers from 512 on, and the
        // largest number.
        let x32_numbers = DENIED
            .iter()
            .chain(ALLOWED)
            .map(|call| nr(Arch::X86_64, call) | 0x4000_0000)
            .chain([0x4000_0000 + 512, 0x4000_0000 + 547, u32::MAX]);
        for number in x32_numbers {
            assert_eq!(
                run(&program, &Call::numbered(x86_64, number, &[])),
                ENOSYS,
                "{number:#x}"
            );
        }
        // Just below the x32 range: not x32, and so left to the kernel, which has no such call.
        assert_eq!(run(&program, &Call::numbered(x86_64, 0x3fff_ffff, &[])), ALLOW);
        // aarch64 has no x32: its filter has no such check.
        let aarch64 = enosys_filter(Arch::Aarch64).unwrap();
        let number = 0x4000_0000 + nr(Arch::Aarch64, &READ);
        assert_eq!(
            run(&aarch64, &Call::numbered(Arch::Aarch64.audit_arch(), number, &[])),
            ALLOW
        );
        assert!(aarch64.len() < program.len());
    }

    #[test]
    fn calls_from_another_architecture_are_killed_by_both_filters() {
        for (arch, other) in [(Arch::X86_64, AUDIT_ARCH_I386), (Arch::Aarch64, AUDIT_ARCH_ARM)] {
            for program in [deny_list(arch).unwrap(), enosys_filter(arch).unwrap()] {
                for call in ALLOWED.iter().copied().chain(DENIED).chain([&CLONE3]) {
                    if let Some(number) = arch.number(call) {
                        let call = Call::numbered(other, u32::try_from(number).unwrap(), &[]);
                        assert_eq!(run(&program, &call), KILL, "{arch:?}");
                    }
                }
                // Each architecture's calls are killed by the other's filter, too.
                let swapped = if arch == Arch::X86_64 {
                    Arch::Aarch64
                } else {
                    Arch::X86_64
                };
                let call = Call::numbered(swapped.audit_arch(), nr(swapped, &READ), &[]);
                assert_eq!(run(&program, &call), KILL, "{arch:?}");
            }
        }
    }

    #[test]
    fn the_argument_tables_hold_the_kernels_values() {
        assert_eq!(PERSONAS_ALLOWED[2].1, libc::UNAME26 as u32);
        assert_eq!(
            NAMESPACE_FLAGS.iter().fold(0, |all, (_, flag)| all | flag),
            0x7e02_0000
        );
        assert_eq!(Arch::X86_64.audit_arch(), 0xc000_003e);
        assert_eq!(Arch::Aarch64.audit_arch(), 0xc000_00b7);
    }
}
