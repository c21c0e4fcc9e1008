//! The device policy. A device node is only a name for a (type, major, minor) triple: whoever
//! may call mknod(2) (the container keeps CAP_MKNOD, as Docker's do) can make `b 8 0` in /tmp
//! and read the host's disk through it, whatever /dev holds. The devices cgroup closes that: the
//! kernel checks every open(2) and mknod(2) of a device node against the cgroup's rules.
//!
//! The rules are runc's default: deny every device, allow the ones the container's /dev holds.
//! cgroup v1 takes them as lines in `devices.deny` and `devices.allow` (the kernel's
//! admin-guide/cgroup-v1/devices.rst); cgroup v2 has no such files, and runs an eBPF program of
//! type BPF_PROG_TYPE_CGROUP_DEVICE instead, which `program` writes from the same table. See
//! bpf(2), struct bpf_cgroup_dev_ctx in linux/bpf.h, and the kernel's own example program,
//! tools/testing/selftests/bpf/progs/dev_cgroup.c.

use std::fmt;

/// The two kinds of device node: `c` (character: a stream, like a terminal) and `b` (block: a
/// disk, read in blocks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Char,
    /// The table allows no block device, but a rule could.
    #[allow(dead_code)]
    Block,
}

/// One rule: which devices (a kind, a major number, a minor number or any) and what the
/// container may do with them: `r` read, `w` write, `m` mknod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub kind: Kind,
    pub major: u32,
    pub minor: Option<u32>,
    pub access: &'static str,
}

/// A minor number that matches every minor.
pub const ANY: Option<u32> = None;

/// A rule that allows `access` to the devices (`kind`, `major`, `minor`).
pub const fn allow(kind: Kind, major: u32, minor: Option<u32>, access: &'static str) -> Rule {
    Rule {
        kind,
        major,
        minor,
        access,
    }
}

// ANCHOR: allowed
/// Every device is denied but these: what dev.rs puts in the container's /dev (the numbers are
/// in the kernel's admin-guide/devices.txt). No wildcard for a whole kind (runc still has `c *:* m`):
/// mknod of anything else fails.
pub const ALLOWED: [Rule; 8] = [
    allow(Kind::Char, 1, Some(3), "rwm"), // /dev/null
    allow(Kind::Char, 1, Some(5), "rwm"), // /dev/zero
    allow(Kind::Char, 1, Some(7), "rwm"), // /dev/full
    allow(Kind::Char, 1, Some(8), "rwm"), // /dev/random
    allow(Kind::Char, 1, Some(9), "rwm"), // /dev/urandom
    allow(Kind::Char, 5, Some(0), "rwm"), // /dev/tty
    allow(Kind::Char, 5, Some(2), "rwm"), // /dev/ptmx (devpts's pts/ptmx)
    allow(Kind::Char, 136, ANY, "rwm"),   // /dev/pts/N, the terminals
];
// ANCHOR_END: allowed

/// The rule as cgroup v1 spells it in `devices.allow`: `c 1:3 rwm`, `c 136:* rwm`.
impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Char => 'c',
            Kind::Block => 'b',
        };
        match self.minor {
            Some(minor) => write!(f, "{kind} {}:{minor} {}", self.major, self.access),
            None => write!(f, "{kind} {}:* {}", self.major, self.access),
        }
    }
}

// The context of a device program, struct bpf_cgroup_dev_ctx in include/uapi/linux/bpf.h:
//     u32 access_type;  /* low 16 bits: the type; high 16 bits: the access asked for */
//     u32 major;
//     u32 minor;
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;
const BPF_DEVCG_ACC_MKNOD: i32 = 1;
const BPF_DEVCG_ACC_READ: i32 = 2;
const BPF_DEVCG_ACC_WRITE: i32 = 4;

impl Rule {
    fn bpf_type(&self) -> i32 {
        match self.kind {
            Kind::Char => BPF_DEVCG_DEV_CHAR,
            Kind::Block => BPF_DEVCG_DEV_BLOCK,
        }
    }

    /// The access letters as the context's bits.
    fn bpf_access(&self) -> i32 {
        self.access
            .chars()
            .map(|letter| match letter {
                'r' => BPF_DEVCG_ACC_READ,
                'w' => BPF_DEVCG_ACC_WRITE,
                'm' => BPF_DEVCG_ACC_MKNOD,
                _ => 0,
            })
            .fold(0, |bits, bit| bits | bit)
    }
}

// ANCHOR: assembler
/// One eBPF instruction as the kernel reads it (struct bpf_insn): an opcode, two registers of
/// 4 bits each (destination and source), a jump offset and an immediate value. Eleven 64-bit
/// registers: r0 holds the result, r1 the pointer to the context, r2-r5 are free to use.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    // A C bitfield: the destination is the low half of the byte on little-endian machines.
    let regs = if cfg!(target_endian = "little") {
        src << 4 | dst
    } else {
        dst << 4 | src
    };
    Insn { code, regs, off, imm }
}

/// `dst = *(u32 *)(src + off)`: load 32 bits (BPF_LDX | BPF_MEM | BPF_W).
const fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x61, dst, src, off, 0)
}

/// `dst &= imm` (BPF_ALU | BPF_AND | BPF_K: 32-bit, the upper half is zeroed).
const fn and_imm(dst: u8, imm: i32) -> Insn {
    insn(0x54, dst, 0, 0, imm)
}

/// `dst >>= imm` (BPF_ALU | BPF_RSH | BPF_K).
const fn rsh_imm(dst: u8, imm: i32) -> Insn {
    insn(0x74, dst, 0, 0, imm)
}

/// `dst = src` (BPF_ALU | BPF_MOV | BPF_X).
const fn mov_reg(dst: u8, src: u8) -> Insn {
    insn(0xbc, dst, src, 0, 0)
}

/// `dst = imm` (BPF_ALU | BPF_MOV | BPF_K).
const fn mov_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb4, dst, 0, 0, imm)
}

/// `if dst != imm`, skip the next `off` instructions (BPF_JMP | BPF_JNE | BPF_K).
const fn jne_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x55, dst, 0, off, imm)
}

/// Return r0 to the kernel (BPF_JMP | BPF_EXIT).
const fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}
// ANCHOR_END: assembler

// ANCHOR: program
/// The eBPF program that enforces `rules` on cgroup v2. The kernel runs it at every open(2) and
/// mknod(2) of a device node by a process of the cgroup, with r1 pointing at the context, and
/// allows the access if it returns 1. One block of instructions per rule, in order; the first
/// rule that matches allows, and no match denies.
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut program = vec![
        // r2 = the device's type: the low 16 bits of access_type.
        ldx_w(R2, R1, 0),
        and_imm(R2, 0xffff),
        // r3 = the access asked for: the high 16 bits of access_type.
        ldx_w(R3, R1, 0),
        rsh_imm(R3, 16),
        // r4 = major, r5 = minor.
        ldx_w(R4, R1, 4),
        ldx_w(R5, R1, 8),
    ];
    for rule in rules {
        program.extend(block(rule));
    }
    // No rule matched: deny.
    program.extend([mov_imm(R0, 0), exit()]);
    program
}

/// A jump to the next rule's block; `block` replaces it with the real offset.
const NEXT_RULE: i16 = i16::MAX;

/// One rule: each check that fails jumps to the next rule's block; past every check, allow.
fn block(rule: &Rule) -> Vec<Insn> {
    // Another type of device (char or block): not this rule.
    let mut block = vec![jne_imm(R2, rule.bpf_type(), NEXT_RULE)];
    let all = BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD;
    if rule.bpf_access() != all {
        // An access the rule does not give: not this rule. r1 = r3 without the allowed bits,
        // which must leave nothing (r1, the context pointer, is no longer needed).
        block.extend([
            mov_reg(R1, R3),
            and_imm(R1, !rule.bpf_access()),
            jne_imm(R1, 0, NEXT_RULE),
        ]);
    }
    // Another major number: not this rule.
    block.push(jne_imm(R4, rule.major as i32, NEXT_RULE));
    if let Some(minor) = rule.minor {
        // Another minor number: not this rule.
        block.push(jne_imm(R5, minor as i32, NEXT_RULE));
    }
    // Every check passed: return 1, allow.
    block.extend([mov_imm(R0, 1), exit()]);
    // A jump skips the instructions after it: to the end of the block, where the next begins.
    let len = block.len();
    for (at, insn) in block.iter_mut().enumerate() {
        if insn.off == NEXT_RULE {
            insn.off = (len - at - 1) as i16;
        }
    }
    block
}
// ANCHOR_END: program

#[cfg(test)]
mod tests {
    use super::*;

    const MKNOD: u32 = BPF_DEVCG_ACC_MKNOD as u32;
    const READ: u32 = BPF_DEVCG_ACC_READ as u32;
    const WRITE: u32 = BPF_DEVCG_ACC_WRITE as u32;
    const CHAR: u32 = BPF_DEVCG_DEV_CHAR as u32;
    const BLOCK: u32 = BPF_DEVCG_DEV_BLOCK as u32;

    fn registers(insn: &Insn) -> (usize, usize) {
        let (low, high) = ((insn.regs & 0xf) as usize, (insn.regs >> 4) as usize);
        if cfg!(target_endian = "little") {
            (low, high)
        } else {
            (high, low)
        }
    }

    /// Run `program` as the kernel would, for a process that asks for `access` to the device
    /// (`kind`, `major`, `minor`): an interpreter of the seven instructions above. Returns r0.
    fn run(program: &[Insn], kind: u32, access: u32, major: u32, minor: u32) -> u64 {
        let context = [kind | access << 16, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0;
        loop {
            let insn = program[pc];
            let (dst, src) = registers(&insn);
            pc += 1;
            match insn.code {
                0x61 => {
                    assert_eq!(src, R1 as usize, "loads only from the context");
                    r[dst] = context[insn.off as usize / 4] as u64;
                }
                0x54 => r[dst] = (r[dst] as u32 & insn.imm as u32) as u64,
                0x74 => r[dst] = (r[dst] as u32 >> insn.imm) as u64,
                0xbc => r[dst] = r[src] as u32 as u64,
                0xb4 => r[dst] = insn.imm as u32 as u64,
                0x55 => {
                    if r[dst] != insn.imm as i64 as u64 {
                        pc += insn.off as usize;
                    }
                }
                0x95 => return r[0],
                code => panic!("unknown opcode {code:#x} at {}", pc - 1),
            }
        }
    }

    fn allowed(kind: u32, access: u32, major: u32, minor: u32) -> bool {
        run(&program(&ALLOWED), kind, access, major, minor) == 1
    }

    #[test]
    fn the_policy_allows_what_dev_holds() {
        assert!(allowed(CHAR, READ, 1, 3), "read /dev/null");
        assert!(allowed(CHAR, READ | WRITE, 1, 9), "open /dev/urandom read-write");
        assert!(allowed(CHAR, MKNOD, 1, 3), "mknod c 1 3");
        assert!(allowed(CHAR, READ | WRITE, 5, 2), "open /dev/ptmx");
        assert!(allowed(CHAR, READ | WRITE, 136, 5), "open /dev/pts/5");
    }

    #[test]
    fn the_policy_denies_every_other_device() {
        assert!(!allowed(BLOCK, READ, 8, 0), "read the disk sda");
        assert!(!allowed(BLOCK, MKNOD, 7, 0), "mknod b 7 0");
        assert!(!allowed(CHAR, READ, 1, 1), "read /dev/mem");
        assert!(!allowed(CHAR, READ | WRITE, 4, 1), "open the console tty1");
        // Same numbers, the other kind: b 1:3 is a RAM disk, not /dev/null.
        assert!(!allowed(BLOCK, READ, 1, 3));
        assert!(!allowed(BLOCK, READ, 136, 0));
    }

    #[test]
    fn a_rule_without_every_access_checks_the_access() {
        let read_only = [allow(Kind::Char, 1, Some(3), "r")];
        let program = program(&read_only);
        assert_eq!(run(&program, CHAR, READ, 1, 3), 1);
        assert_eq!(run(&program, CHAR, READ | WRITE, 1, 3), 0);
        assert_eq!(run(&program, CHAR, MKNOD, 1, 3), 0);
        // And a rule for a block device matches block devices only.
        let disk = [allow(Kind::Block, 8, ANY, "r")];
        assert_eq!(run(&super::program(&disk), BLOCK, READ, 8, 16), 1);
        assert_eq!(run(&super::program(&disk), CHAR, READ, 8, 16), 0);
        assert_eq!(disk[0].to_string(), "b 8:* r");
    }

    #[test]
    fn the_program_is_one_block_per_rule() {
        let program = program(&ALLOWED);
        // 6 to load the context, 5 per rule (4 for the rule with any minor), 2 to deny.
        assert_eq!(program.len(), 6 + 7 * 5 + 4 + 2);
        // The first rule's block, instruction by instruction: /dev/null.
        assert_eq!(
            program[6..11],
            [
                jne_imm(R2, BPF_DEVCG_DEV_CHAR, 4),
                jne_imm(R4, 1, 3),
                jne_imm(R5, 3, 2),
                mov_imm(R0, 1),
                exit(),
            ]
        );
        // /dev/pts/N: no check of the minor.
        assert_eq!(
            program[41..45],
            [
                jne_imm(R2, BPF_DEVCG_DEV_CHAR, 3),
                jne_imm(R4, 136, 2),
                mov_imm(R0, 1),
                exit()
            ]
        );
        assert_eq!(program[45..], [mov_imm(R0, 0), exit()]);
        // Every jump lands inside the program: the kernel's verifier insists.
        for (at, insn) in program.iter().enumerate() {
            if insn.code == 0x55 {
                assert!(at + 1 + (insn.off as usize) < program.len(), "jump at {at}");
            }
        }
    }

    #[test]
    fn the_v1_rules_are_the_same_table() {
        let lines: Vec<String> = ALLOWED.iter().map(Rule::to_string).collect();
        assert_eq!(
            lines,
            [
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:2 rwm",
                "c 136:* rwm"
            ]
        );
    }

    #[test]
    fn an_instruction_is_eight_bytes() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }
}
