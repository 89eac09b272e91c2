//! Property tests of `kiln_compiler::dockerignore`: arbitrary files and paths never panic, and
//! the laws of last-match-wins and the walker's descent rule hold on random inputs.

use kiln_compiler::dockerignore::IgnoreFile;
use proptest::prelude::*;

/// Pattern lines built from the syntax patternmatcher and Go's regexp care about.
fn pattern_line() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "*",
        "**",
        "?",
        "/",
        ".",
        "..",
        "!",
        "#",
        "[",
        "]",
        "^",
        "-",
        "\\",
        "a",
        "b",
        "src",
        "x.go",
        "|",
        "{",
        "}",
        "{2}",
        "$",
        "(",
        ")",
        "+",
        " ",
        "\t",
        "é",
        "日",
        "[a-z]",
        "[^a]",
        "\\d",
        "\\b",
        "[[:alpha:]]",
        "\\p{L}",
        "\\Q",
        "\\x41",
        "\u{FEFF}",
        "\r",
    ]);
    prop::collection::vec(atoms, 0..8).prop_map(|v| v.concat())
}

fn ignore_text() -> impl Strategy<Value = String> {
    prop::collection::vec(pattern_line(), 0..6).prop_map(|lines| lines.join("\n"))
}

/// Clean relative paths (no `.`, `..` or empty components), as a walker produces them.
fn walked_path() -> impl Strategy<Value = String> {
    let parts = prop::sample::select(vec![
        "a", "b", "src", "x.go", "a b", "日本", ".git", "*", "[x]", "a\nb", "é", "x{2}",
    ]);
    prop::collection::vec(parts, 1..6).prop_map(|v| v.join("/"))
}

fn rel_path() -> impl Strategy<Value = String> {
    let parts = prop::sample::select(vec![
        "a",
        "b",
        "src",
        "x.go",
        "a b",
        "日本",
        ".git",
        "*",
        "[x]",
        "a\nb",
        "..",
        ".",
        "",
        "é",
        "node_modules",
        "x{2}",
    ]);
    prop::collection::vec(parts, 1..6).prop_map(|v| v.join("/"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>(), path in any::<String>()) {
        if let Ok(file) = IgnoreFile::parse(&text) {
            let _ = file.is_excluded(&path);
            let _ = file.may_reinclude_below(&path);
        }
    }

    #[test]
    fn patternish_files_never_panic(text in ignore_text(), paths in prop::collection::vec(rel_path(), 1..8)) {
        match IgnoreFile::parse(&text) {
            Ok(file) => {
                for path in &paths {
                    let _ = file.is_excluded(path);
                    let _ = file.may_reinclude_below(path);
                }
            }
            Err(err) => {
                prop_assert!(err.line >= 1);
                prop_assert!(err.offset + err.len <= text.len());
            }
        }
    }

    #[test]
    fn skipped_directories_hide_everything_below(text in ignore_text(), dir in walked_path(), child in walked_path()) {
        if let Ok(file) = IgnoreFile::parse(&text) {
            if file.is_excluded(&dir) && !file.may_reinclude_below(&dir) {
                let below = format!("{dir}/{child}");
                prop_assert!(file.is_excluded(&below), "{:?} below {:?}", below, dir);
            }
        }
    }

    #[test]
    fn trailing_catch_all_decides(text in ignore_text(), path in rel_path()) {
        if let Ok(file) = IgnoreFile::parse(&format!("{text}\n**")) {
            prop_assert!(file.is_excluded(&path) || path.split('/').all(|p| p.is_empty() || p == ".") || path.contains(".."));
        }
        if let Ok(file) = IgnoreFile::parse(&format!("{text}\n!**")) {
            prop_assert!(!file.is_excluded(&path));
        }
    }

    #[test]
    fn literal_names_exclude_themselves_and_below(name in "[a-z0-9_.-]{1,12}", child in "[a-z]{1,8}") {
        prop_assume!(name != "." && name != "..");
        let file = IgnoreFile::parse(&name);
        prop_assert!(file.is_ok());
        if let Ok(file) = file {
            let below = format!("{name}/{child}");
            // An uppercase first component can never equal `name` (lowercase by construction).
            let elsewhere = format!("Z{child}/{name}x");
            prop_assert!(file.is_excluded(&name));
            prop_assert!(file.is_excluded(&below));
            prop_assert!(!file.is_excluded(&elsewhere));
        }
    }
}
