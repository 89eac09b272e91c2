//! The kiln language's types and the builtins' signatures.
//! Must not: evaluate anything (that is `lower`).

use std::collections::BTreeMap;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    Str,
    Int,
    Bool,
    Path,
    Files,
    Image,
    List(Box<Ty>),
    Record(BTreeMap<String, Ty>),
    Optional(Box<Ty>),
    /// The type of `none`: fits any optional.
    NoneTy,
    /// A command: a String (shell form) or a [String] (argv).
    Command,
    /// Environment variables: a record whose every field is a String.
    Env,
    /// A filesystem a run step sees besides its root: `cache(...)`, `tmpfs(...)`,
    /// `secret(...)`.
    Mount,
    /// A function value (a `fn` or a builtin named without calling it).
    Fn,
    /// A module bound by `import`.
    Module,
    /// Unknown after an error: fits everything, so one mistake is reported once.
    Error,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Str => f.write_str("String"),
            Ty::Int => f.write_str("Int"),
            Ty::Bool => f.write_str("Bool"),
            Ty::Path => f.write_str("Path"),
            Ty::Files => f.write_str("Files"),
            Ty::Image => f.write_str("Image"),
            Ty::List(t) => write!(f, "[{t}]"),
            Ty::Record(fields) => {
                f.write_str("{")?;
                for (i, (k, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {t}")?;
                }
                f.write_str("}")
            }
            Ty::Optional(t) => write!(f, "{t}?"),
            Ty::NoneTy => f.write_str("none"),
            Ty::Command => f.write_str("String or [String]"),
            Ty::Env => f.write_str("{NAME: String, ...}"),
            Ty::Mount => f.write_str("Mount"),
            Ty::Fn => f.write_str("a function"),
            Ty::Module => f.write_str("a module"),
            Ty::Error => f.write_str("?"),
        }
    }
}

impl Ty {
    /// Whether a value of type `self` can be passed where `want` is expected.
    pub fn fits(&self, want: &Ty) -> bool {
        match (self, want) {
            (Ty::Error, _) | (_, Ty::Error) => true,
            (a, b) if a == b => true,
            (Ty::Str, Ty::Path) => true,
            (Ty::NoneTy, Ty::Optional(_)) => true,
            (Ty::Optional(a), Ty::Optional(b)) => a.fits(b),
            (a, Ty::Optional(b)) => a.fits(b),
            (Ty::Str, Ty::Command) => true,
            (Ty::List(a), Ty::Command) => a.fits(&Ty::Str),
            (Ty::Record(a), Ty::Env) => a.values().all(|t| t.fits(&Ty::Str)),
            // An empty list literal (`[]`, of `[none]`) fits any list.
            (Ty::List(a), Ty::List(b)) => **a == Ty::NoneTy || a.fits(b),
            (Ty::Record(a), Ty::Record(b)) => {
                b.iter().all(|(k, t)| match a.get(k) {
                    Some(at) => at.fits(t),
                    None => matches!(t, Ty::Optional(_)),
                }) && a.keys().all(|k| b.contains_key(k))
            }
            _ => false,
        }
    }
}

/// One parameter of a signature.
#[derive(Debug, Clone)]
pub struct ParamSig {
    pub name: String,
    pub ty: Ty,
    pub has_default: bool,
}

/// A function's signature: parameters (by position or by name), return type, and for
/// `env` and `label` the type of any further named argument.
#[derive(Debug, Clone)]
pub struct Sig {
    pub params: Vec<ParamSig>,
    pub ret: Ty,
    pub rest_named: Option<Ty>,
}

fn p(name: &str, ty: Ty) -> ParamSig {
    ParamSig {
        name: name.to_string(),
        ty,
        has_default: false,
    }
}

fn opt(name: &str, ty: Ty) -> ParamSig {
    ParamSig {
        name: name.to_string(),
        ty,
        has_default: true,
    }
}

fn o(t: Ty) -> Ty {
    Ty::Optional(Box::new(t))
}

fn list(t: Ty) -> Ty {
    Ty::List(Box::new(t))
}

/// The builtins every module sees, in the order docs/language.md lists them.
pub const BUILTINS: &[&str] = &[
    "scratch",
    "image",
    "context",
    "only",
    "except",
    "files",
    "text",
    "copy",
    "run",
    "env",
    "label",
    "workdir",
    "user",
    "cmd",
    "entrypoint",
    "expose",
    "volume",
    "stopsignal",
    "healthcheck",
    "shell",
    "bind",
    "cache",
    "tmpfs",
    "secret",
    "arg",
    "build_arg",
    "join",
    "fetch",
    "dockerfile",
];

/// A builtin's signature.
pub fn builtin(name: &str) -> Option<Sig> {
    let img = || p("image", Ty::Image);
    let sig = |params: Vec<ParamSig>, ret: Ty| Sig {
        params,
        ret,
        rest_named: None,
    };
    Some(match name {
        "scratch" => sig(vec![], Ty::Image),
        "image" => sig(vec![p("ref", Ty::Str)], Ty::Image),
        "context" => sig(vec![opt("path", Ty::Path)], Ty::Files),
        "only" | "except" => sig(
            vec![p("files", Ty::Files), p("patterns", list(Ty::Str))],
            Ty::Files,
        ),
        "files" => sig(vec![p("from", Ty::Image), p("path", Ty::Path)], Ty::Files),
        "text" => sig(vec![p("content", Ty::Str)], Ty::Files),
        "copy" => sig(
            vec![
                img(),
                p("src", Ty::Files),
                p("to", Ty::Path),
                opt("owner", o(Ty::Str)),
                opt("mode", o(Ty::Str)),
            ],
            Ty::Image,
        ),
        "run" => sig(
            vec![
                img(),
                p("cmd", Ty::Command),
                opt("env", o(Ty::Env)),
                opt("user", o(Ty::Str)),
                opt("workdir", o(Ty::Path)),
                opt("network", o(Ty::Bool)),
                opt("mounts", o(list(Ty::Mount))),
                opt("pin", o(Ty::Str)),
            ],
            Ty::Image,
        ),
        "env" => Sig {
            params: vec![img()],
            ret: Ty::Image,
            rest_named: Some(Ty::Str),
        },
        "label" => Sig {
            params: vec![img()],
            ret: Ty::Image,
            rest_named: Some(o(Ty::Str)),
        },
        "workdir" => sig(vec![img(), p("path", Ty::Path)], Ty::Image),
        "user" => sig(vec![img(), p("name", Ty::Str)], Ty::Image),
        "cmd" | "entrypoint" => sig(vec![img(), p("command", Ty::Command)], Ty::Image),
        "expose" => sig(
            vec![img(), p("port", Ty::Int), opt("protocol", Ty::Str)],
            Ty::Image,
        ),
        "volume" => sig(vec![img(), p("path", Ty::Path)], Ty::Image),
        "stopsignal" => sig(vec![img(), p("signal", Ty::Str)], Ty::Image),
        "healthcheck" => sig(
            vec![
                img(),
                opt("test", o(Ty::Command)),
                opt("interval", o(Ty::Str)),
                opt("timeout", o(Ty::Str)),
                opt("start_period", o(Ty::Str)),
                opt("start_interval", o(Ty::Str)),
                opt("retries", Ty::Int),
            ],
            Ty::Image,
        ),
        "shell" => sig(vec![img(), p("argv", list(Ty::Str))], Ty::Image),
        "cache" => sig(
            vec![
                p("target", Ty::Path),
                opt("id", o(Ty::Str)),
                opt("sharing", Ty::Str),
                opt("readonly", Ty::Bool),
            ],
            Ty::Mount,
        ),
        "bind" => sig(
            vec![
                p("target", Ty::Path),
                p("src", Ty::Files),
                opt("rw", Ty::Bool),
            ],
            Ty::Mount,
        ),
        "tmpfs" => sig(
            vec![p("target", Ty::Path), opt("size", o(Ty::Int))],
            Ty::Mount,
        ),
        "secret" => sig(
            vec![
                p("id", Ty::Str),
                opt("target", o(Ty::Path)),
                opt("env", o(Ty::Str)),
                opt("required", Ty::Bool),
            ],
            Ty::Mount,
        ),
        "arg" => sig(vec![p("name", Ty::Str), opt("default", Ty::Str)], Ty::Str),
        "build_arg" => sig(
            vec![
                img(),
                p("name", Ty::Str),
                opt("default", o(Ty::Str)),
                opt("global", o(Ty::Str)),
            ],
            Ty::Image,
        ),
        "fetch" => sig(vec![p("url", Ty::Str), p("sha256", Ty::Str)], Ty::Files),
        "dockerfile" => sig(
            vec![
                p("path", Ty::Path),
                opt("target", o(Ty::Str)),
                opt("args", o(Ty::Env)),
            ],
            Ty::Image,
        ),
        "join" => sig(
            vec![p("items", list(Ty::Str)), opt("sep", Ty::Str)],
            Ty::Str,
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_builtin_has_a_signature() {
        for b in BUILTINS {
            assert!(builtin(b).is_some(), "{b}");
        }
    }

    #[test]
    fn fitting() {
        assert!(Ty::Str.fits(&Ty::Path));
        assert!(!Ty::Path.fits(&Ty::Str));
        assert!(Ty::NoneTy.fits(&o(Ty::Int)));
        assert!(Ty::Int.fits(&o(Ty::Int)));
        assert!(!Ty::Str.fits(&Ty::Int));
        assert!(list(Ty::Str).fits(&Ty::Command));
        assert!(!list(Ty::Int).fits(&Ty::Command));
    }
}
