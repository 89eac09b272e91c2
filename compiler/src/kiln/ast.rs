//! The kiln language's syntax tree: items, expressions and type expressions, each with the
//! byte span it was parsed from (in the file its module came from).
//! Must not: hold meaning (names are unresolved, types unchecked; that is `check`).

use crate::syntax::Span;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct Module {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub enum Item {
    Import(Import),
    Let(LetDef),
    Fn(FnDef),
}

#[derive(Debug, Clone)]
pub enum ImportPath {
    /// `import std.users`: a standard-library module by name.
    Std(Vec<String>),
    /// `import "./lib.kiln"`: a file relative to the importing file.
    File(String),
}

#[derive(Debug, Clone)]
pub struct Import {
    pub path: ImportPath,
    /// The name the module is bound to (`users`, or `as NAME`).
    pub alias: Ident,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub struct LetDef {
    pub name: Ident,
    pub ty: Option<TypeExpr>,
    pub value: Expr,
    /// `export NAME = ...`: a target `kiln build` can select.
    pub export: bool,
}

#[derive(Debug, Clone)]
pub struct FnDef {
    pub name: Ident,
    pub params: Vec<Param>,
    pub ret: Option<TypeExpr>,
    pub body: Expr,
}

#[derive(Debug, Clone)]
pub struct Param {
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
}

#[derive(Debug, Clone)]
pub struct TypeExpr {
    pub kind: TypeKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum TypeKind {
    Named(String),
    List(Box<TypeExpr>),
    Record(Vec<(Ident, TypeExpr)>),
    Optional(Box<TypeExpr>),
}

#[derive(Debug, Clone)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum StrPart {
    Lit(String),
    Expr(Expr),
}

#[derive(Debug, Clone)]
pub struct Arg {
    /// `name: value`; None for a positional argument.
    pub name: Option<Ident>,
    pub value: Expr,
}

#[derive(Debug, Clone)]
pub enum ExprKind {
    Str(Vec<StrPart>),
    Int(i64),
    Bool(bool),
    None,
    List(Vec<Expr>),
    Record(Vec<(Ident, Expr)>),
    Name(Ident),
    /// `a.b`: a module member, or with a call `a.b(x)` a method: `b(a, x)`.
    Field(Box<Expr>, Ident),
    /// A call; `a |> f(x)` is parsed as `f(a, x)` with `piped` set.
    Call {
        callee: Box<Expr>,
        args: Vec<Arg>,
        /// Written `a |> f(x)` (so `kiln fmt` prints it as written).
        piped: bool,
    },
    /// `{ let a = ...; expr }`
    Block(Vec<LetDef>, Box<Expr>),
}
