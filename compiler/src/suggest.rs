//! "Did you mean": the closest known name to a misspelt one.

/// The candidate closest to `word` (case-insensitive), if it is close enough to be a typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::damerau_levenshtein(&lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d > 0 && *d <= (c.len() / 3).max(1) + usize::from(c.len() > 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn typos_find_their_word() {
        assert_eq!(closest("RUNN", ["RUN", "COPY", "ADD"]), Some("RUN"));
        assert_eq!(closest("biuld", ["build", "test"]), Some("build"));
        assert_eq!(closest("frm", ["from", "chown"]), Some("from"));
        assert_eq!(closest("zzzzzz", ["RUN", "COPY"]), None);
    }
}
