//! The payload's identity and confinement, applied in the order the kernel requires:
//! capability bounding set → keep capabilities across the user switch → supplementary
//! groups, gid, uid → seccomp filter (installing it needs CAP_SYS_ADMIN, still permitted
//! thanks to keep-caps, because Docker does not set no_new_privs) → final capability sets.
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
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setgid {}: {}", id.gid, e.desc()))?;
    let uid = Uid::from_raw(id.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setuid {}: {}", id.uid, e.desc()))
}

/// Everything, in order: the process ends as `id` with the spec's capabilities (for root)
/// and Docker's seccomp profile.
pub fn confine(spec: &ContainerSpec, id: &Identity) -> Result<(), String> {
    let caps = super::caps::CapabilitySet::from_bits(spec.capabilities);
    super::caps::drop_bounding(caps).map_err(|e| e.to_string())?;
    super::caps::prepare_user_switch().map_err(|e| e.to_string())?;
    switch_user(id)?;
    if spec.seccomp {
        let program = super::seccomp::docker_default(&caps)
            .compile()
            .map_err(|e| e.to_string())?;
        super::seccomp::install(&program).map_err(|e| e.to_string())?;
    }
    super::caps::apply(caps, id.uid).map_err(|e| e.to_string())
}
