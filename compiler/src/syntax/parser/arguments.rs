//! One logical instruction line (continuations already joined) to BuildKit's node parts:
//! keyword, flags, and the argument list split by that instruction's rule.
//!
//! Mirrors BuildKit v0.12.5's `splitCommand`, `extractBuilderFlags` and the line parsers
//! (`parseStringsWhitespaceDelimited`, `parseString`, `parseMaybeJSON`, `parseMaybeJSONToList`,
//! `parseNameVal`, `parseNameOrNameVal`, `parseHealthConfig`, `parseSubCommand`,
//! `parseIgnore`), including their byte-wise quirks.
//! Must not: interpret flags or arguments, expand variables, or look at other lines.

use std::borrow::Cow;

use super::exec_json::{read_exec_form, ExecForm};
use super::go_text::{
    ascii_keyword_lowercase, bytes_to_text, go_quote, is_space_byte, push_byte_as_char,
    split_on_separators, split_once_on_separators,
};

/// ONBUILD inside ONBUILD inside ... deeper than this is refused rather than built into a
/// tree that later recursive code could not walk. BuildKit's instruction layer rejects any
/// nested ONBUILD anyway.
pub(super) const MAX_ONBUILD_NESTING: usize = 64;

/// The instructions BuildKit's parser has a rule for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
}

impl Keyword {
    const ALL: [Keyword; 18] = [
        Keyword::Add,
        Keyword::Arg,
        Keyword::Cmd,
        Keyword::Copy,
        Keyword::Entrypoint,
        Keyword::Env,
        Keyword::Expose,
        Keyword::From,
        Keyword::Healthcheck,
        Keyword::Label,
        Keyword::Maintainer,
        Keyword::Onbuild,
        Keyword::Run,
        Keyword::Shell,
        Keyword::Stopsignal,
        Keyword::User,
        Keyword::Volume,
        Keyword::Workdir,
    ];

    pub(super) fn upper(self) -> &'static str {
        match self {
            Keyword::Add => "ADD",
            Keyword::Arg => "ARG",
            Keyword::Cmd => "CMD",
            Keyword::Copy => "COPY",
            Keyword::Entrypoint => "ENTRYPOINT",
            Keyword::Env => "ENV",
            Keyword::Expose => "EXPOSE",
            Keyword::From => "FROM",
            Keyword::Healthcheck => "HEALTHCHECK",
            Keyword::Label => "LABEL",
            Keyword::Maintainer => "MAINTAINER",
            Keyword::Onbuild => "ONBUILD",
            Keyword::Run => "RUN",
            Keyword::Shell => "SHELL",
            Keyword::Stopsignal => "STOPSIGNAL",
            Keyword::User => "USER",
            Keyword::Volume => "VOLUME",
            Keyword::Workdir => "WORKDIR",
        }
    }

    /// BuildKit's `dispatch[strings.ToLower(cmd)]` lookup.
    pub(super) fn lookup(word: &str) -> Option<Keyword> {
        if word.len() < 3 || word.len() > 32 {
            return None;
        }
        let lower = ascii_keyword_lowercase(word)?;
        Keyword::ALL
            .into_iter()
            .find(|k| k.upper().eq_ignore_ascii_case(&lower))
    }

    /// RUN, COPY and ADD may carry heredocs.
    pub(super) fn takes_heredocs(self) -> bool {
        matches!(self, Keyword::Run | Keyword::Copy | Keyword::Add)
    }
}

/// A byte range in the logical line, or `None` when the text it would cover was rebuilt
/// (BuildKit cut a UTF-8 sequence in two) and no longer maps to the source.
pub(super) type LineRange = Option<(usize, usize)>;

/// One BuildKit node: for ONBUILD the outer node, with the inner one as the next element of
/// the chain returned by [`split_instruction`].
#[derive(Debug)]
pub(super) struct NodeParts {
    /// The keyword as written.
    pub word: String,
    pub keyword: Option<Keyword>,
    pub word_range: LineRange,
    pub flags: Vec<(String, LineRange)>,
    pub args_range: LineRange,
    /// BuildKit's `Next` chain values.
    pub value: Vec<String>,
    pub json: bool,
    /// The text this node was parsed from (the whole line for the outermost node).
    pub original: String,
}

/// A BuildKit parse error for one instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ArgumentError {
    pub message: String,
    pub label: &'static str,
    pub help: Option<String>,
}

impl ArgumentError {
    fn new(message: String, label: &'static str, help: Option<String>) -> Self {
        ArgumentError {
            message,
            label,
            help,
        }
    }
}

/// Split one logical line into BuildKit nodes: one element, or for `ONBUILD X ...` the outer
/// node followed by the inner ones.
pub(super) fn split_instruction(line: &str, escape: char) -> Result<Vec<NodeParts>, ArgumentError> {
    let mut chain = Vec::new();
    // The text still to parse and where it sits in `line` (None once rebuilt).
    let mut text: Cow<'_, str> = Cow::Borrowed(line);
    let mut base: Option<usize> = Some(0);
    loop {
        if chain.len() > MAX_ONBUILD_NESTING {
            return Err(ArgumentError::new(
                format!("ONBUILD nested more than {MAX_ONBUILD_NESTING} levels deep"),
                "too many ONBUILD levels",
                Some("ONBUILD cannot contain ONBUILD".into()),
            ));
        }
        let split = split_command(&text);
        let shift = |r: Option<(usize, usize)>| -> LineRange {
            let (s, e) = r?;
            base.map(|b| (b + s, b + e))
        };
        let keyword = Keyword::lookup(split.word);
        let rest_range = split.rest_range;
        let rest_owned: Option<String> = split.rest_rebuilt.clone();
        let rest: &str = match &rest_owned {
            Some(r) => r,
            None => &text[rest_range.0..rest_range.1],
        };
        let args_range = if rest_owned.is_some() {
            None
        } else {
            shift(Some(rest_range))
        };
        let mut node = NodeParts {
            word: split.word.to_owned(),
            keyword,
            word_range: shift(Some(split.word_range)),
            flags: split
                .flags
                .iter()
                .map(|(f, s, e)| (f.clone(), shift(Some((*s, *e)))))
                .collect(),
            args_range,
            value: Vec::new(),
            json: false,
            original: text.clone().into_owned(),
        };
        let inner = match keyword {
            Some(Keyword::Onbuild) if !rest.is_empty() => {
                // parseSubCommand: the rest is a whole instruction of its own.
                node.value = vec![String::new()];
                Some((rest.to_owned(), args_range.map(|(s, _)| s)))
            }
            Some(k) => {
                let (value, json) = split_arguments(k, rest, escape)?;
                node.value = value;
                node.json = json;
                None
            }
            // parseIgnore: BuildKit keeps one empty value node for unknown instructions.
            None => {
                node.value = vec![String::new()];
                None
            }
        };
        chain.push(node);
        match inner {
            Some((rest, rest_base)) => {
                text = Cow::Owned(rest);
                base = rest_base;
            }
            None => return Ok(chain),
        }
    }
}

struct SplitCommand<'a> {
    word: &'a str,
    word_range: (usize, usize),
    flags: Vec<(String, usize, usize)>,
    /// Trimmed arguments after the flags.
    rest_range: (usize, usize),
    /// Set when BuildKit's byte-wise flag scan ended inside a UTF-8 sequence: the arguments
    /// as Go would then see them.
    rest_rebuilt: Option<String>,
}

/// `splitCommand`: keyword, then flags, then the trimmed rest.
fn split_command(line: &str) -> SplitCommand<'_> {
    let t_start = line.len() - line.trim_start().len();
    let trimmed = line.trim();
    let t_end = t_start + trimmed.len();
    let Some((word, after)) = split_once_on_separators(trimmed) else {
        return SplitCommand {
            word: trimmed,
            word_range: (t_start, t_end),
            flags: Vec::new(),
            rest_range: (t_end, t_end),
            rest_rebuilt: None,
        };
    };
    let word_range = (t_start, t_start + word.len());
    let after_start = t_end - after.len();
    let (flags, args_at) = extract_builder_flags(after.as_bytes());
    // BuildKit's byte-wise scan can end a flag inside a UTF-8 sequence: widen such ranges to
    // whole characters.
    let mut flags_abs: Vec<(String, usize, usize)> = flags;
    for f in &mut flags_abs {
        f.1 = after_start + floor_char_boundary(after, f.1);
        f.2 = after_start + ceil_char_boundary(after, f.2);
    }
    let (rest_range, rest_rebuilt) = match args_at {
        None => ((t_end, t_end), None),
        Some(at) if after.is_char_boundary(at) => {
            let rest = &after[at..];
            let lead = rest.len() - rest.trim_start().len();
            let start = after_start + at + lead;
            ((start, t_end), None)
        }
        Some(at) => {
            let rebuilt = bytes_to_text(&after.as_bytes()[at..]).trim().to_owned();
            ((t_end, t_end), Some(rebuilt))
        }
    };
    SplitCommand {
        word,
        word_range,
        flags: flags_abs,
        rest_range,
        rest_rebuilt,
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i.min(s.len())
}

fn ceil_char_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i.min(s.len())
}

/// `extractBuilderFlags`, byte by byte as BuildKit does it: the leading `--name=value` words
/// (quotes removed, `\` escapes the next byte) with their byte ranges, and where the remaining
/// arguments start (`None` when nothing follows the flags).
fn extract_builder_flags(line: &[u8]) -> (Vec<(String, usize, usize)>, Option<usize>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut word_start = 0;
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut ch = 0u8;
    let mut pos = 0;
    while pos <= line.len() {
        if pos != line.len() {
            ch = line[pos];
        }
        if phase == Phase::Spaces {
            if pos == line.len() {
                break;
            }
            if is_space_byte(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || line.get(pos + 1) != Some(&b'-') {
                return (words, Some(pos));
            }
            phase = Phase::Word;
            word_start = pos;
        }
        if pos == line.len() {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push((word, word_start, pos));
            }
            return (words, None);
        }
        if phase == Phase::Word {
            if is_space_byte(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (words, Some(pos));
                }
                if blank_ok || !word.is_empty() {
                    words.push((std::mem::take(&mut word), word_start, pos));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == b'\\' {
                if pos + 1 == line.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = line[pos];
            }
            push_byte_as_char(&mut word, ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == b'\\' {
            if pos + 1 == line.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = line[pos];
        }
        push_byte_as_char(&mut word, ch);
        pos += 1;
    }
    (words, None)
}

/// The per-instruction rule: the value list and whether it was exec (JSON) form.
fn split_arguments(
    keyword: Keyword,
    rest: &str,
    escape: char,
) -> Result<(Vec<String>, bool), ArgumentError> {
    match keyword {
        Keyword::Add | Keyword::Copy | Keyword::Volume => maybe_json_to_list(rest),
        Keyword::Cmd | Keyword::Entrypoint | Keyword::Run | Keyword::Shell => maybe_json(rest),
        Keyword::Arg => Ok((words(rest, escape), false)),
        Keyword::Env => name_values(rest, "ENV", escape).map(|v| (v, false)),
        Keyword::Label => name_values(rest, "LABEL", escape).map(|v| (v, false)),
        Keyword::Expose | Keyword::From => Ok((split_on_separators(rest), false)),
        Keyword::Healthcheck => health_config(rest),
        Keyword::Maintainer | Keyword::Stopsignal | Keyword::User | Keyword::Workdir => {
            Ok((whole(rest), false))
        }
        // ONBUILD with arguments is handled by the caller; without, it has no value.
        Keyword::Onbuild => Ok((Vec::new(), false)),
    }
}

/// `parseString`.
fn whole(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![rest.to_owned()]
    }
}

fn not_string_array() -> ArgumentError {
    ArgumentError::new(
        "when using JSON array syntax, arrays must be comprised of strings only".into(),
        "this JSON array has an element that is not a string",
        Some("quote every element: [\"executable\", \"arg\"]".into()),
    )
}

/// `parseMaybeJSON`: exec form, or the whole text as one shell-form value.
fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), ArgumentError> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match read_exec_form(rest) {
        ExecForm::Strings(v) => Ok((v, true)),
        ExecForm::NotStrings => Err(not_string_array()),
        ExecForm::NotJson => Ok((vec![rest.to_owned()], false)),
    }
}

/// `parseMaybeJSONToList`: exec form, or the text split at white space.
fn maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), ArgumentError> {
    match read_exec_form(rest) {
        ExecForm::Strings(v) => Ok((v, true)),
        ExecForm::NotStrings => Err(not_string_array()),
        ExecForm::NotJson => Ok((split_on_separators(rest), false)),
    }
}

/// `parseHealthConfig`: the type word (`CMD`, `NONE`, ...) then `parseMaybeJSON` of the rest.
/// BuildKit finds the end of the type word byte by byte.
fn health_config(rest: &str) -> Result<(Vec<String>, bool), ArgumentError> {
    let b = rest.as_bytes();
    let sep = b.iter().position(|&c| is_space_byte(c)).unwrap_or(b.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let next = b[sep..]
        .iter()
        .position(|&c| !is_space_byte(c))
        .map_or(b.len(), |i| sep + i);
    let typ = bytes_to_text(&b[..sep]).into_owned();
    let command = bytes_to_text(&b[next..]);
    let (mut value, json) = maybe_json(&command)?;
    value.insert(0, typ);
    Ok((value, json))
}

/// `parseWords`: words split at white space outside quotes; quotes and escapes are kept.
fn words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut chars = rest.chars().peekable();
    loop {
        let Some(mut ch) = chars.next() else {
            if phase != Phase::Spaces && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            return words;
        };
        let is_last = chars.peek().is_none();
        if phase == Phase::Spaces {
            if ch.is_whitespace() {
                continue;
            }
            phase = Phase::Word;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if is_last {
                    continue;
                }
                word.push(ch);
                // Not the last character, so there is a next one.
                ch = chars.next().unwrap_or(ch);
            }
            word.push(ch);
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if is_last {
                phase = Phase::Word;
                continue;
            }
            word.push(ch);
            ch = chars.next().unwrap_or(ch);
        }
        word.push(ch);
    }
}

/// `parseNameVal` (ENV, LABEL): `key value...` (old form, one pair) or `k=v k2=v2 ...`,
/// flattened to `[k, v, k2, v2, ...]` as BuildKit v0.12.5 lists them.
fn name_values(rest: &str, instruction: &str, escape: char) -> Result<Vec<String>, ArgumentError> {
    let words = words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        return match split_once_on_separators(rest) {
            Some((key, value)) => Ok(vec![key.to_owned(), value.to_owned()]),
            None => Err(ArgumentError::new(
                format!("{instruction} must have two arguments"),
                "this has a name but no value",
                Some(format!(
                    "write `{instruction} name=value` (or `{instruction} name value`)"
                )),
            )),
        };
    }
    let mut value = Vec::with_capacity(words.len() * 2);
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(ArgumentError::new(
                format!(
                    "Syntax error - can't find = in {}. Must be of the form: name=value",
                    go_quote(&word)
                ),
                "every word here must be name=value",
                Some(format!(
                    "`{word}` has no `=`; quote values that contain spaces"
                )),
            ));
        };
        value.push(k.to_owned());
        value.push(v.to_owned());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(line: &str) -> Result<(Vec<String>, bool), ArgumentError> {
        let chain = split_instruction(line, '\\')?;
        let last = chain.last().unwrap();
        Ok((last.value.clone(), last.json))
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_follow_extract_builder_flags() {
        let chain = split_instruction(r#"COPY --from=a --chown="x y" -- src dst"#, '\\').unwrap();
        let flags: Vec<&str> = chain[0].flags.iter().map(|f| f.0.as_str()).collect();
        assert_eq!(flags, ["--from=a", "--chown=x y"]);
        assert_eq!(chain[0].value, v(&["src", "dst"]));
        // Non-ASCII bytes in a flag become Latin-1 characters, as in BuildKit.
        let chain = split_instruction("RUN --mount=x=é y", '\\').unwrap();
        assert_eq!(chain[0].flags[0].0, "--mount=x=Ã©");
        assert_eq!(chain[0].value, v(&["y"]));
    }

    #[test]
    fn env_forms() {
        assert_eq!(values("ENV a b c").unwrap().0, v(&["a", "b c"]));
        assert_eq!(
            values(r#"ENV a="b c" d=e"#).unwrap().0,
            v(&["a", "\"b c\"", "d", "e"])
        );
        assert_eq!(
            values("ENV PATH").unwrap_err().message,
            "ENV must have two arguments"
        );
        assert!(values("ENV a= b")
            .unwrap_err()
            .message
            .contains("can't find = in \"b\""));
        assert_eq!(values("ENV").unwrap().0, Vec::<String>::new());
    }

    #[test]
    fn exec_and_shell_forms() {
        assert_eq!(values(r#"CMD ["a", "b"]"#).unwrap(), (v(&["a", "b"]), true));
        assert_eq!(values("CMD ['a']").unwrap(), (v(&["['a']"]), false));
        assert!(values("CMD [1]").is_err());
        assert_eq!(values("COPY a  b").unwrap(), (v(&["a", "b"]), false));
        assert_eq!(
            values(r#"HEALTHCHECK CMD ["a"]"#).unwrap(),
            (v(&["CMD", "a"]), true)
        );
        assert_eq!(values("HEALTHCHECK NONE").unwrap(), (v(&["NONE"]), false));
    }

    #[test]
    fn onbuild_chain_and_unknown() {
        let chain = split_instruction("ONBUILD --x=1 RUN --mount=a echo hi", '\\').unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].flags[0].0, "--x=1");
        assert_eq!(chain[1].keyword, Some(Keyword::Run));
        assert_eq!(chain[1].value, v(&["echo hi"]));
        let line = "ONBUILD --x=1 RUN --mount=a echo hi";
        let (s, e) = chain[1].word_range.unwrap();
        assert_eq!(&line[s..e], "RUN");
        assert_eq!(values("FOO bar").unwrap().0, v(&[""]));
        let deep = "ONBUILD ".repeat(MAX_ONBUILD_NESTING + 2) + "RUN x";
        assert!(split_instruction(&deep, '\\').is_err());
    }

    #[test]
    fn keyword_lookup_is_case_insensitive() {
        assert_eq!(Keyword::lookup("rUn"), Some(Keyword::Run));
        assert_eq!(Keyword::lookup("WOR\u{212A}DIR"), Some(Keyword::Workdir));
        assert_eq!(Keyword::lookup("RUNX"), None);
    }
}
