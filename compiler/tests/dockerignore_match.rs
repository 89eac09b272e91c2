//! Table-driven tests of `kiln_compiler::dockerignore`: file parsing, pattern syntax, matching,
//! the last-match-wins rule with parents, the walker's refinements, and the file choice.
//! Expected values were checked against moby/patternmatcher and fsutil's walker.

use std::path::{Path, PathBuf};

use kiln_compiler::dockerignore::{ignore_file_candidates, IgnoreErrorKind, IgnoreFile};

fn parse(text: &str) -> IgnoreFile {
    match IgnoreFile::parse(text) {
        Ok(f) => f,
        Err(e) => panic!("{text:?} failed: {e}"),
    }
}

fn normalized(text: &str) -> Vec<String> {
    parse(text)
        .patterns()
        .map(|p| format!("{}{}", if p.reinclude { "!" } else { "" }, p.pattern))
        .collect()
}

#[test]
fn file_format() {
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("\n\n", &[]),
        ("a\nb", &["a", "b"]),
        ("a\r\nb\r\n", &["a", "b"]),
        ("# comment\na", &["a"]),
        ("  # not a comment", &["# not a comment"]),
        ("  spaced  \t", &["spaced"]),
        ("\u{FEFF}first", &["first"]),
        ("x\n\u{FEFF}second", &["x", "\u{FEFF}second"]),
        ("/abs/path", &["abs/path"]),
        ("//double", &["double"]),
        ("/", &["/"]),
        ("dir/", &["dir"]),
        ("./a/./b/../c", &["a/c"]),
        ("a/..", &["."]),
        ("../up", &["../up"]),
        ("/../up", &["up"]),
        ("!keep", &["!keep"]),
        ("!  keep  ", &["!keep"]),
        ("!/keep/", &["!keep"]),
        ("!!double", &["!!double"]),
        ("\\!literal", &["\\!literal"]),
        ("\\#literal", &["\\#literal"]),
        ("a\n#b\n!c\n  \nd", &["a", "!c", "d"]),
        ("**/", &["**"]),
    ];
    for (text, want) in cases {
        assert_eq!(normalized(text), *want, "file {text:?}");
    }
    let lines: Vec<usize> = parse("# c\n\na\n\n!b").patterns().map(|p| p.line).collect();
    assert_eq!(lines, vec![3, 5]);
}

#[test]
fn parse_errors_name_the_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("!", 1, "lone"),
        ("a\n! ", 2, "lone"),
        ("a\n\n!/", 3, "lone"),
        ("ok\n[", 2, "bad"),
        ("a[", 1, "bad"),
        ("[]", 1, "bad"),
        ("[^]", 1, "bad"),
        ("[a-]", 1, "bad"),
        ("[-a]", 1, "bad"),
        ("trailing\\", 1, "bad"),
        ("*.go\n!x[", 2, "bad"),
        ("[z-a]", 1, "bad"),
        ("a\\q", 1, "bad"),
        ("x{2}{3}*", 1, "bad"),
        ("[[:nope:]]", 1, "bad"),
    ];
    for (text, line, kind) in cases {
        let err = match IgnoreFile::parse(text) {
            Err(e) => e,
            Ok(_) => panic!("{text:?} should fail"),
        };
        assert_eq!(err.line, *line, "{text:?}");
        let got = match err.kind {
            IgnoreErrorKind::LoneExclamation => "lone",
            IgnoreErrorKind::BadPattern { .. } => "bad",
            IgnoreErrorKind::LineTooLong => "long",
        };
        assert_eq!(got, *kind, "{text:?}");
        assert!(err.offset + err.len <= text.len(), "{text:?}");
    }
    let long = format!("ok\n{}\n", "x".repeat(64 * 1024));
    assert!(matches!(
        IgnoreFile::parse(&long).map_err(|e| (e.kind, e.line)),
        Err((IgnoreErrorKind::LineTooLong, 2))
    ));
    assert!(IgnoreFile::parse(&"x".repeat(64 * 1024 - 1)).is_ok());
}

#[test]
fn parse_errors_render_with_miette() {
    let text = "*.tmp\nbuild/[oops\n";
    let err = match IgnoreFile::parse(text) {
        Err(e) => e,
        Ok(_) => panic!("should fail"),
    };
    assert_eq!(&text[err.offset..err.offset + err.len], "build/[oops");
    let report = miette::Report::new(err).with_source_code(text.to_string());
    let mut out = String::new();
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    handler
        .render_report(&mut out, report.as_ref())
        .unwrap_or_default();
    assert!(out.contains("line 2"), "{out}");
    assert!(out.contains("this pattern"), "{out}");
}

/// (pattern, path, excluded?) for one-pattern files.
const SINGLE: &[(&str, &str, bool)] = &[
    // plain names match the path or any parent
    ("docs", "docs", true),
    ("docs", "docs/a/b.md", true),
    ("docs", "other/docs", false),
    ("docs", "docsx", false),
    ("docs/", "docs/x", true),
    ("/docs", "docs/x", true),
    ("a/b", "a/b/c", true),
    ("a/b", "a", false),
    // `*` and `?` stay within one level
    ("*", "anything", true),
    ("*", "a/b", true),
    ("*.go", "main.go", true),
    ("*.go", "cmd/main.go", false),
    ("*/*.go", "cmd/main.go", true),
    ("*/*.go", "cmd/sub/main.go", false),
    ("a*", "a/b", true),
    ("a*/b", "abc/b", true),
    ("a*/b", "a/c/b", false),
    ("?", "x", true),
    ("?", "xy", false),
    ("?/x", "a/x", true),
    ("file?.txt", "file1.txt", true),
    ("file?.txt", "file/.txt", false),
    // `**`
    ("**", "x", true),
    ("**", "a/b/c", true),
    ("**/x", "x", true),
    ("**/x", "a/b/x", true),
    ("**/x", "a/bx", false),
    ("**x", "abx", true),
    ("**/*.go", "main.go", true),
    ("**/*.go", "a/b/main.go", true),
    ("**/*.go", "a/b/main.go2", false),
    ("a/**", "a", false),
    ("a/**", "a/b", true),
    ("a/**", "a/b/c", true),
    ("a/**/b", "a/b", true),
    ("a/**/b", "a/x/y/b", true),
    ("a/**/b", "a/xb", false),
    ("a/**/*.txt", "a/b/c.txt", true),
    ("a**/*.txt", "a/x.txt", true),
    ("a**/*.txt", "ab/c/x.txt", true),
    ("a**b", "ab", true),
    ("a**b", "axb", false),
    ("a**b", "ax/b", true),
    ("**/**", "a/b", true),
    ("**/.git", ".git/config", true),
    ("**/.git", "sub/.git/config", true),
    ("**/.git", "sub/x.git", false),
    // character classes (Go regexp semantics)
    ("[abc]", "b", true),
    ("[abc]", "d", false),
    ("[a-c]x", "bx", true),
    ("[^a-c]x", "dx", true),
    ("[^a-c]x", "ax", false),
    ("[!a]", "!", true),
    ("[!a]", "b", false),
    ("*.py[cod]", "m.pyc", true),
    ("*.py[cod]", "m.py", false),
    ("[[:digit:]]*", "7up", true),
    ("[\\]]", "]", true),
    ("[é-ü]", "ö", true),
    // escapes
    ("\\*", "*", true),
    ("\\*", "a", false),
    ("a\\?", "a?", true),
    ("\\[x]", "[x]", true),
    ("\\!x", "!x", true),
    ("\\#x", "#x", true),
    ("a\\\\", "a\\", true),
    ("a\\d", "a5", true),
    ("a\\d", "ad", false),
    ("obj\\bin", "obj\\bin", false),
    ("obj\\bin", "objbin", false),
    // regexp characters are literal, except `|`, `{`, `}` which reach the regexp as they are
    ("a.b", "a.b", true),
    ("a.b", "axb", false),
    ("a.*", "a.x", true),
    ("a.*", "ab", false),
    ("a+b", "a+b", true),
    ("(x)", "(x)", true),
    ("$x", "$x", true),
    ("a$*", "a$b", true),
    ("a|b*", "a", true),
    ("a|b*", "bcd", true),
    ("a|b*", "xa", false),
    ("x{2}*", "xx", true),
    ("x{2}*", "x{2}", false),
    ("a{b}*", "a{b}c", true),
    ("a^b", "a^b", true),
    ("a^b*", "a^b", false),
    // odd names
    ("a b", "a b", true),
    ("日本/*", "日本/語", true),
    ("*", ".hidden", true),
    ("a*", "a\nb", true),
    ("**/x*", "a\nb/x", false),
    ("**/x", "a\nb/x", true),
    // never-matching patterns
    ("/", "x", false),
    ("..", "x", false),
    ("../x", "x", false),
    (".", "x", false),
];

#[test]
fn single_patterns() {
    for (pattern, path, want) in SINGLE {
        let file = parse(pattern);
        assert_eq!(
            file.is_excluded(path),
            *want,
            "pattern {pattern:?} on {path:?}"
        );
    }
}

#[test]
fn last_match_wins_with_reincludes() {
    let cases: &[(&str, &[(&str, bool)])] = &[
        (
            "*.md\n!README.md",
            &[("a.md", true), ("README.md", false), ("x.txt", false)],
        ),
        ("!README.md\n*.md", &[("README.md", true), ("a.md", true)]),
        (
            "docs\n!docs/keep.md",
            &[
                ("docs", true),
                ("docs/keep.md", false),
                ("docs/other.md", true),
                ("docs/keep.md/x", false),
            ],
        ),
        (
            // `*.o` only matches at the top level
            "*\n!src\n*.o",
            &[
                ("x", true),
                ("src", false),
                ("src/a.o", false),
                ("b.o", true),
            ],
        ),
        (
            "*\n!src\n**/*.o",
            &[
                ("x", true),
                ("src", false),
                ("src/a.c", false),
                ("src/a.o", true),
                ("srcx", true),
            ],
        ),
        (
            "**\n!**/*.go",
            &[("a/b.go", false), ("a/b.txt", true), ("c.go", false)],
        ),
        (
            "node_modules\n!node_modules/keep\nnode_modules/keep/tmp",
            &[
                ("node_modules/x", true),
                ("node_modules/keep/a", false),
                ("node_modules/keep/tmp", true),
                ("node_modules/keep/tmp/z", true),
            ],
        ),
        (
            "a\n!a/b\na/b/c\n!a/b/c/d",
            &[
                ("a/x", true),
                ("a/b/x", false),
                ("a/b/c/x", true),
                ("a/b/c/d", false),
                ("a/b/c/d/e", false),
            ],
        ),
    ];
    for (text, checks) in cases {
        let file = parse(text);
        for (path, want) in *checks {
            assert_eq!(file.is_excluded(path), *want, "{text:?} on {path:?}");
        }
    }
}

#[test]
fn walker_refinements() {
    // A re-include that names a parent of an excluded directory does not reach inside it:
    // the walker never enters `foo/bar` (no `!` pattern lies at or below it).
    let file = parse("foo/bar\n!foo");
    assert!(!file.is_excluded("foo"));
    assert!(!file.is_excluded("foo/y"));
    assert!(file.is_excluded("foo/bar"));
    assert!(file.is_excluded("foo/bar/x"));
    assert!(!file.may_reinclude_below("foo/bar"));

    // With a wildcard in any `!` pattern the walker descends everywhere, but `!foo` was tried
    // on `foo/bar` and did not match it, so it does not re-include `foo/bar/x` either.
    let file = parse("foo/bar\n!foo\n!**/*.keep");
    assert!(file.may_reinclude_below("foo/bar"));
    assert!(file.is_excluded("foo/bar/x"));
    assert!(!file.is_excluded("foo/bar/x.keep"));
    // `!*.keep` has no `**`: it only ever matches top-level names.
    assert!(parse("foo/bar\n!*.keep").is_excluded("foo/bar/x.keep"));

    // An exclude pattern is skipped while the path is already excluded, and that skip is
    // remembered for the children: `b*` never sees `a`, so `a/bz` is decided by `!a/bz`.
    let file = parse("a\nb*\n!a/bz");
    assert!(file.is_excluded("a"));
    assert!(!file.is_excluded("a/bz"));

    // Excluded directories with re-includes below must be entered; others need not be.
    let file = parse("build\n!build/keep\nvendor");
    assert!(file.has_exclusions());
    assert!(file.may_reinclude_below("build"));
    assert!(!file.may_reinclude_below("vendor"));
    assert!(file.is_excluded("vendor/x"));
    assert!(!file.is_excluded("build/keep"));
    assert!(file.is_excluded("build/other"));

    // `!dir/**` and `!dir/*` name `dir` itself for the descent rule.
    let file = parse("*\n!cfg/**");
    assert!(file.may_reinclude_below("cfg"));
    assert!(!file.may_reinclude_below("other"));
    let file = parse("*\n!cfg/*");
    assert!(file.may_reinclude_below("cfg"));

    // No `!` at all: nothing below an excluded directory can come back.
    let file = parse("tmp");
    assert!(!file.has_exclusions());
    assert!(!file.may_reinclude_below("tmp"));
}

#[test]
fn paths_are_normalized() {
    let file = parse("a/b");
    assert!(file.is_excluded("a/b"));
    assert!(file.is_excluded("/a/b"));
    assert!(file.is_excluded("a//b/"));
    assert!(file.is_excluded("./a/x/../b"));
    assert!(!file.is_excluded("."));
    assert!(!file.is_excluded(""));
    assert!(!parse("*").is_excluded("/"));
}

#[test]
fn empty_file_excludes_nothing() {
    let file = parse("# only comments\n\n");
    assert!(file.is_empty());
    assert!(!file.has_exclusions());
    assert!(!file.is_excluded("anything/at/all"));
}

#[test]
fn deep_paths_work() {
    let deep: Vec<String> = (0..150).map(|i| format!("d{i}")).collect();
    let path = deep.join("/");
    assert!(parse("d0/d1").is_excluded(&path));
    assert!(parse("**/d149").is_excluded(&path));
    assert!(parse("**/d70").is_excluded(&path));
    assert!(!parse("**/d150").is_excluded(&path));
    let file = parse("d0\n!d0/d1/**/d100");
    assert!(!file.is_excluded(&path));
    assert!(file.is_excluded(&deep[..99].join("/")));
}

#[test]
fn candidate_ignore_files() {
    let [first, second] =
        ignore_file_candidates(Path::new("ctx/sub/Dockerfile.dev"), Path::new("ctx"));
    assert_eq!(first, PathBuf::from("ctx/sub/Dockerfile.dev.dockerignore"));
    assert_eq!(second, PathBuf::from("ctx/.dockerignore"));
    let [first, _] = ignore_file_candidates(Path::new("Dockerfile"), Path::new("."));
    assert_eq!(first, PathBuf::from("Dockerfile.dockerignore"));
}
