//! `--format` templates, the part of Go's text/template that docker's `--format` users write:
//! text, `{{.Field.Sub}}`, `{{.}}`, `{{json .X}}`, `{{index .X "key"}}` / `{{index .X 0}}`,
//! `{{join .X ", "}}`, `{{upper .X}}`, `{{lower .X}}`, `{{len .X}}`, `{{println .X}}`, pipes
//! (`{{.X | json}}`), `{{range .X}}...{{end}}`, `{{if .X}}...{{else}}...{{end}}`, and the
//! `{{-`/`-}}` trim markers. Values are JSON (the objects `inspect` prints and the rows `ps`
//! lists); they print as Go prints decoded JSON (`[a b]`, `map[k:v]`, `<nil>`).
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
    Print(Pipeline),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    If(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Debug, Clone)]
struct Pipeline {
    text: String,
    commands: Vec<Vec<Term>>,
}

#[derive(Debug, Clone)]
enum Term {
    /// `.` followed by field names (none for `.` itself).
    Field(Vec<String>),
    Str(String),
    Int(i64),
    Func(String),
}

const FUNCTIONS: [&str; 7] = ["json", "index", "join", "upper", "lower", "len", "println"];

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut tokens = tokenize(text)?.into_iter().peekable();
        let (nodes, end) = parse_list(&mut tokens)?;
        match end {
            None => Ok(Template { nodes }),
            Some(word) => Err(TemplateError::Parse(format!("unexpected {{{{{word}}}}}"))),
        }
    }

    /// Whether any action names `field` (`{{.Size}}`): for values that cost to compute.
    pub fn mentions(&self, field: &str) -> bool {
        fn in_nodes(nodes: &[Node], field: &str) -> bool {
            nodes.iter().any(|n| match n {
                Node::Text(_) => false,
                Node::Print(p) => in_pipe(p, field),
                Node::Range(p, a, b) | Node::If(p, a, b) => {
                    in_pipe(p, field) || in_nodes(a, field) || in_nodes(b, field)
                }
            })
        }
        fn in_pipe(p: &Pipeline, field: &str) -> bool {
            p.commands.iter().flatten().any(|t| match t {
                Term::Field(path) => path.is_empty() || path.iter().any(|f| f == field),
                _ => false,
            })
        }
        in_nodes(&self.nodes, field)
    }

    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        run_nodes(&self.nodes, data, &mut out)?;
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

enum Token {
    Text(String),
    Action(String),
}

/// Text and actions, with the trim markers applied to the text around them.
fn tokenize(text: &str) -> Result<Vec<Token>, TemplateError> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut before = &rest[..start];
        if trim_next {
            before = before.trim_start();
        }
        let inner_start = &rest[start + 2..];
        let Some(end) = inner_start.find("}}") else {
            return Err(TemplateError::Parse("unclosed action (no \"}}\")".into()));
        };
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
            out.push(Token::Text(before.to_string()));
        }
        out.push(Token::Action(inner.trim().to_string()));
        rest = &inner_start[end + 2..];
    }
    let last = if trim_next { rest.trim_start() } else { rest };
    if !last.is_empty() {
        out.push(Token::Text(last.to_string()));
    }
    Ok(out)
}

type Tokens = std::iter::Peekable<std::vec::IntoIter<Token>>;

/// Nodes up to an `{{else}}` or `{{end}}` (returned) or the end of the template (`None`).
fn parse_list(tokens: &mut Tokens) -> Result<(Vec<Node>, Option<String>), TemplateError> {
    let mut nodes = Vec::new();
    while let Some(token) = tokens.next() {
        let action = match token {
            Token::Text(t) => {
                nodes.push(Node::Text(t));
                continue;
            }
            Token::Action(a) => a,
        };
        let (word, rest) = action
            .split_once(char::is_whitespace)
            .unwrap_or((action.as_str(), ""));
        match word {
            "end" | "else" if rest.trim().is_empty() => return Ok((nodes, Some(word.into()))),
            "range" | "if" => {
                let pipe = pipeline(rest.trim())?;
                let (body, end) = parse_list(tokens)?;
                let otherwise = match end.as_deref() {
                    Some("else") => match parse_list(tokens)? {
                        (other, Some(e)) if e == "end" => other,
                        _ => return Err(TemplateError::Parse(format!("{word} without end"))),
                    },
                    Some(_) => Vec::new(),
                    None => return Err(TemplateError::Parse(format!("{word} without end"))),
                };
                nodes.push(if word == "range" {
                    Node::Range(pipe, body, otherwise)
                } else {
                    Node::If(pipe, body, otherwise)
                });
            }
            _ => nodes.push(Node::Print(pipeline(&action)?)),
        }
    }
    Ok((nodes, None))
}

fn pipeline(text: &str) -> Result<Pipeline, TemplateError> {
    let mut commands = Vec::new();
    for part in split_outside_quotes(text, '|') {
        let terms = split_outside_quotes(part.trim(), ' ')
            .into_iter()
            .filter(|w| !w.is_empty())
            .map(term)
            .collect::<Result<Vec<_>, _>>()?;
        if terms.is_empty() {
            return Err(TemplateError::Parse(format!(
                "missing value in {{{{{text}}}}}"
            )));
        }
        commands.push(terms);
    }
    Ok(Pipeline {
        text: text.to_string(),
        commands,
    })
}

fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                out.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

fn term(word: &str) -> Result<Term, TemplateError> {
    if word == "." {
        return Ok(Term::Field(Vec::new()));
    }
    if let Some(path) = word.strip_prefix('.') {
        return Ok(Term::Field(path.split('.').map(str::to_string).collect()));
    }
    if let Some(s) = word.strip_prefix('"').and_then(|w| w.strip_suffix('"')) {
        return Ok(Term::Str(s.replace("\\n", "\n").replace("\\t", "\t")));
    }
    if let Ok(n) = word.parse() {
        return Ok(Term::Int(n));
    }
    if FUNCTIONS.contains(&word) {
        return Ok(Term::Func(word.to_string()));
    }
    Err(TemplateError::Parse(format!(
        "function {word:?} not defined (kiln has {})",
        FUNCTIONS.join(", ")
    )))
}

fn run_nodes(nodes: &[Node], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
    for node in nodes {
        match node {
            Node::Text(t) => out.push_str(t),
            Node::Print(p) => out.push_str(&go_text(&eval(p, dot)?)),
            Node::If(p, then, otherwise) => {
                let branch = if truthy(&eval(p, dot)?) {
                    then
                } else {
                    otherwise
                };
                run_nodes(branch, dot, out)?;
            }
            Node::Range(p, body, otherwise) => {
                let items: Vec<Value> = match eval(p, dot)? {
                    Value::Array(items) => items,
                    Value::Object(map) => map.into_iter().map(|(_, v)| v).collect(),
                    Value::Null => Vec::new(),
                    other => {
                        return Err(exec(
                            p,
                            format!("range can't iterate over {}", go_text(&other)),
                        ))
                    }
                };
                if items.is_empty() {
                    run_nodes(otherwise, dot, out)?;
                }
                for item in &items {
                    run_nodes(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

fn exec(p: &Pipeline, message: String) -> TemplateError {
    TemplateError::Exec {
        action: format!("{{{{{}}}}}", p.text),
        message,
    }
}

fn eval(p: &Pipeline, dot: &Value) -> Result<Value, TemplateError> {
    let mut piped: Option<Value> = None;
    for command in &p.commands {
        let mut args = Vec::new();
        for t in &command[1..] {
            args.push(value_of(p, t, dot)?);
        }
        args.extend(piped.take());
        piped = Some(match &command[0] {
            Term::Func(f) => call(p, f, args)?,
            t if args.is_empty() => value_of(p, t, dot)?,
            _ => return Err(exec(p, "only a function takes arguments".into())),
        });
    }
    Ok(piped.unwrap_or(Value::Null))
}

fn value_of(p: &Pipeline, t: &Term, dot: &Value) -> Result<Value, TemplateError> {
    Ok(match t {
        Term::Str(s) => Value::String(s.clone()),
        Term::Int(n) => Value::from(*n),
        Term::Func(f) => call(p, f, Vec::new())?,
        Term::Field(path) => {
            let mut v = dot;
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
            v.clone()
        }
    })
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
    Ok(match f {
        "json" => {
            want(1)?;
            Value::String(serde_json::to_string(&args[0]).unwrap_or_default())
        }
        "upper" | "lower" => {
            want(1)?;
            let text = go_text(&args[0]);
            Value::String(if f == "upper" {
                text.to_uppercase()
            } else {
                text.to_lowercase()
            })
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
            Value::String(items.join(&go_text(&args[1])))
        }
        "println" => {
            let words: Vec<String> = args.iter().map(go_text).collect();
            Value::String(words.join(" ") + "\n")
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
        let err = Template::parse("{{printf .Id}}").unwrap_err();
        assert!(err.to_string().contains("json, index"), "{err}");
        assert!(render("{{range .Id}}x{{end}}", &v).is_err());
        assert!(render("{{index .Id 3}}", &v).is_err());
    }

    #[test]
    fn mentions_finds_fields_that_cost() {
        assert!(Template::parse("{{.ID}} {{.Size}}")
            .unwrap()
            .mentions("Size"));
        assert!(!Template::parse("{{.ID}}").unwrap().mentions("Size"));
        assert!(Template::parse("{{json .}}").unwrap().mentions("Size"));
    }
}
