//! A hand-written seccomp-BPF filter.
//!
//! The filter is a deny list: it refuses system calls that reach beyond the
//! sandbox (tracing, mounting, namespaces, kernel modules, keyrings, eBPF,
//! io_uring, which bypasses seccomp) and sockets other than `AF_UNIX`, and
//! allows everything else, so ordinary interpreters and compilers run
//! unchanged. It is built once in the parent and installed by the child just
//! before `execve`, after `PR_SET_NO_NEW_PRIVS`.

/// One BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
pub(crate) struct SockFprog {
    pub len: u16,
    pub filter: *const SockFilter,
}

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
const BPF_JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K: u16 = 0x05 | 0x30; // BPF_JMP | BPF_JGE | BPF_K
const BPF_JSET_K: u16 = 0x05 | 0x40; // BPF_JMP | BPF_JSET | BPF_K
const BPF_RET_K: u16 = 0x06;

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;

// Offsets in `struct seccomp_data`.
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const OFFSET_ARG0: u32 = 16; // Low 32 bits on little-endian.

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64

/// Namespace-creating `clone` flags.
const NAMESPACE_FLAGS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u32;

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// System calls refused with `EPERM`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn denied() -> Vec<libc::c_long> {
    let mut nrs = vec![
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_mount_setattr,
        libc::SYS_bpf,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_perf_event_open,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_syslog,
        libc::SYS_acct,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_quotactl,
        libc::SYS_vhangup,
    ];
    #[cfg(target_arch = "x86_64")]
    nrs.extend([libc::SYS_iopl, libc::SYS_ioperm, libc::SYS_uselib]);
    nrs
}

/// The program as the bytes of a `struct sock_filter` array.
pub(crate) fn to_bytes(program: &[SockFilter]) -> Vec<u8> {
    program
        .iter()
        .flat_map(|insn| {
            let mut bytes = [0u8; 8];
            bytes[..2].copy_from_slice(&insn.code.to_ne_bytes());
            bytes[2] = insn.jt;
            bytes[3] = insn.jf;
            bytes[4..].copy_from_slice(&insn.k.to_ne_bytes());
            bytes
        })
        .collect()
}

/// Builds the filter program, or `None` on architectures without one.
pub(crate) fn filter() -> Option<Vec<SockFilter>> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let eperm = RET_ERRNO | libc::EPERM as u32;
        let mut program = vec![
            stmt(BPF_LD_W_ABS, OFFSET_ARCH),
            jump(BPF_JEQ_K, AUDIT_ARCH, 1, 0),
            stmt(BPF_RET_K, RET_KILL_PROCESS),
            stmt(BPF_LD_W_ABS, OFFSET_NR),
            // The x32 ABI (bit 30) would reach the same calls by other numbers.
            jump(BPF_JGE_K, 0x4000_0000, 0, 1),
            stmt(BPF_RET_K, eperm),
        ];
        for nr in denied() {
            program.push(jump(BPF_JEQ_K, nr as u32, 0, 1));
            program.push(stmt(BPF_RET_K, eperm));
        }
        // clone3 passes its flags in memory, which BPF cannot read; ENOSYS
        // makes libc fall back to clone, whose flags are checked below.
        program.push(jump(BPF_JEQ_K, libc::SYS_clone3 as u32, 0, 1));
        program.push(stmt(BPF_RET_K, RET_ERRNO | libc::ENOSYS as u32));
        program.extend([
            jump(BPF_JEQ_K, libc::SYS_clone as u32, 0, 4),
            stmt(BPF_LD_W_ABS, OFFSET_ARG0),
            jump(BPF_JSET_K, NAMESPACE_FLAGS, 0, 1),
            stmt(BPF_RET_K, eperm),
            stmt(BPF_RET_K, RET_ALLOW),
        ]);
        program.extend([
            jump(BPF_JEQ_K, libc::SYS_socket as u32, 0, 4),
            stmt(BPF_LD_W_ABS, OFFSET_ARG0),
            jump(BPF_JEQ_K, libc::AF_UNIX as u32, 0, 1),
            stmt(BPF_RET_K, RET_ALLOW),
            stmt(BPF_RET_K, RET_ERRNO | libc::EAFNOSUPPORT as u32),
        ]);
        program.push(stmt(BPF_RET_K, RET_ALLOW));
        Some(program)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_jump_lands_inside_the_program() {
        let program = filter().unwrap_or_default();
        assert!(!program.is_empty());
        assert!(program.len() < u16::MAX as usize);
        for (idx, insn) in program.iter().enumerate() {
            if insn.code & 0x07 == 0x05 {
                assert!(idx + 1 + (insn.jt.max(insn.jf) as usize) < program.len());
            }
        }
        assert_eq!(program.last().map(|i| i.k), Some(RET_ALLOW));
    }
}
