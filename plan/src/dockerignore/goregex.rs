//! The subset of Go's `regexp` syntax that moby/patternmatcher can produce from a pattern, as a
//! boolean matcher with Go's `MatchString` (search) semantics.
//!
//! patternmatcher turns a `.dockerignore` pattern into Go regexp source and copies the user's
//! `[...]` classes and `\x` escapes into it unchanged, so their meaning is Go's regexp meaning
//! (Perl flags: `.` does not match `\n`, negated classes do, `^`/`$` are text anchors, `\d\s\w`
//! and POSIX classes are ASCII). This module parses that source and simulates it as a Thompson
//! NFA over bit sets. It supports every construct the conversion can emit plus the escapes and
//! classes a user can smuggle in; it rejects, with a reason, Unicode script classes
//! (`\p{Greek}`), which kiln does not implement, and everything Go's parser rejects.

use unicode_properties::{
    GeneralCategory as Gc, GeneralCategoryGroup as Gg, UnicodeGeneralCategory,
};

/// A Unicode general category (or group) usable in `\p{..}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Category {
    Any,
    Group(Gg),
    One(Gc),
    /// Go's `C`: Cc, Cf, Co, Cs (not unassigned code points).
    Other,
}

impl Category {
    fn from_name(name: &str) -> Option<Category> {
        let one = |c| Some(Category::One(c));
        match name {
            "Any" => Some(Category::Any),
            "C" => Some(Category::Other),
            "L" => Some(Category::Group(Gg::Letter)),
            "M" => Some(Category::Group(Gg::Mark)),
            "N" => Some(Category::Group(Gg::Number)),
            "P" => Some(Category::Group(Gg::Punctuation)),
            "S" => Some(Category::Group(Gg::Symbol)),
            "Z" => Some(Category::Group(Gg::Separator)),
            "Cc" => one(Gc::Control),
            "Cf" => one(Gc::Format),
            "Co" => one(Gc::PrivateUse),
            "Cs" => one(Gc::Surrogate),
            "Ll" => one(Gc::LowercaseLetter),
            "Lm" => one(Gc::ModifierLetter),
            "Lo" => one(Gc::OtherLetter),
            "Lt" => one(Gc::TitlecaseLetter),
            "Lu" => one(Gc::UppercaseLetter),
            "Mc" => one(Gc::SpacingMark),
            "Me" => one(Gc::EnclosingMark),
            "Mn" => one(Gc::NonspacingMark),
            "Nd" => one(Gc::DecimalNumber),
            "Nl" => one(Gc::LetterNumber),
            "No" => one(Gc::OtherNumber),
            "Pc" => one(Gc::ConnectorPunctuation),
            "Pd" => one(Gc::DashPunctuation),
            "Pe" => one(Gc::ClosePunctuation),
            "Pf" => one(Gc::FinalPunctuation),
            "Pi" => one(Gc::InitialPunctuation),
            "Po" => one(Gc::OtherPunctuation),
            "Ps" => one(Gc::OpenPunctuation),
            "Sc" => one(Gc::CurrencySymbol),
            "Sk" => one(Gc::ModifierSymbol),
            "Sm" => one(Gc::MathSymbol),
            "So" => one(Gc::OtherSymbol),
            "Zl" => one(Gc::LineSeparator),
            "Zp" => one(Gc::ParagraphSeparator),
            "Zs" => one(Gc::SpaceSeparator),
            _ => None,
        }
    }

    fn contains(self, c: char) -> bool {
        match self {
            Category::Any => true,
            Category::Group(g) => c.general_category_group() == g,
            Category::One(one) => c.general_category() == one,
            Category::Other => matches!(
                c.general_category(),
                Gc::Control | Gc::Format | Gc::PrivateUse | Gc::Surrogate
            ),
        }
    }
}

/// One member of a character class.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ClassItem {
    Ranges {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
    Category {
        category: Category,
        negated: bool,
    },
}

impl ClassItem {
    fn contains(&self, c: char) -> bool {
        match self {
            ClassItem::Ranges { ranges, negated } => {
                ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated
            }
            ClassItem::Category { category, negated } => category.contains(c) != *negated,
        }
    }
}

/// What a consuming NFA state accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pred {
    Char(char),
    /// `.`: anything but a newline.
    AnyButNewline,
    Class {
        items: Vec<ClassItem>,
        negated: bool,
    },
    /// A code point Rust cannot hold (`\x{D800}`): matches nothing.
    Never,
}

impl Pred {
    fn matches(&self, c: char) -> bool {
        match self {
            Pred::Char(x) => *x == c,
            Pred::AnyButNewline => c != '\n',
            Pred::Class { items, negated } => items.iter().any(|i| i.contains(c)) != *negated,
            Pred::Never => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Anchor {
    Begin,
    End,
    WordBoundary,
    NotWordBoundary,
}

/// The parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ast {
    Atom(Pred),
    Anchor(Anchor),
    Concat(Vec<Ast>),
    Alternate(Vec<Ast>),
    /// `max: None` is unbounded.
    Repeat {
        inner: Box<Ast>,
        min: u32,
        max: Option<u32>,
    },
}

/// Go's limit on `{n,m}` counts.
const MAX_REPEAT: u32 = 1000;
/// kiln's limit on compiled size (Go has its own "expression too large").
const MAX_STATES: usize = 100_000;

const PERL_CLASSES: &[(char, &[(char, char)])] = &[
    ('d', &[('0', '9')]),
    ('s', &[('\t', '\n'), ('\x0c', '\r'), (' ', ' ')]),
    ('w', &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')]),
];

const POSIX_CLASSES: &[(&str, &[(char, char)])] = &[
    ("alnum", &[('0', '9'), ('A', 'Z'), ('a', 'z')]),
    ("alpha", &[('A', 'Z'), ('a', 'z')]),
    ("ascii", &[('\0', '\x7f')]),
    ("blank", &[('\t', '\t'), (' ', ' ')]),
    ("cntrl", &[('\0', '\x1f'), ('\x7f', '\x7f')]),
    ("digit", &[('0', '9')]),
    ("graph", &[('!', '~')]),
    ("lower", &[('a', 'z')]),
    ("print", &[(' ', '~')]),
    ("punct", &[('!', '/'), (':', '@'), ('[', '`'), ('{', '~')]),
    ("space", &[('\t', '\r'), (' ', ' ')]),
    ("upper", &[('A', 'Z')]),
    ("word", &[('0', '9'), ('A', 'Z'), ('_', '_'), ('a', 'z')]),
    ("xdigit", &[('0', '9'), ('A', 'F'), ('a', 'f')]),
];

fn perl_class(letter: char) -> Option<ClassItem> {
    let lower = letter.to_ascii_lowercase();
    PERL_CLASSES
        .iter()
        .find(|(l, _)| *l == lower)
        .map(|(_, ranges)| ClassItem::Ranges {
            ranges: ranges.to_vec(),
            negated: letter.is_ascii_uppercase(),
        })
}

/// Recursive-descent parser over the regexp source.
struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

type ParseResult<T> = Result<T, String>;

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek2(&self) -> Option<char> {
        self.rest().chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Alternatives separated by `|`, up to `)` (when `in_group`) or the end.
    fn alternation(&mut self, in_group: bool) -> ParseResult<Ast> {
        let mut alternatives = vec![self.sequence(in_group)?];
        while self.peek() == Some('|') {
            self.bump();
            alternatives.push(self.sequence(in_group)?);
        }
        if in_group && self.peek() != Some(')') {
            return Err("missing closing )".to_string());
        }
        Ok(match alternatives.len() {
            1 => alternatives.pop().unwrap_or(Ast::Concat(Vec::new())),
            _ => Ast::Alternate(alternatives),
        })
    }

    /// Go's `{n}`, `{n,}`, `{n,m}` after the `{`; `None` when it is not a repeat (then `{` is
    /// a literal). Counts too large to parse become `u32::MAX`.
    fn repeat_counts(&self) -> Option<(u32, Option<u32>, usize)> {
        let rest = self.rest().strip_prefix('{')?;
        let int = |s: &str| -> Option<(u32, usize)> {
            let digits = s.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || (digits > 1 && s.starts_with('0')) {
                return None;
            }
            let value = s.get(..digits)?.parse::<u32>().unwrap_or(u32::MAX);
            Some((value, digits))
        };
        let (min, used) = int(rest)?;
        let mut at = used;
        let max = match rest.as_bytes().get(at) {
            Some(b',') => {
                at += 1;
                match rest.as_bytes().get(at) {
                    Some(b'}') => None,
                    _ => {
                        let (max, used) = int(rest.get(at..)?)?;
                        at += used;
                        Some(max)
                    }
                }
            }
            _ => Some(min),
        };
        (rest.as_bytes().get(at) == Some(&b'}')).then_some((min, max, at + 2))
    }

    /// A sequence up to `|`, `)` (when `in_group`) or the end.
    fn sequence(&mut self, in_group: bool) -> ParseResult<Ast> {
        let mut items: Vec<Ast> = Vec::new();
        let mut last_was_repeat = false;
        while let Some(c) = self.peek() {
            let counts = if c == '{' { self.repeat_counts() } else { None };
            match c {
                ')' if in_group => return Ok(Ast::Concat(items)),
                ')' => return Err("unexpected )".to_string()),
                '|' => return Ok(Ast::Concat(items)),
                '*' | '+' | '?' | '{' if c != '{' || counts.is_some() => {
                    let (min, max) = match (c, counts) {
                        ('*', _) => (0, None),
                        ('+', _) => (1, None),
                        ('?', _) => (0, Some(1)),
                        (_, Some((min, max, len))) => {
                            self.pos += len - 1;
                            (min, max)
                        }
                        _ => (0, None),
                    };
                    self.bump();
                    if min > MAX_REPEAT || max.is_some_and(|m| m > MAX_REPEAT || m < min) {
                        return Err("invalid repeat count".to_string());
                    }
                    if last_was_repeat {
                        return Err("invalid nested repetition operator".to_string());
                    }
                    let Some(inner) = items.pop() else {
                        return Err("missing argument to repetition operator".to_string());
                    };
                    if self.peek() == Some('?') {
                        self.bump(); // non-greedy: same language
                    }
                    items.push(Ast::Repeat {
                        inner: Box::new(inner),
                        min,
                        max,
                    });
                    last_was_repeat = true;
                    continue;
                }
                '(' => {
                    self.bump();
                    if self.peek() == Some('?') {
                        return Err("group flags are not supported".to_string());
                    }
                    let inner = self.alternation(true)?;
                    if self.bump() != Some(')') {
                        return Err("missing closing )".to_string());
                    }
                    items.push(inner);
                }
                '.' => {
                    self.bump();
                    items.push(Ast::Atom(Pred::AnyButNewline));
                }
                '^' => {
                    self.bump();
                    items.push(Ast::Anchor(Anchor::Begin));
                }
                '$' => {
                    self.bump();
                    items.push(Ast::Anchor(Anchor::End));
                }
                '[' => {
                    let class = self.class()?;
                    items.push(Ast::Atom(class));
                }
                '\\' => self.escape_outside_class(&mut items)?,
                _ => {
                    self.bump();
                    items.push(Ast::Atom(Pred::Char(c)));
                }
            }
            last_was_repeat = false;
        }
        if in_group {
            return Err("missing closing )".to_string());
        }
        Ok(Ast::Concat(items))
    }

    fn escape_outside_class(&mut self, items: &mut Vec<Ast>) -> ParseResult<()> {
        match self.peek2() {
            Some('A') => {
                self.pos += 2;
                items.push(Ast::Anchor(Anchor::Begin));
                return Ok(());
            }
            Some('z') => {
                self.pos += 2;
                items.push(Ast::Anchor(Anchor::End));
                return Ok(());
            }
            Some(b @ ('b' | 'B')) => {
                self.pos += 2;
                items.push(Ast::Anchor(if b == 'b' {
                    Anchor::WordBoundary
                } else {
                    Anchor::NotWordBoundary
                }));
                return Ok(());
            }
            Some('C') => return Err("invalid escape sequence \\C".to_string()),
            Some('Q') => {
                self.pos += 2;
                let rest = self.rest();
                let (literal, after) = match rest.find("\\E") {
                    Some(i) => (rest.get(..i).unwrap_or(""), i + 2),
                    None => (rest, rest.len()),
                };
                items.extend(literal.chars().map(|c| Ast::Atom(Pred::Char(c))));
                self.pos += after;
                return Ok(());
            }
            Some('p' | 'P') => {
                let item = self.unicode_class()?;
                items.push(Ast::Atom(Pred::Class {
                    items: vec![item],
                    negated: false,
                }));
                return Ok(());
            }
            Some(l) => {
                if let Some(item) = perl_class(l) {
                    self.pos += 2;
                    items.push(Ast::Atom(Pred::Class {
                        items: vec![item],
                        negated: false,
                    }));
                    return Ok(());
                }
            }
            None => {}
        }
        let c = self.escape()?;
        items.push(Ast::Atom(c));
        Ok(())
    }

    /// Go's `parseEscape`: the cursor is on `\`.
    fn escape(&mut self) -> ParseResult<Pred> {
        let start = self.pos;
        self.bump();
        let Some(c) = self.bump() else {
            return Err("trailing backslash at end of expression".to_string());
        };
        let invalid = |p: &Parser| {
            format!(
                "invalid escape sequence {}",
                p.src.get(start..p.pos).unwrap_or("\\")
            )
        };
        let octal = |c: Option<char>| c.filter(|d| ('0'..='7').contains(d));
        let code = |v: u32| Pred::Char(char::from_u32(v).unwrap_or('\0'));
        let code_checked = |v: u32| char::from_u32(v).map_or(Pred::Never, Pred::Char);
        match c {
            '1'..='7' if octal(self.peek()).is_none() => Err(invalid(self)),
            '0'..='7' => {
                let mut v = c as u32 - '0' as u32;
                for _ in 1..3 {
                    match octal(self.peek()) {
                        Some(d) => {
                            self.bump();
                            v = v * 8 + (d as u32 - '0' as u32);
                        }
                        None => break,
                    }
                }
                Ok(code(v))
            }
            'x' => {
                let Some(first) = self.bump() else {
                    return Err(invalid(self));
                };
                if first == '{' {
                    let mut v: u32 = 0;
                    let mut digits = 0;
                    loop {
                        let Some(d) = self.bump() else {
                            return Err(invalid(self));
                        };
                        if d == '}' {
                            break;
                        }
                        let Some(h) = d.to_digit(16) else {
                            return Err(invalid(self));
                        };
                        v = v * 16 + h;
                        if v > 0x10FFFF {
                            return Err(invalid(self));
                        }
                        digits += 1;
                    }
                    if digits == 0 {
                        return Err(invalid(self));
                    }
                    return Ok(code_checked(v));
                }
                let second = self.bump();
                match (first.to_digit(16), second.and_then(|s| s.to_digit(16))) {
                    (Some(x), Some(y)) => Ok(code(x * 16 + y)),
                    _ => Err(invalid(self)),
                }
            }
            'a' => Ok(Pred::Char('\x07')),
            'f' => Ok(Pred::Char('\x0c')),
            'n' => Ok(Pred::Char('\n')),
            'r' => Ok(Pred::Char('\r')),
            't' => Ok(Pred::Char('\t')),
            'v' => Ok(Pred::Char('\x0b')),
            _ if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(Pred::Char(c)),
            _ => Err(invalid(self)),
        }
    }

    /// `\pX`, `\p{Name}`, `\p{^Name}`, `\P...`: the cursor is on `\`.
    fn unicode_class(&mut self) -> ParseResult<ClassItem> {
        let start = self.pos;
        self.pos += 1;
        let mut negated = self.bump() == Some('P');
        let name: &str = match self.bump() {
            Some('{') => {
                let rest = self.rest();
                let Some(end) = rest.find('}') else {
                    return Err(format!(
                        "invalid character class range {}",
                        self.src.get(start..).unwrap_or("")
                    ));
                };
                self.pos += end + 1;
                rest.get(..end).unwrap_or("")
            }
            Some(c) => self
                .src
                .get(self.pos - c.len_utf8()..self.pos)
                .unwrap_or(""),
            None => return Err("invalid character class range \\p".to_string()),
        };
        let name = match name.strip_prefix('^') {
            Some(n) => {
                negated = !negated;
                n
            }
            None => name,
        };
        match Category::from_name(name) {
            Some(category) => Ok(ClassItem::Category { category, negated }),
            None if name.chars().all(|c| c.is_ascii_alphabetic() || c == '_')
                && !name.is_empty() =>
            {
                Err(format!("Unicode class \\p{{{name}}} is not supported"))
            }
            None => Err(format!(
                "invalid character class range {}",
                self.src.get(start..self.pos).unwrap_or("")
            )),
        }
    }

    /// Go's `parseClass`: the cursor is on `[`.
    fn class(&mut self) -> ParseResult<Pred> {
        self.bump();
        let mut negated = false;
        if self.peek() == Some('^') {
            self.bump();
            negated = true;
        }
        let mut items: Vec<ClassItem> = Vec::new();
        let mut ranges: Vec<(char, char)> = Vec::new();
        let mut first = true;
        loop {
            match self.peek() {
                Some(']') if !first => {
                    self.bump();
                    break;
                }
                None => return Err("missing closing ]".to_string()),
                _ => {}
            }
            first = false;
            let rest = self.rest();
            if rest.starts_with("[:") {
                if let Some(end) = rest.get(2..).and_then(|r| r.find(":]")) {
                    let name = rest.get(2..2 + end).unwrap_or("");
                    let (posix_negated, name) = match name.strip_prefix('^') {
                        Some(n) => (true, n),
                        None => (false, name),
                    };
                    let Some((_, class)) = POSIX_CLASSES.iter().find(|(n, _)| *n == name) else {
                        return Err(format!(
                            "invalid character class range {}",
                            rest.get(..end + 4).unwrap_or(rest)
                        ));
                    };
                    items.push(ClassItem::Ranges {
                        ranges: class.to_vec(),
                        negated: posix_negated,
                    });
                    self.pos += end + 4;
                    continue;
                }
            }
            if rest.starts_with("\\p") || rest.starts_with("\\P") {
                items.push(self.unicode_class()?);
                continue;
            }
            if let Some(item) = rest
                .strip_prefix('\\')
                .and_then(|r| r.chars().next())
                .and_then(perl_class)
            {
                self.pos += 2;
                items.push(item);
                continue;
            }
            let lo = self.class_char()?;
            let mut hi = lo;
            if self.peek() == Some('-') && self.peek2().is_some_and(|c| c != ']') {
                self.bump();
                hi = self.class_char()?;
                if hi < lo {
                    return Err("invalid character class range".to_string());
                }
            }
            if let (Some(lo), Some(hi)) = (lo, hi) {
                ranges.push((lo, hi));
            }
        }
        if !ranges.is_empty() {
            items.push(ClassItem::Ranges {
                ranges,
                negated: false,
            });
        }
        Ok(Pred::Class { items, negated })
    }

    /// One class member character; `None` for a code point Rust cannot hold (range ends are
    /// compared as numbers by the caller through `Option` ordering).
    fn class_char(&mut self) -> ParseResult<Option<char>> {
        match self.peek() {
            None => Err("missing closing ]".to_string()),
            Some('\\') => match self.escape()? {
                Pred::Char(c) => Ok(Some(c)),
                _ => Ok(None),
            },
            Some(c) => {
                self.bump();
                Ok(Some(c))
            }
        }
    }
}

/// A state of the compiled NFA.
#[derive(Debug, Clone)]
enum State {
    Consume { pred: Pred, next: usize },
    Split(usize, usize),
    Assert { anchor: Anchor, next: usize },
    Match,
}

/// Go's `\b` notion of a word character (ASCII only).
fn is_word(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Where in the text an epsilon closure is taken.
#[derive(Debug, Clone, Copy)]
struct Context {
    at_start: bool,
    /// When false, `End` assertions stay in the set unresolved (pending) instead of failing,
    /// so that one pass can test "the text ends here" at every path level.
    at_end: bool,
    prev_word: bool,
    next_word: bool,
}

/// A compiled expression, matched with Go's `MatchString` (search) semantics.
#[derive(Debug, Clone)]
pub(super) struct Regex {
    states: Vec<State>,
    words: usize,
    start_state: usize,
    /// Whether the expression has `\b`/`\B`: then closures depend on the neighbouring
    /// characters and every table below has one variant per (previous, next) word-ness.
    word_sensitive: bool,
    /// Per consuming state and variant (previous = the consumed character, next): the
    /// closure of its successor, as a list (`follow_targets[follow_offsets[i]..][..]`), so
    /// that size stays linear in the expression.
    follow_offsets: Vec<u32>,
    follow_targets: Vec<u32>,
    /// Closure of the start state at position 0, per variant of the next character.
    start: Vec<u64>,
    /// Closure of the start state after position 0 (a match may start anywhere), per variant.
    start_later: Vec<u64>,
    /// Whether a match can start after position 0 at all.
    restarts: bool,
    /// Per variant of the previous character: states from which the match state is
    /// reachable when the text ends here (not at position 0).
    accept_at_end: Vec<u64>,
    /// A literal every match must start with.
    pub(super) required_prefix: String,
    /// A literal every match must end with.
    pub(super) required_suffix: String,
}

impl Regex {
    pub(super) fn new(source: &str) -> Result<Regex, String> {
        let mut parser = Parser {
            src: source,
            pos: 0,
        };
        let ast = parser.alternation(false)?;
        let (required_prefix, required_suffix) = required_literals(&ast);
        let mut states = vec![State::Match];
        let start_state = emit(&ast, 0, &mut states);
        if states.len() > MAX_STATES {
            return Err("expression too large".to_string());
        }
        let word_sensitive = states.iter().any(|s| {
            matches!(
                s,
                State::Assert {
                    anchor: Anchor::WordBoundary | Anchor::NotWordBoundary,
                    ..
                }
            )
        });
        let words = states.len().div_ceil(64).max(1);
        let variants = if word_sensitive { 4 } else { 1 };
        let mut regex = Regex {
            follow_offsets: Vec::with_capacity(states.len() * variants + 1),
            follow_targets: Vec::new(),
            start: vec![0; words * variants],
            start_later: vec![0; words * variants],
            restarts: false,
            accept_at_end: vec![0; words * variants],
            states,
            words,
            start_state,
            word_sensitive,
            required_prefix,
            required_suffix,
        };
        let mut scratch = Scratch::new(regex.states.len());
        let context = |v: usize| Context {
            at_start: false,
            at_end: false,
            prev_word: v & 2 != 0,
            next_word: v & 1 != 0,
        };
        regex.follow_offsets.push(0);
        for s in 0..regex.states.len() {
            for v in 0..variants {
                if let Some(State::Consume { next, .. }) = regex.states.get(s) {
                    let next = *next;
                    regex.closure(next, context(v), &mut scratch);
                    regex
                        .follow_targets
                        .extend(scratch.found.iter().map(|&t| t as u32));
                }
                regex.follow_offsets.push(regex.follow_targets.len() as u32);
                let end = Context {
                    at_end: true,
                    next_word: false,
                    ..context(v)
                };
                regex.closure(s, end, &mut scratch);
                if scratch.found.contains(&0) {
                    if let Some(slot) = regex.accept_at_end.get_mut(v * words..(v + 1) * words) {
                        set(slot, s);
                    }
                }
            }
        }
        for v in 0..variants {
            regex.closure(start_state, context(v), &mut scratch);
            if let Some(slot) = regex.start_later.get_mut(v * words..(v + 1) * words) {
                scratch.found.iter().for_each(|&t| set(slot, t));
            }
            let at_zero = Context {
                at_start: true,
                prev_word: false,
                ..context(v)
            };
            regex.closure(start_state, at_zero, &mut scratch);
            if let Some(slot) = regex.start.get_mut(v * words..(v + 1) * words) {
                scratch.found.iter().for_each(|&t| set(slot, t));
            }
        }
        regex.restarts = (0..variants).any(|v| {
            let later = regex
                .start_later
                .get(v * words..(v + 1) * words)
                .unwrap_or(&[]);
            (0..regex.states.len()).any(|s| {
                regex.has(later, s)
                    && matches!(
                        regex.states.get(s),
                        Some(State::Consume { .. } | State::Match)
                            | Some(State::Assert {
                                anchor: Anchor::End,
                                ..
                            })
                    )
            })
        });
        Ok(regex)
    }

    fn has(&self, bits: &[u64], state: usize) -> bool {
        bits.get(state / 64)
            .is_some_and(|w| w & (1 << (state % 64)) != 0)
    }

    /// States reachable from `from` without consuming input, in context `at`, into
    /// `scratch.found`.
    fn closure(&self, from: usize, at: Context, scratch: &mut Scratch) {
        scratch.begin();
        scratch.stack.push(from);
        while let Some(s) = scratch.stack.pop() {
            if !scratch.visit(s) {
                continue;
            }
            scratch.found.push(s);
            match self.states.get(s) {
                Some(State::Split(a, b)) => {
                    scratch.stack.push(*b);
                    scratch.stack.push(*a);
                }
                Some(State::Assert { anchor, next }) => {
                    let passes = match anchor {
                        Anchor::Begin => at.at_start,
                        Anchor::End => at.at_end,
                        Anchor::WordBoundary => at.prev_word != at.next_word,
                        Anchor::NotWordBoundary => at.prev_word == at.next_word,
                    };
                    if passes {
                        scratch.stack.push(*next);
                    }
                }
                _ => {}
            }
        }
    }

    fn follow(&self, index: usize) -> &[u32] {
        let from = self.follow_offsets.get(index).copied().unwrap_or(0) as usize;
        let to = self.follow_offsets.get(index + 1).copied().unwrap_or(0) as usize;
        self.follow_targets.get(from..to).unwrap_or(&[])
    }

    /// The table slot for a (previous, next) word-ness variant.
    fn variant(&self, prev: Option<char>, next: Option<char>) -> usize {
        if self.word_sensitive {
            usize::from(is_word(prev)) * 2 + usize::from(is_word(next))
        } else {
            0
        }
    }

    fn slot<'t>(&self, table: &'t [u64], index: usize) -> &'t [u64] {
        table
            .get(index * self.words..(index + 1) * self.words)
            .unwrap_or(&[])
    }

    /// Go's `MatchString`: does the expression match somewhere in `text`?
    #[cfg(test)]
    pub(super) fn is_match(&self, text: &str) -> bool {
        let mut result = false;
        self.run(text, |end| {
            if end == text.len() {
                result = true;
            }
        });
        result
    }

    /// Run over `text`, calling `on_match(i)` at every `i` that is a path-level end (just
    /// before a `/`, or the end of the text) where the expression matches in `text[..i]`.
    pub(super) fn run(&self, text: &str, mut on_match: impl FnMut(usize)) {
        if text.is_empty() {
            let mut scratch = Scratch::new(self.states.len());
            let at = Context {
                at_start: true,
                at_end: true,
                prev_word: false,
                next_word: false,
            };
            self.closure(self.start_state, at, &mut scratch);
            if scratch.found.contains(&0) {
                on_match(0);
            }
            return;
        }
        let mut inline = [[0u64; 2]; 2];
        let mut heap: Vec<u64>;
        let (current, next): (&mut [u64], &mut [u64]) = if self.words <= 2 {
            let [a, b] = &mut inline;
            (&mut a[..self.words], &mut b[..self.words])
        } else {
            heap = vec![0; self.words * 2];
            heap.split_at_mut(self.words)
        };
        let first = text.chars().next();
        current.copy_from_slice(self.slot(&self.start, self.variant(None, first)));
        let mut cur = current;
        let mut nxt = next;
        let variants = if self.word_sensitive { 4 } else { 1 };
        // A match that needs no end-of-text has been seen: every longer prefix matches too.
        let mut matched_before = self.has(cur, 0);
        let mut prev: Option<char> = None;
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '/' && i > 0 && (matched_before || self.accepts(cur, prev)) {
                on_match(i);
            }
            prev = Some(c);
            if matched_before {
                continue;
            }
            let after = chars.peek().map(|&(_, n)| n);
            let v = self.variant(Some(c), after);
            nxt.fill(0);
            for (w, &word) in cur.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    let s = w * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if let Some(State::Consume { pred, .. }) = self.states.get(s) {
                        if pred.matches(c) {
                            for &t in self.follow(s * variants + v) {
                                set(nxt, t as usize);
                            }
                        }
                    }
                }
            }
            if self.restarts {
                for (n, f) in nxt.iter_mut().zip(self.slot(&self.start_later, v)) {
                    *n |= f;
                }
            } else if nxt.iter().all(|w| *w == 0) {
                return;
            }
            std::mem::swap(&mut cur, &mut nxt);
            matched_before = self.has(cur, 0);
        }
        if matched_before || self.accepts(cur, prev) {
            on_match(text.len());
        }
    }

    /// Does the text end here in a match, given the set of states and the last character?
    fn accepts(&self, set: &[u64], prev: Option<char>) -> bool {
        let v = if self.word_sensitive {
            usize::from(is_word(prev)) * 2
        } else {
            0
        };
        set.iter()
            .zip(self.slot(&self.accept_at_end, v))
            .any(|(a, b)| a & b != 0)
    }
}

/// Epsilon-closure work space: generation-stamped marks, so no clearing between closures.
struct Scratch {
    mark: Vec<u32>,
    generation: u32,
    stack: Vec<usize>,
    found: Vec<usize>,
}

impl Scratch {
    fn new(states: usize) -> Self {
        Scratch {
            mark: vec![0; states],
            generation: 0,
            stack: Vec::new(),
            found: Vec::new(),
        }
    }

    fn begin(&mut self) {
        if self.generation == u32::MAX {
            self.mark.fill(0);
            self.generation = 0;
        }
        self.generation += 1;
        self.stack.clear();
        self.found.clear();
    }

    /// Mark `state` visited; false when it already was.
    fn visit(&mut self, state: usize) -> bool {
        match self.mark.get_mut(state) {
            Some(m) if *m != self.generation => {
                *m = self.generation;
                true
            }
            _ => false,
        }
    }
}

fn set(bits: &mut [u64], state: usize) {
    if let Some(w) = bits.get_mut(state / 64) {
        *w |= 1 << (state % 64);
    }
}

/// Thompson construction, right to left: returns the entry state of `ast` continuing at `next`.
fn emit(ast: &Ast, next: usize, states: &mut Vec<State>) -> usize {
    match ast {
        Ast::Atom(pred) => {
            states.push(State::Consume {
                pred: pred.clone(),
                next,
            });
            states.len() - 1
        }
        Ast::Anchor(anchor) => {
            states.push(State::Assert {
                anchor: *anchor,
                next,
            });
            states.len() - 1
        }
        Ast::Concat(items) => items
            .iter()
            .rev()
            .fold(next, |after, item| emit(item, after, states)),
        Ast::Alternate(alternatives) => {
            let mut entries: Vec<usize> = alternatives
                .iter()
                .map(|alternative| emit(alternative, next, states))
                .collect();
            let mut entry = entries.pop().unwrap_or(next);
            while let Some(first) = entries.pop() {
                states.push(State::Split(first, entry));
                entry = states.len() - 1;
            }
            entry
        }
        Ast::Repeat { inner, min, max } => {
            let mut entry = next;
            match max {
                None => {
                    states.push(State::Split(usize::MAX, next));
                    let split = states.len() - 1;
                    let body = emit(inner, split, states);
                    if let Some(State::Split(a, _)) = states.get_mut(split) {
                        *a = body;
                    }
                    entry = split;
                }
                Some(max) => {
                    for _ in *min..*max {
                        if states.len() > MAX_STATES {
                            break;
                        }
                        let body = emit(inner, entry, states);
                        states.push(State::Split(body, entry));
                        entry = states.len() - 1;
                    }
                }
            }
            for _ in 0..*min {
                if states.len() > MAX_STATES {
                    break;
                }
                entry = emit(inner, entry, states);
            }
            entry
        }
    }
}

/// Literal text every match must start / end with (from the top-level sequence).
fn required_literals(ast: &Ast) -> (String, String) {
    let Ast::Concat(items) = ast else {
        return (String::new(), String::new());
    };
    let literal = |a: &Ast| match a {
        Ast::Atom(Pred::Char(c)) => Some(*c),
        _ => None,
    };
    let is_begin = |a: &&Ast| matches!(a, Ast::Anchor(Anchor::Begin));
    let is_end = |a: &&Ast| matches!(a, Ast::Anchor(Anchor::End));
    let prefix = if items.first().is_some_and(|a| is_begin(&a)) {
        items.iter().skip(1).map_while(literal).collect()
    } else {
        String::new()
    };
    let suffix = if items.last().is_some_and(|a| is_end(&a)) {
        let mut rev: Vec<char> = items.iter().rev().skip(1).map_while(literal).collect();
        rev.reverse();
        rev.into_iter().collect()
    } else {
        String::new()
    };
    (prefix, suffix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(re: &str, text: &str) -> bool {
        match Regex::new(re) {
            Ok(r) => r.is_match(text),
            Err(e) => panic!("{re:?}: {e}"),
        }
    }

    #[test]
    fn whole_text_matching() {
        let cases: &[(&str, &str, bool)] = &[
            ("^abc$", "abc", true),
            ("^abc$", "abcd", false),
            ("^a[^/]*$", "abc", true),
            ("^a[^/]*$", "ab/c", false),
            ("^(.*/)?b$", "b", true),
            ("^(.*/)?b$", "a/x/b", true),
            ("^(.*/)?b$", "a\n/b", false),
            ("^a.*$", "a\nb", false),
            ("^[^a]$", "\n", true),
            ("^a\\d$", "a5", true),
            ("^a\\d$", "a٣", false),
            ("^[[:alpha:]]+$", "abC", true),
            ("^[[:^alpha:]]$", "1", true),
            ("^[\\w.]+$", "a_1.b", true),
            ("^\\x41\\x{42}\\103$", "ABC", true),
            ("^\\Qa*b\\E$", "a*b", true),
            ("^\\Qa*b$", "a*b$", true),
            ("^[]a]$", "]", true),
            ("^[a-]$", "-", true),
            ("^\\pL+$", "héllo", true),
            ("^\\p{Nd}$", "٣", true),
            ("^\\PL$", "1", true),
            ("^a^b$", "ab", false),
            ("^^ab$", "ab", true),
            ("^[[^/]*]$", "^^]", true),
            ("^\\$$", "$", true),
            ("^ab\\$", "ab$", true),
            ("^\\Aab\\z$", "ab", true),
            ("^a?b+$", "bbb", true),
            ("^$", "", true),
            ("^$", "a", false),
            ("^*$", "", true),
            ("^obj\\bin$", "objin", false),
            ("^obj\\Bin$", "objin", true),
            ("^a\\b-$", "a-", true),
            ("^é\\b$", "é", false),
            ("^a\\b$", "a", true),
            ("^a\\b/$", "a/", true),
            ("^\\b$", "", false),
            ("^\\B$", "", true),
            ("x|^y", "ay", false),
            ("x|^y", "ax", true),
            ("^a{2}$", "aa", true),
            ("^a{2,}$", "aaaa", true),
            ("^a{2,3}$", "aaaa", false),
            ("^a{,2}$", "a{,2}", true),
            ("^ab{$", "ab{", true),
            ("^[\\d-z]$", "-", true),
            ("^\\x{D800}$", "a", false),
        ];
        for (re, text, want) in cases {
            assert_eq!(m(re, text), *want, "{re:?} on {text:?}");
        }
    }

    #[test]
    fn syntax_errors() {
        for re in [
            "^[a$",
            "^[z-a]$",
            "^a**$",
            "^a*+$",
            "^(ab$",
            "^(*a)$",
            "^ab)$",
            "^\\q$",
            "^[[:foo:]]$",
            "^\\p{Greek}$",
            "^\\p{}$",
            "^\\8$",
            "^\\1$",
            "^\\x{}$",
            "^\\C$",
        ] {
            assert!(Regex::new(re).is_err(), "{re:?} should be rejected");
        }
    }

    #[test]
    fn level_matches_are_reported_at_slashes() {
        let Ok(re) = Regex::new("^a(.*/)?[^/]*$") else {
            panic!("compiles")
        };
        let mut ends = Vec::new();
        re.run("a/b/c", |i| ends.push(i));
        assert_eq!(ends, vec![1, 3, 5]);
        let Ok(re) = Regex::new("^x/y$") else {
            panic!("compiles")
        };
        let mut ends = Vec::new();
        re.run("x/y/z", |i| ends.push(i));
        assert_eq!(ends, vec![3]);
    }

    #[test]
    fn required_literals_are_found() {
        let Ok(re) = Regex::new("^src/[^/]*\\.go$") else {
            panic!("compiles")
        };
        assert_eq!(re.required_prefix, "src/");
        assert_eq!(re.required_suffix, ".go");
    }
}
