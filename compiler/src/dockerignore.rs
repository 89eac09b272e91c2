//! PLACEHOLDER until the shell branch lands (API contract only).
pub struct IgnoreFile;
#[derive(Debug, thiserror::Error)]
#[error("bad pattern")]
pub struct IgnoreError;
impl IgnoreFile {
    pub fn parse(_text: &str) -> Result<IgnoreFile, IgnoreError> {
        Ok(IgnoreFile)
    }
    pub fn is_excluded(&self, _rel: &str) -> bool {
        false
    }
    pub fn may_reinclude_below(&self, _rel: &str) -> bool {
        false
    }
}
