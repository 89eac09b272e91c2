//! Robustness of `kiln_compiler::syntax::parse`: random strings and random Dockerfile-like
//! token soups must never make it panic, and every span it returns (instructions, keywords,
//! flags, arguments, heredocs, directives, warnings, errors) must lie inside the text on
//! character boundaries, with sane line numbers. Inputs that once broke it are kept in
//! `regressions`.

use kiln_compiler::syntax::{json::to_buildkit_json, parse, Instruction, Span};
use proptest::prelude::*;

fn check_span(text: &str, span: Span, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        span.start <= span.end && span.end <= text.len(),
        "{what} span {span:?} out of bounds (text is {} bytes)",
        text.len()
    );
    prop_assert!(
        text.is_char_boundary(span.start) && text.is_char_boundary(span.end),
        "{what} span {span:?} not on character boundaries"
    );
    Ok(())
}

fn check_instruction(text: &str, i: &Instruction, lines: usize) -> Result<(), TestCaseError> {
    check_span(text, i.span, "instruction")?;
    check_span(text, i.cmd_span, "keyword")?;
    check_span(text, i.args_span, "arguments")?;
    for f in &i.flags {
        check_span(text, f.span, "flag")?;
    }
    for h in &i.heredocs {
        check_span(text, h.span, "heredoc body")?;
        check_span(text, h.word_span, "heredoc marker")?;
        prop_assert!(h.span.start >= i.span.start && h.span.end <= i.span.end);
    }
    prop_assert!(i.start_line >= 1 && i.start_line <= i.end_line && i.end_line <= lines);
    prop_assert!(i.cmd_span.start >= i.span.start && i.cmd_span.end <= i.span.end);
    if let Some(sub) = &i.sub {
        prop_assert_eq!((sub.start_line, sub.end_line), (i.start_line, i.end_line));
        check_instruction(text, sub, lines)?;
    }
    Ok(())
}

/// Parse `text` and check every invariant of the result.
fn check(text: &str) -> Result<(), TestCaseError> {
    // Lines as BuildKit counts them: a final line without newline counts.
    let lines = text.split_inclusive('\n').count().max(1);
    match parse(text) {
        Ok(df) => {
            prop_assert!(!df.instructions.is_empty());
            prop_assert!(df.escape == '\\' || df.escape == '`');
            for d in &df.directives {
                check_span(text, d.span, "directive")?;
            }
            for w in &df.warnings {
                check_span(text, w.span, "warning")?;
            }
            let mut previous_end = 0;
            for i in &df.instructions {
                check_instruction(text, i, lines)?;
                prop_assert!(i.start_line > previous_end, "instructions overlap");
                previous_end = i.end_line;
            }
            let json = to_buildkit_json(&df);
            prop_assert_eq!(json.as_array().map(Vec::len), Some(df.instructions.len()));
        }
        Err(e) => {
            check_span(text, e.span, "error")?;
            prop_assert!(!e.message.is_empty());
        }
    }
    Ok(())
}

/// Pieces that exercise every rule of the parser.
const TOKENS: &[&str] = &[
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "LABEL",
    "ARG",
    "FROM",
    "ONBUILD",
    "HEALTHCHECK",
    "CMD",
    "ENTRYPOINT",
    "SHELL",
    "VOLUME",
    "EXPOSE",
    "WORKDIR",
    "USER",
    "MAINTAINER",
    "STOPSIGNAL",
    "run",
    "OnBuild",
    "FOO",
    "--a=b",
    "--x=\"y z\"",
    "--",
    "-x",
    "--'q'",
    "--m=é",
    "--k=\u{806}",
    "\"",
    "'",
    "\\",
    "`",
    "\\\n",
    "`\n",
    "\n",
    "\r\n",
    "\r",
    "\n\n",
    "#",
    "# c\n",
    "# escape=`\n",
    "# escape=\\\n",
    "# syntax=x\n",
    "# check=a\n",
    "#escape=\n",
    "<<EOF",
    "<<-EOF",
    "3<<'E'",
    "<<\"E\"",
    "<<E\"O\"F",
    "<<\\E",
    "<<${A:-x y}",
    "<<${",
    "EOF",
    "\tEOF",
    "E",
    "\n\tE\n",
    "\nEOF\n",
    "$a",
    "${a:-b}",
    "${",
    "}",
    "[",
    "]",
    "\"a\"",
    ",",
    "1",
    "1e999",
    "\"\\u0000\"",
    "\"\\ud800\"",
    "{\"k\":[]}",
    "=",
    "a=b",
    "k=\"v w\"",
    "x=",
    "NONE",
    " ",
    "  ",
    "\t",
    "\u{a0}",
    "\u{85}",
    "\u{2003}",
    "é",
    "à",
    "\u{feff}",
    "\u{212a}",
    "\\\\",
    "\\ ",
    "\\\t",
    "\u{b}",
    "\u{c}",
    "\0",
    "😀",
    "word",
    "/path",
    "&&",
    "<<",
    "<",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..60).prop_map(|t| t.concat())
}

fn instruction_lines() -> impl Strategy<Value = String> {
    let line = (
        prop::sample::select(&TOKENS[..21]),
        prop::collection::vec(prop::sample::select(TOKENS), 0..10),
    )
        .prop_map(|(k, rest)| format!("{k} {}", rest.join(" ")));
    prop::collection::vec(line, 1..12).prop_map(|l| l.join("\n"))
}

proptest! {
    // PROPTEST_CASES raises the count for a longer local run.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_strings_never_panic(text in "(?s).{0,300}") {
        check(&text)?;
    }

    #[test]
    fn token_soups_never_panic(text in token_soup()) {
        check(&text)?;
    }

    #[test]
    fn instruction_soups_never_panic(text in instruction_lines()) {
        check(&text)?;
    }
}

/// Inputs that exercise the corners where byte-wise BuildKit rules meet UTF-8, deep nesting
/// and size limits. Each must parse or fail cleanly.
#[test]
fn regressions() {
    let long_line = format!("FROM a\nRUN {}\n", "x".repeat(70_000));
    let deep_json = format!("CMD {}", "[".repeat(20_000));
    let deep_onbuild = format!("{}RUN x", "ONBUILD ".repeat(5_000));
    let many_heredocs = format!("RUN {}\n", "<<E ".repeat(2_000));
    let cases: Vec<&str> = vec![
        "",
        "\u{feff}",
        "\\",
        "\\\n",
        "`",
        "# escape=`\n`",
        "RUN --x=\u{806}y",
        "RUN --x=\u{806}",
        "ARG --k=\u{806}",
        "ONBUILD --x=\u{806}RUN y",
        "HEALTHCHECK CMD\u{806}x",
        "HEALTHCHECK \u{a0}",
        "RUN <<\u{feff}EOF\nEOF",
        "RUN <<EOF\n",
        "COPY <<A <<B\nA\n",
        "RUN 99999999999999999999<<EOF\nEOF\n",
        "ENV \u{a0}",
        "LABEL \"",
        "ARG \\",
        "RUN [\"\\ud83d\"]",
        "RUN \"${a:-${b:-c}}\" <<EOF\nEOF",
        "WOR\u{212a}DIR /x",
        &long_line,
        &deep_json,
        &deep_onbuild,
        &many_heredocs,
    ];
    for text in cases {
        if let Err(e) = check(text) {
            panic!(
                "{e} for input {:?}",
                text.chars().take(80).collect::<String>()
            );
        }
    }
}
