//! The syntax tree of a schema file, as written: names unresolved, every node with its byte
//! span, parentheses kept (so the checker can explain groupings), same-operator chains kept
//! as one n-ary node (so long `a + b + c ...` chains never make a deep tree).

use std::ops::Range;

pub(crate) type Span = Range<usize>;

/// A name as written, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SchemaAst {
    pub items: Vec<Item>,
}

#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// `use expiration`.
    Use(Ident),
    Definition(DefinitionDecl),
    Caveat(CaveatDecl),
}

/// `definition name { members }`.
#[derive(Debug, Clone)]
pub(crate) struct DefinitionDecl {
    pub name: Ident,
    pub doc: Option<String>,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone)]
pub(crate) enum Member {
    Relation(RelationDecl),
    Permission(PermissionDecl),
}

impl Member {
    pub(crate) fn name(&self) -> &Ident {
        match self {
            Member::Relation(r) => &r.name,
            Member::Permission(p) => &p.name,
        }
    }

    pub(crate) fn is_permission(&self) -> bool {
        matches!(self, Member::Permission(_))
    }
}

/// `relation name: T | T#rel | T:* ...`.
#[derive(Debug, Clone)]
pub(crate) struct RelationDecl {
    pub name: Ident,
    pub doc: Option<String>,
    pub types: Vec<TypeRef>,
}

/// One alternative of a relation's type annotation.
#[derive(Debug, Clone)]
pub(crate) struct TypeRef {
    pub subject_type: Ident,
    pub target: TypeTarget,
    /// `with caveat_name`.
    pub caveat: Option<Ident>,
    /// The span of `expiration` in `with expiration` / `with c and expiration`.
    pub expiration: Option<Span>,
    /// The whole alternative, from the type name to its last token.
    pub span: Span,
}

#[derive(Debug, Clone)]
pub(crate) enum TypeTarget {
    /// `user`.
    Direct,
    /// `group#member`.
    Relation(Ident),
    /// `user:*`.
    Wildcard,
}

/// `permission name = expr`.
#[derive(Debug, Clone)]
pub(crate) struct PermissionDecl {
    pub name: Ident,
    pub doc: Option<String>,
    pub expr: Expr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Union,
    Intersection,
    Exclusion,
}

impl BinOp {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            BinOp::Union => "+",
            BinOp::Intersection => "&",
            BinOp::Exclusion => "-",
        }
    }
}

/// A permission expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Nil(Span),
    /// A relation or permission of the same definition.
    Ref(Ident),
    /// `tupleset->computed`, `tupleset.any(computed)`, `tupleset.all(computed)`.
    Arrow {
        tupleset: Ident,
        computed: Ident,
        all: bool,
        span: Span,
    },
    /// Two or more operands joined by the same operator, grouped left to right.
    Binary {
        op: BinOp,
        operands: Vec<Expr>,
        span: Span,
    },
    /// `( inner )`.
    Paren {
        inner: Box<Expr>,
        span: Span,
    },
}

impl Expr {
    pub(crate) fn span(&self) -> Span {
        match self {
            Expr::Nil(s) => s.clone(),
            Expr::Ref(i) => i.span.clone(),
            Expr::Arrow { span, .. } | Expr::Binary { span, .. } | Expr::Paren { span, .. } => {
                span.clone()
            }
        }
    }
}

/// `caveat name(params) { cel }`.
#[derive(Debug, Clone)]
pub(crate) struct CaveatDecl {
    pub name: Ident,
    pub doc: Option<String>,
    pub params: Vec<Param>,
    /// The raw CEL text between the braces (braces excluded).
    pub body: Span,
    /// The opening `{` of the body.
    pub open_brace: Span,
}

/// `name type` in a caveat's parameter list.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub name: Ident,
    pub ty: TypeExpr,
}

/// A parameter type as written: `int`, `list<string>`, `map<list<int>>`.
#[derive(Debug, Clone)]
pub(crate) struct TypeExpr {
    pub name: Ident,
    pub args: Vec<TypeExpr>,
    pub span: Span,
}
