//! `kiln fmt`: one canonical layout for a kiln file, comments kept.
//!
//! The file is parsed (`parse`), then printed from the tree: two-space indents, one item per
//! line group, a blank line between items where the source had one (at most one), pipelines
//! of more than one step one `|>` per line, and calls, lists, records and parameter lists on
//! one line when they fit in `WIDTH` columns, else one element per line with a trailing comma.
//! Comments are found by a lexical pass (outside strings) and printed on their own line
//! before the first line-leading node (item, block `let`, pipeline step, element of a broken
//! list) that starts after them; those left at the end of a block or list go before its
//! closing bracket, the rest at the end of the file.
//! Formatting a formatted file changes nothing.
//! Must not: change what a program means (the tree of the output is the tree of the input),
//! drop a comment, or read anything but the text it is given.

use super::ast::*;
use super::parse::{parse_module, SyntaxError};

/// The column limit a line is kept within when it can be.
pub const WIDTH: usize = 96;

const INDENT: &str = "  ";

/// The file in canonical layout, or the syntax error that stops it being parsed.
pub fn format(src: &str) -> Result<String, SyntaxError> {
    let module = parse_module(src)?;
    let mut p = Printer {
        src,
        comments: comments(src),
        next: 0,
        out: String::new(),
    };
    let mut prev_end: Option<usize> = None;
    for item in &module.items {
        let (start, end) = item_range(item);
        if let Some(pe) = prev_end {
            // Where the previous item ends and the comments or item after it begin.
            let first = p.pending_before(start).unwrap_or(start);
            p.out.push('\n');
            if blank_line_between(src, pe, first) {
                p.out.push('\n');
            }
        }
        p.flush_comments(start, 0);
        p.item(item);
        prev_end = Some(end);
    }
    if p.next < p.comments.len() {
        if !p.out.is_empty() {
            p.out.push('\n');
            let first = p.comments[p.next].0;
            if blank_line_between(src, prev_end.unwrap_or(0), first) {
                p.out.push('\n');
            }
        }
        p.flush_comments(usize::MAX, 0);
        // flush_comments ends each comment with a newline.
        if p.out.ends_with('\n') {
            p.out.pop();
        }
    }
    if !p.out.is_empty() {
        p.out.push('\n');
    }
    Ok(p.out)
}

/// Every `#` comment outside string literals: (byte offset, text without the line break).
fn comments(src: &str) -> Vec<(usize, String)> {
    #[derive(PartialEq)]
    enum Mode {
        Code,
        Str,
        /// Code inside `${...}` of a string; the count is its open braces.
        Interp(usize),
    }
    let mut found = Vec::new();
    let mut stack = vec![Mode::Code];
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let top = stack.last().unwrap_or(&Mode::Code);
        match top {
            Mode::Str => match c {
                b'\\' => i += 1,
                b'"' => {
                    stack.pop();
                }
                b'$' if bytes.get(i + 1) == Some(&b'{') => {
                    stack.push(Mode::Interp(0));
                    i += 1;
                }
                _ => {}
            },
            Mode::Code | Mode::Interp(_) => match c {
                b'"' => stack.push(Mode::Str),
                b'#' => {
                    let end = src[i..].find('\n').map_or(src.len(), |n| i + n);
                    found.push((i, src[i..end].trim_end().to_string()));
                    i = end;
                    continue;
                }
                b'{' => {
                    if let Some(Mode::Interp(n)) = stack.last_mut() {
                        *n += 1;
                    }
                }
                b'}' => match stack.last_mut() {
                    Some(Mode::Interp(0)) => {
                        stack.pop();
                    }
                    Some(Mode::Interp(n)) => *n -= 1,
                    _ => {}
                },
                _ => {}
            },
        }
        i += 1;
    }
    found
}

/// Whether the source has an empty line between two offsets.
fn blank_line_between(src: &str, from: usize, to: usize) -> bool {
    let (a, b) = (from.min(src.len()), to.min(src.len()));
    let mut newline = false;
    for c in src.get(a..b).unwrap_or("").chars() {
        if c == '\n' {
            if newline {
                return true;
            }
            newline = true;
        } else if !c.is_whitespace() {
            newline = false;
        }
    }
    false
}

/// Where an item starts (its keyword) and ends in the source.
fn item_range(item: &Item) -> (usize, usize) {
    match item {
        Item::Import(i) => (i.span.start, i.span.end),
        Item::Let(l) => (l.name.span.start, l.value.span.end),
        Item::Fn(f) => (f.name.span.start, f.body.span.end),
    }
}

struct Printer<'a> {
    src: &'a str,
    comments: Vec<(usize, String)>,
    /// The first comment not printed yet.
    next: usize,
    out: String,
}

impl Printer<'_> {
    /// The offset of the first unprinted comment before `pos`.
    fn pending_before(&self, pos: usize) -> Option<usize> {
        self.comments
            .get(self.next)
            .map(|c| c.0)
            .filter(|&o| o < pos)
    }

    /// Print the comments before `pos`, each on its own line at `depth` (the output is at
    /// the start of a line), keeping an empty line where the source has one between two
    /// comments or between the last one and the node at `pos`.
    fn flush_comments(&mut self, pos: usize, depth: usize) {
        let mut last: Option<usize> = None;
        while let Some((off, text)) = self.comments.get(self.next).cloned() {
            if off >= pos {
                break;
            }
            if let Some(l) = last {
                if blank_line_between(self.src, l, off) {
                    self.out.push('\n');
                }
            }
            self.out.push_str(&INDENT.repeat(depth));
            self.out.push_str(&text);
            self.out.push('\n');
            self.next += 1;
            last = Some(off + text.len());
        }
        if let Some(l) = last {
            if pos != usize::MAX && blank_line_between(self.src, l, pos) {
                self.out.push('\n');
            }
        }
    }

    /// Whether an unprinted comment lies inside `[start, end)`: such a node is printed
    /// broken, so the comment gets a line of its own.
    fn has_comment_in(&self, start: usize, end: usize) -> bool {
        self.comments[self.next..]
            .iter()
            .any(|(o, _)| *o >= start && *o < end)
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Import(i) => {
                let path = match &i.path {
                    ImportPath::Std(names) => names.join("."),
                    ImportPath::File(f) => quote(f),
                };
                self.out.push_str("import ");
                self.out.push_str(&path);
                if i.alias.name != default_alias(&i.path) {
                    self.out.push_str(" as ");
                    self.out.push_str(&i.alias.name);
                }
            }
            Item::Let(l) => {
                let kw = if l.export { "export" } else { "let" };
                self.let_def(kw, l, 0);
            }
            Item::Fn(f) => self.fn_def(f),
        }
    }

    fn let_def(&mut self, kw: &str, l: &LetDef, depth: usize) {
        let head = match &l.ty {
            Some(t) => format!("{kw} {}: {} = ", l.name.name, ty(t)),
            None => format!("{kw} {} = ", l.name.name),
        };
        self.out.push_str(&head);
        let col = INDENT.len() * depth + head.len();
        self.expr(&l.value, depth, col);
    }

    fn fn_def(&mut self, f: &FnDef) {
        let params: Vec<String> = f
            .params
            .iter()
            .map(|p| {
                let mut s = format!("{}: {}", p.name.name, ty(&p.ty));
                if let Some(d) = &p.default {
                    s.push_str(" = ");
                    s.push_str(&flat(d));
                }
                s
            })
            .collect();
        let ret = f
            .ret
            .as_ref()
            .map(|t| format!(" -> {}", ty(t)))
            .unwrap_or_default();
        let one_line = format!("fn {}({}){ret} {{", f.name.name, params.join(", "));
        let params_end = f.params.last().map_or(f.name.span.end, |p| {
            p.default.as_ref().map_or(p.ty.span.end, |d| d.span.end)
        });
        if one_line.len() <= WIDTH && !self.has_comment_in(f.name.span.end, params_end) {
            self.out.push_str(&one_line);
        } else {
            self.out.push_str(&format!("fn {}(\n", f.name.name));
            for (p, text) in f.params.iter().zip(&params) {
                self.flush_comments(p.name.span.start, 1);
                self.out.push_str(INDENT);
                self.out.push_str(text);
                self.out.push_str(",\n");
            }
            self.out.push_str(&format!("){ret} {{"));
        }
        self.block_body(&f.body, 1);
        self.out.push('}');
    }

    /// The inside of `{ ... }` at `depth`: lets and the last expression, each on a line;
    /// the opening brace is already written, the closing one is the caller's.
    fn block_body(&mut self, body: &Expr, depth: usize) {
        self.out.push('\n');
        let (lets, last): (&[LetDef], &Expr) = match &body.kind {
            ExprKind::Block(lets, last) => (lets, last),
            _ => (&[], body),
        };
        let ind = INDENT.repeat(depth);
        let mut prev_end: Option<usize> = None;
        for l in lets {
            self.gap(prev_end, l.name.span.start);
            self.flush_comments(l.name.span.start, depth);
            self.out.push_str(&ind);
            self.let_def("let", l, depth);
            self.out.push('\n');
            prev_end = Some(l.value.span.end);
        }
        let start = expr_start(last);
        self.gap(prev_end, start);
        self.flush_comments(start, depth);
        self.out.push_str(&ind);
        self.expr(last, depth, ind.len());
        self.out.push('\n');
        self.flush_comments(body.span.end, depth);
        self.out.push_str(&INDENT.repeat(depth.saturating_sub(1)));
    }

    /// A blank line before a block's next line where the source had one.
    fn gap(&mut self, prev_end: Option<usize>, start: usize) {
        if let Some(pe) = prev_end {
            let first = self.pending_before(start).unwrap_or(start);
            if blank_line_between(self.src, pe, first) {
                self.out.push('\n');
            }
        }
    }

    /// An expression whose first line starts at column `col`, inside a line at `depth`.
    fn expr(&mut self, e: &Expr, depth: usize, col: usize) {
        let f = flat(e);
        let forced = matches!(e.kind, ExprKind::Block(..))
            || pipeline(e).1.len() > 1
            || self.has_comment_in(e.span.start, e.span.end);
        if !forced && col + f.len() <= WIDTH {
            self.out.push_str(&f);
            return;
        }
        match &e.kind {
            ExprKind::Block(..) => {
                self.out.push('{');
                self.block_body(e, depth + 1);
                self.out.push('}');
            }
            ExprKind::Call {
                piped: true,
                callee: _,
                args: _,
            } => {
                let (root, steps) = pipeline(e);
                // One step: `root |> f(` on the line, the call broken after it.
                if let [step] = steps.as_slice() {
                    let head = flat(root);
                    if col + head.len() + 4 <= WIDTH
                        && !self.has_comment_in(e.span.start, e.span.end)
                    {
                        self.out.push_str(&head);
                        self.out.push_str(" |> ");
                        self.call(step, depth, col + head.len() + 4, true);
                        return;
                    }
                }
                self.expr(root, depth, col);
                let ind = INDENT.repeat(depth + 1);
                for step in steps {
                    self.out.push('\n');
                    let start = expr_start_of_step(step);
                    self.flush_comments(start, depth + 1);
                    self.out.push_str(&ind);
                    self.out.push_str("|> ");
                    self.call(step, depth + 1, ind.len() + 3, true);
                }
            }
            ExprKind::Call { .. } => self.call(e, depth, col, false),
            ExprKind::List(items) => {
                let items: Vec<(usize, &Expr)> = items.iter().map(|i| (expr_start(i), i)).collect();
                self.broken("[", "]", &items, None, depth, e.span.end);
            }
            ExprKind::Record(fields) => {
                let items: Vec<(usize, &Expr)> =
                    fields.iter().map(|(n, v)| (n.span.start, v)).collect();
                let names: Vec<String> = fields.iter().map(|(n, _)| field(&n.name)).collect();
                self.broken("{", "}", &items, Some(&names), depth, e.span.end);
            }
            _ => self.out.push_str(&f),
        }
    }

    /// A call (for a pipeline step, without its first argument) broken one argument per
    /// line when it does not fit.
    fn call(&mut self, e: &Expr, depth: usize, col: usize, skip_first: bool) {
        let ExprKind::Call { callee, args, .. } = &e.kind else {
            self.expr(e, depth, col);
            return;
        };
        let args = if skip_first {
            &args[1.min(args.len())..]
        } else {
            &args[..]
        };
        let head = flat_callee(callee);
        let f = format!(
            "{head}({})",
            args.iter().map(flat_arg).collect::<Vec<_>>().join(", ")
        );
        let end = e.span.end;
        let inner_start = args.first().map_or(end, arg_start);
        if col + f.len() <= WIDTH && !self.has_comment_in(inner_start, end) {
            self.out.push_str(&f);
            return;
        }
        // Only the last argument long: keep the head and break inside it, as in
        // `run(\n  "...",\n)`; otherwise one argument per line.
        self.out.push_str(&head);
        let items: Vec<(usize, &Expr)> = args.iter().map(|a| (arg_start(a), &a.value)).collect();
        let names: Vec<String> = args
            .iter()
            .map(|a| a.name.as_ref().map(|n| field(&n.name)).unwrap_or_default())
            .collect();
        self.broken("(", ")", &items, Some(&names), depth, end);
    }

    /// `open`, then each element on its own line at `depth + 1` (with `name: ` before it
    /// when named), each followed by a comma, then `close` at `depth`.
    fn broken(
        &mut self,
        open: &str,
        close: &str,
        items: &[(usize, &Expr)],
        names: Option<&[String]>,
        depth: usize,
        end: usize,
    ) {
        self.out.push_str(open);
        self.out.push('\n');
        let ind = INDENT.repeat(depth + 1);
        for (i, (start, value)) in items.iter().enumerate() {
            self.flush_comments(*start, depth + 1);
            self.out.push_str(&ind);
            let mut col = ind.len();
            if let Some(n) = names.and_then(|n| n.get(i)).filter(|n| !n.is_empty()) {
                self.out.push_str(n);
                self.out.push_str(": ");
                col += n.len() + 2;
            }
            self.expr(value, depth + 1, col);
            self.out.push_str(",\n");
        }
        self.flush_comments(end, depth + 1);
        self.out.push_str(&INDENT.repeat(depth));
        self.out.push_str(close);
    }
}

/// A pipeline's first value and its steps (outermost last); a non-pipeline is its own root.
fn pipeline(e: &Expr) -> (&Expr, Vec<&Expr>) {
    let mut steps = Vec::new();
    let mut cur = e;
    while let ExprKind::Call {
        piped: true, args, ..
    } = &cur.kind
    {
        match args.first() {
            Some(a) => {
                steps.push(cur);
                cur = &a.value;
            }
            None => break,
        }
    }
    steps.reverse();
    (cur, steps)
}

/// Where an expression's text starts (a pipeline starts at its first value).
fn expr_start(e: &Expr) -> usize {
    pipeline(e).0.span.start.min(e.span.start)
}

/// Where a pipeline step's own text starts: its function's name, after `|>`.
fn expr_start_of_step(step: &Expr) -> usize {
    match &step.kind {
        ExprKind::Call { callee, .. } => callee.span.start,
        _ => step.span.start,
    }
}

fn arg_start(a: &Arg) -> usize {
    a.name
        .as_ref()
        .map_or_else(|| expr_start(&a.value), |n| n.span.start)
}

/// The name `import` binds when there is no `as`.
fn default_alias(path: &ImportPath) -> String {
    match path {
        ImportPath::Std(names) => names.last().cloned().unwrap_or_default(),
        ImportPath::File(f) => f
            .rsplit('/')
            .next()
            .unwrap_or(f)
            .trim_end_matches(".kiln")
            .to_string(),
    }
}

/// A field or argument name: bare when it is an identifier, else quoted.
fn field(name: &str) -> String {
    let ident = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        name.to_string()
    } else {
        quote(name)
    }
}

/// A string literal for `s` (no interpolation).
fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

/// `s` escaped for a string literal (`$` only where `{` follows it: elsewhere it is text).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out
}

fn ty(t: &TypeExpr) -> String {
    match &t.kind {
        TypeKind::Named(n) => n.clone(),
        TypeKind::List(i) => format!("[{}]", ty(i)),
        TypeKind::Record(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(n, t)| format!("{}: {}", field(&n.name), ty(t)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        TypeKind::Optional(i) => format!("{}?", ty(i)),
    }
}

/// An expression on one line.
fn flat(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Str(parts) => {
            let mut s = String::from("\"");
            for p in parts {
                match p {
                    StrPart::Lit(l) => s.push_str(&escape(l)),
                    StrPart::Expr(x) => {
                        s.push_str("${");
                        s.push_str(&flat(x));
                        s.push('}');
                    }
                }
            }
            s.push('"');
            s
        }
        ExprKind::Int(n) => n.to_string(),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::None => "none".into(),
        ExprKind::List(items) => format!(
            "[{}]",
            items.iter().map(flat).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Record(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .map(|(n, v)| format!("{}: {}", field(&n.name), flat(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        ExprKind::Name(id) => id.name.clone(),
        ExprKind::Field(recv, name) => format!("{}.{}", flat_receiver(recv), name.name),
        ExprKind::Call {
            piped: true,
            args,
            callee,
        } => {
            let (first, rest) = match args.split_first() {
                Some((f, r)) => (flat(&f.value), r),
                None => (String::new(), &args[..]),
            };
            format!(
                "{first} |> {}({})",
                flat_callee(callee),
                rest.iter().map(flat_arg).collect::<Vec<_>>().join(", ")
            )
        }
        ExprKind::Call { callee, args, .. } => format!(
            "{}({})",
            flat_callee(callee),
            args.iter().map(flat_arg).collect::<Vec<_>>().join(", ")
        ),
        ExprKind::Block(lets, last) => {
            let mut s = String::from("{ ");
            for l in lets {
                match &l.ty {
                    Some(t) => s.push_str(&format!(
                        "let {}: {} = {}; ",
                        l.name.name,
                        ty(t),
                        flat(&l.value)
                    )),
                    None => s.push_str(&format!("let {} = {}; ", l.name.name, flat(&l.value))),
                }
            }
            s.push_str(&flat(last));
            s.push_str(" }");
            s
        }
    }
}

/// A callee or receiver: a pipeline there needs parentheses to keep its meaning.
fn flat_callee(e: &Expr) -> String {
    flat_receiver(e)
}

fn flat_receiver(e: &Expr) -> String {
    match &e.kind {
        ExprKind::Call { piped: true, .. } => format!("({})", flat(e)),
        _ => flat(e),
    }
}

fn flat_arg(a: &Arg) -> String {
    match &a.name {
        Some(n) => format!("{}: {}", field(&n.name), flat(&a.value)),
        None => flat(&a.value),
    }
}
