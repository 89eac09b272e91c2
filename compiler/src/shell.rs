//! PLACEHOLDER until the shell branch lands (API contract only).
pub trait Env {
    fn get(&self, name: &str) -> Option<&str>;
}
pub struct Lexer {
    _escape: char,
}
pub struct Expansion {
    pub value: String,
    pub used: Vec<String>,
    pub unset: Vec<String>,
}
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExpandError {
    pub message: String,
    pub offset: usize,
    pub len: usize,
    pub help: Option<String>,
}
impl Lexer {
    pub fn new(escape: char) -> Self {
        Lexer { _escape: escape }
    }
    pub fn expand_word(&self, word: &str, _env: &dyn Env) -> Result<Expansion, ExpandError> {
        Ok(Expansion {
            value: word.to_string(),
            used: vec![],
            unset: vec![],
        })
    }
}
