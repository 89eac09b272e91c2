//! `--format` templates: the part of Go's text/template that docker's `--format` users
//! write. Text and actions; fields (`.A.B`), `.`, variables (`$`, `$x`, `$x.A`, declared by
//! `{{$x := ...}}` and `{{range $i, $e := ...}}`), strings, numbers, `true`/`false`/`nil`,
//! parenthesised pipelines with fields (`(index .Ports "80/tcp" 0).HostPort`), pipes;
//! `if`/`with`/`range` with `else` and `else if`; the `{{-`/`-}}` trim markers. Functions:
//! Go's `and`, `or`, `not`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `index`, `len`, `print`,
//! `printf`, `println`, and docker's `json`, `join`, `split`, `upper`, `lower`, `title`,
//! `pad`, `truncate`. Values are JSON (the objects `inspect` prints and the rows `ps` lists);
//! they print as Go prints decoded JSON (`[a b]`, `map[k:v]`, `<nil>`).
//! Owns parsing and running templates; must not know which command's objects it renders.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("template: {0}")]
    Parse(String),
    #[error("template: executing {action:?}: {message}")]
    Exec { action: String, message: String },
}

/// A parsed template, run once per object.
#[derive(Debug)]
pub struct Template {
    nodes: Vec<Node>,
}

#[derive(Debug)]
enum Node {
    Text(String),
    /// Prints the pipeline's value, unless the pipeline declares a variable.
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Debug)]
struct Pipeline {
    /// The action's text, for error messages.
    text: String,
    /// Variables declared (`$x :=`, or `$i, $e :=` in a range); `assign` for `$x = ...`.
    decl: Vec<String>,
    assign: bool,
    commands: Vec<Vec<Operand>>,
}

#[derive(Debug)]
enum Operand {
    /// `.` followed by field names (none for `.` itself).
    Dot(Vec<String>),
    /// `$name` (empty: `$`, the data) followed by field names.
    Var(String, Vec<String>),
    Str(String),
    Number(serde_json::Number),
    Bool(bool),
    Nil,
    Func(String),
    /// `( pipeline )` followed by field names.
    Sub(Box<Pipeline>, Vec<String>),
}

/// The deepest nesting of parentheses, and of if, with and range, a template may have.
const MAX_NESTING: usize = 100;

/// The most padding `pad` and a printf width give (a larger one is a mistake, not a layout).
const MAX_PAD: usize = 4096;

const FUNCTIONS: [&str; 23] = [
    "and", "eq", "ge", "gt", "index", "join", "json", "le", "len", "lower", "lt", "ne", "not",
    "or", "pad", "print", "printf", "println", "split", "title", "truncate", "upper", "slice",
];

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut tokens = split_actions(text)?.into_iter().peekable();
        let (nodes, end) = parse_list(&mut tokens, 0)?;
        match end {
            ListEnd::Eof => Ok(Template { nodes }),
            ListEnd::End => Err(TemplateError::Parse("unexpected {{end}}".into())),
            ListEnd::Else | ListEnd::ElseChain(..) => {
                Err(TemplateError::Parse("unexpected {{else}}".into()))
            }
        }
    }

    /// Whether any action names `field` (`{{.Size}}`, or `.`/`$` whole): for values that
    /// cost to compute.
    pub fn mentions(&self, field: &str) -> bool {
        fn in_nodes(nodes: &[Node], field: &str) -> bool {
            nodes.iter().any(|n| match n {
                Node::Text(_) => false,
                Node::Action(p) => in_pipe(p, field),
                Node::Range(p, a, b) | Node::If(p, a, b) | Node::With(p, a, b) => {
                    in_pipe(p, field) || in_nodes(a, field) || in_nodes(b, field)
                }
            })
        }
        fn in_pipe(p: &Pipeline, field: &str) -> bool {
            p.commands.iter().flatten().any(|o| match o {
                Operand::Dot(path) => path.is_empty() || path.iter().any(|f| f == field),
                Operand::Var(name, path) => {
                    (name.is_empty() && path.is_empty()) || path.iter().any(|f| f == field)
                }
                Operand::Sub(p, path) => in_pipe(p, field) || path.iter().any(|f| f == field),
                _ => false,
            })
        }
        in_nodes(&self.nodes, field)
    }

    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        let mut vars = vec![(String::new(), data.clone())];
        run_nodes(&self.nodes, data, &mut vars, &mut out)?;
        Ok(out)
    }
}

/// A `--format` value as docker reads it: an optional `table ` prefix (a header row first,
/// columns split at tabs and aligned), the `\t` and `\n` escapes, then the template.
pub struct Format {
    text: String,
    table: bool,
    template: Template,
}

impl Format {
    pub fn parse(format: &str) -> miette::Result<Format> {
        let (table, body) = match format.strip_prefix("table") {
            Some(t) => (true, t.trim_start()),
            None => (false, format),
        };
        let escaped = body.replace("\\t", "\t").replace("\\n", "\n");
        Ok(Format {
            text: format.to_string(),
            table,
            template: Template::parse(&escaped).map_err(|e| format_error(format, e))?,
        })
    }

    pub fn template(&self) -> &Template {
        &self.template
    }

    pub fn render(&self, data: &Value) -> miette::Result<String> {
        self.template
            .render(data)
            .map_err(|e| format_error(&self.text, e))
    }

    /// Prints `rows` (objects of fields) through the template, a table's header first: the
    /// template run on `headers` (each field's column title).
    pub fn print(&self, headers: &Value, rows: &[Value]) -> miette::Result<()> {
        use std::io::Write;
        let mut lines = Vec::new();
        if self.table {
            lines.push(self.render(headers)?);
        }
        for row in rows {
            lines.push(self.render(row)?);
        }
        if self.table {
            let cells: Vec<Vec<String>> = lines
                .iter()
                .map(|l| l.split('\t').map(str::to_string).collect())
                .collect();
            super::images::print_table(&cells);
        } else {
            let mut out = std::io::stdout().lock();
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
        }
        Ok(())
    }
}

/// A `--format` template that does not parse or run, with the template in the message.
fn format_error(template: &str, e: TemplateError) -> miette::Report {
    miette::miette!(
        help = "a Go template such as '{{.Name}}', '{{json .Config}}', '{{range .Mounts}}{{.Source}} {{end}}'",
        "invalid --format {template:?}: {e}"
    )
}

enum Chunk {
    Text(String),
    Action(String),
}

/// Text and actions (`{{...}}`, a `}}` inside a string does not end one), with the trim
/// markers applied to the text around them.
fn split_actions(text: &str) -> Result<Vec<Chunk>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut before = &rest[..start];
        if trim_next {
            before = before.trim_start();
        }
        let inner_start = &rest[start + 2..];
        let end = action_end(inner_start)
            .ok_or_else(|| TemplateError::Parse("unclosed action (no \"}}\")".into()))?;
        let mut inner = &inner_start[..end];
        if let Some(i) = inner.strip_prefix("- ") {
            before = before.trim_end();
            inner = i;
        }
        trim_next = false;
        if let Some(i) = inner.strip_suffix(" -") {
            trim_next = true;
            inner = i;
        }
        if !before.is_empty() {
            out.push(Chunk::Text(before.to_string()));
        }
        out.push(Chunk::Action(inner.trim().to_string()));
        rest = &inner_start[end + 2..];
    }
    let last = if trim_next { rest.trim_start() } else { rest };
    if !last.is_empty() {
        out.push(Chunk::Text(last.to_string()));
    }
    Ok(out)
}

/// Where an action's `}}` is, outside strings.
fn action_end(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        match (quote, bytes[i]) {
            (Some(b'"'), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, c @ (b'"' | b'`')) => quote = Some(c),
            (None, b'}') if bytes.get(i + 1) == Some(&b'}') => return Some(i),
            (None, _) => {}
        }
        i += 1;
    }
    None
}

type Chunks = std::iter::Peekable<std::vec::IntoIter<Chunk>>;

/// How a list of nodes ended.
enum ListEnd {
    Eof,
    End,
    Else,
    /// `{{else if ...}}` or `{{else with ...}}`: the keyword and the rest.
    ElseChain(String, String),
}

fn parse_list(chunks: &mut Chunks, depth: usize) -> Result<(Vec<Node>, ListEnd), TemplateError> {
    let mut nodes = Vec::new();
    while let Some(chunk) = chunks.next() {
        let action = match chunk {
            Chunk::Text(t) => {
                nodes.push(Node::Text(t));
                continue;
            }
            Chunk::Action(a) => a,
        };
        if action.starts_with("/*") {
            continue; // a comment
        }
        let (word, rest) = action
            .split_once(char::is_whitespace)
            .unwrap_or((action.as_str(), ""));
        let rest = rest.trim();
        match word {
            "end" if rest.is_empty() => return Ok((nodes, ListEnd::End)),
            "else" if rest.is_empty() => return Ok((nodes, ListEnd::Else)),
            "else" => {
                let (kw, more) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                if kw != "if" && kw != "with" {
                    return Err(TemplateError::Parse(format!(
                        "unexpected {{{{else {rest}}}}}"
                    )));
                }
                return Ok((nodes, ListEnd::ElseChain(kw.into(), more.trim().into())));
            }
            "range" | "if" | "with" => nodes.push(control(word, rest, chunks, depth)?),
            _ => nodes.push(Node::Action(pipeline(&action)?)),
        }
    }
    Ok((nodes, ListEnd::Eof))
}

/// `{{if|with|range PIPELINE}}` up to and with its `{{end}}`.
fn control(
    word: &str,
    rest: &str,
    chunks: &mut Chunks,
    depth: usize,
) -> Result<Node, TemplateError> {
    if depth >= MAX_NESTING {
        return Err(TemplateError::Parse(format!(
            "more than {MAX_NESTING} nested if, with and range"
        )));
    }
    let pipe = pipeline(rest)?;
    if !pipe.decl.is_empty() && word != "range" && pipe.decl.len() > 1 {
        return Err(TemplateError::Parse(format!(
            "too many declarations in {word}"
        )));
    }
    let (body, end) = parse_list(chunks, depth + 1)?;
    let otherwise = match end {
        ListEnd::End => Vec::new(),
        ListEnd::Else => match parse_list(chunks, depth + 1)? {
            (other, ListEnd::End) => other,
            _ => return Err(TemplateError::Parse(format!("{word} without end"))),
        },
        ListEnd::ElseChain(kw, more) if word != "range" => {
            vec![control(&kw, &more, chunks, depth + 1)?]
        }
        ListEnd::ElseChain(..) => {
            return Err(TemplateError::Parse("range has no else if".into()));
        }
        ListEnd::Eof => return Err(TemplateError::Parse(format!("{word} without end"))),
    };
    Ok(match word {
        "range" => Node::Range(pipe, body, otherwise),
        "with" => Node::With(pipe, body, otherwise),
        _ => Node::If(pipe, body, otherwise),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Str(String),
    Number(serde_json::Number),
    Ident(String),
    Open,
    Close,
    /// Fields right after a `)`.
    Chain(Vec<String>),
    Pipe,
    Declare,
    Assign,
    Comma,
}

fn parse_error(text: &str, why: &str) -> TemplateError {
    TemplateError::Parse(format!("{why} in {{{{{text}}}}}"))
}

/// `.A.B` after a `.` (or `$x`): the names, up to what is not a name character.
fn field_names(chars: &[char], i: &mut usize) -> Vec<String> {
    let mut out = Vec::new();
    while *i < chars.len() && chars[*i] == '.' {
        let start = *i + 1;
        let mut j = start;
        while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        if j == start {
            break;
        }
        out.push(chars[start..j].iter().collect());
        *i = j;
    }
    out
}

fn lex(text: &str) -> Result<Vec<Tok>, TemplateError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '|' => {
                out.push(Tok::Pipe);
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
                let names = field_names(&chars, &mut i);
                if !names.is_empty() {
                    out.push(Tok::Chain(names));
                }
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            ':' if chars.get(i + 1) == Some(&'=') => {
                out.push(Tok::Declare);
                i += 2;
            }
            '=' => {
                out.push(Tok::Assign);
                i += 1;
            }
            '.' => {
                let names = field_names(&chars, &mut i);
                if names.is_empty() {
                    i += 1; // `.` itself
                }
                out.push(Tok::Field(names));
            }
            '$' => {
                let start = i + 1;
                let mut j = start;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[start..j].iter().collect();
                i = j;
                out.push(Tok::Var(name, field_names(&chars, &mut i)));
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(parse_error(text, "unterminated quoted string")),
                        Some('"') => break,
                        Some('\\') => {
                            i += 1;
                            s.push(match chars.get(i) {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some('0') => '\0',
                                Some(&c @ ('\\' | '"' | '\'')) => c,
                                _ => return Err(parse_error(text, "bad escape in a string")),
                            });
                        }
                        Some(&c) => s.push(c),
                    }
                    i += 1;
                }
                i += 1;
                out.push(Tok::Str(s));
            }
            '`' => {
                let start = i + 1;
                let end = chars[start..]
                    .iter()
                    .position(|&c| c == '`')
                    .ok_or_else(|| parse_error(text, "unterminated raw string"))?;
                out.push(Tok::Str(chars[start..start + end].iter().collect()));
                i = start + end + 1;
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let n = word
                    .parse::<i64>()
                    .ok()
                    .map(serde_json::Number::from)
                    .or_else(|| {
                        word.parse::<f64>()
                            .ok()
                            .and_then(serde_json::Number::from_f64)
                    })
                    .ok_or_else(|| parse_error(text, &format!("bad number {word:?}")))?;
                out.push(Tok::Number(n));
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(parse_error(text, &format!("unexpected {other:?}"))),
        }
    }
    Ok(out)
}

fn pipeline(text: &str) -> Result<Pipeline, TemplateError> {
    let toks = lex(text)?;
    let mut open = 0usize;
    for t in &toks {
        match t {
            Tok::Open => open += 1,
            Tok::Close => open = open.saturating_sub(1),
            _ => {}
        }
        if open > MAX_NESTING {
            return Err(parse_error(
                text,
                &format!("more than {MAX_NESTING} nested parentheses"),
            ));
        }
    }
    let mut pos = 0;
    let p = parse_pipeline(text, &toks, &mut pos)?;
    if pos != toks.len() {
        return Err(parse_error(text, "unexpected \")\""));
    }
    Ok(p)
}

/// A pipeline from `toks[*pos]`, up to the end or a `)` (left for the caller).
fn parse_pipeline(text: &str, toks: &[Tok], pos: &mut usize) -> Result<Pipeline, TemplateError> {
    let mut decl = Vec::new();
    let mut assign = false;
    // `$x :=`, `$x =`, `$i, $e :=`
    let plain_var = |t: Option<&Tok>| match t {
        Some(Tok::Var(name, path)) if path.is_empty() && !name.is_empty() => Some(name.clone()),
        _ => None,
    };
    let at = *pos;
    if let Some(a) = plain_var(toks.get(at)) {
        match toks.get(at + 1) {
            Some(Tok::Declare | Tok::Assign) => {
                assign = toks[at + 1] == Tok::Assign;
                decl.push(a);
                *pos = at + 2;
            }
            Some(Tok::Comma) => match (plain_var(toks.get(at + 2)), toks.get(at + 3)) {
                (Some(b), Some(Tok::Declare)) => {
                    decl.extend([a, b]);
                    *pos = at + 4;
                }
                _ => return Err(parse_error(text, "bad declaration")),
            },
            _ => {}
        }
    }
    let mut commands = Vec::new();
    let mut command = Vec::new();
    while let Some(t) = toks.get(*pos) {
        *pos += 1;
        let operand = match t {
            Tok::Close => {
                *pos -= 1;
                break;
            }
            Tok::Pipe => {
                if command.is_empty() {
                    return Err(parse_error(text, "missing command before |"));
                }
                commands.push(std::mem::take(&mut command));
                continue;
            }
            Tok::Field(path) => Operand::Dot(path.clone()),
            Tok::Var(name, path) => Operand::Var(name.clone(), path.clone()),
            Tok::Str(s) => Operand::Str(s.clone()),
            Tok::Number(n) => Operand::Number(n.clone()),
            Tok::Ident(w) => match w.as_str() {
                "true" => Operand::Bool(true),
                "false" => Operand::Bool(false),
                "nil" => Operand::Nil,
                f if FUNCTIONS.contains(&f) => Operand::Func(f.to_string()),
                f => {
                    return Err(TemplateError::Parse(format!(
                        "function {f:?} not defined (kiln has {})",
                        FUNCTIONS.join(", ")
                    )))
                }
            },
            Tok::Open => {
                let inner = parse_pipeline(text, toks, pos)?;
                if toks.get(*pos) != Some(&Tok::Close) {
                    return Err(parse_error(text, "unclosed left paren"));
                }
                *pos += 1;
                let path = match toks.get(*pos) {
                    Some(Tok::Chain(names)) => {
                        *pos += 1;
                        names.clone()
                    }
                    _ => Vec::new(),
                };
                Operand::Sub(Box::new(inner), path)
            }
            Tok::Chain(_) | Tok::Declare | Tok::Assign | Tok::Comma => {
                return Err(parse_error(text, "unexpected token"))
            }
        };
        command.push(operand);
    }
    if command.is_empty() {
        return Err(parse_error(text, "missing value"));
    }
    commands.push(command);
    Ok(Pipeline {
        text: text.to_string(),
        decl,
        assign,
        commands,
    })
}

type Vars = Vec<(String, Value)>;

fn run_nodes(
    nodes: &[Node],
    dot: &Value,
    vars: &mut Vars,
    out: &mut String,
) -> Result<(), TemplateError> {
    // Variables declared in this list live until its end.
    let scope = vars.len();
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Action(p) => {
                let v = eval(p, dot, vars)?;
                if p.decl.is_empty() {
                    out.push_str(&go_text(&v));
                } else {
                    set_var(vars, p, &p.decl[0], v)?;
                }
            }
            // `with` is an `if` whose body sees the value as `.`.
            Node::If(p, then, otherwise) | Node::With(p, then, otherwise) => {
                let v = eval(p, dot, vars)?;
                let inner = vars.len();
                if let Some(name) = p.decl.first() {
                    vars.push((name.clone(), v.clone()));
                }
                match (truthy(&v), matches!(node, Node::With(..))) {
                    (true, true) => run_nodes(then, &v, vars, out)?,
                    (true, false) => run_nodes(then, dot, vars, out)?,
                    (false, _) => run_nodes(otherwise, dot, vars, out)?,
                }
                vars.truncate(inner);
            }
            Node::Range(p, body, otherwise) => {
                let items: Vec<(Value, Value)> = match eval(p, dot, vars)? {
                    Value::Array(items) => items
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (Value::from(i), v))
                        .collect(),
                    Value::Object(map) => {
                        let mut pairs: Vec<(String, Value)> = map.into_iter().collect();
                        pairs.sort_by(|a, b| a.0.cmp(&b.0));
                        pairs
                            .into_iter()
                            .map(|(k, v)| (Value::String(k), v))
                            .collect()
                    }
                    Value::Null => Vec::new(),
                    other => {
                        return Err(exec(
                            p,
                            format!("range can't iterate over {}", go_text(&other)),
                        ))
                    }
                };
                if items.is_empty() {
                    run_nodes(otherwise, dot, vars, out)?;
                }
                for (key, item) in items {
                    let inner = vars.len();
                    match p.decl.as_slice() {
                        [] => {}
                        [e] => vars.push((e.clone(), item.clone())),
                        [k, e, ..] => {
                            vars.push((k.clone(), key));
                            vars.push((e.clone(), item.clone()));
                        }
                    }
                    run_nodes(body, &item, vars, out)?;
                    vars.truncate(inner);
                }
            }
        }
    }
    vars.truncate(scope);
    Ok(())
}

fn set_var(vars: &mut Vars, p: &Pipeline, name: &str, v: Value) -> Result<(), TemplateError> {
    if !p.assign {
        vars.push((name.to_string(), v));
        return Ok(());
    }
    match vars.iter_mut().rev().find(|(n, _)| n == name) {
        Some(slot) => {
            slot.1 = v;
            Ok(())
        }
        None => Err(exec(p, format!("undefined variable ${name}"))),
    }
}

fn exec(p: &Pipeline, message: String) -> TemplateError {
    TemplateError::Exec {
        action: format!("{{{{{}}}}}", p.text),
        message,
    }
}

fn eval(p: &Pipeline, dot: &Value, vars: &Vars) -> Result<Value, TemplateError> {
    let mut piped: Option<Value> = None;
    for command in &p.commands {
        let (first, rest) = command
            .split_first()
            .ok_or_else(|| exec(p, "empty command".into()))?;
        let mut args = Vec::new();
        for o in rest {
            args.push(operand(p, o, dot, vars)?);
        }
        args.extend(piped.take());
        piped = Some(match first {
            Operand::Func(f) => call(p, f, args)?,
            o if args.is_empty() => operand(p, o, dot, vars)?,
            _ => return Err(exec(p, "can't give an argument to a non-function".into())),
        });
    }
    Ok(piped.unwrap_or(Value::Null))
}

fn operand(p: &Pipeline, o: &Operand, dot: &Value, vars: &Vars) -> Result<Value, TemplateError> {
    Ok(match o {
        Operand::Str(s) => Value::String(s.clone()),
        Operand::Number(n) => Value::Number(n.clone()),
        Operand::Bool(b) => Value::Bool(*b),
        Operand::Nil => Value::Null,
        Operand::Func(f) => call(p, f, Vec::new())?,
        Operand::Dot(path) => fields(p, dot, path)?,
        Operand::Var(name, path) => {
            let (_, v) = vars
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .ok_or_else(|| exec(p, format!("undefined variable ${name}")))?;
            fields(p, v, path)?
        }
        Operand::Sub(inner, path) => fields(p, &eval(inner, dot, vars)?, path)?,
    })
}

fn fields(p: &Pipeline, start: &Value, path: &[String]) -> Result<Value, TemplateError> {
    let mut v = start;
    for name in path {
        v = match v {
            Value::Object(map) => map.get(name).ok_or_else(|| {
                let mut keys: Vec<&str> = map.keys().map(String::as_str).collect();
                keys.sort_unstable();
                exec(
                    p,
                    format!("no field {name:?} (there are: {})", keys.join(", ")),
                )
            })?,
            Value::Null => &Value::Null,
            other => {
                return Err(exec(
                    p,
                    format!("can't read field {name:?} of {}", go_text(other)),
                ))
            }
        };
    }
    Ok(v.clone())
}

fn call(p: &Pipeline, f: &str, args: Vec<Value>) -> Result<Value, TemplateError> {
    let want = |n: usize| -> Result<(), TemplateError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(exec(
                p,
                format!("{f} takes {n} argument(s), got {}", args.len()),
            ))
        }
    };
    let text = |i: usize| go_text(&args[i]);
    let count = |i: usize| -> Result<usize, TemplateError> {
        args[i]
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| exec(p, format!("{f}: {} is not a count", go_text(&args[i]))))
    };
    let pad_count = |i: usize| -> Result<usize, TemplateError> {
        let n = count(i)?;
        if n > MAX_PAD {
            return Err(exec(p, format!("{f}: {n} is more padding than {MAX_PAD}")));
        }
        Ok(n)
    };
    Ok(match f {
        "json" => {
            want(1)?;
            Value::String(serde_json::to_string(&args[0]).unwrap_or_default())
        }
        "upper" | "lower" | "title" => {
            want(1)?;
            Value::String(match f {
                "upper" => text(0).to_uppercase(),
                "lower" => text(0).to_lowercase(),
                _ => title(&text(0)),
            })
        }
        "pad" => {
            want(3)?;
            let (before, after) = (pad_count(1)?, pad_count(2)?);
            Value::String(format!(
                "{}{}{}",
                " ".repeat(before),
                text(0),
                " ".repeat(after)
            ))
        }
        "truncate" => {
            want(2)?;
            Value::String(text(0).chars().take(count(1)?).collect())
        }
        "split" => {
            want(2)?;
            let (s, sep) = (text(0), text(1));
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep.as_str())
                    .map(|x| Value::String(x.into()))
                    .collect()
            };
            Value::Array(parts)
        }
        "len" => {
            want(1)?;
            Value::from(match &args[0] {
                Value::Array(a) => a.len(),
                Value::Object(m) => m.len(),
                Value::String(s) => s.len(),
                Value::Null => 0,
                other => return Err(exec(p, format!("len of {}", go_text(other)))),
            })
        }
        "join" => {
            want(2)?;
            let Value::Array(items) = &args[0] else {
                return Err(exec(p, "join takes a list and a separator".into()));
            };
            let items: Vec<String> = items.iter().map(go_text).collect();
            Value::String(items.join(&text(1)))
        }
        "print" => Value::String(sprint(&args)),
        "println" => {
            let words: Vec<String> = args.iter().map(go_text).collect();
            Value::String(words.join(" ") + "\n")
        }
        "printf" => {
            let Some((Value::String(format), rest)) = args.split_first() else {
                return Err(exec(p, "printf takes a format string first".into()));
            };
            Value::String(printf(format, rest))
        }
        "not" => {
            want(1)?;
            Value::Bool(!truthy(&args[0]))
        }
        "and" | "or" => {
            let Some(last) = args.last() else {
                return Err(exec(p, format!("{f} takes at least one argument")));
            };
            let stop = |v: &&Value| if f == "and" { !truthy(v) } else { truthy(v) };
            args.iter().find(stop).unwrap_or(last).clone()
        }
        "eq" => {
            let Some((first, others)) = args.split_first().filter(|(_, o)| !o.is_empty()) else {
                return Err(exec(p, "eq takes two or more arguments".into()));
            };
            let mut any = false;
            for o in others {
                any |= compare(p, first, o)? == std::cmp::Ordering::Equal;
            }
            Value::Bool(any)
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let ord = compare(p, &args[0], &args[1])?;
            if f != "ne" && matches!(args[0], Value::Bool(_) | Value::Null) {
                return Err(exec(p, format!("{f}: invalid type for comparison")));
            }
            use std::cmp::Ordering::*;
            Value::Bool(match f {
                "ne" => ord != Equal,
                "lt" => ord == Less,
                "le" => ord != Greater,
                "gt" => ord == Greater,
                _ => ord != Less,
            })
        }
        "slice" => {
            let Some((first, bounds)) = args.split_first() else {
                return Err(exec(p, "slice takes a value and bounds".into()));
            };
            let idx = |i: usize| count(i + 1);
            match first {
                Value::String(s) => {
                    let from = if bounds.is_empty() { 0 } else { idx(0)? };
                    let to = if bounds.len() > 1 { idx(1)? } else { s.len() };
                    match s.get(from..to) {
                        Some(part) => Value::String(part.into()),
                        None => return Err(exec(p, format!("slice {from}:{to} out of range"))),
                    }
                }
                Value::Array(items) => {
                    let from = if bounds.is_empty() { 0 } else { idx(0)? };
                    let to = if bounds.len() > 1 {
                        idx(1)?
                    } else {
                        items.len()
                    };
                    match items.get(from..to) {
                        Some(part) => Value::Array(part.to_vec()),
                        None => return Err(exec(p, format!("slice {from}:{to} out of range"))),
                    }
                }
                other => return Err(exec(p, format!("can't slice {}", go_text(other)))),
            }
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return Err(exec(p, "index takes a value and keys".into()));
            };
            let mut v = first.clone();
            for key in keys {
                v = match (&v, key) {
                    (Value::Object(map), Value::String(k)) => {
                        map.get(k).cloned().unwrap_or(Value::Null)
                    }
                    (Value::Array(items), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|i| items.get(i as usize))
                        .cloned()
                        .ok_or_else(|| exec(p, format!("index {n} out of range")))?,
                    _ => {
                        return Err(exec(
                            p,
                            format!("can't index {} with {}", go_text(&v), go_text(key)),
                        ))
                    }
                };
            }
            v
        }
        _ => return Err(exec(p, format!("function {f:?} not defined"))),
    })
}

/// Go's `eq`/`lt` order: numbers by value, strings by bytes, booleans and nil only equal or
/// not; other mixes are an error, as Go's are.
fn compare(p: &Pipeline, a: &Value, b: &Value) -> Result<std::cmp::Ordering, TemplateError> {
    use std::cmp::Ordering;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            Ok(x.partial_cmp(&y).unwrap_or(Ordering::Equal))
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        (Value::Bool(x), Value::Bool(y)) => Ok(if x == y {
            Ordering::Equal
        } else {
            Ordering::Less
        }),
        (Value::Null, Value::Null) => Ok(Ordering::Equal),
        _ => Err(exec(
            p,
            format!(
                "incompatible types for comparison: {} and {}",
                go_text(a),
                go_text(b)
            ),
        )),
    }
}

/// Capitalises each word's first letter (docker's `title`).
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// Go's `fmt.Sprint`: operands side by side, a space between two that are not strings.
fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 && !a.is_string() && !args[i - 1].is_string() {
            out.push(' ');
        }
        out.push_str(&go_text(a));
    }
    out
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %d %q %t %x %f %%`, with the `-`
/// and `0` flags, a width and a precision. A verb the value does not fit prints Go's
/// `%!d(string=x)`; a missing value `%!v(MISSING)`.
fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut next = args.iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut left, mut zero) = (false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => left = true,
                '0' => zero = true,
                '+' | ' ' | '#' => {}
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(
                    n.unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add(d as usize)
                        .min(MAX_PAD),
                );
                chars.next();
            }
            n
        };
        let width = number(&mut chars);
        let precision = if chars.peek() == Some(&'.') {
            chars.next();
            Some(number(&mut chars).unwrap_or(0))
        } else {
            None
        };
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = next.next() else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        let bad = || match arg {
            Value::Null => format!("%!{verb}(<nil>)"),
            v => format!("%!{verb}({}={})", go_type(v), go_text(v)),
        };
        let text = match (verb, arg) {
            ('v' | 's', v) => {
                let t = go_text(v);
                match precision {
                    Some(p) if verb == 's' => t.chars().take(p).collect(),
                    _ => t,
                }
            }
            ('q', Value::String(s)) => serde_json::to_string(s).unwrap_or_default(),
            ('t', Value::Bool(b)) => b.to_string(),
            ('d', Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
            ('f', Value::Number(n)) => {
                format!("{:.*}", precision.unwrap_or(6), n.as_f64().unwrap_or(0.0))
            }
            ('x', Value::Number(n)) if n.is_u64() => format!("{:x}", n.as_u64().unwrap_or(0)),
            ('x', Value::String(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            _ => bad(),
        };
        let pad = width.unwrap_or(0).saturating_sub(text.chars().count());
        if left {
            out.push_str(&text);
            out.push_str(&" ".repeat(pad));
        } else if zero && matches!(verb, 'd' | 'f' | 'x') {
            let (sign, digits) = match text.strip_prefix('-') {
                Some(d) => ("-", d),
                None => ("", text.as_str()),
            };
            out.push_str(sign);
            out.push_str(&"0".repeat(pad));
            out.push_str(digits);
        } else {
            out.push_str(&" ".repeat(pad));
            out.push_str(&text);
        }
    }
    out
}

/// The Go type a value prints as in `%!d(string=x)`.
fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

/// A value as Go's fmt prints decoded JSON.
fn go_text(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(go_text).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(map) => {
            let mut pairs: Vec<(&String, &Value)> = map.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            let pairs: Vec<String> = pairs
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", go_text(v)))
                .collect();
            format!("map[{}]", pairs.join(" "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, v: &Value) -> Result<String, TemplateError> {
        Template::parse(t)?.render(v)
    }

    #[test]
    fn the_forms_docker_users_write() {
        let v = json!({
            "Id": "abc", "State": {"Running": true, "Status": "running", "Health": null},
            "Config": {"Env": ["A=1", "B=2"], "Labels": {"tier": "web"}},
            "Mounts": [{"Source": "/s", "Destination": "/d"}, {"Source": "/t", "Destination": "/e"}],
            "Size": 7
        });
        for (t, want) in [
            ("{{.Id}}", "abc"),
            ("{{.State.Running}} {{.State.Status}}", "true running"),
            ("{{.State.Health}}", "<nil>"),
            ("{{json .Config.Labels}}", r#"{"tier":"web"}"#),
            ("{{.Config.Labels | json}}", r#"{"tier":"web"}"#),
            ("{{index .Config.Labels \"tier\"}}", "web"),
            ("{{index .Config.Env 1}}", "B=2"),
            ("{{join .Config.Env \",\"}}", "A=1,B=2"),
            ("{{.Config.Env}}", "[A=1 B=2]"),
            ("{{.Config.Labels}}", "map[tier:web]"),
            (
                "{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}",
                "/s:/d /t:/e ",
            ),
            ("{{range .Mounts -}}\n  {{.Source}}\n{{- end}}", "/s/t"),
            ("{{if .State.Running}}up{{else}}down{{end}}", "up"),
            ("{{if .State.Health}}h{{end}}", ""),
            ("{{len .Mounts}} {{upper .State.Status}}", "2 RUNNING"),
            ("{{println .Id}}", "abc\n"),
            ("{{.Size}}\\t{{.Id}}", "7\\tabc"),
        ] {
            assert_eq!(render(t, &v).as_deref(), Ok(want), "{t}");
        }
    }

    #[test]
    fn mistakes_are_errors_that_say_what_is_there() {
        let v = json!({"Id": "abc", "Name": "n"});
        let err = render("{{.Nope}}", &v).unwrap_err();
        assert!(
            err.to_string()
                .contains(r#"no field "Nope" (there are: Id, Name)"#),
            "{err}"
        );
        assert!(matches!(
            Template::parse("{{.Id"),
            Err(TemplateError::Parse(_))
        ));
        assert!(matches!(
            Template::parse("{{range .Id}}x"),
            Err(TemplateError::Parse(_))
        ));
        assert!(matches!(
            Template::parse("{{end}}"),
            Err(TemplateError::Parse(_))
        ));
        let err = Template::parse("{{frobnicate .Id}}").unwrap_err();
        assert!(err.to_string().contains("and, eq"), "{err}");
        assert!(render("{{$nope}}", &v).is_err());
        assert!(render("{{eq .Id 1}}", &v).is_err());
        assert!(render("{{(.Id}}", &v).is_err());
        assert!(render("{{.Id)}}", &v).is_err());
        assert!(render("{{if .Id}}x{{else frob}}y{{end}}", &v).is_err());
        assert!(render("{{range .Id}}x{{end}}", &v).is_err());
        assert!(render("{{index .Id 3}}", &v).is_err());
    }

    #[test]
    fn variables_parentheses_with_and_the_functions_of_go_and_docker() {
        let v = json!({
            "Name": "/web", "State": {"Status": "running", "ExitCode": 0, "Health": null},
            "NetworkSettings": {"Ports": {
                "80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                "53/udp": [{"HostIp": "0.0.0.0", "HostPort": "5353"}]
            }},
            "Config": {"Env": ["A=1", "B=2"], "Labels": {"b": "2", "a": "1"}},
            "Count": 3
        });
        for (t, want) in [
            (
                r#"{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}"#,
                "8080",
            ),
            (
                "{{range $p, $b := .NetworkSettings.Ports}}{{$p}}={{(index $b 0).HostPort}} {{end}}",
                "53/udp=5353 80/tcp=8080 ",
            ),
            ("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}", "0:A=1 1:B=2 "),
            ("{{range $e := .Config.Env}}{{$e}}{{end}}", "A=1B=2"),
            ("{{$n := .Name}}{{range .Config.Env}}{{$n}}{{end}}", "/web/web"),
            ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
            ("{{range .Config.Env}}{{$.Name}}{{end}}", "/web/web"),
            ("{{with .State}}{{.Status}}{{end}}", "running"),
            ("{{with .State.Health}}{{.Status}}{{else}}none{{end}}", "none"),
            ("{{with $s := .State}}{{$s.ExitCode}}{{end}}", "0"),
            (
                r#"{{if eq .State.Status "exited"}}e{{else if eq .State.Status "running"}}r{{else}}?{{end}}"#,
                "r",
            ),
            (r#"{{if eq .State.Status "a" "running"}}y{{end}}"#, "y"),
            ("{{if and .Name (not .State.ExitCode)}}ok{{end}}", "ok"),
            ("{{or .State.Health .Name}}", "/web"),
            ("{{if gt .Count 2}}big{{end}} {{if le .Count 2}}small{{end}}", "big "),
            (r#"{{if ne .Name "/db"}}not db{{end}}"#, "not db"),
            (r#"{{printf "%s has %d" .Name .Count}}"#, "/web has 3"),
            (r#"{{printf "%-6s|%5d|%05d|%q|%v|%t" "ab" 42 7 "x" .Config.Env true}}"#, r#"ab    |   42|00007|"x"|[A=1 B=2]|true"#),
            (r#"{{printf "%d" .Name}} {{printf "%s"}}"#, "%!d(string=/web) %!s(MISSING)"),
            (r#"{{printf "%.2f %x 100%%" 1.5 255}}"#, "1.50 ff 100%"),
            (r#"{{print "a" 1 2 "b"}}"#, "a1 2b"),
            (r#"{{split "a,b,c" ","}} {{join (split "a,b" ",") "+"}}"#, "[a b c] a+b"),
            (r#"{{title "hello world"}} {{truncate .Name 2}}|{{pad "x" 1 2}}|"#, "Hello World /w| x  |"),
            (r#"{{slice .Name 1}} {{slice .Config.Env 1 2}}"#, "web [B=2]"),
            (r#"{{.Name | printf "<%s>"}}"#, "</web>"),
            ("{{/* a comment */}}x", "x"),
            (r#"{{"}}"}}"#, "}}"),
            ("{{`raw\n`}}", "raw\n"),
            (r#"{{len .Config.Labels | printf "%d labels"}}"#, "2 labels"),
        ] {
            assert_eq!(render(t, &v).as_deref(), Ok(want), "{t}");
        }
    }

    /// Templates made of the pieces users type, in any order: parsing and running them
    /// returns a result, never a panic (a bad one is an error naming what is wrong).
    #[test]
    fn any_template_parses_and_runs_or_says_why() {
        use proptest::prelude::*;
        assert!(render("{{pad \"x\" 99999999999 1}}", &json!({})).is_err());
        let deep = format!("{{{{{}.{}}}}}", "(".repeat(5000), ")".repeat(5000));
        assert!(Template::parse(&deep).is_err());
        let deep = format!("{}x{}", "{{if 1}}".repeat(5000), "{{end}}".repeat(5000));
        assert!(Template::parse(&deep).is_err());
        let chain = format!("{{{{if 0}}}}{}{{{{end}}}}", "{{else if 0}}".repeat(5000));
        assert!(Template::parse(&chain).is_err());
        let fine = format!("{{{{{}.{}}}}}", "(".repeat(99), ")".repeat(99));
        assert_eq!(render(&fine, &json!(7)).as_deref(), Ok("7"));
        let wide = render("{{printf \"%99999999999999999999d\" 1}}", &json!({})).unwrap();
        assert_eq!(wide.len(), MAX_PAD);
        let piece = prop::sample::select(vec![
            "{{",
            "}}",
            "{{-",
            "-}}",
            " ",
            ".",
            ".Name",
            ".State.Status",
            ".Ports",
            "$",
            "$x",
            "$x :=",
            "$i, $e :=",
            "=",
            ",",
            "(",
            ")",
            ").HostPort",
            "|",
            "\"",
            "\"a\"",
            "`r`",
            "0",
            "1",
            "-2",
            "3.5",
            "true",
            "nil",
            "range",
            "if",
            "with",
            "else",
            "else if",
            "end",
            "index",
            "printf",
            "\"%d %s %q %x %-5v %05.1f %\"",
            "eq",
            "lt",
            "and",
            "or",
            "not",
            "len",
            "slice",
            "json",
            "split",
            "join",
            "pad",
            "truncate",
            "title",
            "/*",
            "*/",
            "text",
            "\\",
            "é",
        ]);
        let data = json!({
            "Name": "/web", "State": {"Status": "up", "Pid": 3}, "List": [1, "a", null],
            "Ports": {"80/tcp": [{"HostPort": "8080"}]}, "Nothing": null
        });
        let mut runner = proptest::test_runner::TestRunner::default();
        runner
            .run(&prop::collection::vec(piece, 0..24), |pieces| {
                let text = pieces.concat();
                if let Ok(t) = Template::parse(&text) {
                    let _ = t.render(&data);
                    let _ = t.mentions("Size");
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn mentions_finds_fields_that_cost() {
        assert!(Template::parse("{{.ID}} {{.Size}}")
            .unwrap()
            .mentions("Size"));
        assert!(!Template::parse("{{.ID}}").unwrap().mentions("Size"));
        assert!(Template::parse("{{json .}}").unwrap().mentions("Size"));
        assert!(Template::parse("{{(index $ \"x\").Size}}")
            .unwrap()
            .mentions("Size"));
        assert!(Template::parse("{{json $}}").unwrap().mentions("Size"));
    }
}
