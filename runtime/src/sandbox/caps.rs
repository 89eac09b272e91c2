//! Linux capabilities of a container's processes: the set (Docker's 14 by default), and the
//! calls that give a process exactly that set.
//!
//! Order (see `security`): [`drop_bounding`] → seccomp (needs CAP_SYS_ADMIN) →
//! [`keep_across_user_switch`] → setgroups, setgid, setuid → [`apply`]. A root payload ends with permitted = effective = bounding = the set; a non-root
//! one keeps only the bounding set, the kernel clearing the others at exec (no file caps),
//! exactly as under Docker. Raw `capset(2)`: two words of version 3, nothing a crate adds.
//! Also the one reading of docker's `--cap-add`/`--cap-drop`/`--privileged` into a set
//! ([`tweak`], moby's `TweakCapabilities`), over kiln's table of capability names.
//! Must not: apply anything but the spec's set (the spec carries it).

/// Capabilities kiln names (the numbers are the kernel's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Capability {
    Chown = 0,
    DacOverride = 1,
    DacReadSearch = 2,
    Fowner = 3,
    Fsetid = 4,
    Kill = 5,
    Setgid = 6,
    Setuid = 7,
    Setpcap = 8,
    LinuxImmutable = 9,
    NetBindService = 10,
    NetBroadcast = 11,
    NetAdmin = 12,
    NetRaw = 13,
    IpcLock = 14,
    IpcOwner = 15,
    SysModule = 16,
    SysRawio = 17,
    SysChroot = 18,
    SysPtrace = 19,
    SysPacct = 20,
    SysAdmin = 21,
    SysBoot = 22,
    SysNice = 23,
    SysResource = 24,
    SysTime = 25,
    SysTtyConfig = 26,
    Mknod = 27,
    Lease = 28,
    AuditWrite = 29,
    AuditControl = 30,
    Setfcap = 31,
    MacOverride = 32,
    MacAdmin = 33,
    Syslog = 34,
    WakeAlarm = 35,
    BlockSuspend = 36,
    AuditRead = 37,
    Perfmon = 38,
    Bpf = 39,
    CheckpointRestore = 40,
}

/// The highest capability number kiln knows.
const LAST_CAP: u8 = 40;

/// Every capability kiln knows, with the kernel's name (without `CAP_`), in number order.
const NAMES: [(&str, Capability); 41] = {
    use Capability::*;
    [
        ("CHOWN", Chown),
        ("DAC_OVERRIDE", DacOverride),
        ("DAC_READ_SEARCH", DacReadSearch),
        ("FOWNER", Fowner),
        ("FSETID", Fsetid),
        ("KILL", Kill),
        ("SETGID", Setgid),
        ("SETUID", Setuid),
        ("SETPCAP", Setpcap),
        ("LINUX_IMMUTABLE", LinuxImmutable),
        ("NET_BIND_SERVICE", NetBindService),
        ("NET_BROADCAST", NetBroadcast),
        ("NET_ADMIN", NetAdmin),
        ("NET_RAW", NetRaw),
        ("IPC_LOCK", IpcLock),
        ("IPC_OWNER", IpcOwner),
        ("SYS_MODULE", SysModule),
        ("SYS_RAWIO", SysRawio),
        ("SYS_CHROOT", SysChroot),
        ("SYS_PTRACE", SysPtrace),
        ("SYS_PACCT", SysPacct),
        ("SYS_ADMIN", SysAdmin),
        ("SYS_BOOT", SysBoot),
        ("SYS_NICE", SysNice),
        ("SYS_RESOURCE", SysResource),
        ("SYS_TIME", SysTime),
        ("SYS_TTY_CONFIG", SysTtyConfig),
        ("MKNOD", Mknod),
        ("LEASE", Lease),
        ("AUDIT_WRITE", AuditWrite),
        ("AUDIT_CONTROL", AuditControl),
        ("SETFCAP", Setfcap),
        ("MAC_OVERRIDE", MacOverride),
        ("MAC_ADMIN", MacAdmin),
        ("SYSLOG", Syslog),
        ("WAKE_ALARM", WakeAlarm),
        ("BLOCK_SUSPEND", BlockSuspend),
        ("AUDIT_READ", AuditRead),
        ("PERFMON", Perfmon),
        ("BPF", Bpf),
        ("CHECKPOINT_RESTORE", CheckpointRestore),
    ]
};

impl Capability {
    /// A capability by docker's spelling: `chown`, `CHOWN` or `CAP_CHOWN`.
    pub fn from_name(name: &str) -> Option<Capability> {
        let upper = name.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
        NAMES.iter().find(|(n, _)| *n == bare).map(|(_, c)| *c)
    }
}

/// A `--cap-add`/`--cap-drop` name kiln does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown capability: {0:?}")]
pub struct UnknownCapability(pub String);

/// `ALL` as kiln gives it: every capability the kernel has (up to
/// `/proc/sys/kernel/cap_last_cap`) that kiln's own bounding set still holds. (Docker asks
/// for every capability of the kernel and fails to start the container when its daemon
/// lacks one.)
pub fn all_available() -> CapabilitySet {
    let mut set = CapabilitySet(0);
    for (_, cap) in NAMES {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as u8 as libc::c_ulong, 0, 0, 0) };
        if rc == 1 {
            set.insert(cap);
        }
    }
    set
}

/// Docker's reading of `--privileged`, `--cap-add` and `--cap-drop` (moby's
/// `TweakCapabilities`): privileged is `all`; `--cap-add ALL` is `all` less the drops;
/// `--cap-drop ALL` is only the adds; otherwise the default less the drops plus the adds.
/// Names with or without `CAP_`, any case; `ALL` in either list.
pub fn tweak(
    adds: &[String],
    drops: &[String],
    privileged: bool,
    all: CapabilitySet,
) -> Result<CapabilitySet, UnknownCapability> {
    if privileged {
        return Ok(all);
    }
    let default = CapabilitySet::docker_default();
    if adds.is_empty() && drops.is_empty() {
        return Ok(default);
    }
    let is_all = |n: &String| {
        let u = n.trim().to_ascii_uppercase();
        u == "ALL" || u == "CAP_ALL"
    };
    let set_of = |names: &[String]| -> Result<CapabilitySet, UnknownCapability> {
        let mut s = CapabilitySet(0);
        for n in names.iter().filter(|n| !is_all(n)) {
            let bare = n.trim().to_ascii_uppercase();
            let bare = bare.strip_prefix("CAP_").unwrap_or(&bare).to_string();
            s.insert(Capability::from_name(n).ok_or(UnknownCapability(format!("CAP_{bare}")))?);
        }
        Ok(s)
    };
    let (add, drop) = (set_of(adds)?, set_of(drops)?);
    Ok(if adds.iter().any(is_all) {
        CapabilitySet(all.0 & !drop.0)
    } else if drops.iter().any(is_all) {
        add
    } else {
        CapabilitySet((default.0 & !drop.0) | add.0)
    })
}

/// Docker's default set: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP
/// SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE (CapEff 00000000a80425fb).
pub const DOCKER_DEFAULT: u64 = 0x0000_0000_a804_25fb;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapabilitySet(u64);

impl CapabilitySet {
    pub fn from_bits(bits: u64) -> CapabilitySet {
        CapabilitySet(bits)
    }

    pub fn docker_default() -> CapabilitySet {
        CapabilitySet(DOCKER_DEFAULT)
    }

    pub fn bits(self) -> u64 {
        self.0
    }

    pub fn contains(self, cap: Capability) -> bool {
        self.0 & (1 << cap as u8) != 0
    }

    pub fn insert(&mut self, cap: Capability) {
        self.0 |= 1 << cap as u8;
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct CapsError {
    what: &'static str,
    source: std::io::Error,
}

fn check(rc: libc::c_long, what: &'static str) -> Result<(), CapsError> {
    if rc < 0 {
        return Err(CapsError {
            what,
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Remove every capability outside `set` from the bounding set (needs CAP_SETPCAP).
pub fn drop_bounding(set: CapabilitySet) -> Result<(), CapsError> {
    for cap in 0..=63u8 {
        if set.0 & (1 << cap) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc < 0 {
            // EINVAL: beyond the kernel's last capability; nothing more to drop.
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
                && cap > LAST_CAP
            {
                break;
            }
            check(
                rc as libc::c_long,
                "dropping a capability from the bounding set",
            )?;
        }
    }
    Ok(())
}

/// Keep permitted capabilities across the switch to a non-root uid (until exec).
pub fn keep_across_user_switch() -> Result<(), CapsError> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    check(rc as libc::c_long, "PR_SET_KEEPCAPS")
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Permitted and effective = `set`, inheritable and ambient empty. (For a non-root uid the
/// exec that follows clears permitted and effective, as the kernel does under Docker.)
pub fn apply(set: CapabilitySet) -> Result<(), CapsError> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    check(rc as libc::c_long, "clearing ambient capabilities")?;
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let words = [set.0 as u32, (set.0 >> 32) as u32];
    let data = words.map(|w| CapData {
        effective: w,
        permitted: w,
        inheritable: 0,
    });
    // SAFETY: capset reads one header and two data structs of the layout declared above.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        )
    };
    check(rc, "capset")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_is_the_fourteen() {
        use Capability::*;
        let mut s = CapabilitySet::from_bits(0);
        for c in [
            Chown,
            DacOverride,
            Fsetid,
            Fowner,
            Mknod,
            NetRaw,
            Setgid,
            Setuid,
            Setfcap,
            Setpcap,
            NetBindService,
            SysChroot,
            Kill,
            AuditWrite,
        ] {
            s.insert(c);
        }
        assert_eq!(s.bits(), DOCKER_DEFAULT);
        assert_eq!(format!("{:016x}", DOCKER_DEFAULT), "00000000a80425fb");
        assert!(!s.contains(SysAdmin));
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_table_is_in_number_order() {
        for (i, (_, c)) in NAMES.iter().enumerate() {
            assert_eq!(*c as usize, i);
        }
        assert_eq!(
            Capability::from_name("cap_sys_admin"),
            Some(Capability::SysAdmin)
        );
        assert_eq!(
            Capability::from_name("Net_Admin"),
            Some(Capability::NetAdmin)
        );
        assert_eq!(Capability::from_name("FOO"), None);
    }

    #[test]
    fn docker_tweak_rules() {
        let all = CapabilitySet::from_bits((1 << 41) - 1);
        let t = |a: &[&str], d: &[&str], p| tweak(&names(a), &names(d), p, all).unwrap().bits();
        assert_eq!(t(&[], &[], false), DOCKER_DEFAULT);
        assert_eq!(t(&[], &[], true), all.bits());
        assert_eq!(t(&["SYS_ADMIN"], &["ALL"], true), all.bits());
        assert_eq!(t(&[], &["chown"], false), DOCKER_DEFAULT & !1);
        assert_eq!(t(&["CAP_SYS_ADMIN"], &[], false), DOCKER_DEFAULT | 1 << 21);
        assert_eq!(t(&["chown"], &["ALL"], false), 1);
        assert_eq!(t(&["ALL"], &["CAP_CHOWN"], false), all.bits() & !1);
        assert_eq!(t(&["all"], &["all"], false), all.bits());
        let e = tweak(&names(&["foo"]), &[], false, all).unwrap_err();
        assert_eq!(e.to_string(), "unknown capability: \"CAP_FOO\"");
    }
}
