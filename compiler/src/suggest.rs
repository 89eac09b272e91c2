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

/// BuildKit's `suggest.Search` (case-sensitive), the suggestion its build-check messages carry:
/// the first candidate at the smallest Levenshtein distance below 3; none when `word` is
/// itself a candidate.
pub fn buildkit_closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        if c == word {
            return None;
        }
        let d = strsim::levenshtein(word, c);
        if d < best.map_or(3, |(b, _)| b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::{buildkit_closest, closest};

    #[test]
    fn buildkit_suggestions_allow_two_edits() {
        let known = ["BUILDPLATFORM", "BUILDVARIANT", "MY_ARCH"];
        assert_eq!(
            buildkit_closest("BULIDPLATFORM", known),
            Some("BUILDPLATFORM")
        );
        assert_eq!(buildkit_closest("MYARCH", known), Some("MY_ARCH"));
        assert_eq!(buildkit_closest("VARIANT", known), None);
        assert_eq!(buildkit_closest("MY_ARCH", known), None);
    }

    #[test]
    fn typos_find_their_word() {
        assert_eq!(closest("RUNN", ["RUN", "COPY", "ADD"]), Some("RUN"));
        assert_eq!(closest("biuld", ["build", "test"]), Some("build"));
        assert_eq!(closest("frm", ["from", "chown"]), Some("from"));
        assert_eq!(closest("zzzzzz", ["RUN", "COPY"]), None);
    }
}
