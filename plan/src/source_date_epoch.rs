//! SOURCE_DATE_EPOCH: the only clock of a build (layer mtimes, `created`, history).
//!
//! Owns the one parser for it, used by `kiln build`/`plan` (a `--build-arg`, else the
//! environment) and `kiln import` (the environment): unset or empty means "not set" (0 in
//! the image), otherwise a decimal number of seconds since 1970-01-01 that fits Go's int64,
//! as BuildKit's `strconv.ParseInt` accepts it, except that a sign is refused (a negative
//! epoch has no tar encoding kiln writes). Anything else is an error naming the variable,
//! the value and where it came from. Must not: read the clock.

use std::fmt;

/// Where a SOURCE_DATE_EPOCH value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochOrigin {
    /// `--build-arg SOURCE_DATE_EPOCH=...`.
    BuildArg,
    /// kiln's own environment.
    Environment,
}

impl fmt::Display for EpochOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EpochOrigin::BuildArg => "--build-arg SOURCE_DATE_EPOCH",
            EpochOrigin::Environment => "the environment",
        })
    }
}

/// Why a value is not an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochProblem {
    /// Something other than ASCII digits (a sign, a space, a fraction, a date).
    NotDigits,
    /// More than Go's int64 holds.
    TooLarge,
    /// Not valid UTF-8 (only an environment value can be).
    NotUnicode,
}

impl fmt::Display for EpochProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EpochProblem::NotDigits => "not a whole number of seconds",
            EpochProblem::TooLarge => "too large (at most 9223372036854775807)",
            EpochProblem::NotUnicode => "not valid UTF-8",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
#[error("invalid SOURCE_DATE_EPOCH {value:?} from {origin}: {problem}")]
#[diagnostic(
    code(kiln::source_date_epoch),
    help("set SOURCE_DATE_EPOCH to seconds since 1970-01-01 (e.g. `git log -1 --format=%ct`), or unset it")
)]
pub struct SourceDateEpochError {
    pub value: String,
    pub origin: EpochOrigin,
    pub problem: EpochProblem,
}

/// The largest epoch accepted: Go's `math.MaxInt64`, as BuildKit parses it.
const MAX_EPOCH: u64 = i64::MAX as u64;

/// Parse one value. `Ok(None)` for the empty string (unset, as BuildKit treats it).
pub fn parse(value: &str, origin: EpochOrigin) -> Result<Option<u64>, SourceDateEpochError> {
    let fail = |problem| SourceDateEpochError {
        value: value.to_string(),
        origin,
        problem,
    };
    if value.is_empty() {
        return Ok(None);
    }
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(fail(EpochProblem::NotDigits));
    }
    match value.parse::<u64>() {
        Ok(secs) if secs <= MAX_EPOCH => Ok(Some(secs)),
        _ => Err(fail(EpochProblem::TooLarge)),
    }
}

/// The build's epoch: the last `--build-arg SOURCE_DATE_EPOCH=...` when given, else the
/// environment's `SOURCE_DATE_EPOCH`; `None` when neither sets it.
pub fn source_date_epoch(
    build_args: &[(String, String)],
) -> Result<Option<u64>, SourceDateEpochError> {
    if let Some((_, v)) = build_args
        .iter()
        .rev()
        .find(|(k, _)| k == "SOURCE_DATE_EPOCH")
    {
        return parse(v, EpochOrigin::BuildArg);
    }
    from_environment()
}

/// `SOURCE_DATE_EPOCH` from kiln's environment only (`kiln import`).
pub fn from_environment() -> Result<Option<u64>, SourceDateEpochError> {
    match std::env::var_os("SOURCE_DATE_EPOCH") {
        None => Ok(None),
        Some(raw) => match raw.to_str() {
            Some(v) => parse(v, EpochOrigin::Environment),
            None => Err(SourceDateEpochError {
                value: raw.to_string_lossy().into_owned(),
                origin: EpochOrigin::Environment,
                problem: EpochProblem::NotUnicode,
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_whole_seconds_and_treats_empty_as_unset() {
        assert_eq!(parse("", EpochOrigin::BuildArg), Ok(None));
        assert_eq!(parse("0", EpochOrigin::BuildArg), Ok(Some(0)));
        assert_eq!(
            parse("1700000000", EpochOrigin::Environment),
            Ok(Some(1_700_000_000))
        );
        assert_eq!(
            parse("9223372036854775807", EpochOrigin::BuildArg),
            Ok(Some(MAX_EPOCH))
        );
    }

    #[test]
    fn refuses_anything_else_naming_the_variable() {
        for (bad, problem) in [
            ("-1", EpochProblem::NotDigits),
            ("+1", EpochProblem::NotDigits),
            (" 1", EpochProblem::NotDigits),
            ("1 ", EpochProblem::NotDigits),
            ("1.5", EpochProblem::NotDigits),
            ("2024-01-01", EpochProblem::NotDigits),
            ("9223372036854775808", EpochProblem::TooLarge),
            ("99999999999999999999999", EpochProblem::TooLarge),
        ] {
            let err = parse(bad, EpochOrigin::Environment).unwrap_err();
            assert_eq!(err.problem, problem, "{bad:?}");
            let text = err.to_string();
            assert!(text.contains("SOURCE_DATE_EPOCH"), "{text}");
            assert!(text.contains(&format!("{bad:?}")), "{text}");
            assert!(text.contains("the environment"), "{text}");
        }
    }

    #[test]
    fn a_build_arg_wins_over_the_environment() {
        // The build arg is read first; a bad one is reported as the build arg's.
        let args = vec![
            ("SOURCE_DATE_EPOCH".to_string(), "5".to_string()),
            ("SOURCE_DATE_EPOCH".to_string(), "x".to_string()),
        ];
        let err = source_date_epoch(&args).unwrap_err();
        assert_eq!(err.origin, EpochOrigin::BuildArg);
        let args = vec![("SOURCE_DATE_EPOCH".to_string(), "7".to_string())];
        assert_eq!(source_date_epoch(&args), Ok(Some(7)));
    }
}
