//! The kiln language's parser (nom combinators over the source text), producing `ast`
//! nodes with byte spans. Comments run from `#` to the end of the line.
//! Must not: resolve names or check types; on a syntax error it stops at the first one and
//! reports where and what was expected.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, digit1, multispace1, not_line_ending};
use nom::combinator::{cut, opt, recognize, value};
use nom::error::{context, ContextError, ErrorKind, ParseError};
use nom::multi::many0;
use nom::sequence::{pair, preceded};
use nom::IResult;

use super::ast::*;
use crate::syntax::Span;

/// The parser's error: the deepest position reached and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub expected: &'static str,
}

/// nom's error type for this parser: the remaining input where it failed and the innermost
/// context.
#[derive(Debug)]
pub struct PErr<'a> {
    rest: &'a str,
    expected: &'static str,
}

impl<'a> ParseError<&'a str> for PErr<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        PErr {
            rest: input,
            expected: "",
        }
    }
    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }
    fn or(self, other: Self) -> Self {
        // Keep the alternative that got further.
        if other.rest.len() < self.rest.len() {
            other
        } else {
            self
        }
    }
}

impl<'a> ContextError<&'a str> for PErr<'a> {
    fn add_context(input: &'a str, ctx: &'static str, mut other: Self) -> Self {
        if other.expected.is_empty() {
            other.expected = ctx;
            if other.rest.len() > input.len() {
                other.rest = input;
            }
        }
        other
    }
}

type R<'a, T> = IResult<&'a str, T, PErr<'a>>;

const KEYWORDS: &[&str] = &[
    "import", "as", "let", "fn", "export", "true", "false", "none",
];

/// Parse one file.
pub fn parse_module(src: &str) -> Result<Module, SyntaxError> {
    let p = Parser { src };
    let mut items = Vec::new();
    let mut rest = src;
    loop {
        rest = match ws(rest) {
            Ok((r, _)) => r,
            Err(_) => rest,
        };
        if rest.is_empty() {
            return Ok(Module { items });
        }
        match p.item(rest) {
            Ok((r, item)) => {
                items.push(item);
                rest = r;
            }
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                return Err(SyntaxError {
                    offset: src.len() - e.rest.len(),
                    expected: if e.expected.is_empty() {
                        "an item (import, let, fn or export)"
                    } else {
                        e.expected
                    },
                })
            }
            Err(nom::Err::Incomplete(_)) => {
                return Err(SyntaxError {
                    offset: src.len(),
                    expected: "more input",
                })
            }
        }
    }
}

/// Whitespace and comments.
fn ws(i: &str) -> R<'_, ()> {
    value(
        (),
        many0(alt((
            value((), multispace1),
            value((), pair(char('#'), not_line_ending)),
        ))),
    )(i)
}

/// `t` after optional whitespace.
fn sym<'a>(t: &'static str) -> impl FnMut(&'a str) -> R<'a, &'a str> {
    preceded(ws, tag(t))
}

fn raw_ident(i: &str) -> R<'_, &str> {
    recognize(pair(
        take_while1(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))(i)
}

/// A keyword as a whole word.
fn keyword<'a>(k: &'static str) -> impl FnMut(&'a str) -> R<'a, &'a str> {
    move |i: &'a str| {
        let (r, w) = preceded(ws, raw_ident)(i)?;
        if w == k {
            Ok((r, w))
        } else {
            Err(nom::Err::Error(PErr::from_error_kind(i, ErrorKind::Tag)))
        }
    }
}

struct Parser<'s> {
    src: &'s str,
}

impl<'s> Parser<'s> {
    fn off(&self, rest: &str) -> usize {
        self.src.len() - rest.len()
    }

    fn span(&self, start: &str, end: &str) -> Span {
        Span::new(self.off(start), self.off(end))
    }

    fn ident<'a>(&self, i: &'a str) -> R<'a, Ident> {
        let (i, _) = ws(i)?;
        let (r, w) = raw_ident(i)?;
        if KEYWORDS.contains(&w) {
            return Err(nom::Err::Error(PErr::from_error_kind(i, ErrorKind::Tag)));
        }
        Ok((
            r,
            Ident {
                name: w.to_string(),
                span: self.span(i, r),
            },
        ))
    }

    /// A name or a quoted string, for argument names and record fields
    /// (`"org.opencontainers.image.title": t`).
    fn field_name<'a>(&self, i: &'a str) -> R<'a, Ident> {
        let (i, _) = ws(i)?;
        if i.starts_with('"') {
            let (r, e) = self.string(i)?;
            if let ExprKind::Str(parts) = &e.kind {
                if let [StrPart::Lit(s)] | [StrPart::Lit(s), ..] = parts.as_slice() {
                    if parts.len() == 1 {
                        return Ok((
                            r,
                            Ident {
                                name: s.clone(),
                                span: e.span,
                            },
                        ));
                    }
                }
                if parts.is_empty() {
                    return Ok((
                        r,
                        Ident {
                            name: String::new(),
                            span: e.span,
                        },
                    ));
                }
            }
            return Err(nom::Err::Failure(PErr {
                rest: i,
                expected: "a name without interpolation",
            }));
        }
        self.ident(i)
    }

    fn item<'a>(&self, i: &'a str) -> R<'a, Item> {
        let (i, _) = ws(i)?;
        if let Ok((r, _)) = keyword("import")(i) {
            return self.import(i, r);
        }
        if let Ok((r, _)) = keyword("fn")(i) {
            let (r, f) = self.fn_def(r)?;
            return Ok((r, Item::Fn(f)));
        }
        if let Ok((r, _)) = keyword("export")(i) {
            let (r, l) = cut(|x| self.let_body(x, true))(r)?;
            return Ok((r, Item::Let(l)));
        }
        if let Ok((r, _)) = keyword("let")(i) {
            let (r, l) = cut(|x| self.let_body(x, false))(r)?;
            return Ok((r, Item::Let(l)));
        }
        Err(nom::Err::Failure(PErr {
            rest: i,
            expected: "an item (import, let, fn or export)",
        }))
    }

    fn import<'a>(&self, start: &'a str, i: &'a str) -> R<'a, Item> {
        let (i, _) = ws(i)?;
        let (r, path) = if i.starts_with('"') {
            let (r, e) = self.string(i)?;
            let path = match &e.kind {
                ExprKind::Str(parts) => match parts.as_slice() {
                    [StrPart::Lit(s)] => s.clone(),
                    _ => {
                        return Err(nom::Err::Failure(PErr {
                            rest: i,
                            expected: "a file path without interpolation",
                        }))
                    }
                },
                _ => String::new(),
            };
            (r, ImportPath::File(path))
        } else {
            let (mut r, first) = cut(context("a module name (std.users) or a quoted path", |x| {
                self.ident(x)
            }))(i)?;
            let mut names = vec![first.name];
            while let Ok((r2, _)) = tag::<_, _, PErr>(".")(r) {
                let (r3, n) = cut(context("a module name", |x| self.ident(x)))(r2)?;
                names.push(n.name);
                r = r3;
            }
            (r, ImportPath::Std(names))
        };
        let (r, alias) = match keyword("as")(r) {
            Ok((r2, _)) => {
                let (r3, a) = cut(context("a name after `as`", |x| self.ident(x)))(r2)?;
                (r3, Some(a))
            }
            Err(_) => (r, None),
        };
        let span = self.span(start, r);
        let alias = match (alias, &path) {
            (Some(a), _) => a,
            (None, ImportPath::Std(names)) => Ident {
                name: names.last().cloned().unwrap_or_default(),
                span,
            },
            (None, ImportPath::File(f)) => {
                let stem = f
                    .rsplit('/')
                    .next()
                    .unwrap_or(f)
                    .trim_end_matches(".kiln")
                    .to_string();
                Ident { name: stem, span }
            }
        };
        Ok((r, Item::Import(Import { path, alias, span })))
    }

    fn let_body<'a>(&self, i: &'a str, export: bool) -> R<'a, LetDef> {
        let (i, name) = context("a name", |x| self.ident(x))(i)?;
        let (i, ty) = opt(preceded(sym(":"), |x| self.ty(x)))(i)?;
        let (i, _) = context("`=`", sym("="))(i)?;
        let (i, value) = context("an expression", |x| self.expr(x))(i)?;
        Ok((
            i,
            LetDef {
                name,
                ty,
                value,
                export,
            },
        ))
    }

    fn fn_def<'a>(&self, i: &'a str) -> R<'a, FnDef> {
        let (i, name) = cut(context("a function name", |x| self.ident(x)))(i)?;
        let (mut i, _) = cut(context("`(`", sym("(")))(i)?;
        let mut params = Vec::new();
        loop {
            if let Ok((r, _)) = sym(")")(i) {
                i = r;
                break;
            }
            let (r, pname) = cut(context("a parameter name or `)`", |x| self.ident(x)))(i)?;
            let (r, _) = cut(context("`:` and the parameter's type", sym(":")))(r)?;
            let (r, ty) = cut(context("a type", |x| self.ty(x)))(r)?;
            let (r, default) = opt(preceded(sym("="), cut(|x| self.expr(x))))(r)?;
            params.push(Param {
                name: pname,
                ty,
                default,
            });
            i = match sym(",")(r) {
                Ok((r2, _)) => r2,
                Err(_) => {
                    let (r2, _) = cut(context("`,` or `)`", sym(")")))(r)?;
                    i = r2;
                    break;
                }
            };
        }
        let (i, ret) = opt(preceded(sym("->"), cut(|x| self.ty(x))))(i)?;
        let (i, _) = ws(i)?;
        let (i, body) = cut(context("the function body `{ ... }`", |x| {
            self.block_or_record(x)
        }))(i)?;
        Ok((
            i,
            FnDef {
                name,
                params,
                ret,
                body,
            },
        ))
    }

    /// `name: X, ...}` after a record's `{` (a record type's fields or a record literal's),
    /// trailing comma allowed; `what` names what is expected where a field starts.
    fn record_fields<'a, T>(
        &self,
        i: &'a str,
        what: &'static str,
        mut value: impl FnMut(&'a str) -> R<'a, T>,
    ) -> R<'a, Vec<(Ident, T)>> {
        let mut fields = Vec::new();
        let mut r = i;
        loop {
            if let Ok((r2, _)) = sym("}")(r) {
                return Ok((r2, fields));
            }
            let (r2, n) = cut(context(what, |x| self.field_name(x)))(r)?;
            let (r2, _) = cut(context("`:`", sym(":")))(r2)?;
            let (r2, v) = cut(&mut value)(r2)?;
            fields.push((n, v));
            r = match sym(",")(r2) {
                Ok((r3, _)) => r3,
                Err(_) => {
                    let (r3, _) = cut(context("`,` or `}`", sym("}")))(r2)?;
                    return Ok((r3, fields));
                }
            };
        }
    }

    fn ty<'a>(&self, i: &'a str) -> R<'a, TypeExpr> {
        let (i, _) = ws(i)?;
        let start = i;
        let (mut i, kind) = if let Ok((r, _)) = tag::<_, _, PErr>("[")(i) {
            let (r, inner) = cut(|x| self.ty(x))(r)?;
            let (r, _) = cut(context("`]`", sym("]")))(r)?;
            (r, TypeKind::List(Box::new(inner)))
        } else if let Ok((r, _)) = tag::<_, _, PErr>("{")(i) {
            let (r, fields) = self.record_fields(r, "a field name", |x| self.ty(x))?;
            (r, TypeKind::Record(fields))
        } else {
            let (r, n) = context("a type", |x| self.ident(x))(i)?;
            (r, TypeKind::Named(n.name))
        };
        let mut t = TypeExpr {
            kind,
            span: self.span(start, i),
        };
        while let Ok((r, _)) = tag::<_, _, PErr>("?")(i) {
            i = r;
            t = TypeExpr {
                kind: TypeKind::Optional(Box::new(t)),
                span: self.span(start, i),
            };
        }
        Ok((i, t))
    }

    /// `a |> f(x) |> g` — the left side becomes the first argument of the call on the right.
    fn expr<'a>(&self, i: &'a str) -> R<'a, Expr> {
        let (i, _) = ws(i)?;
        let start = i;
        let (mut i, mut e) = self.postfix(i)?;
        while let Ok((r, _)) = sym("|>")(i) {
            let (r, rhs) = cut(context("a function call after `|>`", |x| self.postfix(x)))(r)?;
            let span = self.span(start, r);
            e = match rhs.kind {
                ExprKind::Call {
                    callee, mut args, ..
                } => {
                    args.insert(
                        0,
                        Arg {
                            name: None,
                            value: e,
                        },
                    );
                    Expr {
                        kind: ExprKind::Call {
                            callee,
                            args,
                            piped: true,
                        },
                        span,
                    }
                }
                _ => Expr {
                    kind: ExprKind::Call {
                        callee: Box::new(rhs),
                        args: vec![Arg {
                            name: None,
                            value: e,
                        }],
                        piped: true,
                    },
                    span,
                },
            };
            i = r;
        }
        Ok((i, e))
    }

    fn postfix<'a>(&self, i: &'a str) -> R<'a, Expr> {
        let (i, _) = ws(i)?;
        let start = i;
        let (mut i, mut e) = self.primary(i)?;
        loop {
            // No whitespace before `(` or `.`: `f (x)` on two lines is two expressions.
            if let Ok((r, _)) = tag::<_, _, PErr>("(")(i) {
                let (r, args) = self.args(r)?;
                e = Expr {
                    kind: ExprKind::Call {
                        callee: Box::new(e),
                        args,
                        piped: false,
                    },
                    span: self.span(start, r),
                };
                i = r;
            } else if let Ok((r, _)) = preceded(ws, char::<_, PErr>('.'))(i) {
                let (r, name) = cut(context("a name after `.`", |x| self.ident(x)))(r)?;
                e = Expr {
                    kind: ExprKind::Field(Box::new(e), name),
                    span: self.span(start, r),
                };
                i = r;
            } else {
                return Ok((i, e));
            }
        }
    }

    fn args<'a>(&self, mut i: &'a str) -> R<'a, Vec<Arg>> {
        let mut args = Vec::new();
        loop {
            if let Ok((r, _)) = sym(")")(i) {
                return Ok((r, args));
            }
            // `name: value` (a name or a quoted string before `:`), else a positional value.
            let named = self
                .field_name(i)
                .ok()
                .and_then(|(r, n)| sym(":")(r).ok().map(|(r2, _)| (r2, n)));
            let (r, arg) = match named {
                Some((r, n)) => {
                    let (r, v) = cut(context("an argument value", |x| self.expr(x)))(r)?;
                    (
                        r,
                        Arg {
                            name: Some(n),
                            value: v,
                        },
                    )
                }
                None => {
                    let (r, v) = cut(context("an argument or `)`", |x| self.expr(x)))(i)?;
                    (
                        r,
                        Arg {
                            name: None,
                            value: v,
                        },
                    )
                }
            };
            args.push(arg);
            i = match sym(",")(r) {
                Ok((r2, _)) => r2,
                Err(_) => {
                    let (r2, _) = cut(context("`,` or `)`", sym(")")))(r)?;
                    return Ok((r2, args));
                }
            };
        }
    }

    fn primary<'a>(&self, i: &'a str) -> R<'a, Expr> {
        let (i, _) = ws(i)?;
        let start = i;
        let lit = |kind: ExprKind, r: &'a str| {
            Ok((
                r,
                Expr {
                    kind,
                    span: self.span(start, r),
                },
            ))
        };
        if i.starts_with('"') {
            return self.string(i);
        }
        if i.starts_with('{') {
            return self.block_or_record(i);
        }
        if let Ok((r, _)) = tag::<_, _, PErr>("(")(i) {
            let (r, e) = cut(|x| self.expr(x))(r)?;
            let (r, _) = cut(context("`)`", sym(")")))(r)?;
            return Ok((r, e));
        }
        if let Ok((mut r, _)) = tag::<_, _, PErr>("[")(i) {
            let mut items = Vec::new();
            loop {
                if let Ok((r2, _)) = sym("]")(r) {
                    r = r2;
                    break;
                }
                let (r2, e) = cut(context("a list item or `]`", |x| self.expr(x)))(r)?;
                items.push(e);
                r = match sym(",")(r2) {
                    Ok((r3, _)) => r3,
                    Err(_) => {
                        let (r3, _) = cut(context("`,` or `]`", sym("]")))(r2)?;
                        r = r3;
                        break;
                    }
                };
            }
            return lit(ExprKind::List(items), r);
        }
        if let Ok((r, d)) = recognize(pair(opt(char::<_, PErr>('-')), digit1))(i) {
            return match d.parse::<i64>() {
                Ok(n) => lit(ExprKind::Int(n), r),
                Err(_) => Err(nom::Err::Failure(PErr {
                    rest: i,
                    expected: "an integer between -2^63 and 2^63-1",
                })),
            };
        }
        if let Ok((r, w)) = raw_ident(i) {
            match w {
                "true" => return lit(ExprKind::Bool(true), r),
                "false" => return lit(ExprKind::Bool(false), r),
                "none" => return lit(ExprKind::None, r),
                _ => {}
            }
        }
        let (r, id) = context("an expression", |x| self.ident(x))(i)?;
        lit(ExprKind::Name(id), r)
    }

    /// `{}` and `{ name: value, ... }` are records; anything else in braces is a block:
    /// `let`s, then the expression it evaluates to.
    fn block_or_record<'a>(&self, i: &'a str) -> R<'a, Expr> {
        let start = i;
        let (i, _) = context("`{`", tag("{"))(i)?;
        let is_record = sym::<'a>("}")(i).is_ok()
            || self
                .field_name(i)
                .ok()
                .is_some_and(|(r, _)| sym(":")(r).is_ok());
        if is_record {
            let (r, fields) = self.record_fields(i, "a field name or `}`", |x| self.expr(x))?;
            return Ok((
                r,
                Expr {
                    kind: ExprKind::Record(fields),
                    span: self.span(start, r),
                },
            ));
        }
        let mut lets = Vec::new();
        let mut r = i;
        while let Ok((r2, _)) = keyword("let")(r) {
            let (r2, l) = cut(|x| self.let_body(x, false))(r2)?;
            let (r2, _) = opt(sym(";"))(r2)?;
            lets.push(l);
            r = r2;
        }
        let (r, e) = cut(context(
            "an expression (what the block evaluates to)",
            |x| self.expr(x),
        ))(r)?;
        let (r, _) = cut(context("`}`", sym("}")))(r)?;
        Ok((
            r,
            Expr {
                kind: ExprKind::Block(lets, Box::new(e)),
                span: self.span(start, r),
            },
        ))
    }

    /// `"text ${expr} \n"`: escapes `\n \t \r \\ \" \$`, `${...}` interpolates.
    fn string<'a>(&self, i: &'a str) -> R<'a, Expr> {
        let start = i;
        let (mut r, _) = char('"')(i)?;
        let mut parts = Vec::new();
        let mut lit = String::new();
        loop {
            let mut chars = r.chars();
            match chars.next() {
                None => {
                    return Err(nom::Err::Failure(PErr {
                        rest: start,
                        expected: "a closing `\"`",
                    }))
                }
                Some('"') => {
                    r = chars.as_str();
                    break;
                }
                Some('\\') => {
                    let c = match chars.next() {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('\\') => '\\',
                        Some('"') => '"',
                        Some('$') => '$',
                        _ => {
                            return Err(nom::Err::Failure(PErr {
                                rest: r,
                                expected: "an escape: \\n \\t \\r \\\\ \\\" or \\$",
                            }))
                        }
                    };
                    lit.push(c);
                    r = chars.as_str();
                }
                Some('$') if chars.as_str().starts_with('{') => {
                    if !lit.is_empty() {
                        parts.push(StrPart::Lit(std::mem::take(&mut lit)));
                    }
                    let (r2, e) = cut(|x| self.expr(x))(&chars.as_str()[1..])?;
                    let (r2, _) = cut(context("`}` closing the interpolation", sym("}")))(r2)?;
                    parts.push(StrPart::Expr(e));
                    r = r2;
                }
                Some(c) => {
                    lit.push(c);
                    r = chars.as_str();
                }
            }
        }
        if !lit.is_empty() || parts.is_empty() {
            parts.push(StrPart::Lit(lit));
        }
        Ok((
            r,
            Expr {
                kind: ExprKind::Str(parts),
                span: self.span(start, r),
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_program_with_spans() {
        let src = "import std.users\n# c\nfn f(a: Int = 1, b: [String]?) -> Image {\n  let x = \"v${a}\"\n  scratch() |> env(A: x) |> g.h(b)\n}\nexport app = f(b: [\"x\"])\n";
        let m = parse_module(src).unwrap();
        assert_eq!(m.items.len(), 3);
        let Item::Fn(f) = &m.items[1] else { panic!() };
        assert_eq!(&src[f.name.span.start..f.name.span.end], "f");
        assert_eq!(f.params.len(), 2);
        let ExprKind::Block(lets, body) = &f.body.kind else {
            panic!()
        };
        assert_eq!(lets.len(), 1);
        let ExprKind::Call { args, .. } = &body.kind else {
            panic!()
        };
        assert_eq!(args.len(), 2, "piped value is the first argument");
    }

    #[test]
    fn records_and_quoted_names() {
        let m = parse_module("let r = {\"a.b\": 1, c: none}\nlet e = {}\n").unwrap();
        let Item::Let(l) = &m.items[0] else { panic!() };
        let ExprKind::Record(f) = &l.value.kind else {
            panic!()
        };
        assert_eq!(f[0].0.name, "a.b");
    }

    #[test]
    fn syntax_errors_point_at_the_problem() {
        let src = "let a = f(1,\nlet b = 2\n";
        let e = parse_module(src).unwrap_err();
        assert!(e.offset >= 13, "{e:?}");
        let e = parse_module("let = 1").unwrap_err();
        assert_eq!(e.offset, 4);
        assert_eq!(e.expected, "a name");
        let e = parse_module("let s = \"abc").unwrap_err();
        assert_eq!(e.expected, "a closing `\"`");
    }
}
