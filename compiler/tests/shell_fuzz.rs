//! Property tests of `kiln_compiler::shell`: arbitrary input never panics, errors point inside
//! the input, and the laws that follow from BuildKit's rules hold on random words.

use std::collections::HashMap;

use kiln_compiler::shell::{Lexer, NoEnv};
use proptest::prelude::*;

/// Words built from the characters the lexer treats specially, plus ordinary and non-ASCII ones.
fn shellish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "$", "{", "}", ":", "-", "+", "?", "#", "%", "/", "\\", "`", "\"", "'", " ", "\t", "\n",
        "<", "<<", "*", "@", "!", "0", "1", "a", "B", "_", "é", "日", "٣", "\u{FEFF}", "${A}",
        "${A:-", "${A#", "${A%%", "${A/", "${A//", "$A", "$B", "${B:?", "${C:+", "=",
    ]);
    prop::collection::vec(atoms, 0..24).prop_map(|v| v.concat())
}

fn lexers() -> impl Strategy<Value = Lexer> {
    (prop::sample::select(vec!['\\', '`']), any::<[bool; 4]>()).prop_map(
        |(escape, [rq, re, sq, ku])| {
            Lexer::new(escape)
                .with_raw_quotes(rq)
                .with_raw_escapes(re)
                .with_quotes_unprocessed(sq)
                .with_unset_kept(ku)
        },
    )
}

fn env() -> Vec<(String, String)> {
    vec![
        ("A".to_string(), "a*b ?\\c".to_string()),
        ("B".to_string(), String::new()),
        ("C".to_string(), "x\ny".to_string()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_and_errors_point_inside(word in shellish(), lexer in lexers()) {
        match lexer.expand_word(&word, &env()) {
            Ok(e) => {
                for name in &e.used {
                    prop_assert!(!e.unset.contains(name));
                }
            }
            Err(err) => {
                prop_assert!(err.offset + err.len <= word.len());
                prop_assert!(word.is_char_boundary(err.offset));
                prop_assert!(word.is_char_boundary(err.offset + err.len));
            }
        }
        let _ = lexer.expand_words(&word, &env());
    }

    #[test]
    fn arbitrary_unicode_never_panics(word in any::<String>(), lexer in lexers()) {
        let _ = lexer.expand_word(&word, &env());
        let _ = lexer.expand_words(&word, &NoEnv);
    }

    #[test]
    fn word_and_words_agree_on_success(word in shellish()) {
        let lexer = Lexer::new('\\');
        let single = lexer.expand_word(&word, &env());
        let split = lexer.expand_words(&word, &env());
        prop_assert_eq!(single.is_ok(), split.is_ok());
    }

    #[test]
    fn text_without_specials_is_unchanged(word in "[a-zA-Z0-9 .,:;=+_/@!#%*?\\-\t\n]{0,40}") {
        let lexer = Lexer::new('\\');
        let expanded = lexer.expand_word(&word, &NoEnv).map(|e| e.value);
        prop_assert_eq!(expanded.as_deref().ok(), Some(word.as_str()));
        let words = lexer.expand_words(&word, &NoEnv).ok();
        let expected: Vec<String> = word.split_whitespace().map(str::to_string).collect();
        prop_assert_eq!(words, Some(expected));
    }

    #[test]
    fn single_quotes_are_literal(body in "[^']{0,40}") {
        let quoted = format!("'{body}'");
        let got = Lexer::new('\\').expand_word(&quoted, &env()).map(|e| e.value);
        prop_assert_eq!(got.ok(), Some(body));
    }

    #[test]
    fn escaping_every_character_gives_it_back(body in any::<String>()) {
        for escape in ['\\', '`'] {
            let escaped: String = body.chars().flat_map(|c| [escape, c]).collect();
            let got = Lexer::new(escape).expand_word(&escaped, &env()).map(|e| e.value);
            prop_assert_eq!(got.ok(), Some(body.clone()));
        }
    }

    #[test]
    fn values_are_inserted_verbatim(value in any::<String>()) {
        let lexer = Lexer::new('\\');
        let env: HashMap<String, String> = [("V".to_string(), value.clone())].into();
        for word in ["$V", "${V}", "\"$V\"", "${V:-x}", "${V-x}", "${V?}"] {
            if value.is_empty() && word == "${V:-x}" {
                continue;
            }
            let got = lexer.expand_word(word, &env).map(|e| e.value);
            prop_assert_eq!(got.ok(), Some(value.clone()), "word {}", word);
        }
    }

    #[test]
    fn defaults_apply_to_unset_names(default in "[a-z0-9 ./]{0,20}") {
        let lexer = Lexer::new('\\');
        let word = format!("${{NOPE:-{default}}}");
        let got = lexer.expand_word(&word, &NoEnv);
        prop_assert_eq!(got.as_ref().map(|e| e.value.as_str()).ok(), Some(default.as_str()));
        prop_assert_eq!(got.map(|e| e.unset).ok(), Some(vec!["NOPE".to_string()]));
    }

    #[test]
    fn star_patterns_trim_everything_or_nothing(value in "[^\n]{0,30}") {
        let lexer = Lexer::new('\\');
        let env = [("V", value.as_str())];
        let expand = |w: &str| lexer.expand_word(w, &env).map(|e| e.value).ok();
        prop_assert_eq!(expand("${V#*}"), Some(value.clone()));
        prop_assert_eq!(expand("${V%*}"), Some(value.clone()));
        prop_assert_eq!(expand("${V##*}"), Some(String::new()));
        prop_assert_eq!(expand("${V%%*}"), Some(String::new()));
        prop_assert_eq!(expand("${V//*/x}"), Some("x".to_string()));
    }

    #[test]
    fn trims_return_a_prefix_or_suffix(value in "[ab*?.\n]{0,16}", pattern in "[ab*?.]{0,6}") {
        let lexer = Lexer::new('\\');
        let env = [("V", value.as_str())];
        for op in ["#", "##"] {
            let got = lexer.expand_word(&format!("${{V{op}{pattern}}}"), &env).map(|e| e.value);
            prop_assert!(got.as_ref().is_ok_and(|g| value.ends_with(g.as_str())), "{op}{pattern}: {got:?}");
        }
        for op in ["%", "%%"] {
            let got = lexer.expand_word(&format!("${{V{op}{pattern}}}"), &env).map(|e| e.value);
            prop_assert!(got.as_ref().is_ok_and(|g| value.starts_with(g.as_str())), "{op}{pattern}: {got:?}");
        }
        let shortest = lexer.expand_word(&format!("${{V#{pattern}}}"), &env).map(|e| e.value.len());
        let longest = lexer.expand_word(&format!("${{V##{pattern}}}"), &env).map(|e| e.value.len());
        prop_assert!(matches!((shortest, longest), (Ok(s), Ok(l)) if l <= s));
    }
}
