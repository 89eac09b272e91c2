//! PLACEHOLDER until the capabilities module lands.
#[derive(Debug, Clone, Copy)]
pub struct CapabilitySet(u64);
pub const DOCKER_DEFAULT: u64 = 0xa80425fb;
impl CapabilitySet {
    pub fn from_bits(b: u64) -> Self { CapabilitySet(b) }
}
pub fn drop_bounding(set: CapabilitySet) -> Result<(), String> {
    for cap in 0..64u64 {
        if set.0 & (1 << cap) == 0 {
            // SAFETY: prctl with integer arguments.
            let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
            if r != 0 && nix::errno::Errno::last() == nix::errno::Errno::EINVAL { break; }
        }
    }
    Ok(())
}
pub fn prepare_user_switch() -> Result<(), String> { Ok(()) }
pub fn apply(_set: CapabilitySet, _uid: u32) -> Result<(), String> { Ok(()) }
