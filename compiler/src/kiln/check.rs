//! Checking a kiln program before anything runs: name resolution, types, and calls
//! (positional and named arguments, defaults, missing and unknown ones) over every file of
//! the program, imports and stdlib included. Every problem is collected; none stops the
//! check, and a wrong expression gets the `Error` type so it is reported once.
//! Must not: evaluate anything or touch the plan.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::ast::*;
use super::error::Problem;
use super::types::{builtin, ParamSig, Sig, Ty, BUILTINS};
use super::Program;
use crate::syntax::Span;

/// What a module-level name is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    /// A `let` or `export` (item index).
    Let(usize),
    /// A `fn` (item index).
    Fn(usize),
    /// An `import`: the module's file.
    Module(usize),
}

/// Module-level names of a file.
pub fn bindings(prog: &Program, file: usize) -> HashMap<String, Binding> {
    let mut out = HashMap::new();
    let f = &prog.files[file];
    let Some(m) = &f.module else { return out };
    for (i, item) in m.items.iter().enumerate() {
        match item {
            Item::Let(l) => {
                out.insert(l.name.name.clone(), Binding::Let(i));
            }
            Item::Fn(d) => {
                out.insert(d.name.name.clone(), Binding::Fn(i));
            }
            Item::Import(imp) => {
                if let Some(&t) = f.imports.get(&i) {
                    out.insert(imp.alias.name.clone(), Binding::Module(t));
                }
            }
        }
    }
    out
}

/// Check the whole program; the problems, in file and source order.
pub fn check(prog: &Program) -> Vec<Problem> {
    let mut c = Checker {
        prog,
        problems: Vec::new(),
        names: (0..prog.files.len()).map(|f| bindings(prog, f)).collect(),
        let_tys: HashMap::new(),
        sigs: HashMap::new(),
        busy: HashSet::new(),
    };
    for file in 0..prog.files.len() {
        c.duplicates(file);
        let Some(m) = &prog.files[file].module else {
            continue;
        };
        for (i, item) in m.items.iter().enumerate() {
            match item {
                Item::Let(l) => {
                    let t = c.let_ty(file, i);
                    if l.export && !t.fits(&Ty::Image) {
                        c.problems.push(
                            Problem::new(
                                file,
                                l.value.span,
                                format!("an exported target must be an Image, found {t}"),
                                format!("this is {t}"),
                            )
                            .help("export names what kiln build builds; use let for other values"),
                        );
                    }
                }
                Item::Fn(_) => c.check_fn(file, i),
                Item::Import(_) => {}
            }
        }
    }
    c.problems.sort_by_key(|p| (p.file, p.span.start));
    c.problems.dedup();
    c.problems
}

struct Checker<'p> {
    prog: &'p Program,
    problems: Vec<Problem>,
    names: Vec<HashMap<String, Binding>>,
    let_tys: HashMap<(usize, usize), Ty>,
    sigs: HashMap<(usize, usize), Sig>,
    /// Items whose type is being worked out (recursion gets `Error`, reported once).
    busy: HashSet<(usize, usize)>,
}

type Locals = Vec<(String, Ty)>;

impl<'p> Checker<'p> {
    fn module(&self, file: usize) -> &'p Module {
        static EMPTY: Module = Module { items: Vec::new() };
        self.prog.files[file].module.as_ref().unwrap_or(&EMPTY)
    }

    fn duplicates(&mut self, file: usize) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for item in &self.module(file).items {
            let id = match item {
                Item::Let(l) => &l.name,
                Item::Fn(f) => &f.name,
                Item::Import(i) => &i.alias,
            };
            if seen.insert(&id.name, id.span).is_some() {
                self.problems.push(
                    Problem::new(
                        file,
                        id.span,
                        format!("{} is defined twice in this file", id.name),
                        "defined again here",
                    )
                    .help("give each top-level let, fn and import its own name"),
                );
            }
        }
    }

    fn let_ty(&mut self, file: usize, item: usize) -> Ty {
        if let Some(t) = self.let_tys.get(&(file, item)) {
            return t.clone();
        }
        let Item::Let(l) = &self.module(file).items[item] else {
            return Ty::Error;
        };
        if !self.busy.insert((file, item)) {
            self.problems.push(Problem::new(
                file,
                l.name.span,
                format!("{} is defined in terms of itself", l.name.name),
                "recursive definition",
            ));
            return Ty::Error;
        }
        let found = self.expr(file, &mut Vec::new(), &l.value);
        let t = match &l.ty {
            Some(te) => {
                let want = self.ty(file, te);
                self.expect(file, &found, &want, l.value.span);
                want
            }
            None => found,
        };
        self.busy.remove(&(file, item));
        self.let_tys.insert((file, item), t.clone());
        t
    }

    /// The signature of a `fn` item (its return type from the body when not written).
    fn fn_sig(&mut self, file: usize, item: usize) -> Sig {
        if let Some(s) = self.sigs.get(&(file, item)) {
            return s.clone();
        }
        let Item::Fn(f) = &self.module(file).items[item] else {
            return Sig {
                params: vec![],
                ret: Ty::Error,
                rest_named: None,
            };
        };
        let params: Vec<ParamSig> = f
            .params
            .iter()
            .map(|p| ParamSig {
                name: p.name.name.clone(),
                ty: self.ty_quiet(&p.ty),
                has_default: p.default.is_some(),
            })
            .collect();
        let ret = match &f.ret {
            Some(t) => self.ty_quiet(t),
            None => {
                if !self.busy.insert((file, item)) {
                    return Sig {
                        params,
                        ret: Ty::Error,
                        rest_named: None,
                    };
                }
                let mut locals: Locals = params
                    .iter()
                    .map(|p| (p.name.clone(), p.ty.clone()))
                    .collect();
                let t = self.expr_silent(file, &mut locals, &f.body);
                self.busy.remove(&(file, item));
                t
            }
        };
        let sig = Sig {
            params,
            ret,
            rest_named: None,
        };
        self.sigs.insert((file, item), sig.clone());
        sig
    }

    /// An expression's type without reporting (the reporting pass is `check_fn`).
    fn expr_silent(&mut self, file: usize, locals: &mut Locals, e: &Expr) -> Ty {
        let n = self.problems.len();
        let t = self.expr(file, locals, e);
        self.problems.truncate(n);
        t
    }

    fn check_fn(&mut self, file: usize, item: usize) {
        let Item::Fn(f) = &self.module(file).items[item] else {
            return;
        };
        let mut locals = Locals::new();
        let mut seen = HashSet::new();
        for p in &f.params {
            let t = self.ty(file, &p.ty);
            if !seen.insert(p.name.name.as_str()) {
                self.problems.push(Problem::new(
                    file,
                    p.name.span,
                    format!("parameter {} is declared twice", p.name.name),
                    "again here",
                ));
            }
            if let Some(d) = &p.default {
                let dt = self.expr(file, &mut locals.clone(), d);
                self.expect(file, &dt, &t, d.span);
            }
            locals.push((p.name.name.clone(), t));
        }
        if let Some(r) = &f.ret {
            self.ty(file, r);
        }
        let body = self.expr(file, &mut locals, &f.body);
        let sig = self.fn_sig(file, item);
        if f.ret.is_some() {
            let span = match &f.body.kind {
                ExprKind::Block(_, last) => last.span,
                _ => f.body.span,
            };
            self.expect(file, &body, &sig.ret, span);
        }
    }

    /// A written type, reporting unknown type names.
    fn ty(&mut self, file: usize, t: &TypeExpr) -> Ty {
        match &t.kind {
            TypeKind::Named(n) => match named_ty(n) {
                Some(t) => t,
                None => {
                    let known = ["String", "Int", "Bool", "Path", "Files", "Image"];
                    let mut p =
                        Problem::new(file, t.span, format!("unknown type {n}"), "not a type");
                    p = match crate::suggest::closest(n, known) {
                        Some(s) => p.help(format!("did you mean {s}?")),
                        None => p.help(format!(
                            "types are {}, [T] lists, {{name: T}} records and T? optionals",
                            known.join(", ")
                        )),
                    };
                    self.problems.push(p);
                    Ty::Error
                }
            },
            TypeKind::List(inner) => Ty::List(Box::new(self.ty(file, inner))),
            TypeKind::Optional(inner) => Ty::Optional(Box::new(self.ty(file, inner))),
            TypeKind::Record(fields) => Ty::Record(
                fields
                    .iter()
                    .map(|(k, v)| (k.name.clone(), self.ty(file, v)))
                    .collect(),
            ),
        }
    }

    fn ty_quiet(&mut self, t: &TypeExpr) -> Ty {
        let n = self.problems.len();
        let out = self.ty(0, t);
        self.problems.truncate(n);
        out
    }

    fn expect(&mut self, file: usize, found: &Ty, want: &Ty, span: Span) {
        if !found.fits(want) {
            self.problems.push(
                Problem::new(
                    file,
                    span,
                    format!("expected {want}, found {found}"),
                    format!("this is {found}"),
                )
                .help(format!("a value of type {want} is needed here")),
            );
        }
    }

    fn unknown_name(&mut self, file: usize, locals: &Locals, id: &Ident) {
        let mut names: Vec<&str> = locals.iter().map(|(n, _)| n.as_str()).collect();
        names.extend(self.names[file].keys().map(String::as_str));
        names.extend(BUILTINS.iter().copied());
        let mut p = Problem::new(
            file,
            id.span,
            format!("unknown name {}", id.name),
            "not defined here",
        );
        if let Some(s) = crate::suggest::closest(&id.name, names.iter().copied()) {
            p = p.help(format!("did you mean {s}?"));
        }
        self.problems.push(p);
    }

    fn expr(&mut self, file: usize, locals: &mut Locals, e: &Expr) -> Ty {
        match &e.kind {
            ExprKind::Str(parts) => {
                for part in parts {
                    if let StrPart::Expr(x) = part {
                        let t = self.expr(file, locals, x);
                        let ok = [Ty::Str, Ty::Int, Ty::Bool, Ty::Path, Ty::Error].contains(&t);
                        if !ok {
                            self.problems.push(
                                Problem::new(
                                    file,
                                    x.span,
                                    format!("cannot interpolate {t} into a string"),
                                    format!("this is {t}"),
                                )
                                .help("only String, Int, Bool and Path values interpolate"),
                            );
                        }
                    }
                }
                Ty::Str
            }
            ExprKind::Int(_) => Ty::Int,
            ExprKind::Bool(_) => Ty::Bool,
            ExprKind::None => Ty::NoneTy,
            ExprKind::List(items) => {
                let mut elem: Option<Ty> = None;
                for it in items {
                    let t = self.expr(file, locals, it);
                    match &elem {
                        None => elem = Some(t),
                        Some(want) => {
                            let want = want.clone();
                            if !t.fits(&want) {
                                self.problems.push(Problem::new(
                                    file,
                                    it.span,
                                    format!(
                                        "list items must have one type: expected {want}, found {t}"
                                    ),
                                    format!("this is {t}"),
                                ));
                            }
                        }
                    }
                }
                Ty::List(Box::new(elem.unwrap_or(Ty::NoneTy)))
            }
            ExprKind::Record(fields) => {
                let mut map = BTreeMap::new();
                for (k, v) in fields {
                    let t = self.expr(file, locals, v);
                    if map.insert(k.name.clone(), t).is_some() {
                        self.problems.push(Problem::new(
                            file,
                            k.span,
                            format!("field {} is given twice", k.name),
                            "again here",
                        ));
                    }
                }
                Ty::Record(map)
            }
            ExprKind::Name(id) => {
                if let Some((_, t)) = locals.iter().rev().find(|(n, _)| *n == id.name) {
                    return t.clone();
                }
                match self.names[file].get(&id.name).copied() {
                    Some(Binding::Let(i)) => self.let_ty(file, i),
                    Some(Binding::Fn(_)) => Ty::Fn,
                    Some(Binding::Module(_)) => Ty::Module,
                    None if builtin(&id.name).is_some() => Ty::Fn,
                    None => {
                        self.unknown_name(file, locals, id);
                        Ty::Error
                    }
                }
            }
            ExprKind::Field(base, name) => {
                if let Some(m) = self.module_of(file, locals, base) {
                    return match self.names[m].get(&name.name).copied() {
                        Some(Binding::Let(i)) => self.let_ty(m, i),
                        Some(Binding::Fn(_)) => Ty::Fn,
                        Some(Binding::Module(_)) => Ty::Module,
                        None => {
                            self.unknown_member(file, m, name);
                            Ty::Error
                        }
                    };
                }
                let t = self.expr(file, locals, base);
                match &t {
                    Ty::Record(fields) => match fields.get(&name.name) {
                        Some(ft) => ft.clone(),
                        None => {
                            let mut p = Problem::new(
                                file,
                                name.span,
                                format!("the record has no field {}", name.name),
                                "no such field",
                            );
                            if let Some(s) = crate::suggest::closest(
                                &name.name,
                                fields.keys().map(String::as_str),
                            ) {
                                p = p.help(format!("did you mean {s}?"));
                            }
                            self.problems.push(p);
                            Ty::Error
                        }
                    },
                    Ty::Error => Ty::Error,
                    other => {
                        self.problems.push(
                            Problem::new(
                                file,
                                name.span,
                                format!("{other} has no field {}", name.name),
                                "not a record or module",
                            )
                            .help(format!("to call {n} on it, write .{n}(...)", n = name.name)),
                        );
                        Ty::Error
                    }
                }
            }
            ExprKind::Call { callee, args, .. } => self.call(file, locals, e.span, callee, args),
            ExprKind::Block(lets, last) => {
                let depth = locals.len();
                for l in lets {
                    let found = self.expr(file, locals, &l.value);
                    let t = match &l.ty {
                        Some(te) => {
                            let want = self.ty(file, te);
                            self.expect(file, &found, &want, l.value.span);
                            want
                        }
                        None => found,
                    };
                    locals.push((l.name.name.clone(), t));
                }
                let t = self.expr(file, locals, last);
                locals.truncate(depth);
                t
            }
        }
    }

    fn unknown_member(&mut self, file: usize, module: usize, name: &Ident) {
        let members: Vec<&str> = self.names[module].keys().map(String::as_str).collect();
        let mut p = Problem::new(
            file,
            name.span,
            format!(
                "module {} has no {}",
                self.prog.files[module].name, name.name
            ),
            "not in that module",
        );
        if let Some(s) = crate::suggest::closest(&name.name, members.iter().copied()) {
            p = p.help(format!("did you mean {s}?"));
        }
        self.problems.push(p);
    }

    /// The module an expression names (`users` after `import std.users`), if it names one.
    fn module_of(&self, file: usize, locals: &Locals, e: &Expr) -> Option<usize> {
        match &e.kind {
            ExprKind::Name(id) if !locals.iter().any(|(n, _)| *n == id.name) => {
                match self.names[file].get(&id.name) {
                    Some(Binding::Module(m)) => Some(*m),
                    _ => None,
                }
            }
            ExprKind::Field(base, name) => {
                let m = self.module_of(file, locals, base)?;
                match self.names[m].get(&name.name) {
                    Some(Binding::Module(m2)) => Some(*m2),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The signature a callee names, in `file`: a `fn` of the module or a builtin.
    fn sig_of_name(&mut self, file: usize, locals: &Locals, id: &Ident) -> Option<Sig> {
        if locals.iter().any(|(n, _)| *n == id.name) {
            self.problems.push(Problem::new(
                file,
                id.span,
                format!("{} is a value, not a function", id.name),
                "not callable",
            ));
            return None;
        }
        match self.names[file].get(&id.name).copied() {
            Some(Binding::Fn(i)) => Some(self.fn_sig(file, i)),
            Some(Binding::Let(_)) | Some(Binding::Module(_)) => {
                self.problems.push(Problem::new(
                    file,
                    id.span,
                    format!("{} is not a function", id.name),
                    "not callable",
                ));
                None
            }
            None => match builtin(&id.name) {
                Some(s) => Some(s),
                None => {
                    self.unknown_name(file, locals, id);
                    None
                }
            },
        }
    }

    fn call(
        &mut self,
        file: usize,
        locals: &mut Locals,
        span: Span,
        callee: &Expr,
        args: &[Arg],
    ) -> Ty {
        // Resolve the callee: `f(...)`, `module.f(...)`, or a method `value.f(...)`.
        let mut receiver: Option<&Expr> = None;
        let (sig, fname) = match &callee.kind {
            ExprKind::Name(id) => (self.sig_of_name(file, locals, id), id.name.clone()),
            ExprKind::Field(base, name) => match self.module_of(file, locals, base) {
                Some(m) => match self.names[m].get(&name.name).copied() {
                    Some(Binding::Fn(i)) => (Some(self.fn_sig(m, i)), name.name.clone()),
                    _ => {
                        self.unknown_member(file, m, name);
                        (None, name.name.clone())
                    }
                },
                None => {
                    receiver = Some(base);
                    (self.sig_of_name(file, locals, name), name.name.clone())
                }
            },
            _ => {
                self.expr(file, locals, callee);
                self.problems.push(Problem::new(
                    file,
                    callee.span,
                    "only functions can be called",
                    "not a function name",
                ));
                (None, String::new())
            }
        };
        let mut positional: Vec<(Ty, Span)> = Vec::new();
        if let Some(r) = receiver {
            positional.push((self.expr(file, locals, r), r.span));
        }
        let mut named: Vec<(&Ident, Ty, Span)> = Vec::new();
        for a in args {
            let t = self.expr(file, locals, &a.value);
            match &a.name {
                Some(n) => named.push((n, t, a.value.span)),
                None => {
                    if !named.is_empty() {
                        self.problems.push(
                            Problem::new(
                                file,
                                a.value.span,
                                "a positional argument after a named one",
                                "positional",
                            )
                            .help("write positional arguments first, then name: value ones"),
                        );
                    }
                    positional.push((t, a.value.span))
                }
            }
        }
        let Some(sig) = sig else { return Ty::Error };
        let mut given = vec![false; sig.params.len()];
        if positional.len() > sig.params.len() {
            let (_, extra) = &positional[sig.params.len()];
            self.problems.push(
                Problem::new(
                    file,
                    *extra,
                    format!(
                        "{fname} takes {} argument{}, {} given",
                        sig.params.len(),
                        if sig.params.len() == 1 { "" } else { "s" },
                        positional.len()
                    ),
                    "one too many",
                )
                .help(signature_help(&fname, &sig)),
            );
        }
        for (i, (t, s)) in positional.iter().enumerate().take(sig.params.len()) {
            given[i] = true;
            let want = sig.params[i].ty.clone();
            self.arg_type(file, &fname, &sig.params[i].name, t, &want, *s);
        }
        for (n, t, s) in &named {
            match sig.params.iter().position(|p| p.name == n.name) {
                Some(i) => {
                    if given[i] {
                        self.problems.push(Problem::new(
                            file,
                            n.span,
                            format!("argument {} is given twice", n.name),
                            "again here",
                        ));
                    }
                    given[i] = true;
                    let want = sig.params[i].ty.clone();
                    self.arg_type(file, &fname, &n.name, t, &want, *s);
                }
                None => match &sig.rest_named {
                    Some(want) => {
                        let want = want.clone();
                        self.arg_type(file, &fname, &n.name, t, &want, *s);
                    }
                    None => {
                        let names = sig.params.iter().map(|p| p.name.as_str());
                        let mut p = Problem::new(
                            file,
                            n.span,
                            format!("{fname} has no parameter {}", n.name),
                            "unknown argument name",
                        );
                        p = match crate::suggest::closest(&n.name, names) {
                            Some(s) => p.help(format!("did you mean {s}?")),
                            None => p.help(signature_help(&fname, &sig)),
                        };
                        self.problems.push(p);
                    }
                },
            }
        }
        for (i, param) in sig.params.iter().enumerate() {
            if !given[i] && !param.has_default {
                self.problems.push(
                    Problem::new(
                        file,
                        span,
                        format!(
                            "missing argument {}: {} in this call of {fname}",
                            param.name, param.ty
                        ),
                        format!("needs {}", param.name),
                    )
                    .help(format!(
                        "add {}: <{}> ({})",
                        param.name,
                        param.ty,
                        signature_help(&fname, &sig)
                    )),
                );
            }
        }
        sig.ret
    }

    fn arg_type(&mut self, file: usize, fname: &str, pname: &str, t: &Ty, want: &Ty, span: Span) {
        if !t.fits(want) {
            self.problems.push(
                Problem::new(
                    file,
                    span,
                    format!("argument {pname} of {fname}: expected {want}, found {t}"),
                    format!("this is {t}"),
                )
                .help({
                    let want = want.to_string();
                    let article = if want.starts_with(['A', 'E', 'I', 'O', 'U']) {
                        "an"
                    } else {
                        "a"
                    };
                    format!("{pname} takes {article} {want}")
                }),
            );
        }
    }
}

fn named_ty(n: &str) -> Option<Ty> {
    Some(match n {
        "String" => Ty::Str,
        "Int" => Ty::Int,
        "Bool" => Ty::Bool,
        "Path" => Ty::Path,
        "Files" => Ty::Files,
        "Image" => Ty::Image,
        _ => return None,
    })
}

/// `copy(image: Image, src: Files, to: Path, owner: String? = …)`.
fn signature_help(name: &str, sig: &Sig) -> String {
    let params: Vec<String> = sig
        .params
        .iter()
        .map(|p| {
            if p.has_default {
                format!("{}: {} = …", p.name, p.ty)
            } else {
                format!("{}: {}", p.name, p.ty)
            }
        })
        .collect();
    let rest = if sig.rest_named.is_some() {
        ", NAME: value…"
    } else {
        ""
    };
    format!("{name}({}{rest}) -> {}", params.join(", "), sig.ret)
}
