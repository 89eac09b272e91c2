//! Table-driven tests of `kiln_compiler::shell`: every behaviour of BuildKit's shell lexer that
//! Dockerfile expansion relies on. Expected values were checked against BuildKit's lexer.

use std::collections::{BTreeMap, HashMap};

use kiln_compiler::shell::{Env, ExpandErrorKind, Lexer, NoEnv};

/// The environment most tables use.
fn env() -> Vec<(String, String)> {
    [
        ("HOME", "/root"),
        ("USER", "app"),
        ("EMPTY", ""),
        ("SPACED", " a  b "),
        ("FILE", "archive.tar.gz"),
        ("PATHS", "/usr/local/bin:/usr/bin:/bin"),
        ("URL", "http://example.org/a/b"),
        ("STARS", "a*b?c\\d"),
        ("MULTI", "one\ntwo"),
        ("名前", "値"),
        ("1", "first"),
        ("v_2", "x"),
        ("TPL", "<$0|${0}|$$|$1|$>"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn word(lexer: &Lexer, input: &str) -> String {
    match lexer.expand_word(input, &env()) {
        Ok(e) => e.value,
        Err(e) => panic!("{input:?} failed: {e}"),
    }
}

fn check_words(cases: &[(&str, &str)], lexer: &Lexer) {
    for (input, want) in cases {
        assert_eq!(word(lexer, input), *want, "input {input:?}");
    }
}

#[test]
fn quotes_and_escapes() {
    check_words(
        &[
            ("plain", "plain"),
            ("", ""),
            ("a b  c", "a b  c"),
            ("'single $HOME \\n'", "single $HOME \\n"),
            ("it''s", "its"),
            ("'a\\'", "a\\"),
            ("\"double $HOME\"", "double /root"),
            ("\"a'b'c\"", "a'b'c"),
            ("'a\"b'", "a\"b"),
            ("\"\\\"q\\\"\"", "\"q\""),
            ("\"\\$HOME\"", "$HOME"),
            ("\"\\\\\"", "\\"),
            ("\"\\n\\t\"", "\\n\\t"),
            ("\"\\'\"", "\\'"),
            ("\\$HOME", "$HOME"),
            ("\\\\$HOME", "\\/root"),
            ("\\a\\b", "ab"),
            ("\\ ", " "),
            ("\\'", "'"),
            ("\\\"", "\""),
            ("trailing\\", "trailing"),
            ("trailing\\\\", "trailing\\"),
            ("mixed\"d q\"'s q'\\ e", "mixedd qs q e"),
            ("\"\"", ""),
            ("''", ""),
            ("\"'\"'\"'", "'\""),
            ("日本'語'", "日本語"),
            ("\u{FEFF}bom", "bom"),
            ("mid\u{FEFF}bom", "mid\u{FEFF}bom"),
            ("a<<b", "a<<b"),
            ("<< \tEOF", "<< \tEOF"),
        ],
        &Lexer::new('\\'),
    );
}

#[test]
fn backtick_escape() {
    check_words(
        &[
            ("`$HOME", "$HOME"),
            ("C:\\Windows\\", "C:\\Windows\\"),
            ("``", "`"),
            ("a`", "a"),
            ("\"`\"x`\"\"", "\"x\""),
            ("\"`$HOME\"", "$HOME"),
            ("\"``\"", "`"),
            ("\"\\$HOME\"", "\\/root"),
            ("\"`n\"", "`n"),
            ("${HOME:-`}}", "/root"),
            ("${NOPE:-`}}", "}"),
        ],
        &Lexer::new('`'),
    );
}

#[test]
fn plain_references() {
    check_words(
        &[
            ("$HOME", "/root"),
            ("${HOME}", "/root"),
            ("$HOME/x", "/root/x"),
            ("${HOME}x", "/rootx"),
            ("$HOMEx", ""),
            ("$NOPE", ""),
            ("${NOPE}", ""),
            ("a${EMPTY}b", "ab"),
            ("$v_2", "x"),
            ("$v_2.y", "x.y"),
            ("$名前!", "値!"),
            ("${名前}", "値"),
            ("$", "$"),
            ("a$", "a$"),
            ("$.", "$."),
            ("$/", "$/"),
            ("$ x", "$ x"),
            ("$-", ""),
            ("\"$\"", "$"),
            ("$1", "first"),
            ("$1x", "firstx"),
            ("$12", ""),
            ("${1}", "first"),
            ("$0", ""),
            ("$01", ""),
            ("$@", ""),
            ("$@@", "@"),
            ("$*x", "x"),
            ("$#", ""),
            ("$?", ""),
            ("$$", ""),
            ("$!", ""),
            ("${#}", ""),
            ("${@:-at}", "at"),
            ("${$:-pid}", "pid"),
            ("$٣x", "x"),
            ("$a²", "²"),
            ("$SPACED", " a  b "),
        ],
        &Lexer::new('\\'),
    );
}

#[test]
fn default_alternative_and_required_values() {
    check_words(
        &[
            ("${NOPE:-def}", "def"),
            ("${NOPE-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${USER:-def}", "app"),
            ("${USER-def}", "app"),
            ("${NOPE:+alt}", ""),
            ("${NOPE+alt}", ""),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${USER:+alt}", "alt"),
            ("${USER+alt}", "alt"),
            ("${USER:?oops}", "app"),
            ("${USER?oops}", "app"),
            ("${EMPTY?oops}", ""),
            ("${NOPE:-}", ""),
            ("${NOPE:-a b  c}", "a b  c"),
            ("${NOPE:-'$HOME'}", "$HOME"),
            ("${NOPE:-\"$HOME\"}", "/root"),
            ("${NOPE:-\\}}", "}"),
            ("${NOPE:-a}}", "a}"),
            ("${NOPE:-{x}", "{x"),
            ("${NOPE:-$HOME}", "/root"),
            ("${NOPE:-${USER}}", "app"),
            ("${NOPE:-${NADA:-deep}}", "deep"),
            ("${USER:+[${HOME}]}", "[/root]"),
            ("${USER:+${NOPE}}", ""),
            ("${NOPE:-\\$HOME}", "$HOME"),
            ("${NOPE:-'}'}", "}"),
            ("${NOPE:-\"}\"}", "}"),
            ("pre${NOPE:-mid}post", "premidpost"),
            ("v${USER:+-${USER}}.tgz", "v-app.tgz"),
            ("v${NOPE:+-${NOPE}}.tgz", "v.tgz"),
            ("${NOPE:-<<x}", "<<x"),
        ],
        &Lexer::new('\\'),
    );
}

#[test]
fn prefix_and_suffix_trimming() {
    check_words(
        &[
            ("${FILE#*.}", "tar.gz"),
            ("${FILE##*.}", "gz"),
            ("${FILE%.*}", "archive.tar"),
            ("${FILE%%.*}", "archive"),
            ("${FILE#archive}", ".tar.gz"),
            ("${FILE#nomatch}", "archive.tar.gz"),
            ("${FILE%gz}", "archive.tar."),
            ("${FILE#}", "archive.tar.gz"),
            ("${FILE##}", "archive.tar.gz"),
            ("${FILE%}", "archive.tar.gz"),
            ("${FILE#*}", "archive.tar.gz"),
            ("${FILE##*}", ""),
            ("${FILE%*}", "archive.tar.gz"),
            ("${FILE%%*}", ""),
            ("${FILE#?}", "rchive.tar.gz"),
            ("${FILE%???}", "archive.tar"),
            ("${PATHS#*:}", "/usr/bin:/bin"),
            ("${PATHS##*:}", "/bin"),
            ("${PATHS%:*}", "/usr/local/bin:/usr/bin"),
            ("${PATHS%%:*}", "/usr/local/bin"),
            ("${URL#*//}", "example.org/a/b"),
            ("${URL##*/}", "b"),
            ("${URL%/*}", "http://example.org/a"),
            ("${STARS#*\\*}", "b?c\\d"),
            ("${STARS#a\\*b\\?}", "c\\d"),
            ("${STARS%\\\\*}", "a*b?c"),
            ("${MULTI#*}", "one\ntwo"),
            ("${MULTI##*}", "\ntwo"),
            ("${MULTI%%*}", "one\n"),
            ("${MULTI#one?}", "one\ntwo"),
            ("${NOPE#*}", ""),
            ("${EMPTY%%*}", ""),
            ("${名前#値}", ""),
            ("${FILE#\"*\"}", "archive.tar.gz"),
            ("${FILE#'a'}", "rchive.tar.gz"),
            ("${FILE#$USER}", "archive.tar.gz"),
            ("${FILE#${NOPE:-arch}}", "ive.tar.gz"),
            ("${FILE#${NOPE:-#*.}}", "gz"),
            ("${FILE%\\}}", "archive.tar.gz"),
        ],
        &Lexer::new('\\'),
    );
}

#[test]
fn pattern_replacement() {
    check_words(
        &[
            ("${PATHS/:/ }", "/usr/local/bin /usr/bin:/bin"),
            ("${PATHS//:/ }", "/usr/local/bin /usr/bin /bin"),
            ("${PATHS//\\//|}", "|usr|local|bin:|usr|bin:|bin"),
            ("${URL/http:/https:}", "https://example.org/a/b"),
            ("${URL/*\\/\\//}", "example.org/a/b"),
            ("${URL/a*/X}", "http://exX"),
            ("${URL/a?/X}", "http://exXple.org/a/b"),
            ("${FILE/.*/}", "archive"),
            ("${FILE//?/.}", ".............."),
            ("${FILE/nomatch/x}", "archive.tar.gz"),
            ("${FILE///}", "archive.tar.gz"),
            ("${FILE//a/}", "rchive.tr.gz"),
            ("${FILE//a/\\}}", "\\}rchive.t\\}r.gz"),
            ("${FILE//a/\\\\}", "\\\\rchive.t\\\\r.gz"),
            ("${NOPE/*/x}", "x"),
            ("${NOPE//x/y}", ""),
            ("${EMPTY//*/z}", "z"),
            // The replacement is shell-expanded first ($0 is an unset variable there)...
            ("${USER//p/[$0]}", "a[][]"),
            ("${USER/p/[$0]}", "a[]p"),
            // ...then `//` hands it to Go's template expansion, `/` inserts it verbatim.
            ("${USER//p/$TPL}", "a<p|p|$||$><p|p|$||$>"),
            ("${USER/p/$TPL}", "a<$0|${0}|$$|$1|$>p"),
            ("${USER//p/\\$0}", "a\\p\\p"),
            ("${USER/p/\\$0}", "a\\$0p"),
            ("${MULTI/*/X}", "X\ntwo"),
            ("${MULTI//*/X}", "X\nX"),
            ("${名前/値/v}", "v"),
            ("${USER/${NOPE:-a}/A}", "App"),
        ],
        &Lexer::new('\\'),
    );
}

fn error_kind(lexer: &Lexer, input: &str) -> ExpandErrorKind {
    match lexer.expand_word(input, &env()) {
        Ok(e) => panic!("{input:?} should fail, gave {:?}", e.value),
        Err(e) => {
            assert!(
                e.offset + e.len <= input.len(),
                "{input:?}: span {}+{} outside input",
                e.offset,
                e.len
            );
            e.kind
        }
    }
}

#[test]
fn errors_have_the_right_kind() {
    use ExpandErrorKind::*;
    let unsupported = |m: &str| UnsupportedModifier {
        modifier: m.to_string(),
    };
    let required = |n: &str, m: &str| Required {
        name: n.to_string(),
        message: m.to_string(),
    };
    let cases: Vec<(&str, ExpandErrorKind)> = vec![
        ("'open", UnterminatedSingleQuote),
        ("a'b", UnterminatedSingleQuote),
        ("'a\\''", UnterminatedSingleQuote),
        ("\"open", UnterminatedDoubleQuote),
        ("\"a\\\"", UnterminatedDoubleQuote),
        ("\"a\\", UnterminatedDoubleQuote),
        ("\"$HOME", UnterminatedDoubleQuote),
        ("${", MissingBrace),
        ("${HOME", MissingBrace),
        ("x${HOME:-y", MissingBrace),
        ("${NOPE:-'y}", MissingBrace),
        ("${NOPE:-${A:-b}", MissingBrace),
        ("${NOPE:-${EMPTY:?gone}", MissingBrace),
        ("${HOME:", MissingBrace),
        ("${HOME#x", MissingBrace),
        ("${HOME/x", MissingSlash),
        ("${HOME//x}", MissingSlash),
        ("${HOME//}", MissingSlash),
        ("${HOME/}", MissingSlash),
        ("${HOME/a\\/b}", MissingSlash),
        ("${HOME/x/y", MissingBrace),
        ("${}", BadSubstitution),
        ("a${}b", BadSubstitution),
        ("${{x}}", BadSubstitution),
        ("${:}", BadSubstitution),
        ("${:-x}", BadSubstitution),
        ("${.}", unsupported(".")),
        ("${HOME=x}", unsupported("=")),
        ("${HOME:=x}", unsupported(":=")),
        ("${HOME:x}", unsupported(":x")),
        ("${HOME:#x}", unsupported(":#")),
        ("${HOME:%%x}", unsupported(":%")),
        ("${HOME!}", unsupported("!")),
        ("${NOPE:?}", required("NOPE", "is not allowed to be unset")),
        ("${NOPE?}", required("NOPE", "is not allowed to be unset")),
        (
            "${EMPTY:?}",
            required("EMPTY", "is not allowed to be empty"),
        ),
        ("${NOPE:?set it $USER}", required("NOPE", "set it app")),
        ("${EMPTY:?'quoted msg'}", required("EMPTY", "quoted msg")),
        ("${NOPE?m}", required("NOPE", "m")),
        ("${NOPE:-${NADA:?inner}}", required("NADA", "inner")),
    ];
    let lexer = Lexer::new('\\');
    for (input, want) in cases {
        assert_eq!(error_kind(&lexer, input), want, "input {input:?}");
    }
    for input in [
        "${HOME#\\x}",
        "${HOME%\\x}",
        "${HOME%%\\$}",
        "${HOME/\\a/b}",
        "${HOME//x\\y/z}",
        "${HOME/$STARS/z}",
    ] {
        assert!(
            matches!(error_kind(&lexer, input), InvalidPattern { .. }),
            "{input:?}"
        );
    }
}

#[test]
fn error_spans_point_at_the_expansion() {
    let lexer = Lexer::new('\\');
    let cases: &[(&str, usize, usize)] = &[
        ("ab'cd", 2, 3),
        ("x\"yz", 1, 3),
        ("pre${HOME", 3, 6),
        ("pre${}", 3, 3),
        ("a ${NOPE:?msg} b", 2, 12),
        ("${HOME:=x} tail", 0, 10),
        ("${HOME=x} tail", 0, 7),
    ];
    for (input, offset, len) in cases {
        let err = lexer.expand_word(input, &env()).err();
        let got = err.map(|e| (e.offset, e.len));
        assert_eq!(got, Some((*offset, *len)), "input {input:?}");
    }
}

#[test]
fn error_messages_follow_buildkit() {
    let lexer = Lexer::new('\\');
    let message = |input: &str| {
        lexer
            .expand_word(input, &env())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert_eq!(message("${NOPE:?}"), "NOPE: is not allowed to be unset");
    assert_eq!(message("${EMPTY:?}"), "EMPTY: is not allowed to be empty");
    assert_eq!(message("${NOPE?need $USER}"), "NOPE: need app");
    assert_eq!(message("${x"), "syntax error: missing '}'");
    assert_eq!(message("${}"), "syntax error: bad substitution");
    assert_eq!(
        message("${x:=y}"),
        "unsupported modifier (:=) in substitution"
    );
    assert_eq!(
        message("'x"),
        "unexpected end of statement while looking for matching single-quote"
    );
    let err = lexer.expand_word("${x:=y}", &env()).err();
    assert!(err.and_then(|e| e.help()).is_some());
}

#[test]
fn diagnostics_render_with_miette() {
    let input = "FROM ${BASE:?pick a base}";
    let err = match Lexer::new('\\').expand_word(input, &NoEnv) {
        Err(e) => e,
        Ok(v) => panic!("expected failure, got {v:?}"),
    };
    let report = miette::Report::new(err).with_source_code(input.to_string());
    let mut rendered = String::new();
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    handler
        .render_report(&mut rendered, report.as_ref())
        .unwrap_or_default();
    assert!(rendered.contains("BASE: pick a base"), "{rendered}");
    assert!(rendered.contains("here"), "{rendered}");
    assert!(rendered.contains("--build-arg"), "{rendered}");
}

#[test]
fn used_and_unset_variables_are_recorded() {
    let lexer = Lexer::new('\\');
    let cases: &[(&str, &[&str], &[&str])] = &[
        ("plain", &[], &[]),
        ("$HOME $HOME ${HOME}", &["HOME"], &[]),
        ("$NOPE", &[], &["NOPE"]),
        (
            "${USER:-x} ${EMPTY:-y} ${NOPE:-z}",
            &["USER", "EMPTY"],
            &["NOPE"],
        ),
        ("${NOPE:-$HOME}", &["HOME"], &["NOPE"]),
        ("${USER:+${NADA}}", &["USER"], &["NADA"]),
        ("'$HOME' \\$USER", &[], &[]),
        ("\"$HOME\"", &["HOME"], &[]),
        ("${FILE#$USER}${FILE%$NOPE}", &["USER", "FILE"], &["NOPE"]),
        ("${URL/$USER/$HOME}", &["USER", "HOME", "URL"], &[]),
        ("$1 $@", &["1"], &["@"]),
    ];
    for (input, used, unset) in cases {
        let e = match lexer.expand_word(input, &env()) {
            Ok(e) => e,
            Err(err) => panic!("{input:?}: {err}"),
        };
        assert_eq!(e.used, *used, "used by {input:?}");
        assert_eq!(e.unset, *unset, "unset in {input:?}");
    }
}

#[test]
fn word_splitting() {
    let lexer = Lexer::new('\\');
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("   ", &[]),
        ("a", &["a"]),
        ("  a   b\tc\n d ", &["a", "b", "c", "d"]),
        ("a\\ b", &["a b"]),
        ("\"a  b\" c", &["a  b", "c"]),
        ("'a  b'c d", &["a  bc", "d"]),
        ("a \"\" b", &["a", "b"]),
        ("x$SPACED", &["x", "a", "b"]),
        ("x\"$SPACED\"y", &["x a  b y"]),
        ("$EMPTY", &[]),
        ("80/tcp $NOPE 443", &["80/tcp", "443"]),
        ("$PATHS", &["/usr/local/bin:/usr/bin:/bin"]),
        ("cat <<EOF", &["cat", "<<EOF"]),
        ("cat << EOF x", &["cat", "<< EOF", "x"]),
        ("a < b", &["a", "<", "b"]),
        ("a\\", &["a"]),
        ("${NOPE:-p q}", &["p", "q"]),
        ("a ${NOPE:-p q} b", &["a", "p", "q", "b"]),
        // BuildKit's shared word buffer: text collected before a `${v<op>...}` is dropped.
        ("ab${NOPE:-cd}ef", &["cdef"]),
        ("ab${USER}cd", &["abappcd"]),
        ("ab\"${NOPE:-x}\"", &["x"]),
        ("1 2${USER:+3}", &["1", "3"]),
    ];
    for (input, want) in cases {
        let got = lexer.expand_words(input, &env());
        let want: Vec<String> = want.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            got.as_ref().ok(),
            Some(&want),
            "input {input:?} gave {got:?}"
        );
    }
    assert!(lexer.expand_words("a \"b", &env()).is_err());
}

#[test]
fn lexer_options() {
    let raw_quotes = Lexer::new('\\').with_raw_quotes(true);
    check_words(
        &[
            ("'a b'", "'a b'"),
            ("\"$USER\"", "\"app\""),
            ("x'y'z", "x'y'z"),
        ],
        &raw_quotes,
    );
    let raw_escapes = Lexer::new('\\').with_raw_escapes(true);
    check_words(
        &[
            ("\\$USER", "\\$USER"),
            ("a\\ b", "a\\ b"),
            ("end\\", "end\\"),
            ("\"\\$USER\"", "\\$USER"),
            ("\"\\n\"", "\\\\n"),
        ],
        &raw_escapes,
    );
    let unprocessed = Lexer::new('\\').with_quotes_unprocessed(true);
    check_words(
        &[
            ("'$USER'", "'app'"),
            ("\"a\\\"b\"", "\"a\"b\""),
            ("'unterminated", "'unterminated"),
        ],
        &unprocessed,
    );
    let keep = Lexer::new('\\').with_unset_kept(true);
    check_words(
        &[
            ("$NOPE", "$NOPE"),
            ("${NOPE}", "${NOPE}"),
            ("${NOPE:-$USER}", "${NOPE:-app}"),
            ("${NOPE#x*}", "${NOPE#x*}"),
            ("${NOPE//a/b}", "${NOPE/a/b}"),
            ("$USER ${EMPTY:-e}", "app e"),
            ("$", "$"),
            ("$1$2", "first$2"),
        ],
        &keep,
    );
    let heredoc_probe = Lexer::new('\\')
        .with_raw_quotes(true)
        .with_raw_escapes(true)
        .with_unset_kept(true);
    assert_eq!(
        heredoc_probe
            .expand_words("cat <<\"EOF\" > $OUT\\ x", &NoEnv)
            .ok(),
        Some(vec![
            "cat".to_string(),
            "<<\"EOF\"".to_string(),
            ">".to_string(),
            "$OUT\\ x".to_string(),
        ])
    );
}

#[test]
fn environment_implementations_agree() {
    let pairs = vec![
        ("A".to_string(), "1".to_string()),
        ("B".to_string(), "".to_string()),
        ("A".to_string(), "2".to_string()),
    ];
    let hash: HashMap<String, String> = pairs.iter().cloned().collect();
    let tree: BTreeMap<String, String> = pairs.iter().cloned().collect();
    let borrowed: [(&str, &str); 3] = [("A", "1"), ("B", ""), ("A", "2")];
    let envs: [&dyn Env; 5] = [&pairs, &hash, &tree, &borrowed, &pairs.as_slice()];
    let lexer = Lexer::new('\\');
    for env in envs {
        let e = lexer.expand_word("$A-${B-unset}-${C-unset}", env).ok();
        assert_eq!(e.map(|e| e.value).as_deref(), Some("2--unset"));
    }
    assert_eq!(Env::get(&NoEnv, "A"), None);
}

#[test]
fn lexer_is_reusable_and_shareable() {
    let lexer = Lexer::new('\\');
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let lexer = lexer.clone();
            std::thread::spawn(move || {
                let env = [("N", i.to_string())];
                (0..200)
                    .map(|_| lexer.expand_word("${N:-x}-$N", &env).map(|e| e.value))
                    .all(|v| v.ok() == Some(format!("{i}-{i}")))
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().ok(), Some(true));
    }
}

/// One word may expand to at most `MAX_EXPANSION` bytes; the error points at the `$` that
/// crosses the bound, and a value just under the bound is kept whole.
#[test]
fn expansion_is_bounded() {
    use kiln_compiler::shell::MAX_EXPANSION;
    let half = "x".repeat(MAX_EXPANSION / 2);
    let env = vec![("H".to_string(), half.clone())];
    let lexer = Lexer::default();
    let whole = lexer.expand_word("${H}$H", &env).unwrap();
    assert_eq!(whole.value.len(), MAX_EXPANSION);
    let err = lexer.expand_word("ab${H}$H$H", &env).unwrap_err();
    assert_eq!(
        err.kind,
        ExpandErrorKind::TooLong {
            limit: MAX_EXPANSION
        }
    );
    // `ab` and two halves already pass the bound: the second `$H` crosses it.
    assert_eq!((err.offset, err.len), (6, 2), "{err:?}");
    assert!(err.to_string().contains("1 MiB"), "{err}");
    let nested = lexer.expand_word("${U:-$H$H$H}", &env).unwrap_err();
    assert!(
        matches!(nested.kind, ExpandErrorKind::TooLong { .. }),
        "{nested:?}"
    );
}
