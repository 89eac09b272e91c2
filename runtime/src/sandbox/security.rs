//! The payload's identity and confinement, applied in the order the kernel requires:
//! capability bounding set → seccomp filter (installing it needs CAP_SYS_ADMIN, as root still
//! has, because Docker does not set no_new_privs) → keep capabilities across the user switch
//! → supplementary groups, gid, uid → final capability sets → (the caller) exec.
//! Must not: resolve names (callers pass a resolved [`Identity`]).

use nix::unistd::{Gid, Uid};

use super::spec::ContainerSpec;
use super::user::Identity;

/// Take `id`'s groups, gid and uid. A non-root uid ends with no effective or permitted
/// capabilities once it execs (the kernel's rule for a non-root exec without file caps).
pub fn switch_user(id: &Identity) -> Result<(), String> {
    let groups: Vec<Gid> = id.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    nix::unistd::setgroups(&groups).map_err(|e| format!("setgroups: {}", e.desc()))?;
    let gid = Gid::from_raw(id.gid);
    nix::unistd::setresgid(gid, gid, gid)
        .map_err(|e| format!("setgid {}: {}", id.gid, e.desc()))?;
    let uid = Uid::from_raw(id.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setuid {}: {}", id.uid, e.desc()))
}

/// Everything, in order: the process ends as `id` with the spec's capabilities (for root)
/// and Docker's seccomp profile.
pub fn confine(spec: &ContainerSpec, id: &Identity) -> Result<(), String> {
    let caps = super::caps::CapabilitySet::from_bits(spec.capabilities);
    // Compiled before anything is dropped, so a failure leaves nothing half-applied.
    let programs = if spec.seccomp {
        Some(
            super::seccomp::docker_default(&caps)
                .and_then(|p| p.compile())
                .map_err(|e| e.to_string())?,
        )
    } else {
        None
    };
    super::caps::drop_bounding(caps).map_err(|e| e.to_string())?;
    // Still root with every capability effective: installing needs CAP_SYS_ADMIN. The
    // profile allows everything that follows (setgroups, setresuid, capset, execve).
    if let Some(programs) = &programs {
        super::seccomp::install(programs).map_err(|e| e.to_string())?;
    }
    super::caps::keep_across_user_switch().map_err(|e| e.to_string())?;
    switch_user(id)?;
    super::caps::apply(caps).map_err(|e| e.to_string())
}
