//! Lowering a checked kiln program: evaluating an exported target and turning every image
//! operation into plan nodes through `plan::builder`, the same calls the Dockerfile front end
//! makes, so equal programs and Dockerfiles give equal keys and images.
//! Must not: run on a program with check errors (callers check first), or make nodes
//! other than through the builder.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::ast::*;
use super::check::{bindings, Binding};
use super::error::Problem;
use super::types::builtin;
use super::{KilnErrors, Program};
use crate::context::{ContextIndex, StatCache};
use crate::copy::{self, CopyError};
use crate::dockerfile::lower::{lower_stage_into, StageIntoError};
use crate::dockerfile::mounts;
use crate::plan::builder::{run_created_by, ArgUse, Lowered, PlanBuilder, Stage};
use crate::plan::{
    BuildOptions, Chmod, Chown, ConfigChange, CopyOp, CopySource, Excludes, FileId, HealthConfig,
    ImageResolver, MountKind, MountSource, NodeId, Origin, RunConfig, RunMount, RunNetwork, RunOp,
    Sharing, SourcePath,
};
use crate::syntax::Span;

/// A file tree value.
#[derive(Debug, Clone)]
enum FilesVal {
    /// Part of the build context: a directory, then `only`/`except` patterns below it.
    Context {
        base: String,
        only: Vec<String>,
        except: Vec<String>,
    },
    /// A path taken out of another image.
    Image { from: Rc<Stage>, path: String },
    /// One file with this content.
    Text(String),
    /// A file downloaded from `url` whose sha256 must be `sha256` (`sha256:<hex>`).
    Fetch { url: String, checksum: String },
}

#[derive(Debug, Clone)]
enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    None,
    List(Vec<Value>),
    Record(BTreeMap<String, Value>),
    Files(Rc<FilesVal>),
    Image(Rc<Stage>),
    /// A RUN mount; a bind mount's source node, placed among the step's inputs by run().
    Mount(RunMount, Option<NodeId>),
    Fn(usize, usize),
    Builtin(String),
    Module(usize),
}

impl Value {
    fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "String",
            Value::Int(_) => "Int",
            Value::Bool(_) => "Bool",
            Value::None => "none",
            Value::List(_) => "a list",
            Value::Record(_) => "a record",
            Value::Files(_) => "Files",
            Value::Image(_) => "Image",
            Value::Mount(..) => "Mount",
            Value::Fn(..) | Value::Builtin(_) => "a function",
            Value::Module(_) => "a module",
        }
    }
}

type Res<T> = Result<T, Problem>;

/// `sha256:<hex>` from 64 lowercase hex digits, with or without the `sha256:` prefix.
fn sha256_digest(s: &str) -> Option<String> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| format!("sha256:{hex}"))
}

/// The names a program exports, in file order (targets of `kiln build`).
pub fn exports(prog: &Program) -> Vec<String> {
    prog.files
        .first()
        .and_then(|f| f.module.as_ref())
        .map(|m| {
            m.items
                .iter()
                .filter_map(|i| match i {
                    Item::Let(l) if l.export => Some(l.name.name.clone()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Plan one exported target of a checked program (`opts.target`, or the only export), with
/// the Dockerfiles its `dockerfile()` calls read (the plan's warnings name them by file id).
pub fn plan(
    prog: &Program,
    context: ContextIndex,
    stat_cache: &StatCache,
    opts: &BuildOptions,
    images: &dyn ImageResolver,
) -> Result<(Lowered, Vec<DockerfileRead>), KilnErrors> {
    let names = exports(prog);
    let target = match (&opts.target, names.as_slice()) {
        (Some(t), _) if names.contains(t) => t.clone(),
        (None, [only]) => only.clone(),
        (t, _) => {
            let message = match t {
                Some(t) => format!("the program exports no target named {t:?}"),
                None if names.is_empty() => "the program exports no target".to_string(),
                None => "the program exports several targets; choose one with --target".into(),
            };
            let help = match t
                .as_deref()
                .and_then(|t| crate::suggest::closest(t, names.iter().map(String::as_str)))
            {
                Some(s) => format!("did you mean {s:?}?"),
                None if names.is_empty() => {
                    "write export NAME = <an Image> in the program".to_string()
                }
                None => format!("exported targets: {}", names.join(", ")),
            };
            return Err(prog.report(vec![
                Problem::new(0, Span::default(), message, "here").help(help)
            ]));
        }
    };
    let mut ev = Eval {
        prog,
        names: (0..prog.files.len()).map(|f| bindings(prog, f)).collect(),
        b: PlanBuilder::new(context, opts, images),
        memo: HashMap::new(),
        dockerfiles: HashMap::new(),
        read: Vec::new(),
    };
    let item = match ev.names[0].get(&target) {
        Some(Binding::Let(i)) => *i,
        _ => {
            return Err(prog.report(vec![Problem::new(
                0,
                Span::default(),
                "no such target",
                "here",
            )]))
        }
    };
    let value = ev.top_let(0, item).map_err(|p| prog.report(vec![p]))?;
    let Value::Image(st) = value else {
        return Err(prog.report(vec![Problem::new(
            0,
            Span::default(),
            format!("target {target} is {}, not an Image", value.type_name()),
            "here",
        )]));
    };
    let mut st = Rc::unwrap_or_clone(st);
    st.name = target.clone();
    let origin = Origin {
        stage: target,
        text: "image".into(),
        ..Default::default()
    };
    let image = ev.b.image(st, origin);
    let read = std::mem::take(&mut ev.read);
    let mut lowered = ev.b.finish(image, stat_cache).map_err(|e| {
        prog.report(vec![Problem::new(
            0,
            Span::default(),
            e.to_string(),
            "while hashing the context",
        )])
    })?;
    // Two calls lowering one stage of a Dockerfile find its warnings twice.
    let mut seen = std::collections::HashSet::new();
    lowered
        .warnings
        .retain(|w| seen.insert((w.file, w.span, w.rule, w.message.clone())));
    Ok((lowered, read))
}

/// What `kiln check` learns by lowering every export without a context or a store: the
/// problems only evaluation finds (a bad mode, a port out of range, a relative mount
/// target), and for each target whether it is hermetic, with the reasons of the step that
/// makes it impure.
pub fn check_exports(
    prog: &Program,
    opts: &BuildOptions,
) -> Result<Vec<(String, Vec<String>)>, KilnErrors> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for name in exports(prog) {
        let opts = BuildOptions {
            target: Some(name.clone()),
            skip_context: true,
            ..opts.clone()
        };
        match plan(
            prog,
            ContextIndex::default(),
            &StatCache::default(),
            &opts,
            &crate::plan::NoImages,
        ) {
            Ok((lowered, _)) => {
                let reasons = lowered
                    .plan
                    .impure_chain()
                    .and_then(|chain| chain.last().map(|n| n.reasons.clone()))
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|r| !r.starts_with("input #"))
                    .collect();
                out.push((name, reasons));
            }
            Err(e) => errors.extend(e.errors),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(KilnErrors { errors })
    }
}

struct Eval<'a> {
    prog: &'a Program,
    names: Vec<HashMap<String, Binding>>,
    b: PlanBuilder<'a>,
    memo: HashMap<(usize, usize), Value>,
    /// The stages `dockerfile()` calls made: (Dockerfile, target, args) to the stage.
    dockerfiles: HashMap<DockerfileCall, Rc<Stage>>,
    /// Each Dockerfile read, once: its file id is the program's file count plus its index.
    read: Vec<DockerfileRead>,
}

/// A Dockerfile a program's `dockerfile()` calls read: its text and tree, the file id its
/// nodes' origins and warnings name, its canonical path and the build arguments of the
/// first call that read it (what its build checks see).
pub struct DockerfileRead {
    pub file: FileId,
    pub parsed: crate::frontend::Parsed,
    pub build_args: Vec<(String, String)>,
    canonical: std::path::PathBuf,
}

type DockerfileCall = (std::path::PathBuf, Option<String>, Vec<(String, String)>);

type Locals = Vec<(String, Value)>;

/// A stage name for an image bound to `name`, so `files(build, ...)` shows `--from=build`.
/// The string-valued pairs of named arguments (`env(A: "1")`, `label(k: "v")`); the checker
/// has already refused other types.
fn string_pairs(pairs: Vec<(String, Value)>) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::Str(s) => Some((k, s)),
            _ => None,
        })
        .collect()
}

/// A Dockerfile's diagnostic as a problem of the `dockerfile()` call in `file`, shown at its
/// span in the Dockerfile's text.
fn outside_problem(
    file: usize,
    source: &crate::source::SourceText,
    d: &dyn miette::Diagnostic,
) -> Problem {
    let (span, label) = d
        .labels()
        .and_then(|mut l| l.next())
        .map(|l| {
            (
                Span::new(l.offset(), l.offset() + l.len()),
                l.label().unwrap_or("here").to_string(),
            )
        })
        .unwrap_or_else(|| (Span::default(), "here".to_string()));
    let mut p = Problem::new(file, span, d.to_string(), label)
        .outside(source.name.clone(), source.text.clone());
    if let Some(h) = d.help() {
        p = p.help(h.to_string());
    }
    p
}

fn named(v: Value, name: &str) -> Value {
    match v {
        Value::Image(st) if st.name != name => {
            let mut st = Rc::unwrap_or_clone(st);
            st.name = name.to_string();
            Value::Image(Rc::new(st))
        }
        v => v,
    }
}

impl<'a> Eval<'a> {
    fn module(&self, file: usize) -> &'a Module {
        static EMPTY: Module = Module { items: Vec::new() };
        self.prog.files[file].module.as_ref().unwrap_or(&EMPTY)
    }

    fn origin(&self, file: usize, span: Span, stage: &str, text: String) -> Origin {
        let t = &self.prog.files[file].text;
        let line = t[..span.start.min(t.len())].matches('\n').count() + 1;
        Origin {
            file: FileId(file as u32),
            span,
            stage: stage.to_string(),
            line,
            text,
        }
    }

    fn top_let(&mut self, file: usize, item: usize) -> Res<Value> {
        if let Some(v) = self.memo.get(&(file, item)) {
            return Ok(v.clone());
        }
        let Item::Let(l) = &self.module(file).items[item] else {
            return Err(Problem::new(file, Span::default(), "not a let", "here"));
        };
        let v = named(self.expr(file, &mut Vec::new(), &l.value)?, &l.name.name);
        self.memo.insert((file, item), v.clone());
        Ok(v)
    }

    fn expr(&mut self, file: usize, locals: &mut Locals, e: &Expr) -> Res<Value> {
        Ok(match &e.kind {
            ExprKind::Str(parts) => {
                let mut s = String::new();
                for p in parts {
                    match p {
                        StrPart::Lit(l) => s.push_str(l),
                        StrPart::Expr(x) => match self.expr(file, locals, x)? {
                            Value::Str(v) => s.push_str(&v),
                            Value::Int(n) => s.push_str(&n.to_string()),
                            Value::Bool(b) => s.push_str(if b { "true" } else { "false" }),
                            other => {
                                return Err(Problem::new(
                                    file,
                                    x.span,
                                    format!("cannot interpolate {}", other.type_name()),
                                    "here",
                                ))
                            }
                        },
                    }
                }
                Value::Str(s)
            }
            ExprKind::Int(n) => Value::Int(*n),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::None => Value::None,
            ExprKind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.expr(file, locals, i)?);
                }
                Value::List(out)
            }
            ExprKind::Record(fields) => {
                let mut out = BTreeMap::new();
                for (k, v) in fields {
                    out.insert(k.name.clone(), self.expr(file, locals, v)?);
                }
                Value::Record(out)
            }
            ExprKind::Name(id) => self.name(file, locals, id)?,
            ExprKind::Field(base, name) => match self.expr(file, locals, base)? {
                Value::Module(m) => self.member(m, name)?,
                Value::Record(r) => r.get(&name.name).cloned().unwrap_or(Value::None),
                other => {
                    return Err(Problem::new(
                        file,
                        name.span,
                        format!("{} has no field {}", other.type_name(), name.name),
                        "here",
                    ))
                }
            },
            ExprKind::Block(lets, last) => {
                let depth = locals.len();
                for l in lets {
                    let v = named(self.expr(file, locals, &l.value)?, &l.name.name);
                    locals.push((l.name.name.clone(), v));
                }
                let v = self.expr(file, locals, last)?;
                locals.truncate(depth);
                v
            }
            ExprKind::Call { callee, args, .. } => {
                let mut pos = Vec::new();
                let f = match &callee.kind {
                    ExprKind::Field(base, name) => match self.expr(file, locals, base)? {
                        Value::Module(m) => self.member(m, name)?,
                        receiver => {
                            pos.push((receiver, base.span));
                            self.name(file, &Vec::new(), name)?
                        }
                    },
                    _ => self.expr(file, locals, callee)?,
                };
                let mut named_args = Vec::new();
                for a in args {
                    let v = self.expr(file, locals, &a.value)?;
                    match &a.name {
                        Some(n) => named_args.push((n.name.clone(), v, a.value.span)),
                        None => pos.push((v, a.value.span)),
                    }
                }
                match f {
                    Value::Fn(m, i) => self
                        .call_fn(m, i, pos, named_args, e.span)
                        .map_err(|p| p.called_from(file, e.span))?,
                    Value::Builtin(name) => {
                        self.call_builtin(file, &name, pos, named_args, e.span)?
                    }
                    other => {
                        return Err(Problem::new(
                            file,
                            callee.span,
                            format!("{} cannot be called", other.type_name()),
                            "here",
                        ))
                    }
                }
            }
        })
    }

    fn name(&mut self, file: usize, locals: &Locals, id: &Ident) -> Res<Value> {
        if let Some((_, v)) = locals.iter().rev().find(|(n, _)| *n == id.name) {
            return Ok(v.clone());
        }
        match self.names[file].get(&id.name).copied() {
            Some(Binding::Let(i)) => self.top_let(file, i),
            Some(Binding::Fn(i)) => Ok(Value::Fn(file, i)),
            Some(Binding::Module(m)) => Ok(Value::Module(m)),
            None if builtin(&id.name).is_some() => Ok(Value::Builtin(id.name.clone())),
            None => Err(Problem::new(
                file,
                id.span,
                format!("unknown name {}", id.name),
                "here",
            )),
        }
    }

    fn member(&mut self, m: usize, name: &Ident) -> Res<Value> {
        match self.names[m].get(&name.name).copied() {
            Some(Binding::Let(i)) => self.top_let(m, i),
            Some(Binding::Fn(i)) => Ok(Value::Fn(m, i)),
            Some(Binding::Module(x)) => Ok(Value::Module(x)),
            None => Err(Problem::new(
                m,
                name.span,
                format!("no member {}", name.name),
                "here",
            )),
        }
    }

    fn call_fn(
        &mut self,
        file: usize,
        item: usize,
        pos: Vec<(Value, Span)>,
        named_args: Vec<(String, Value, Span)>,
        span: Span,
    ) -> Res<Value> {
        let Item::Fn(f) = &self.module(file).items[item] else {
            return Err(Problem::new(file, span, "not a function", "here"));
        };
        let mut locals: Locals = Vec::new();
        let mut pos = pos.into_iter();
        for p in &f.params {
            let v = match pos.next() {
                Some((v, _)) => v,
                None => match named_args.iter().find(|(n, _, _)| *n == p.name.name) {
                    Some((_, v, _)) => v.clone(),
                    None => match &p.default {
                        Some(d) => self.expr(file, &mut locals.clone(), d)?,
                        None => {
                            return Err(Problem::new(
                                file,
                                span,
                                format!("missing argument {}", p.name.name),
                                "here",
                            ))
                        }
                    },
                },
            };
            locals.push((p.name.name.clone(), v));
        }
        self.expr(file, &mut locals, &f.body)
    }

    fn call_builtin(
        &mut self,
        file: usize,
        name: &str,
        pos: Vec<(Value, Span)>,
        named_args: Vec<(String, Value, Span)>,
        span: Span,
    ) -> Res<Value> {
        let sig =
            builtin(name).ok_or_else(|| Problem::new(file, span, "unknown builtin", "here"))?;
        // Arguments by parameter name; rest_named ones in order.
        let mut args: HashMap<String, Value> = HashMap::new();
        let mut rest: Vec<(String, Value)> = Vec::new();
        for (p, (v, _)) in sig.params.iter().zip(pos) {
            args.insert(p.name.clone(), v);
        }
        for (n, v, _) in named_args {
            if sig.params.iter().any(|p| p.name == n) {
                args.insert(n, v);
            } else {
                rest.push((n, v));
            }
        }
        let err = |m: String| Problem::new(file, span, m, "in this call");
        let str_arg = |args: &HashMap<String, Value>, k: &str| -> Option<String> {
            match args.get(k) {
                Some(Value::Str(s)) => Some(s.clone()),
                _ => None,
            }
        };
        let image = |args: &mut HashMap<String, Value>| -> Res<Stage> {
            match args.remove("image") {
                Some(Value::Image(st)) => Ok(Rc::unwrap_or_clone(st)),
                _ => Err(err("expected an Image".into())),
            }
        };
        match name {
            "arg" => {
                let arg_name = str_arg(&args, "name").unwrap_or_default();
                Ok(Value::Str(
                    self.b
                        .opts
                        .build_arg(&arg_name)
                        .map(str::to_string)
                        .or_else(|| str_arg(&args, "default"))
                        .unwrap_or_default(),
                ))
            }
            "scratch" => {
                let origin = self.origin(file, span, "scratch", "FROM scratch".into());
                Ok(Value::Image(Rc::new(
                    self.b.scratch_stage("scratch", origin),
                )))
            }
            "image" => {
                let reference = str_arg(&args, "ref").unwrap_or_default();
                if reference.is_empty() {
                    return Err(err("image() needs a reference".into()));
                }
                let origin = self.origin(file, span, &reference, format!("FROM {reference}"));
                let (id, resolved) = self
                    .b
                    .base_image(&reference, origin)
                    .map_err(|e| err(e.to_string()))?;
                let (config, history) = match resolved {
                    Some(r) => {
                        let mut c = r.config;
                        c.on_build.clear();
                        (c, r.history)
                    }
                    None => (Default::default(), Vec::new()),
                };
                Ok(Value::Image(Rc::new(Stage::new(
                    &reference, id, config, history,
                ))))
            }
            "context" => {
                let base = copy::clean(&str_arg(&args, "path").unwrap_or_else(|| ".".into()));
                Ok(Value::Files(Rc::new(FilesVal::Context {
                    base: if base.is_empty() { ".".into() } else { base },
                    only: Vec::new(),
                    except: Vec::new(),
                })))
            }
            "only" | "except" => {
                let patterns = match args.get("patterns") {
                    Some(Value::List(l)) => l
                        .iter()
                        .filter_map(|v| match v {
                            Value::Str(s) => Some(s.clone()),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                    _ => Vec::new(),
                };
                match args.get("files") {
                    Some(Value::Files(f)) => match &**f {
                        FilesVal::Context { base, only, except } => {
                            let (mut only, mut except) = (only.clone(), except.clone());
                            if name == "only" {
                                only.extend(patterns);
                            } else {
                                except.extend(patterns);
                            }
                            Ok(Value::Files(Rc::new(FilesVal::Context {
                                base: base.clone(),
                                only,
                                except,
                            })))
                        }
                        _ => Err(err(format!(
                            "{name}() selects from the build context; Files from an image or text() cannot be filtered"
                        ))),
                    },
                    _ => Err(err("expected Files".into())),
                }
            }
            "files" => {
                let path = str_arg(&args, "path").unwrap_or_default();
                match args.remove("from") {
                    Some(Value::Image(st)) => {
                        Ok(Value::Files(Rc::new(FilesVal::Image { from: st, path })))
                    }
                    _ => Err(err("files() needs an Image".into())),
                }
            }
            "join" => {
                let items = match args.get("items") {
                    Some(Value::List(l)) => l
                        .iter()
                        .map(|v| match v {
                            Value::Str(s) => Ok(s.as_str()),
                            other => Err(err(format!(
                                "join() takes Strings, found {}",
                                other.type_name()
                            ))),
                        })
                        .collect::<Res<Vec<_>>>()?,
                    _ => return Err(err("join() needs a list".into())),
                };
                let sep = str_arg(&args, "sep").unwrap_or_else(|| " ".into());
                Ok(Value::Str(items.join(&sep)))
            }
            "fetch" => {
                let url = str_arg(&args, "url").unwrap_or_default();
                if !copy::is_url(&url) {
                    return Err(err(format!(
                        "fetch() needs an http or https URL, not {url:?}"
                    )));
                }
                let given = str_arg(&args, "sha256").unwrap_or_default();
                let checksum = sha256_digest(&given).ok_or_else(|| {
                    err(format!(
                        "fetch() needs the file's sha256 as 64 lowercase hex digits, not {given:?}"
                    ))
                    .help("compute it with: sha256sum FILE")
                })?;
                Ok(Value::Files(Rc::new(FilesVal::Fetch { url, checksum })))
            }
            "dockerfile" => {
                let path = str_arg(&args, "path").unwrap_or_default();
                let target = str_arg(&args, "target");
                let build_args = match args.remove("args") {
                    Some(Value::Record(r)) => string_pairs(r.into_iter().collect()),
                    _ => Vec::new(),
                };
                self.dockerfile(file, span, &path, target, build_args)
            }
            "text" => Ok(Value::Files(Rc::new(FilesVal::Text(
                str_arg(&args, "content").unwrap_or_default(),
            )))),
            "copy" => {
                let mut st = image(&mut args)?;
                let src = match args.remove("src") {
                    Some(Value::Files(f)) => f,
                    _ => return Err(err("copy() needs src: Files".into())),
                };
                let to = str_arg(&args, "to").unwrap_or_default();
                self.copy(
                    file,
                    span,
                    &mut st,
                    &src,
                    &to,
                    str_arg(&args, "owner"),
                    str_arg(&args, "mode"),
                )?;
                Ok(Value::Image(Rc::new(st)))
            }
            "run" => {
                let mut st = image(&mut args)?;
                let argv = match args.remove("cmd") {
                    Some(Value::Str(s)) => st.shell_argv(&s),
                    Some(Value::List(l)) => l
                        .into_iter()
                        .filter_map(|v| match v {
                            Value::Str(s) => Some(s),
                            _ => None,
                        })
                        .collect(),
                    _ => return Err(err("run() needs cmd".into())),
                };
                // The stage's build_arg()s are in the environment and the history text, as
                // a Dockerfile's stage ARGs; the step's own `env` goes over them.
                self.b.arg_use = ArgUse::default();
                let (stage_env, prefix) = self.b.run_args(&st);
                let mut env = RunConfig {
                    env: stage_env,
                    ..Default::default()
                };
                if let Some(Value::Record(r)) = args.get("env") {
                    for (k, v) in r {
                        if let Value::Str(v) = v {
                            env.env_set(k, v);
                        }
                    }
                }
                let cwd = match str_arg(&args, "workdir") {
                    Some(w) => {
                        let p = copy::absolute_dest(st.workdir(), &w);
                        if p.len() > 1 {
                            p.trim_end_matches('/').to_string()
                        } else {
                            p
                        }
                    }
                    None => st.workdir().to_string(),
                };
                let network = match args.get("network") {
                    Some(Value::Bool(true)) => self.b.run_network(Some(RunNetwork::Host)),
                    Some(Value::Bool(false)) => RunNetwork::None,
                    _ => self.b.run_network(None),
                };
                let pin = match str_arg(&args, "pin") {
                    None => None,
                    Some(p) => Some(sha256_digest(&p).ok_or_else(|| {
                        err(format!("pin: needs a layer digest sha256:<64 hex digits>, not {p:?}"))
                            .help("build the step once unpinned; its layer's diff_id is in kiln inspect (RootFS.Layers)")
                    })?),
                };
                let created_by = run_created_by(&prefix, &argv);
                // A bind mount's source is an input of the step: input 0 is the stage, the
                // mount sources follow, each once.
                let mut mount_inputs: Vec<NodeId> = Vec::new();
                let mut mounts = Vec::new();
                if let Some(Value::List(l)) = args.remove("mounts") {
                    for v in l {
                        let Value::Mount(mut m, node) = v else {
                            continue;
                        };
                        if let (Some(node), MountKind::Bind { from, .. }) = (node, &mut m.kind) {
                            let at = match mount_inputs.iter().position(|i| *i == node) {
                                Some(i) => i,
                                None => {
                                    mount_inputs.push(node);
                                    mount_inputs.len() - 1
                                }
                            } + 1;
                            *from = match from {
                                MountSource::Context { .. } => MountSource::Context { input: at },
                                MountSource::Node { .. } => MountSource::Node { input: at },
                            };
                        }
                        mounts.push(m);
                    }
                }
                let op = RunOp {
                    argv,
                    env: env.env,
                    cwd,
                    user: str_arg(&args, "user").unwrap_or_else(|| st.config.user.clone()),
                    network,
                    mounts,
                    mtime: self.b.epoch(),
                    pin,
                };
                let text = created_by.trim_end_matches(" # buildkit").to_string();
                let origin = self.origin(file, span, &st.name, text);
                self.b
                    .run(&mut st, op, mount_inputs, vec![], created_by, origin);
                self.b.arg_use = ArgUse::default();
                Ok(Value::Image(Rc::new(st)))
            }
            "bind" => {
                let target = str_arg(&args, "target").unwrap_or_default();
                if !target.starts_with('/') || mounts::path_clean(&target) == "/" {
                    return Err(err(format!(
                        "bind target {target:?} is not an absolute path below /"
                    ))
                    .help("write the target as an absolute path, e.g. /src"));
                }
                let target = mounts::path_clean(&target);
                let readonly = !matches!(args.get("rw"), Some(Value::Bool(true)));
                let (source, from, node) = match args.get("src") {
                    Some(Value::Files(f)) => match &**f {
                        FilesVal::Context { base, only, except }
                            if only.is_empty() && except.is_empty() =>
                        {
                            let source = mounts::path_clean(&["/", base].concat());
                            let rel = copy::clean(&source);
                            let path = SourcePath {
                                written: rel.clone(),
                                wildcard: copy::has_wildcard(&rel),
                                cleaned: rel.clone(),
                            };
                            let (_, files) = self
                                .b
                                .select_context(&[&path], &Excludes::default())
                                .map_err(|e| match e {
                                    CopyError::NotFound(p) => {
                                        err(format!("{p:?} is not in the build context"))
                                    }
                                    other => err(other.to_string()),
                                })?;
                            let origin = self.origin(file, span, "bind", String::new());
                            let id = self.b.context_node(
                                vec![rel],
                                Excludes::default(),
                                files,
                                origin,
                            );
                            (source, MountSource::Context { input: 0 }, id)
                        }
                        FilesVal::Image { from, path } => (
                            mounts::path_clean(&["/", path].concat()),
                            MountSource::Node { input: 0 },
                            from.prev,
                        ),
                        _ => {
                            return Err(err(
                                "bind() mounts a context directory or files(image, path)".into(),
                            )
                            .help("only()/except() selections, text() and fetch() cannot be bound; copy them instead"))
                        }
                    },
                    _ => return Err(err("bind() needs src: Files".into())),
                };
                Ok(Value::Mount(
                    RunMount {
                        target: Some(target),
                        kind: MountKind::Bind {
                            source,
                            from,
                            readonly,
                        },
                    },
                    Some(node),
                ))
            }
            "cache" | "tmpfs" | "secret" => {
                let bool_arg = |k: &str| matches!(args.get(k), Some(Value::Bool(true)));
                let absolute = |t: &str| -> Res<String> {
                    if t.starts_with('/') {
                        Ok(mounts::path_clean(t))
                    } else {
                        Err(err(format!("mount target {t:?} is not absolute"))
                            .help("write the target as an absolute path, e.g. /root/.cache"))
                    }
                };
                let kind_and_target = match name {
                    "cache" => {
                        let target = absolute(&str_arg(&args, "target").unwrap_or_default())?;
                        let sharing = match str_arg(&args, "sharing").as_deref() {
                            None | Some("shared") => Sharing::Shared,
                            Some("private") => Sharing::Private,
                            Some("locked") => Sharing::Locked,
                            Some(other) => {
                                return Err(err(format!("unknown sharing {other:?}"))
                                    .help("sharing is shared, private or locked"))
                            }
                        };
                        (
                            MountKind::Cache {
                                id: str_arg(&args, "id").unwrap_or_else(|| target.clone()),
                                source: "/".into(),
                                from: None,
                                sharing,
                                readonly: bool_arg("readonly"),
                                mode: 0o755,
                                uid: 0,
                                gid: 0,
                            },
                            Some(target),
                        )
                    }
                    "tmpfs" => {
                        let target = absolute(&str_arg(&args, "target").unwrap_or_default())?;
                        let size = match args.get("size") {
                            Some(Value::Int(n)) if *n > 0 => Some(*n as u64),
                            _ => None,
                        };
                        (
                            MountKind::Tmpfs {
                                size,
                                readonly: false,
                            },
                            Some(target),
                        )
                    }
                    _ => {
                        let id = str_arg(&args, "id").unwrap_or_default();
                        let env = str_arg(&args, "env");
                        let target = match (str_arg(&args, "target"), &env) {
                            (Some(t), _) => Some(mounts::path_clean(&["/", &t].concat())),
                            (None, Some(_)) => None,
                            (None, None) => {
                                Some(["/run/secrets/", &mounts::path_base(&id)].concat())
                            }
                        };
                        (
                            MountKind::Secret {
                                id,
                                required: bool_arg("required"),
                                mode: 0o400,
                                uid: 0,
                                gid: 0,
                                env,
                            },
                            target,
                        )
                    }
                };
                let (kind, target) = kind_and_target;
                Ok(Value::Mount(RunMount { target, kind }, None))
            }
            "build_arg" => {
                let mut st = image(&mut args)?;
                let arg_name = str_arg(&args, "name").unwrap_or_default();
                if arg_name.is_empty()
                    || arg_name.contains('=')
                    || arg_name.chars().any(char::is_whitespace)
                {
                    return Err(err(format!("invalid build argument name {arg_name:?}"))
                        .help("a build argument's name is a word without spaces or '='"));
                }
                let default = str_arg(&args, "default");
                // Dockerfile ARG's order: the --build-arg, else the default written here,
                // else the global ARG's value.
                let value = self
                    .b
                    .opts
                    .build_arg(&arg_name)
                    .map(str::to_string)
                    .or_else(|| default.clone())
                    .or_else(|| str_arg(&args, "global"));
                st.declare_arg(&arg_name, value);
                let change = ConfigChange::Arg {
                    args: vec![(arg_name, default)],
                };
                let origin = self.origin(file, span, &st.name, change.created_by());
                self.b.config(&mut st, change, origin);
                Ok(Value::Image(Rc::new(st)))
            }
            "workdir" => {
                let mut st = image(&mut args)?;
                let path = str_arg(&args, "path").unwrap_or_default();
                let origin = self.origin(file, span, &st.name, format!("WORKDIR {path}"));
                self.b.workdir(&mut st, &path, origin);
                Ok(Value::Image(Rc::new(st)))
            }
            _ => {
                let mut st = image(&mut args)?;
                let command = |v: Option<Value>, st: &Stage| -> Vec<String> {
                    match v {
                        Some(Value::Str(s)) => st.shell_argv(&s),
                        Some(Value::List(l)) => l
                            .into_iter()
                            .filter_map(|v| match v {
                                Value::Str(s) => Some(s),
                                _ => None,
                            })
                            .collect(),
                        _ => Vec::new(),
                    }
                };
                let change = match name {
                    "env" => ConfigChange::Env {
                        vars: string_pairs(rest),
                    },
                    "label" => ConfigChange::Label {
                        labels: string_pairs(rest),
                    },
                    "user" => ConfigChange::User {
                        user: str_arg(&args, "name").unwrap_or_default(),
                    },
                    "cmd" => ConfigChange::Cmd {
                        argv: command(args.remove("command"), &st),
                    },
                    "entrypoint" => ConfigChange::Entrypoint {
                        argv: command(args.remove("command"), &st),
                    },
                    "expose" => {
                        let port = match args.get("port") {
                            Some(Value::Int(n)) => *n,
                            _ => 0,
                        };
                        let proto = str_arg(&args, "protocol").unwrap_or_else(|| "tcp".into());
                        let spec = format!("{port}/{proto}");
                        let read = crate::dockerfile::expose::parse_port(&spec).map_err(|m| {
                            err(m).help("ports are 1-65535, protocols tcp, udp or sctp")
                        })?;
                        ConfigChange::Expose { ports: read.ports }
                    }
                    "volume" => ConfigChange::Volume {
                        paths: vec![str_arg(&args, "path").unwrap_or_default()],
                    },
                    "stopsignal" => ConfigChange::StopSignal {
                        signal: str_arg(&args, "signal").unwrap_or_default(),
                    },
                    "shell" => ConfigChange::Shell {
                        argv: command(args.remove("argv"), &st),
                    },
                    "healthcheck" => {
                        let test = match args.remove("test") {
                            Some(Value::Str(s)) => vec!["CMD-SHELL".to_string(), s],
                            Some(Value::List(l)) => std::iter::once("CMD".to_string())
                                .chain(l.into_iter().filter_map(|v| match v {
                                    Value::Str(s) => Some(s),
                                    _ => None,
                                }))
                                .collect(),
                            _ => vec!["NONE".to_string()],
                        };
                        let duration = |k: &str| -> Res<i64> {
                            match str_arg(&args, k) {
                                None => Ok(0),
                                Some(d) => crate::dockerfile::lower::parse_go_duration(&d)
                                    .ok_or_else(|| {
                                        err(format!("{k}: invalid duration {d:?}"))
                                            .help("durations look like 30s, 1m30s or 500ms")
                                    }),
                            }
                        };
                        let retries = match args.get("retries") {
                            Some(Value::Int(n)) if *n >= 0 => *n,
                            Some(Value::Int(n)) => {
                                return Err(err(format!("retries must not be negative, got {n}")))
                            }
                            _ => 0,
                        };
                        ConfigChange::Healthcheck {
                            health: HealthConfig {
                                test,
                                interval: duration("interval")?,
                                timeout: duration("timeout")?,
                                start_period: duration("start_period")?,
                                start_interval: duration("start_interval")?,
                                retries,
                            },
                        }
                    }
                    _ => return Err(err(format!("unknown builtin {name}"))),
                };
                if matches!(&change, ConfigChange::Env { vars } if vars.is_empty())
                    || matches!(&change, ConfigChange::Label { labels } if labels.is_empty())
                {
                    // `label(title: none)`: nothing to set, no step.
                    return Ok(Value::Image(Rc::new(st)));
                }
                let origin = self.origin(file, span, &st.name, change.created_by());
                self.b.config(&mut st, change, origin);
                Ok(Value::Image(Rc::new(st)))
            }
        }
    }

    /// `dockerfile(path, target:, args:)`: one stage of a Dockerfile (the file is relative to
    /// the calling `.kiln` file and must be in the build context), lowered by the Dockerfile
    /// front end into this program's builder, so its nodes are those building the Dockerfile
    /// gives. `args` are the Dockerfile's build arguments (the command line's are not passed
    /// on: a program forwards one with `args: {V: arg("V")}`). Equal calls share one stage.
    fn dockerfile(
        &mut self,
        file: usize,
        span: Span,
        path: &str,
        target: Option<String>,
        build_args: Vec<(String, String)>,
    ) -> Res<Value> {
        let err = |m: String| Problem::new(file, span, m, "in this dockerfile() call");
        let Some(dir) = self.prog.files[file].path.as_ref().and_then(|p| p.parent()) else {
            return Err(err(
                "a standard-library module cannot read a Dockerfile".into()
            ));
        };
        let full = dir.join(path);
        let canonical = std::fs::canonicalize(&full).map_err(|e| {
            err(format!("cannot read Dockerfile {}: {e}", full.display()))
                .help("the path is relative to the .kiln file that calls dockerfile()")
        })?;
        if !self.b.opts.skip_context {
            let root = &self.b.context().root;
            let inside = std::fs::canonicalize(root).is_ok_and(|r| canonical.starts_with(r));
            if !inside {
                return Err(err(format!(
                    "outside the build context: Dockerfile {path} (the context is {})",
                    root.display()
                ))
                .help("a Dockerfile dockerfile() reads must be in the build context, like its COPY sources"));
            }
        }
        let key = (canonical.clone(), target.clone(), build_args.clone());
        if let Some(st) = self.dockerfiles.get(&key) {
            return Ok(Value::Image(Rc::clone(st)));
        }
        let index = match self.read.iter().position(|r| r.canonical == canonical) {
            Some(i) => i,
            None => {
                let source = crate::source::read_dockerfile(&full).map_err(|e| {
                    err(e.to_string())
                        .help("the path is relative to the .kiln file that calls dockerfile()")
                })?;
                let tree = crate::syntax::parse(&source.text)
                    .map_err(|e| outside_problem(file, &source, &e))?;
                self.read.push(DockerfileRead {
                    file: FileId((self.prog.files.len() + self.read.len()) as u32),
                    parsed: crate::frontend::Parsed { source, tree },
                    build_args: build_args.clone(),
                    canonical: canonical.clone(),
                });
                self.read.len() - 1
            }
        };
        let read = &self.read[index];
        let (id, source, tree) = (read.file, &read.parsed.source, &read.parsed.tree);
        let opts = BuildOptions {
            build_args,
            target,
            ..Default::default()
        };
        // Origins of the Dockerfile's nodes name it by a file id after the program's files.
        let st =
            lower_stage_into(tree, &source.text, &opts, id, &mut self.b).map_err(|e| match e {
                StageIntoError::NoTarget(e) => {
                    let mut p = err(format!("{path}: {e}"));
                    if let Some(h) = miette::Diagnostic::help(&e) {
                        p = p.help(h.to_string());
                    }
                    p
                }
                StageIntoError::Lower(e) => outside_problem(file, source, &e),
            })?;
        let st = Rc::new(st);
        self.dockerfiles.insert(key, Rc::clone(&st));
        Ok(Value::Image(st))
    }

    #[allow(clippy::too_many_arguments)]
    fn copy(
        &mut self,
        file: usize,
        span: Span,
        st: &mut Stage,
        src: &FilesVal,
        to: &str,
        owner: Option<String>,
        mode: Option<String>,
    ) -> Res<()> {
        let err = |m: String| Problem::new(file, span, m, "in this copy");
        let chown = owner
            .as_deref()
            .map(Chown::parse)
            .transpose()
            .map_err(|e| err(e.to_string()).help("owner is USER[:GROUP], names or numeric ids"))?;
        let chmod =
            mode.as_deref().map(Chmod::parse).transpose().map_err(|e| {
                err(e.to_string()).help("mode is octal like 0644 or symbolic like u+x")
            })?;
        let dest = copy::absolute_dest(st.workdir(), to);
        let mut flags = String::new();
        if let FilesVal::Image { from, .. } = src {
            flags.push_str(&format!("--from={} ", from.name));
        }
        if let Some(o) = &owner {
            flags.push_str(&format!("--chown={o} "));
        }
        if let Some(m) = &mode {
            flags.push_str(&format!("--chmod={m} "));
        }
        let mut checksum = None;
        if let FilesVal::Fetch { checksum: c, .. } = src {
            flags.insert_str(0, &format!("--checksum={c} "));
            checksum = Some(c.clone());
        }
        let (sources, written, inline, excludes, source_node, from_context, selected) = match src {
            // No stage input, as the Dockerfile's heredoc-only COPY: one op, one key.
            FilesVal::Text(content) => (
                Vec::new(),
                vec!["<<EOF".to_string()],
                vec![("EOF".to_string(), content.clone())],
                Excludes::default(),
                None,
                true,
                Vec::new(),
            ),
            FilesVal::Fetch { url, .. } => (
                vec![CopySource::Url(url.clone())],
                vec![url.clone()],
                Vec::new(),
                Excludes::default(),
                None,
                true,
                Vec::new(),
            ),
            FilesVal::Image { from, path } => {
                let s = CopySource::parse(path)
                    .map_err(|e| err(format!("bad path {path:?}: {}", e.reason)))?;
                (
                    vec![s],
                    vec![path.clone()],
                    Vec::new(),
                    Excludes::default(),
                    Some(from.prev),
                    false,
                    Vec::new(),
                )
            }
            FilesVal::Context { base, only, except } => {
                let written: Vec<String> = if only.is_empty() {
                    vec![base.clone()]
                } else if base == "." {
                    only.clone()
                } else {
                    only.iter().map(|p| format!("{base}/{p}")).collect()
                };
                for e in except {
                    flags.push_str(&format!("--exclude={e} "));
                }
                let excludes = Excludes::parse(except.clone()).map_err(|e| {
                    err(format!("invalid except pattern: {}", e.kind)).help(e.help())
                })?;
                let mut parsed = Vec::new();
                for w in &written {
                    parsed.push(CopySource::parse(w).map_err(|e| {
                        err(format!("bad pattern {w:?}: {}", e.reason))
                            .help("patterns use Go filepath.Match wildcards: '*', '?', '[...]'")
                    })?);
                }
                let local: Vec<&SourcePath> = parsed.iter().filter_map(CopySource::path).collect();
                let (paths, files) = self.b.select_context(&local, &excludes).map_err(|e| match e {
                    CopyError::NotFound(p) => err(format!("{p:?} is not in the build context"))
                        .help("context paths are relative to the build context; check .dockerignore too"),
                    other => err(other.to_string()),
                })?;
                let patterns = local.iter().map(|s| s.cleaned.clone()).collect();
                let origin = self.origin(file, span, &st.name, String::new());
                let id = self
                    .b
                    .context_node(patterns, excludes.clone(), files, origin);
                (parsed, written, Vec::new(), excludes, Some(id), true, paths)
            }
        };
        if written.len() > 1 && !dest.ends_with('/') {
            return Err(err(format!(
                "copying {} sources needs a directory destination ending in /",
                written.len()
            ))
            .help(format!("write to: \"{to}/\"")));
        }
        // A fetched file is ADD's download with --checksum: hermetic, as its bytes are known.
        let add = checksum.is_some();
        let created_by = format!(
            "{} {flags}{} {to}",
            if add { "ADD" } else { "COPY" },
            written.join(" ")
        );
        let op = CopyOp {
            add,
            sources,
            selected,
            inline,
            dest,
            chown,
            chmod,
            link: false,
            parents: false,
            excludes,
            checksum,
            from_context,
            mtime: self.b.epoch(),
        };
        let origin = self.origin(file, span, &st.name, created_by.clone());
        self.b
            .copy(st, op, source_node, vec![], &created_by, origin);
        Ok(())
    }
}
