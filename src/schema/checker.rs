//! The type checker: resolves every name of a [`SchemaAst`], reports every semantic error
//! with a span and a hint, and builds the compiled [`Schema`] when there are none.
//!
//! All passes are linear in the size of the schema (hash lookups, one DFS per definition
//! for reference cycles), so large schemas compile in milliseconds.

use std::cell::Cell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use indexmap::IndexMap;

use super::ast::*;
use super::compiled::{
    AllowedSubject, AllowedSubjectKind, ArrowKind, Definition, Relation, RelationKind, Rewrite,
    Schema,
};
use super::limits::DiagnosticSink;
use super::{Diagnostic, Severity};
use crate::caveat::{self, CaveatType, CompiledCaveat};
use crate::model::{
    ModelError, validate_caveat_name, validate_object_type, validate_relation_name,
};

/// Deepest compiled rewrite tree accepted (an upper bound computed on the syntax tree;
/// exclusion chains nest one level per `-`). Keeps the engine's recursion bounded.
pub(crate) const MAX_REWRITE_DEPTH: usize = 100;

const PARAMETER_TYPES: [&str; 12] = [
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "duration",
    "timestamp",
    "ipaddress",
    "list",
    "map",
    "any",
];

/// CEL words that cannot name a parameter (a parameter named `in` could never be used).
const CEL_RESERVED: [&str; 21] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

/// Checks `ast` (parsed from `src`), appending diagnostics. Returns the compiled schema when
/// no error was found.
pub(crate) fn check(src: &str, ast: &SchemaAst, diags: &mut DiagnosticSink) -> Option<Schema> {
    let mut c = Checker {
        src,
        diags,
        errors: 0,
        line_starts: line_starts(src),
        defs: HashMap::new(),
        caveat_decls: HashMap::new(),
        uses_expiration: false,
        compiled_caveats: IndexMap::new(),
        hint_budget: Cell::new(HINT_BUDGET),
    };
    c.collect(ast);
    for item in &ast.items {
        match item {
            Item::Definition(d) => c.check_definition(d),
            Item::Caveat(cv) => c.check_caveat(cv),
            Item::Use(_) => {}
        }
    }
    if c.errors > 0 {
        return None;
    }
    Some(c.build(ast))
}

/// A definition with its members indexed by name (first occurrence wins).
struct DefInfo<'a> {
    decl: &'a DefinitionDecl,
    members: HashMap<&'a str, usize>,
}

impl<'a> DefInfo<'a> {
    fn new(decl: &'a DefinitionDecl) -> Self {
        let mut members = HashMap::with_capacity(decl.members.len());
        for (i, m) in decl.members.iter().enumerate() {
            members.entry(m.name().name.as_str()).or_insert(i);
        }
        DefInfo { decl, members }
    }

    fn member(&self, name: &str) -> Option<&'a Member> {
        self.members.get(name).map(|i| &self.decl.members[*i])
    }
}

struct Checker<'a, 'd> {
    src: &'a str,
    diags: &'d mut DiagnosticSink,
    errors: usize,
    line_starts: Vec<usize>,
    defs: HashMap<&'a str, DefInfo<'a>>,
    caveat_decls: HashMap<&'a str, &'a CaveatDecl>,
    uses_expiration: bool,
    compiled_caveats: IndexMap<String, Arc<CompiledCaveat>>,
    /// Candidate comparisons left for "did you mean" hints ([`HINT_BUDGET`]).
    hint_budget: Cell<usize>,
}

impl<'a, 'd> Checker<'a, 'd> {
    fn error(&mut self, span: Span, message: String, hint: Option<String>) {
        self.errors += 1;
        self.diags.push(Diagnostic {
            severity: Severity::Error,
            message,
            span,
            hint,
        });
    }

    fn warning(&mut self, span: Span, message: String, hint: Option<String>) {
        self.diags.push(Diagnostic {
            severity: Severity::Warning,
            message,
            span,
            hint,
        });
    }

    fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|s| *s <= offset)
    }

    // ---- pass 1: names --------------------------------------------------------------

    fn collect(&mut self, ast: &'a SchemaAst) {
        for item in &ast.items {
            match item {
                Item::Use(feature) => {
                    if feature.name != "expiration" {
                        self.error(
                            feature.span.clone(),
                            format!("unknown feature `{}` in `use`", feature.name),
                            Some("the only feature is `expiration` (`use expiration`)".into()),
                        );
                    } else if self.uses_expiration {
                        self.warning(
                            feature.span.clone(),
                            "`use expiration` is declared more than once".into(),
                            Some("remove the repeated declaration".into()),
                        );
                    } else {
                        self.uses_expiration = true;
                    }
                }
                Item::Definition(d) => {
                    if let Err(e) = validate_object_type(&d.name.name) {
                        self.error(
                            d.name.span.clone(),
                            format!("invalid definition name `{}`: {}", d.name.name, reason(e)),
                            Some(
                                "definition names are lowercase letters, digits and `_`, 3 to 64 \
                                 characters, optionally prefixed like `tenant/document`"
                                    .into(),
                            ),
                        );
                    }
                    match self.defs.entry(d.name.name.as_str()) {
                        Entry::Vacant(v) => {
                            v.insert(DefInfo::new(d));
                        }
                        Entry::Occupied(o) => {
                            let first = o.get().decl.name.span.start;
                            let line = self.line(first);
                            self.error(
                                d.name.span.clone(),
                                format!("definition `{}` is defined more than once", d.name.name),
                                Some(format!("it is first defined on line {line}")),
                            );
                        }
                    }
                }
                Item::Caveat(cv) => {
                    if let Err(e) = validate_caveat_name(&cv.name.name) {
                        self.error(
                            cv.name.span.clone(),
                            format!("invalid caveat name `{}`: {}", cv.name.name, reason(e)),
                            None,
                        );
                    } else if cv.name.name == "expiration" {
                        self.error(
                            cv.name.span.clone(),
                            "a caveat cannot be named `expiration`".into(),
                            Some("`expiration` is reserved for `with expiration`".into()),
                        );
                    }
                    match self.caveat_decls.entry(cv.name.name.as_str()) {
                        Entry::Vacant(v) => {
                            v.insert(cv);
                        }
                        Entry::Occupied(o) => {
                            let first = o.get().name.span.start;
                            let line = self.line(first);
                            self.error(
                                cv.name.span.clone(),
                                format!("caveat `{}` is defined more than once", cv.name.name),
                                Some(format!("it is first defined on line {line}")),
                            );
                        }
                    }
                }
            }
        }
    }

    // ---- definitions ----------------------------------------------------------------

    fn check_definition(&mut self, d: &'a DefinitionDecl) {
        let info = DefInfo::new(d);
        for (i, m) in d.members.iter().enumerate() {
            let name = m.name();
            let kind = if m.is_permission() {
                "permission"
            } else {
                "relation"
            };
            if let Err(e) = validate_relation_name(&name.name) {
                self.error(
                    name.span.clone(),
                    format!("invalid {kind} name `{}`: {}", name.name, reason(e)),
                    Some(
                        "relation and permission names are lowercase letters, digits and `_`, \
                         3 to 64 characters"
                            .into(),
                    ),
                );
            } else if name.name == "nil" {
                self.error(
                    name.span.clone(),
                    format!("`nil` is a keyword and cannot name a {kind}"),
                    None,
                );
            }
            let first = info.members[name.name.as_str()];
            if first != i {
                let line = self.line(d.members[first].name().span.start);
                self.error(
                    name.span.clone(),
                    format!(
                        "`{}` is defined more than once in definition `{}`",
                        name.name, d.name.name
                    ),
                    Some(format!(
                        "relations and permissions of a definition share one namespace; `{}` is \
                         first defined on line {line}",
                        name.name
                    )),
                );
            }
        }
        for m in &d.members {
            match m {
                Member::Relation(r) => self.check_relation(r),
                Member::Permission(p) => {
                    self.check_expr(&info, &p.expr);
                    if expr_depth(&p.expr) > MAX_REWRITE_DEPTH {
                        self.error(
                            p.expr.span(),
                            format!(
                                "permission `{}` is nested too deeply (more than \
                                 {MAX_REWRITE_DEPTH} levels)",
                                p.name.name
                            ),
                            Some("split the expression into several permissions".into()),
                        );
                    }
                }
            }
        }
        self.check_cycles(&info);
    }

    fn check_relation(&mut self, r: &RelationDecl) {
        let mut seen: HashMap<(String, String, Option<&str>, bool), ()> = HashMap::new();
        for t in &r.types {
            let tname = t.subject_type.name.as_str();
            let target = match &t.target {
                TypeTarget::Direct => String::new(),
                TypeTarget::Relation(rel) => format!("#{}", rel.name),
                TypeTarget::Wildcard => ":*".to_string(),
            };
            let key = (
                tname.to_string(),
                target.clone(),
                t.caveat.as_ref().map(|c| c.name.as_str()),
                t.expiration.is_some(),
            );
            if seen.insert(key, ()).is_some() {
                self.error(
                    t.span.clone(),
                    format!(
                        "`{tname}{target}` is listed more than once in relation `{}`",
                        r.name.name
                    ),
                    Some("remove the repeated subject type".into()),
                );
            }
            match self.defs.get(tname) {
                None => {
                    let hint = suggest_within(tname, self.defs.keys().copied(), &self.hint_budget)
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| format!("define it with `definition {tname} {{}}`"));
                    self.error(
                        t.subject_type.span.clone(),
                        format!("unknown object type `{tname}`"),
                        Some(hint),
                    );
                }
                Some(target_def) => {
                    if let TypeTarget::Relation(rel) = &t.target
                        && target_def.member(&rel.name).is_none()
                    {
                        let hint = member_hint(target_def, &rel.name, false, &self.hint_budget);
                        self.error(
                            rel.span.clone(),
                            format!(
                                "relation or permission `{}` not found on definition `{tname}`",
                                rel.name
                            ),
                            hint,
                        );
                    }
                }
            }
            if let Some(c) = &t.caveat
                && !self.caveat_decls.contains_key(c.name.as_str())
            {
                let hint = suggest_within(
                    &c.name,
                    self.caveat_decls.keys().copied(),
                    &self.hint_budget,
                )
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    format!(
                        "declare it with `caveat {}(param type) {{ expression }}`",
                        c.name
                    )
                });
                self.error(
                    c.span.clone(),
                    format!("unknown caveat `{}`", c.name),
                    Some(hint),
                );
            }
            if let Some(exp) = &t.expiration
                && !self.uses_expiration
            {
                self.error(
                    exp.clone(),
                    "`with expiration` requires `use expiration`".into(),
                    Some("add `use expiration` at the top of the schema".into()),
                );
            }
        }
    }

    fn check_expr(&mut self, def: &DefInfo<'a>, e: &Expr) {
        match e {
            Expr::Nil(_) => {}
            Expr::Ref(i) => {
                if def.member(&i.name).is_none() {
                    self.error(
                        i.span.clone(),
                        format!(
                            "`{}` is not a relation or permission of definition `{}`",
                            i.name, def.decl.name.name
                        ),
                        member_hint(def, &i.name, false, &self.hint_budget),
                    );
                }
            }
            Expr::Arrow {
                tupleset,
                computed,
                all,
                ..
            } => self.check_arrow(def, tupleset, computed, *all),
            Expr::Binary { operands, .. } => {
                for o in operands {
                    self.check_expr(def, o);
                }
            }
            Expr::Paren { inner, .. } => self.check_expr(def, inner),
        }
    }

    fn check_arrow(&mut self, def: &DefInfo<'a>, tupleset: &Ident, computed: &Ident, all: bool) {
        let arrow = if all {
            format!("{}.all({})", tupleset.name, computed.name)
        } else {
            format!("{}->{}", tupleset.name, computed.name)
        };
        let rel = match def.member(&tupleset.name) {
            None => {
                self.error(
                    tupleset.span.clone(),
                    format!(
                        "`{}` is not a relation of definition `{}`",
                        tupleset.name, def.decl.name.name
                    ),
                    member_hint(def, &tupleset.name, true, &self.hint_budget),
                );
                return;
            }
            Some(Member::Permission(_)) => {
                self.error(
                    tupleset.span.clone(),
                    format!(
                        "the left side of an arrow must be a relation, but `{}` is a permission",
                        tupleset.name
                    ),
                    Some(
                        "arrows walk stored relationships; use a relation here, or move the arrow \
                         into the permission `"
                            .to_string()
                            + &tupleset.name
                            + "` itself",
                    ),
                );
                return;
            }
            Some(Member::Relation(r)) => r,
        };
        if let Some(w) = rel
            .types
            .iter()
            .find(|t| matches!(t.target, TypeTarget::Wildcard))
        {
            self.error(
                tupleset.span.clone(),
                format!(
                    "`{arrow}` walks relation `{}#{}`, which allows the wildcard `{}:*`",
                    def.decl.name.name, rel.name.name, w.subject_type.name
                ),
                Some(
                    "a wildcard cannot be followed by an arrow; remove the wildcard or arrow over \
                     a relation without one"
                        .into(),
                ),
            );
            return;
        }
        let mut known_types: Vec<&str> = Vec::new();
        for t in &rel.types {
            let name = t.subject_type.name.as_str();
            if self.defs.contains_key(name) && !known_types.contains(&name) {
                known_types.push(name);
            }
        }
        if known_types.is_empty() {
            return; // The unknown types were already reported.
        }
        let found = known_types
            .iter()
            .any(|t| self.defs[t].member(&computed.name).is_some());
        if !found {
            let listed = list_some(known_types.iter().map(|t| format!("`{t}`")));
            let candidates = known_types
                .iter()
                .flat_map(|t| self.defs[t].members.keys().copied());
            let hint = suggest_within(&computed.name, candidates, &self.hint_budget)
                .map(|s| format!("did you mean `{s}`?"))
                .unwrap_or_else(|| {
                    format!("define `{}` on at least one of those types", computed.name)
                });
            self.error(
                computed.span.clone(),
                format!(
                    "`{}` is not a relation or permission of any subject type of `{}` ({listed})",
                    computed.name, tupleset.name
                ),
                Some(hint),
            );
        }
    }

    /// Reports permissions that reach themselves through computed references only (no
    /// arrow or subject relation in between), which no data could ever terminate.
    fn check_cycles(&mut self, def: &DefInfo<'a>) {
        let members = &def.decl.members;
        let n = members.len();
        let mut edges: Vec<Vec<(usize, Span)>> = vec![Vec::new(); n];
        for (i, m) in members.iter().enumerate() {
            if let Member::Permission(p) = m {
                let mut refs = Vec::new();
                computed_refs(&p.expr, &mut refs);
                for r in refs {
                    if let Some(&t) = def.members.get(r.name.as_str())
                        && members[t].is_permission()
                    {
                        edges[i].push((t, r.span.clone()));
                    }
                }
            }
        }
        #[derive(Clone, Copy, PartialEq)]
        enum Color {
            White,
            Gray,
            Black,
        }
        let mut color = vec![Color::White; n];
        let mut stack_pos = vec![usize::MAX; n];
        for root in 0..n {
            if color[root] != Color::White || edges[root].is_empty() {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            color[root] = Color::Gray;
            stack_pos[root] = 0;
            while let Some(top) = stack.last_mut() {
                let (node, next) = *top;
                if next < edges[node].len() {
                    top.1 += 1;
                    let (target, span) = edges[node][next].clone();
                    match color[target] {
                        Color::White => {
                            color[target] = Color::Gray;
                            stack_pos[target] = stack.len();
                            stack.push((target, 0));
                        }
                        Color::Gray => {
                            let path: Vec<&str> = stack[stack_pos[target]..]
                                .iter()
                                .map(|(i, _)| members[*i].name().name.as_str())
                                .collect();
                            self.report_cycle(&path, span);
                        }
                        Color::Black => {}
                    }
                } else {
                    color[node] = Color::Black;
                    stack.pop();
                }
            }
        }
    }

    fn report_cycle(&mut self, path: &[&str], span: Span) {
        let hint = "recursion must go through an arrow (`parent->view`) or a subject relation \
                    (`group#member`), where stored relationships end it"
            .to_string();
        let (first, last) = match (path.first(), path.last()) {
            (Some(f), Some(l)) => (*f, *l),
            _ => return,
        };
        let message = if path.len() == 1 {
            format!("permission `{first}` refers to itself")
        } else {
            let steps: Vec<String> = path
                .iter()
                .chain(std::iter::once(&first))
                .map(|p| format!("`{p}`"))
                .collect();
            // A long cycle is shown by its ends: the message must not grow with the schema.
            let chain = if steps.len() > 8 {
                format!(
                    "{} → … {} more … → {}",
                    steps[..4].join(" → "),
                    steps.len() - 7,
                    steps[steps.len() - 3..].join(" → ")
                )
            } else {
                steps.join(" → ")
            };
            format!("permission `{last}` refers back to `{first}`, forming a cycle: {chain}")
        };
        self.error(span, message, Some(hint));
    }

    // ---- caveats --------------------------------------------------------------------

    fn check_caveat(&mut self, cv: &'a CaveatDecl) {
        let mut params: IndexMap<String, CaveatType> = IndexMap::new();
        let mut ok = true;
        let mut first_line: HashMap<&str, usize> = HashMap::new();
        for p in &cv.params {
            let name = p.name.name.as_str();
            if !is_cel_identifier(name) {
                ok = false;
                self.error(
                    p.name.span.clone(),
                    format!("invalid parameter name `{name}`"),
                    Some(
                        "parameter names are letters, digits and `_`, not starting with a digit"
                            .into(),
                    ),
                );
            } else if CEL_RESERVED.contains(&name) {
                ok = false;
                self.error(
                    p.name.span.clone(),
                    format!("`{name}` is a reserved word of the caveat language and cannot name a parameter"),
                    None,
                );
            }
            let ty = self.convert_type(&p.ty);
            match first_line.entry(name) {
                Entry::Occupied(_) => {
                    ok = false;
                    self.error(
                        p.name.span.clone(),
                        format!(
                            "parameter `{name}` is declared more than once in caveat `{}`",
                            cv.name.name
                        ),
                        Some("give each parameter a distinct name".into()),
                    );
                }
                Entry::Vacant(v) => {
                    v.insert(p.name.span.start);
                }
            }
            match ty {
                Some(ty) => {
                    params.entry(name.to_string()).or_insert(ty);
                }
                None => ok = false,
            }
        }
        if !ok {
            return;
        }
        let text = &self.src[cv.body.clone()];
        match caveat::compile(&cv.name.name, params, text) {
            Ok(compiled) => {
                // Duplicates were reported already; keep the first declaration.
                if !self.compiled_caveats.contains_key(&cv.name.name) {
                    self.compiled_caveats
                        .insert(cv.name.name.clone(), Arc::new(compiled));
                }
            }
            Err(problems) => {
                for pr in problems {
                    let span = self.cel_span(cv, &pr.span);
                    self.error(
                        span,
                        format!(
                            "invalid expression in caveat `{}`: {}",
                            cv.name.name, pr.message
                        ),
                        None,
                    );
                }
            }
        }
    }

    /// Maps a span within a caveat's CEL text to a span in the file, clamped to the body.
    fn cel_span(&self, cv: &CaveatDecl, span: &std::ops::Range<usize>) -> Span {
        let body = &cv.body;
        let clamp = |off: usize| {
            let mut at = body.start.saturating_add(off).min(body.end);
            while at > body.start && !self.src.is_char_boundary(at) {
                at -= 1;
            }
            at
        };
        let start = clamp(span.start);
        let end = clamp(span.end.max(span.start));
        if start == end && body.is_empty() {
            return cv.open_brace.clone();
        }
        start..end
    }

    fn convert_type(&mut self, t: &TypeExpr) -> Option<CaveatType> {
        let name = t.name.name.as_str();
        let scalar = match name {
            "int" => Some(CaveatType::Int),
            "uint" => Some(CaveatType::Uint),
            "double" => Some(CaveatType::Double),
            "bool" => Some(CaveatType::Bool),
            "string" => Some(CaveatType::String),
            "bytes" => Some(CaveatType::Bytes),
            "duration" => Some(CaveatType::Duration),
            "timestamp" => Some(CaveatType::Timestamp),
            "ipaddress" => Some(CaveatType::IpAddress),
            "any" => Some(CaveatType::Any),
            _ => None,
        };
        if let Some(s) = scalar {
            if !t.args.is_empty() {
                self.error(
                    t.span.clone(),
                    format!("type `{name}` does not take a type parameter"),
                    Some(format!("write just `{name}`")),
                );
                return None;
            }
            return Some(s);
        }
        match name {
            "list" | "map" => {
                if t.args.len() != 1 {
                    let hint = if name == "map" {
                        "write `map<T>` with the value type; map keys are always strings"
                    } else {
                        "write `list<T>` with the element type, e.g. `list<string>`"
                    };
                    let message = if t.args.is_empty() {
                        format!("type `{name}` needs a type parameter")
                    } else {
                        format!("type `{name}` takes exactly one type parameter")
                    };
                    self.error(t.span.clone(), message, Some(hint.into()));
                    // Still check the parameters for their own errors.
                    for a in &t.args {
                        self.convert_type(a);
                    }
                    return None;
                }
                let inner = self.convert_type(&t.args[0])?;
                Some(if name == "list" {
                    CaveatType::List(Box::new(inner))
                } else {
                    CaveatType::Map(Box::new(inner))
                })
            }
            _ => {
                let hint = suggest(name, PARAMETER_TYPES.into_iter())
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| format!("the types are {}", PARAMETER_TYPES.join(", ")));
                self.error(
                    t.name.span.clone(),
                    format!("unknown parameter type `{name}`"),
                    Some(hint),
                );
                None
            }
        }
    }

    // ---- output ---------------------------------------------------------------------

    fn build(self, ast: &SchemaAst) -> Schema {
        let mut schema = Schema {
            definitions: IndexMap::with_capacity(self.defs.len()),
            caveats: self.compiled_caveats,
            uses_expiration: self.uses_expiration,
            caveat_docs: IndexMap::new(),
        };
        for item in &ast.items {
            match item {
                Item::Definition(d) => {
                    let mut relations = IndexMap::with_capacity(d.members.len());
                    for m in &d.members {
                        let (name, doc, kind) = match m {
                            Member::Relation(r) => (
                                &r.name,
                                &r.doc,
                                RelationKind::Relation(r.types.iter().map(allowed).collect()),
                            ),
                            Member::Permission(p) => (
                                &p.name,
                                &p.doc,
                                RelationKind::Permission(to_rewrite(&p.expr)),
                            ),
                        };
                        relations.insert(
                            name.name.clone(),
                            Relation {
                                name: name.name.clone(),
                                doc: doc.clone(),
                                kind,
                            },
                        );
                    }
                    schema.definitions.insert(
                        d.name.name.clone(),
                        Definition {
                            name: d.name.name.clone(),
                            doc: d.doc.clone(),
                            relations,
                        },
                    );
                }
                Item::Caveat(cv) => {
                    if let Some(doc) = &cv.doc {
                        schema.caveat_docs.insert(cv.name.name.clone(), doc.clone());
                    }
                }
                Item::Use(_) => {}
            }
        }
        schema
    }
}

fn reason(e: ModelError) -> String {
    match e {
        ModelError::Invalid { reason, .. } => reason,
        other => other.to_string(),
    }
}

fn line_starts(src: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(src.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

fn is_cel_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A hint for a name missing from `def`: a close match, or what exists.
fn member_hint(
    def: &DefInfo<'_>,
    name: &str,
    relations_only: bool,
    budget: &Cell<usize>,
) -> Option<String> {
    let candidates = def
        .decl
        .members
        .iter()
        .filter(|m| !relations_only || !m.is_permission());
    if let Some(s) = suggest_within(
        name,
        candidates.clone().map(|m| m.name().name.as_str()),
        budget,
    ) {
        return Some(format!("did you mean `{s}`?"));
    }
    let names: Vec<String> = candidates
        .take(6)
        .map(|m| format!("`{}`", m.name().name))
        .collect();
    let what = if relations_only {
        "relations"
    } else {
        "relations and permissions"
    };
    if names.is_empty() {
        Some(format!("definition `{}` has no {what}", def.decl.name.name))
    } else {
        Some(format!(
            "the {what} of `{}` are {}{}",
            def.decl.name.name,
            names.join(", "),
            if def.decl.members.len() > 6 {
                ", ..."
            } else {
                ""
            }
        ))
    }
}

/// The first few items, comma-separated, and how many more there are: a message listing
/// names never grows with the schema.
pub(crate) fn list_some(items: impl ExactSizeIterator<Item = String>) -> String {
    const SHOWN: usize = 6;
    let total = items.len();
    let mut out = items.take(SHOWN).collect::<Vec<_>>().join(", ");
    if total > SHOWN {
        out.push_str(&format!(" and {} more", total - SHOWN));
    }
    out
}

/// The closest candidate within a small edit distance, for "did you mean" hints. For small
/// fixed candidate sets (keywords); names from the schema go through [`suggest_within`].
pub(crate) fn suggest<'c>(
    name: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> Option<&'c str> {
    suggest_within(name, candidates, &Cell::new(usize::MAX))
}

/// How many candidate names one compilation may compare for hints in all. Hints are a
/// courtesy: a hostile schema with thousands of misspellings and candidates must not turn
/// them into quadratic work, so once this is spent, errors simply come without a hint.
const HINT_BUDGET: usize = 200_000;

/// [`suggest`], comparing at most `budget` candidates (decremented; `None` once spent).
pub(crate) fn suggest_within<'c>(
    name: &str,
    candidates: impl Iterator<Item = &'c str>,
    budget: &Cell<usize>,
) -> Option<&'c str> {
    let limit = (name.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'c str)> = None;
    for c in candidates {
        let left = budget.get();
        if left == 0 {
            return None;
        }
        budget.set(left - 1);
        if c == name {
            continue;
        }
        let d = edit_distance(name, c);
        if d <= limit && best.is_none_or(|(bd, bc)| d < bd || (d == bd && c < bc)) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > 3 {
        return usize::MAX;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The names a permission references directly (not through arrows).
fn computed_refs<'e>(e: &'e Expr, out: &mut Vec<&'e Ident>) {
    match e {
        Expr::Ref(i) => out.push(i),
        Expr::Binary { operands, .. } => operands.iter().for_each(|o| computed_refs(o, out)),
        Expr::Paren { inner, .. } => computed_refs(inner, out),
        Expr::Nil(_) | Expr::Arrow { .. } => {}
    }
}

/// An upper bound of the depth of the rewrite tree compiled from `e`.
fn expr_depth(e: &Expr) -> usize {
    match e {
        Expr::Nil(_) | Expr::Ref(_) | Expr::Arrow { .. } => 1,
        Expr::Paren { inner, .. } => expr_depth(inner),
        Expr::Binary { op, operands, .. } => {
            let deepest = operands.iter().map(expr_depth).max().unwrap_or(0);
            match op {
                BinOp::Exclusion => deepest + operands.len().saturating_sub(1),
                BinOp::Union | BinOp::Intersection => deepest + 1,
            }
        }
    }
}

fn allowed(t: &TypeRef) -> AllowedSubject {
    AllowedSubject {
        subject_type: t.subject_type.name.clone(),
        kind: match &t.target {
            TypeTarget::Direct => AllowedSubjectKind::Direct,
            TypeTarget::Relation(r) => AllowedSubjectKind::Relation(r.name.clone()),
            TypeTarget::Wildcard => AllowedSubjectKind::Wildcard,
        },
        caveat: t.caveat.as_ref().map(|c| c.name.clone()),
        expiration: t.expiration.is_some(),
    }
}

/// Compiles an expression: parentheses dropped, nested unions/intersections flattened,
/// exclusion chains folded left (`a - b - c` is `(a - b) - c`).
fn to_rewrite(e: &Expr) -> Rewrite {
    match e {
        Expr::Nil(_) => Rewrite::Nil,
        Expr::Ref(i) => Rewrite::Computed(i.name.clone()),
        Expr::Arrow {
            tupleset,
            computed,
            all,
            ..
        } => Rewrite::Arrow {
            tupleset: tupleset.name.clone(),
            computed: computed.name.clone(),
            kind: if *all { ArrowKind::All } else { ArrowKind::Any },
        },
        Expr::Paren { inner, .. } => to_rewrite(inner),
        Expr::Binary { op, operands, .. } => match op {
            BinOp::Union => Rewrite::Union(flatten(operands, |r| match r {
                Rewrite::Union(v) => Ok(v),
                other => Err(other),
            })),
            BinOp::Intersection => Rewrite::Intersection(flatten(operands, |r| match r {
                Rewrite::Intersection(v) => Ok(v),
                other => Err(other),
            })),
            BinOp::Exclusion => {
                let mut iter = operands.iter();
                let mut acc = iter.next().map_or(Rewrite::Nil, to_rewrite);
                for o in iter {
                    acc = Rewrite::Exclusion(Box::new(acc), Box::new(to_rewrite(o)));
                }
                acc
            }
        },
    }
}

fn flatten(
    operands: &[Expr],
    same: impl Fn(Rewrite) -> Result<Vec<Rewrite>, Rewrite>,
) -> Vec<Rewrite> {
    let mut out = Vec::with_capacity(operands.len());
    for o in operands {
        match same(to_rewrite(o)) {
            Ok(children) => out.extend(children),
            Err(single) => out.push(single),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::parser::parse;

    fn check_src(src: &str) -> (Option<Schema>, Vec<Diagnostic>) {
        let parsed = parse(src);
        assert!(
            parsed
                .diagnostics
                .items
                .iter()
                .all(|d| d.severity != Severity::Error),
            "syntax errors: {:?}",
            parsed.diagnostics
        );
        let mut diags = DiagnosticSink::default();
        let schema = check(src, &parsed.ast, &mut diags);
        (schema, diags.items)
    }

    fn error_messages(src: &str) -> Vec<String> {
        let (schema, diags) = check_src(src);
        assert!(schema.is_none());
        diags
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.message)
            .collect()
    }

    fn rewrite_of(src: &str, def: &str, perm: &str) -> Rewrite {
        let (schema, diags) = check_src(src);
        let schema = schema.unwrap_or_else(|| panic!("{diags:?}"));
        match &schema.relation(def, perm).unwrap().kind {
            RelationKind::Permission(r) => r.clone(),
            RelationKind::Relation(_) => panic!("not a permission"),
        }
    }

    fn c(name: &str) -> Rewrite {
        Rewrite::Computed(name.into())
    }

    #[test]
    fn unions_flatten_and_exclusions_fold_left() {
        let src = "definition doc { relation aaa: doc\n relation bbb: doc\n relation eee: doc\n permission ppp = aaa + (bbb + (eee + aaa))\n permission qqq = aaa - bbb - eee\n permission rrr = (aaa & bbb) & (eee & aaa) }";
        assert_eq!(
            rewrite_of(src, "doc", "ppp"),
            Rewrite::Union(vec![c("aaa"), c("bbb"), c("eee"), c("aaa")])
        );
        assert_eq!(
            rewrite_of(src, "doc", "qqq"),
            Rewrite::Exclusion(
                Box::new(Rewrite::Exclusion(Box::new(c("aaa")), Box::new(c("bbb")))),
                Box::new(c("eee"))
            )
        );
        assert_eq!(
            rewrite_of(src, "doc", "rrr"),
            Rewrite::Intersection(vec![c("aaa"), c("bbb"), c("eee"), c("aaa")])
        );
    }

    #[test]
    fn computed_cycles_are_errors_but_arrow_cycles_are_fine() {
        let errs = error_messages(
            "definition doc {\n relation parent: doc\n permission aaa = bbb\n permission bbb = ccc + parent->aaa\n permission ccc = aaa & parent->ccc\n permission sss = sss\n}",
        );
        assert_eq!(
            errs,
            vec![
                "permission `ccc` refers back to `aaa`, forming a cycle: `aaa` → `bbb` → `ccc` → `aaa`",
                "permission `sss` refers to itself",
            ]
        );
        let (schema, diags) = check_src(
            "definition doc {\n relation parent: doc\n relation member: doc#member\n permission view = member + parent->view\n}",
        );
        assert!(schema.is_some(), "{diags:?}");
    }

    #[test]
    fn long_reference_chains_do_not_recurse() {
        let mut src = String::from("definition doc {\n relation rel: doc\n");
        for i in 0..50_000 {
            src.push_str(&format!(" permission p_{i} = p_{}\n", i + 1));
        }
        src.push_str(" permission p_50000 = rel\n}");
        let (schema, diags) = check_src(&src);
        assert!(schema.is_some(), "{:?}", diags.first());
        src = src.replace("permission p_50000 = rel", "permission p_50000 = p_0");
        let errs = error_messages(&src);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].starts_with("permission `p_50000` refers back to `p_0`"));
        // The chain is shown by its ends, not by all 50,001 names.
        assert!(errs[0].len() < 300, "{}", errs[0]);
        assert!(errs[0].contains("`p_0` → `p_1`") && errs[0].contains("→ `p_50000` → `p_0`"));
    }

    #[test]
    fn exclusion_chains_are_capped() {
        let terms: Vec<&str> = std::iter::repeat_n("rel", MAX_REWRITE_DEPTH + 5).collect();
        let src = format!(
            "definition doc {{ relation rel: doc\n permission per = {} }}",
            terms.join(" - ")
        );
        let errs = error_messages(&src);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("nested too deeply"), "{errs:?}");
    }

    #[test]
    fn arrow_rules() {
        let errs = error_messages(
            "definition user {}\ndefinition folder { relation viewer: user }\ndefinition doc {\n relation parent: folder\n relation pub: folder | folder:*\n permission view = parent->viewer\n permission pp1 = view->viewer\n permission pp2 = pub->viewer\n permission pp3 = parent->nope\n permission pp4 = missing->viewer\n}",
        );
        assert_eq!(
            errs,
            vec![
                "the left side of an arrow must be a relation, but `view` is a permission",
                "`pub->viewer` walks relation `doc#pub`, which allows the wildcard `folder:*`",
                "`nope` is not a relation or permission of any subject type of `parent` (`folder`)",
                "`missing` is not a relation of definition `doc`",
            ]
        );
    }

    #[test]
    fn names_are_validated_without_panicking() {
        let errs = error_messages(
            "definition Doc {}\ndefinition ab {}\ndefinition t/doc {}\ndefinition doc { relation x_: doc\n permission nil = x_ }\ncaveat c1(1x int, in int) { true }",
        );
        assert_eq!(
            errs,
            vec![
                "invalid definition name `Doc`: must start with a lowercase letter",
                "invalid definition name `ab`: must be at least 3 characters long",
                "invalid definition name `t/doc`: prefix `t` must be at least 3 characters long",
                "invalid relation name `x_`: must be at least 3 characters long",
                "`nil` is a keyword and cannot name a permission",
                "invalid parameter name `1x`",
                "`in` is a reserved word of the caveat language and cannot name a parameter",
            ]
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("usr", ["user", "group"].into_iter()), Some("user"));
        assert_eq!(
            suggest("viewr", ["viewer", "owner"].into_iter()),
            Some("viewer")
        );
        // Ties resolve to the alphabetically first candidate, whatever the iteration order.
        assert_eq!(
            suggest("viewr", ["viewer", "view"].into_iter()),
            Some("view")
        );
        assert_eq!(
            suggest("viewr", ["view", "viewer"].into_iter()),
            Some("view")
        );
        assert_eq!(suggest("zzz", ["user"].into_iter()), None);
    }

    #[test]
    fn caveat_expression_problems_point_into_the_file() {
        let src =
            "definition user {}\ncaveat cav(limit int) {\n    limt > 1\n}\ncaveat other(a int) {}";
        let (schema, diags) = check_src(src);
        assert!(schema.is_none());
        let errors: Vec<&Diagnostic> = diags
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        assert_eq!(errors.len(), 2, "{errors:?}");
        // The unknown identifier is underlined where it is written.
        assert!(
            errors[0]
                .message
                .starts_with("invalid expression in caveat `cav`: ")
        );
        assert_eq!(&src[errors[0].span.clone()], "limt");
        // An empty body points at its opening brace.
        assert!(
            errors[1]
                .message
                .starts_with("invalid expression in caveat `other`: ")
        );
        assert_eq!(&src[errors[1].span.clone()], "{");
    }

    #[test]
    fn parameter_types() {
        let (schema, diags) =
            check_src("caveat c(a list<map<ipaddress>>, b any, d duration, e timestamp) { true }");
        let schema = schema.unwrap_or_else(|| panic!("{diags:?}"));
        let params = schema.caveat("c").unwrap().parameters().clone();
        assert_eq!(
            params["a"],
            CaveatType::List(Box::new(CaveatType::Map(Box::new(CaveatType::IpAddress))))
        );
        let errs = error_messages(
            "caveat c(a strin, b list, d map<string, int>, e int<int>, f list<foo>) { true }",
        );
        assert_eq!(
            errs,
            vec![
                "unknown parameter type `strin`",
                "type `list` needs a type parameter",
                "type `map` takes exactly one type parameter",
                "type `int` does not take a type parameter",
                "unknown parameter type `foo`",
            ]
        );
    }
}
