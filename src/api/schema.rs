//! `authzed.api.v1.SchemaService`: ReadSchema, WriteSchema, and the reflection RPCs
//! ReflectSchema, ComputablePermissions, DependentRelations and DiffSchema. The analyses live
//! in `schema::` (`deps.rs`, `diff.rs`); this module only translates.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::api::proto::authzed::api::v1 as pb;
use crate::model::Revision;
use crate::schema::{
    AllowedSubject, AllowedSubjectKind, CaveatEntry, Definition, MemberRef, ParameterRef, Relation,
    RelationRef, Schema, SchemaDiff,
};
use crate::service::{self, ServiceError};

use super::call::{Backend, Unary};
use super::convert;
use super::error::invalid;
use pb::schema_service_server::SchemaService;

const SERVICE: &str = "authzed.api.v1.SchemaService";

/// The SchemaService implementation.
pub struct SchemaApi {
    backend: Backend,
}

impl SchemaApi {
    pub(crate) fn new(backend: Backend) -> Self {
        SchemaApi { backend }
    }
}

/// A validated ReflectSchema filter.
pub struct ReflectionFilter {
    definition: Option<String>,
    caveat: Option<String>,
    relation: Option<String>,
    permission: Option<String>,
}

fn reflection_filters(
    filters: &[pb::ReflectionSchemaFilter],
) -> Result<Vec<ReflectionFilter>, ServiceError> {
    crate::service::check_filter_count("optional_filters", filters.len())?;
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let filter = ReflectionFilter {
                definition: non_empty(&f.optional_definition_name_filter),
                caveat: non_empty(&f.optional_caveat_name_filter),
                relation: non_empty(&f.optional_relation_name_filter),
                permission: non_empty(&f.optional_permission_name_filter),
            };
            if filter.definition.is_none()
                && (filter.relation.is_some() || filter.permission.is_some())
            {
                return Err(invalid(
                    &format!("optional_filters[{i}]"),
                    "relation and permission name filters need a definition name filter",
                ));
            }
            Ok(filter)
        })
        .collect()
}

/// The schema as reflection messages. Filters are prefixes and any filter may select an
/// element; without filters everything is returned.
fn reflect(
    schema: &Schema,
    filters: &[ReflectionFilter],
) -> (Vec<pb::ReflectionDefinition>, Vec<pb::ReflectionCaveat>) {
    let all = filters.is_empty();
    let definitions = schema
        .definitions
        .values()
        .filter_map(|def| {
            if all {
                return Some(reflect_definition(def, |_, _| true));
            }
            let matching: Vec<&ReflectionFilter> = filters
                .iter()
                .filter(|f| {
                    f.definition
                        .as_deref()
                        .is_some_and(|p| def.name.starts_with(p))
                })
                .collect();
            if matching.is_empty() {
                return None;
            }
            Some(reflect_definition(def, |name, is_permission| {
                matching.iter().any(|f| match (&f.relation, &f.permission) {
                    (None, None) => true,
                    (r, p) => {
                        let prefix = if is_permission { p } else { r };
                        prefix.as_deref().is_some_and(|p| name.starts_with(p))
                    }
                })
            }))
        })
        .collect();
    let caveats = schema
        .caveats
        .values()
        .filter(|c| {
            all || filters
                .iter()
                .any(|f| f.caveat.as_deref().is_some_and(|p| c.name().starts_with(p)))
        })
        .map(|c| {
            reflect_caveat(CaveatEntry {
                caveat: c,
                doc: schema.caveat_docs.get(c.name()).map(String::as_str),
            })
        })
        .collect();
    (definitions, caveats)
}

fn reflect_caveat(c: CaveatEntry<'_>) -> pb::ReflectionCaveat {
    let name = c.caveat.name();
    pb::ReflectionCaveat {
        name: name.to_string(),
        comment: reflected_comment(c.doc.map(str::to_string)),
        parameters: c
            .caveat
            .parameters()
            .iter()
            .map(|(parameter, ty)| {
                reflect_parameter(ParameterRef {
                    caveat: name,
                    name: parameter,
                    ty,
                })
            })
            .collect(),
        expression: c.caveat.expression_text().to_string(),
    }
}

fn reflect_parameter(p: ParameterRef<'_>) -> pb::ReflectionCaveatParameter {
    pb::ReflectionCaveatParameter {
        name: p.name.to_string(),
        r#type: p.ty.to_string(),
        parent_caveat_name: p.caveat.to_string(),
    }
}

fn reflect_definition(
    def: &Definition,
    include: impl Fn(&str, bool) -> bool,
) -> pb::ReflectionDefinition {
    let mut relations = Vec::new();
    let mut permissions = Vec::new();
    for rel in def.relations.values() {
        if !include(&rel.name, rel.is_permission()) {
            continue;
        }
        let member = MemberRef {
            definition: &def.name,
            member: rel,
        };
        if rel.is_permission() {
            permissions.push(reflect_permission(member));
        } else {
            relations.push(reflect_relation(member));
        }
    }
    pb::ReflectionDefinition {
        name: def.name.clone(),
        comment: reflected_comment(def.doc.clone()),
        relations,
        permissions,
    }
}

fn member_comment(rel: &Relation) -> String {
    reflected_comment(rel.doc.clone())
}

/// The reference returns comments with their delimiters (`/** … */`); the compiled schema
/// keeps only the text, so it is rendered back in the canonical formatter's form.
fn reflected_comment(doc: Option<String>) -> String {
    doc.map(|d| crate::schema::doc_comment_source(&d))
        .unwrap_or_default()
}

fn reflect_relation(m: MemberRef<'_>) -> pb::ReflectionRelation {
    pb::ReflectionRelation {
        name: m.member.name.clone(),
        comment: member_comment(m.member),
        parent_definition_name: m.definition.to_string(),
        subject_types: m
            .member
            .allowed()
            .iter()
            .map(reflect_subject_type)
            .collect(),
    }
}

fn reflect_subject_type(a: &AllowedSubject) -> pb::ReflectionTypeReference {
    use pb::reflection_type_reference::Typeref;
    pb::ReflectionTypeReference {
        subject_definition_name: a.subject_type.clone(),
        optional_caveat_name: a.caveat.clone().unwrap_or_default(),
        typeref: Some(match &a.kind {
            AllowedSubjectKind::Direct => Typeref::IsTerminalSubject(true),
            AllowedSubjectKind::Relation(r) => Typeref::OptionalRelationName(r.clone()),
            AllowedSubjectKind::Wildcard => Typeref::IsPublicWildcard(true),
        }),
    }
}

fn reflect_permission(m: MemberRef<'_>) -> pb::ReflectionPermission {
    pb::ReflectionPermission {
        name: m.member.name.clone(),
        comment: member_comment(m.member),
        parent_definition_name: m.definition.to_string(),
    }
}

fn relation_reference(r: RelationRef) -> pb::ReflectionRelationReference {
    pb::ReflectionRelationReference {
        definition_name: r.definition,
        relation_name: r.relation,
        is_permission: r.is_permission,
    }
}

fn diff_to_proto(d: &SchemaDiff<'_>) -> pb::ReflectionSchemaDiff {
    use pb::reflection_schema_diff::Diff;
    let whole = |def: &Definition| reflect_definition(def, |_, _| true);
    let subject_type_change =
        |relation: MemberRef<'_>, t: &AllowedSubject| pb::ReflectionRelationSubjectTypeChange {
            relation: Some(reflect_relation(relation)),
            changed_subject_type: Some(reflect_subject_type(t)),
        };
    let diff = match *d {
        SchemaDiff::DefinitionAdded(def) => Diff::DefinitionAdded(whole(def)),
        SchemaDiff::DefinitionRemoved(def) => Diff::DefinitionRemoved(whole(def)),
        SchemaDiff::DefinitionDocCommentChanged(def) => {
            Diff::DefinitionDocCommentChanged(whole(def))
        }
        SchemaDiff::RelationAdded(m) => Diff::RelationAdded(reflect_relation(m)),
        SchemaDiff::RelationRemoved(m) => Diff::RelationRemoved(reflect_relation(m)),
        SchemaDiff::RelationDocCommentChanged(m) => {
            Diff::RelationDocCommentChanged(reflect_relation(m))
        }
        SchemaDiff::RelationSubjectTypeAdded {
            relation,
            subject_type,
        } => Diff::RelationSubjectTypeAdded(subject_type_change(relation, subject_type)),
        SchemaDiff::RelationSubjectTypeRemoved {
            relation,
            subject_type,
        } => Diff::RelationSubjectTypeRemoved(subject_type_change(relation, subject_type)),
        SchemaDiff::PermissionAdded(m) => Diff::PermissionAdded(reflect_permission(m)),
        SchemaDiff::PermissionRemoved(m) => Diff::PermissionRemoved(reflect_permission(m)),
        SchemaDiff::PermissionDocCommentChanged(m) => {
            Diff::PermissionDocCommentChanged(reflect_permission(m))
        }
        SchemaDiff::PermissionExprChanged(m) => Diff::PermissionExprChanged(reflect_permission(m)),
        SchemaDiff::CaveatAdded(c) => Diff::CaveatAdded(reflect_caveat(c)),
        SchemaDiff::CaveatRemoved(c) => Diff::CaveatRemoved(reflect_caveat(c)),
        SchemaDiff::CaveatDocCommentChanged(c) => Diff::CaveatDocCommentChanged(reflect_caveat(c)),
        SchemaDiff::CaveatExprChanged(c) => Diff::CaveatExprChanged(reflect_caveat(c)),
        SchemaDiff::CaveatParameterAdded(p) => Diff::CaveatParameterAdded(reflect_parameter(p)),
        SchemaDiff::CaveatParameterRemoved(p) => Diff::CaveatParameterRemoved(reflect_parameter(p)),
        SchemaDiff::CaveatParameterTypeChanged {
            parameter,
            previous_type,
        } => Diff::CaveatParameterTypeChanged(pb::ReflectionCaveatParameterTypeChange {
            parameter: Some(reflect_parameter(parameter)),
            previous_type: previous_type.to_string(),
        }),
    };
    pb::ReflectionSchemaDiff { diff: Some(diff) }
}

pub struct ReadSchema;

impl Unary for ReadSchema {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "ReadSchema";
    type Request = pb::ReadSchemaRequest;
    type Response = pb::ReadSchemaResponse;
    type Op = service::ReadSchema;

    fn request(_: pb::ReadSchemaRequest) -> Result<service::ReadSchema, ServiceError> {
        Ok(service::ReadSchema)
    }

    fn response(out: service::SchemaText) -> Result<pb::ReadSchemaResponse, ServiceError> {
        Ok(pb::ReadSchemaResponse {
            schema_text: out.text,
            read_at: Some(convert::zookie(out.revision)),
        })
    }
}

pub struct WriteSchema;

impl Unary for WriteSchema {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "WriteSchema";
    type Request = pb::WriteSchemaRequest;
    type Response = pb::WriteSchemaResponse;
    type Op = service::WriteSchema;

    fn request(req: pb::WriteSchemaRequest) -> Result<service::WriteSchema, ServiceError> {
        Ok(service::WriteSchema { text: req.schema })
    }

    fn response(revision: Revision) -> Result<pb::WriteSchemaResponse, ServiceError> {
        Ok(pb::WriteSchemaResponse {
            written_at: Some(convert::zookie(revision)),
        })
    }
}

pub struct ReflectSchema;

/// ReflectSchema's request: the schema at a consistency, and the filters to apply to it.
pub struct Reflect {
    at: service::SchemaAt,
    filters: Vec<ReflectionFilter>,
}

impl service::Request for Reflect {
    type Output = (service::SchemaSnapshot, Vec<ReflectionFilter>);
    fn operation(&self) -> crate::auth::Operation {
        self.at.operation()
    }
    fn run(
        self,
        t: &service::Tessera,
        caller: &crate::auth::Caller,
    ) -> Result<Self::Output, ServiceError> {
        Ok((self.at.run(t, caller)?, self.filters))
    }
}

impl Unary for ReflectSchema {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "ReflectSchema";
    type Request = pb::ReflectSchemaRequest;
    type Response = pb::ReflectSchemaResponse;
    type Op = Reflect;

    fn request(req: pb::ReflectSchemaRequest) -> Result<Reflect, ServiceError> {
        Ok(Reflect {
            at: service::SchemaAt {
                consistency: convert::consistency(req.consistency.as_ref())?,
            },
            filters: reflection_filters(&req.optional_filters)?,
        })
    }

    fn response(
        (snapshot, filters): (service::SchemaSnapshot, Vec<ReflectionFilter>),
    ) -> Result<pb::ReflectSchemaResponse, ServiceError> {
        let (definitions, caveats) = reflect(snapshot.require()?, &filters);
        Ok(pb::ReflectSchemaResponse {
            definitions,
            caveats,
            read_at: Some(convert::zookie(snapshot.revision)),
        })
    }
}

pub struct ComputablePermissions;

impl Unary for ComputablePermissions {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "ComputablePermissions";
    type Request = pb::ComputablePermissionsRequest;
    type Response = pb::ComputablePermissionsResponse;
    type Op = service::ComputablePermissions;

    fn request(
        req: pb::ComputablePermissionsRequest,
    ) -> Result<service::ComputablePermissions, ServiceError> {
        Ok(service::ComputablePermissions {
            consistency: convert::consistency(req.consistency.as_ref())?,
            definition: convert::object_type("definition_name", &req.definition_name)?,
            // An empty relation asks about the definition's objects used directly as subjects.
            relation: convert::optional_relation("relation_name", &req.relation_name)?,
            definition_prefix: Some(req.optional_definition_name_filter).filter(|p| !p.is_empty()),
        })
    }

    fn response(
        (found, revision): (Vec<RelationRef>, Revision),
    ) -> Result<pb::ComputablePermissionsResponse, ServiceError> {
        Ok(pb::ComputablePermissionsResponse {
            permissions: found.into_iter().map(relation_reference).collect(),
            read_at: Some(convert::zookie(revision)),
        })
    }
}

pub struct DependentRelations;

impl Unary for DependentRelations {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "DependentRelations";
    type Request = pb::DependentRelationsRequest;
    type Response = pb::DependentRelationsResponse;
    type Op = service::DependentRelations;

    fn request(
        req: pb::DependentRelationsRequest,
    ) -> Result<service::DependentRelations, ServiceError> {
        Ok(service::DependentRelations {
            consistency: convert::consistency(req.consistency.as_ref())?,
            definition: convert::object_type("definition_name", &req.definition_name)?,
            permission: convert::relation("permission_name", &req.permission_name)?,
        })
    }

    fn response(
        (found, revision): (Vec<RelationRef>, Revision),
    ) -> Result<pb::DependentRelationsResponse, ServiceError> {
        Ok(pb::DependentRelationsResponse {
            relations: found.into_iter().map(relation_reference).collect(),
            read_at: Some(convert::zookie(revision)),
        })
    }
}

pub struct DiffSchema;

impl Unary for DiffSchema {
    const SERVICE: &'static str = SERVICE;
    const METHOD: &'static str = "DiffSchema";
    type Request = pb::DiffSchemaRequest;
    type Response = pb::DiffSchemaResponse;
    type Op = service::DiffSchema;

    fn request(req: pb::DiffSchemaRequest) -> Result<service::DiffSchema, ServiceError> {
        Ok(service::DiffSchema {
            consistency: convert::consistency(req.consistency.as_ref())?,
            comparison: req.comparison_schema,
        })
    }

    fn response(
        (snapshot, comparison): (service::SchemaSnapshot, Arc<Schema>),
    ) -> Result<pb::DiffSchemaResponse, ServiceError> {
        // Before the first WriteSchema the stored schema is empty: every element of the
        // comparison schema is an addition.
        let existing = snapshot.schema.unwrap_or_default();
        let diffs = crate::schema::diff_schemas(&existing, &comparison)
            .iter()
            .map(diff_to_proto)
            .collect();
        Ok(pb::DiffSchemaResponse {
            diffs,
            read_at: Some(convert::zookie(snapshot.revision)),
        })
    }
}

#[tonic::async_trait]
impl SchemaService for SchemaApi {
    async fn read_schema(
        &self,
        request: Request<pb::ReadSchemaRequest>,
    ) -> Result<Response<pb::ReadSchemaResponse>, Status> {
        self.backend.grpc_unary::<ReadSchema>(request).await
    }

    async fn write_schema(
        &self,
        request: Request<pb::WriteSchemaRequest>,
    ) -> Result<Response<pb::WriteSchemaResponse>, Status> {
        self.backend.grpc_unary::<WriteSchema>(request).await
    }

    async fn reflect_schema(
        &self,
        request: Request<pb::ReflectSchemaRequest>,
    ) -> Result<Response<pb::ReflectSchemaResponse>, Status> {
        self.backend.grpc_unary::<ReflectSchema>(request).await
    }

    async fn computable_permissions(
        &self,
        request: Request<pb::ComputablePermissionsRequest>,
    ) -> Result<Response<pb::ComputablePermissionsResponse>, Status> {
        self.backend
            .grpc_unary::<ComputablePermissions>(request)
            .await
    }

    async fn dependent_relations(
        &self,
        request: Request<pb::DependentRelationsRequest>,
    ) -> Result<Response<pb::DependentRelationsResponse>, Status> {
        self.backend.grpc_unary::<DependentRelations>(request).await
    }

    async fn diff_schema(
        &self,
        request: Request<pb::DiffSchemaRequest>,
    ) -> Result<Response<pb::DiffSchemaResponse>, Status> {
        self.backend.grpc_unary::<DiffSchema>(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"
        /** a person */
        definition user {}
        definition group {
            relation member: user | group#member
        }
        caveat on_weekday(day int) { day < 6 }
        definition document {
            relation viewer: user | user:* | group#member | user with on_weekday
            relation editor: user
            permission view = viewer + editor
        }
    "#;

    fn schema() -> std::sync::Arc<Schema> {
        crate::schema::compile("t", SCHEMA).unwrap().schema
    }

    #[test]
    fn reflection_without_filters_returns_everything() {
        let (defs, caveats) = reflect(&schema(), &[]);
        assert_eq!(
            defs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            ["user", "group", "document"]
        );
        assert_eq!(defs[0].comment, "/** a person */");
        let doc = &defs[2];
        assert_eq!(doc.relations.len(), 2);
        assert_eq!(doc.permissions[0].name, "view");
        let viewer = &doc.relations[0].subject_types;
        assert_eq!(viewer.len(), 4);
        assert_eq!(
            viewer[2].typeref,
            Some(pb::reflection_type_reference::Typeref::OptionalRelationName("member".into()))
        );
        assert_eq!(viewer[3].optional_caveat_name, "on_weekday");
        assert_eq!(caveats[0].parameters[0].r#type, "int");
    }

    #[test]
    fn reflection_filters_select_by_prefix() {
        let filters = reflection_filters(&[pb::ReflectionSchemaFilter {
            optional_definition_name_filter: "doc".into(),
            optional_permission_name_filter: "vi".into(),
            ..Default::default()
        }])
        .unwrap();
        let (defs, caveats) = reflect(&schema(), &filters);
        assert_eq!(defs.len(), 1);
        assert!(defs[0].relations.is_empty());
        assert_eq!(defs[0].permissions.len(), 1);
        assert!(caveats.is_empty());
        let bad = reflection_filters(&[pb::ReflectionSchemaFilter {
            optional_relation_name_filter: "x".into(),
            ..Default::default()
        }]);
        assert!(bad.is_err());
    }
}
