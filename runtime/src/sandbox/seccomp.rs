//! Docker's default seccomp profile, as kiln's own table, compiled to BPF with `seccompiler`
//! and installed in the payload right before its capabilities take their final form.
//!
//! The profile: every syscall not listed fails with EPERM; `clone` is allowed only without
//! namespace flags, `clone3` fails with ENOSYS (so libc falls back to `clone`), `socket` refuses
//! AF_VSOCK, `personality` takes only the harmless personas; the syscalls Docker grants only
//! with a capability (`unshare`, `mount`, `setns`, `bpf`, `reboot`, ...) follow the set given.
//! Installing a filter needs CAP_SYS_ADMIN because no_new_privs stays off (Docker leaves it off
//! so setuid programs work): callers install it while that capability is still permitted.
//! Must not: set no_new_privs.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::caps::{Capability, CapabilitySet};

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("building the seccomp filter: {0}")]
    Build(String),
    #[error("installing the seccomp filter: {0}")]
    Install(std::io::Error),
}

/// The syscalls Docker's profile allows unconditionally.
const ALLOWED: &[i64] = &[
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_access,
    libc::SYS_adjtimex,
    libc::SYS_alarm,
    libc::SYS_bind,
    libc::SYS_brk,
    libc::SYS_capget,
    libc::SYS_capset,
    libc::SYS_chdir,
    libc::SYS_chmod,
    libc::SYS_chown,
    libc::SYS_clock_adjtime,
    libc::SYS_clock_getres,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_close,
    libc::SYS_close_range,
    libc::SYS_connect,
    libc::SYS_copy_file_range,
    libc::SYS_creat,
    libc::SYS_dup,
    libc::SYS_dup2,
    libc::SYS_dup3,
    libc::SYS_epoll_create,
    libc::SYS_epoll_create1,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_ctl_old,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_pwait2,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_wait_old,
    libc::SYS_eventfd,
    libc::SYS_eventfd2,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_fadvise64,
    libc::SYS_fallocate,
    libc::SYS_fanotify_mark,
    libc::SYS_fchdir,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchmodat2,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_fcntl,
    libc::SYS_fdatasync,
    libc::SYS_fgetxattr,
    libc::SYS_flistxattr,
    libc::SYS_flock,
    libc::SYS_fork,
    libc::SYS_fremovexattr,
    libc::SYS_fsetxattr,
    libc::SYS_fstat,
    libc::SYS_fstatfs,
    libc::SYS_fsync,
    libc::SYS_ftruncate,
    libc::SYS_futex,
    libc::SYS_futex_waitv,
    libc::SYS_futimesat,
    libc::SYS_getcpu,
    libc::SYS_getcwd,
    libc::SYS_getdents,
    libc::SYS_getdents64,
    libc::SYS_getegid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getgroups,
    libc::SYS_getitimer,
    libc::SYS_getpeername,
    libc::SYS_getpgid,
    libc::SYS_getpgrp,
    libc::SYS_getpid,
    libc::SYS_getppid,
    libc::SYS_getpriority,
    libc::SYS_getrandom,
    libc::SYS_getresgid,
    libc::SYS_getresuid,
    libc::SYS_getrlimit,
    libc::SYS_get_robust_list,
    libc::SYS_getrusage,
    libc::SYS_getsid,
    libc::SYS_getsockname,
    libc::SYS_getsockopt,
    libc::SYS_get_thread_area,
    libc::SYS_gettid,
    libc::SYS_gettimeofday,
    libc::SYS_getuid,
    libc::SYS_getxattr,
    libc::SYS_inotify_add_watch,
    libc::SYS_inotify_init,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_rm_watch,
    libc::SYS_io_cancel,
    libc::SYS_ioctl,
    libc::SYS_io_destroy,
    libc::SYS_io_getevents,
    libc::SYS_ioprio_get,
    libc::SYS_ioprio_set,
    libc::SYS_io_setup,
    libc::SYS_io_submit,
    libc::SYS_kill,
    libc::SYS_landlock_add_rule,
    libc::SYS_landlock_create_ruleset,
    libc::SYS_landlock_restrict_self,
    libc::SYS_lchown,
    libc::SYS_lgetxattr,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_listen,
    libc::SYS_listxattr,
    libc::SYS_llistxattr,
    libc::SYS_lremovexattr,
    libc::SYS_lseek,
    libc::SYS_lsetxattr,
    libc::SYS_lstat,
    libc::SYS_madvise,
    libc::SYS_membarrier,
    libc::SYS_memfd_create,
    libc::SYS_memfd_secret,
    libc::SYS_mincore,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_mlock,
    libc::SYS_mlock2,
    libc::SYS_mlockall,
    libc::SYS_mmap,
    libc::SYS_mprotect,
    libc::SYS_mq_getsetattr,
    libc::SYS_mq_notify,
    libc::SYS_mq_open,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_unlink,
    libc::SYS_mremap,
    libc::SYS_msgctl,
    libc::SYS_msgget,
    libc::SYS_msgrcv,
    libc::SYS_msgsnd,
    libc::SYS_msync,
    libc::SYS_munlock,
    libc::SYS_munlockall,
    libc::SYS_munmap,
    libc::SYS_name_to_handle_at,
    libc::SYS_nanosleep,
    libc::SYS_newfstatat,
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_pause,
    libc::SYS_pidfd_open,
    libc::SYS_pidfd_send_signal,
    libc::SYS_pipe,
    libc::SYS_pipe2,
    libc::SYS_pkey_alloc,
    libc::SYS_pkey_free,
    libc::SYS_pkey_mprotect,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_prctl,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_preadv2,
    libc::SYS_prlimit64,
    libc::SYS_process_mrelease,
    libc::SYS_pselect6,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_pwritev2,
    libc::SYS_read,
    libc::SYS_readahead,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_readv,
    libc::SYS_recvfrom,
    libc::SYS_recvmmsg,
    libc::SYS_recvmsg,
    libc::SYS_remap_file_pages,
    libc::SYS_removexattr,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_restart_syscall,
    libc::SYS_rmdir,
    libc::SYS_rseq,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigpending,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigqueueinfo,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigsuspend,
    libc::SYS_rt_sigtimedwait,
    libc::SYS_rt_tgsigqueueinfo,
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_getattr,
    libc::SYS_sched_getparam,
    libc::SYS_sched_get_priority_max,
    libc::SYS_sched_get_priority_min,
    libc::SYS_sched_getscheduler,
    libc::SYS_sched_rr_get_interval,
    libc::SYS_sched_setaffinity,
    libc::SYS_sched_setattr,
    libc::SYS_sched_setparam,
    libc::SYS_sched_setscheduler,
    libc::SYS_sched_yield,
    libc::SYS_seccomp,
    libc::SYS_select,
    libc::SYS_semctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_sendfile,
    libc::SYS_sendmmsg,
    libc::SYS_sendmsg,
    libc::SYS_sendto,
    libc::SYS_setfsgid,
    libc::SYS_setfsuid,
    libc::SYS_setgid,
    libc::SYS_setgroups,
    libc::SYS_setitimer,
    libc::SYS_setpgid,
    libc::SYS_setpriority,
    libc::SYS_setregid,
    libc::SYS_setresgid,
    libc::SYS_setresuid,
    libc::SYS_setreuid,
    libc::SYS_setrlimit,
    libc::SYS_set_robust_list,
    libc::SYS_setsid,
    libc::SYS_setsockopt,
    libc::SYS_set_thread_area,
    libc::SYS_set_tid_address,
    libc::SYS_setuid,
    libc::SYS_setxattr,
    libc::SYS_shmat,
    libc::SYS_shmctl,
    libc::SYS_shmdt,
    libc::SYS_shmget,
    libc::SYS_shutdown,
    libc::SYS_sigaltstack,
    libc::SYS_signalfd,
    libc::SYS_signalfd4,
    libc::SYS_socketpair,
    libc::SYS_splice,
    libc::SYS_stat,
    libc::SYS_statfs,
    libc::SYS_statx,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_sync,
    libc::SYS_sync_file_range,
    libc::SYS_syncfs,
    libc::SYS_sysinfo,
    libc::SYS_tee,
    libc::SYS_tgkill,
    libc::SYS_time,
    libc::SYS_timer_create,
    libc::SYS_timer_delete,
    libc::SYS_timer_getoverrun,
    libc::SYS_timer_gettime,
    libc::SYS_timer_settime,
    libc::SYS_timerfd_create,
    libc::SYS_timerfd_gettime,
    libc::SYS_timerfd_settime,
    libc::SYS_times,
    libc::SYS_tkill,
    libc::SYS_truncate,
    libc::SYS_umask,
    libc::SYS_uname,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_utime,
    libc::SYS_utimensat,
    libc::SYS_utimes,
    libc::SYS_vfork,
    libc::SYS_vmsplice,
    libc::SYS_wait4,
    libc::SYS_waitid,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_arch_prctl,
    libc::SYS_modify_ldt,
    libc::SYS_chroot,
    libc::SYS_ptrace,
];

/// Newer syscalls the libc crate does not name yet (x86_64 numbers).
#[cfg(target_arch = "x86_64")]
const ALLOWED_BY_NUMBER: &[i64] = &[
    333, // io_pgetevents
    451, // cachestat
    453, // map_shadow_stack
    454, // futex_wake
    455, // futex_wait
    456, // futex_requeue
];
#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_BY_NUMBER: &[i64] = &[];

/// Syscalls Docker allows only with a capability.
fn by_capability() -> Vec<(Capability, &'static [i64])> {
    use Capability::*;
    vec![
        (
            SysAdmin,
            &[
                libc::SYS_bpf,
                libc::SYS_fanotify_init,
                libc::SYS_lookup_dcookie,
                libc::SYS_mount,
                libc::SYS_perf_event_open,
                libc::SYS_quotactl,
                libc::SYS_setdomainname,
                libc::SYS_sethostname,
                libc::SYS_setns,
                libc::SYS_syslog,
                libc::SYS_umount2,
                libc::SYS_unshare,
                libc::SYS_fsconfig,
                libc::SYS_fsmount,
                libc::SYS_fsopen,
                libc::SYS_fspick,
                libc::SYS_move_mount,
                libc::SYS_open_tree,
                libc::SYS_mount_setattr,
            ],
        ),
        (SysBoot, &[libc::SYS_reboot]),
        (
            SysModule,
            &[
                libc::SYS_delete_module,
                libc::SYS_init_module,
                libc::SYS_finit_module,
            ],
        ),
        (SysPacct, &[libc::SYS_acct]),
        (
            SysPtrace,
            &[
                libc::SYS_kcmp,
                libc::SYS_pidfd_getfd,
                libc::SYS_process_madvise,
                libc::SYS_process_vm_readv,
                libc::SYS_process_vm_writev,
            ],
        ),
        (SysRawio, &[libc::SYS_iopl, libc::SYS_ioperm]),
        (
            SysTime,
            &[
                libc::SYS_settimeofday,
                libc::SYS_clock_settime,
                libc::SYS_adjtimex,
            ],
        ),
        (SysTtyConfig, &[libc::SYS_vhangup]),
        (
            SysNice,
            &[
                libc::SYS_get_mempolicy,
                libc::SYS_mbind,
                libc::SYS_set_mempolicy,
                libc::SYS_set_mempolicy_home_node,
            ],
        ),
        (Syslog, &[libc::SYS_syslog]),
    ]
}

/// clone's namespace flags (CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID |
/// NEWNET): refused without CAP_SYS_ADMIN.
const CLONE_NAMESPACE_FLAGS: u64 = 0x7E02_0000;
/// personality() values Docker allows: PER_LINUX, UNAME26, PER_LINUX32, UNAME26|PER_LINUX32,
/// and the query 0xffffffff.
const PERSONAS: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];
const AF_VSOCK: u64 = 40;

/// The profile for a container whose payload holds `caps`.
pub struct SeccompProfile {
    rules: BTreeMap<i64, Vec<SeccompRule>>,
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SeccompError> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| SeccompError::Build(e.to_string()))
}

fn rule(conds: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompError> {
    SeccompRule::new(conds).map_err(|e| SeccompError::Build(e.to_string()))
}

pub fn docker_default(caps: &CapabilitySet) -> Result<SeccompProfile, SeccompError> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in ALLOWED.iter().chain(ALLOWED_BY_NUMBER) {
        rules.insert(nr, Vec::new());
    }
    for (cap, syscalls) in by_capability() {
        if caps.contains(cap) {
            for &nr in syscalls {
                rules.insert(nr, Vec::new());
            }
        }
    }
    if caps.contains(Capability::SysAdmin) {
        rules.insert(libc::SYS_clone, Vec::new());
        rules.insert(libc::SYS_clone3, Vec::new());
    } else {
        rules.insert(
            libc::SYS_clone,
            vec![rule(vec![cond(
                0,
                SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS),
                0,
            )?])?],
        );
    }
    rules.insert(
        libc::SYS_personality,
        PERSONAS
            .iter()
            .map(|&p| rule(vec![cond(0, SeccompCmpOp::Eq, p)?]))
            .collect::<Result<_, _>>()?,
    );
    rules.insert(
        libc::SYS_socket,
        vec![rule(vec![cond(0, SeccompCmpOp::Ne, AF_VSOCK)?])?],
    );
    Ok(SeccompProfile { rules })
}

fn arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| SeccompError::Build(e.to_string()))
}

/// The compiled filters, in installation order.
pub struct SeccompPrograms {
    allow_list: BpfProgram,
    /// `clone3` answers ENOSYS (installed last, so its answer wins over the allow-list's
    /// EPERM: the kernel keeps the first of equally strict answers, newest filter first).
    clone3: Option<BpfProgram>,
}

impl SeccompProfile {
    pub fn compile(self) -> Result<SeccompPrograms, SeccompError> {
        let clone3_free = self.rules.contains_key(&libc::SYS_clone3);
        let build = |rules, mismatch, matched| -> Result<BpfProgram, SeccompError> {
            SeccompFilter::new(rules, mismatch, matched, arch()?)
                .and_then(|f| f.try_into())
                .map_err(|e: seccompiler::BackendError| SeccompError::Build(e.to_string()))
        };
        let allow_list = build(
            self.rules,
            SeccompAction::Errno(libc::EPERM as u32),
            SeccompAction::Allow,
        )?;
        let clone3 = if clone3_free {
            None
        } else {
            let mut r = BTreeMap::new();
            r.insert(libc::SYS_clone3, Vec::new());
            Some(build(
                r,
                SeccompAction::Allow,
                SeccompAction::Errno(libc::ENOSYS as u32),
            )?)
        };
        Ok(SeccompPrograms { allow_list, clone3 })
    }
}

/// Install the filters in the calling thread (needs CAP_SYS_ADMIN; no_new_privs stays off).
pub fn install(programs: &SeccompPrograms) -> Result<(), SeccompError> {
    for prog in std::iter::once(&programs.allow_list).chain(programs.clone3.as_ref()) {
        let fprog = libc::sock_fprog {
            len: prog.len() as u16,
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: fprog points at a live, well-formed BPF program for the duration of the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(SeccompError::Install(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_profile_compiles_quickly() {
        let t = std::time::Instant::now();
        let progs = docker_default(&CapabilitySet::docker_default())
            .unwrap()
            .compile()
            .unwrap();
        assert!(progs.allow_list.len() > 300);
        assert!(progs.clone3.is_some());
        // Compiled per container start: keep it cheap (it is, by a wide margin).
        assert!(t.elapsed() < std::time::Duration::from_millis(200));
    }

    #[test]
    fn capability_gated_syscalls_follow_the_set() {
        let d = docker_default(&CapabilitySet::docker_default()).unwrap();
        assert!(!d.rules.contains_key(&libc::SYS_unshare));
        assert!(!d.rules.contains_key(&libc::SYS_mount));
        assert!(d.rules.contains_key(&libc::SYS_chroot));
        let mut more = CapabilitySet::docker_default();
        more.insert(Capability::SysAdmin);
        let d = docker_default(&more).unwrap();
        assert!(d.rules.contains_key(&libc::SYS_unshare));
        assert!(d.rules[&libc::SYS_clone].is_empty());
    }
}
