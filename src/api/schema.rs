//! `authzed.api.v1.SchemaService`: ReadSchema, WriteSchema and ReflectSchema. The schema
//! analysis RPCs (ComputablePermissions, DependentRelations, DiffSchema) are not offered yet
//! and answer UNIMPLEMENTED.

use tonic::{Request, Response, Status};

use crate::api::proto::authzed::api::v1 as pb;
use crate::auth::Capability;
use crate::consistency::Consistency;
use crate::schema::{AllowedSubjectKind, Definition, Schema};

use super::call::{Backend, Rpc, RpcType};
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

    fn unimplemented<T>(&self, method: &'static str) -> Result<Response<T>, Status> {
        Err(Rpc::start(SERVICE, method, RpcType::Unary).reject(Status::unimplemented(format!(
            "SchemaService.{method} is not implemented by Tessera; ReadSchema and ReflectSchema describe the schema"
        ))))
    }
}

/// A validated ReflectSchema filter.
struct ReflectionFilter {
    definition: Option<String>,
    caveat: Option<String>,
    relation: Option<String>,
    permission: Option<String>,
}

fn reflection_filters(
    filters: &[pb::ReflectionSchemaFilter],
) -> Result<Vec<ReflectionFilter>, crate::service::ServiceError> {
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
        .map(|c| pb::ReflectionCaveat {
            name: c.name().to_string(),
            comment: schema
                .caveat_docs
                .get(c.name())
                .cloned()
                .unwrap_or_default(),
            parameters: c
                .parameters()
                .iter()
                .map(|(name, ty)| pb::ReflectionCaveatParameter {
                    name: name.clone(),
                    r#type: ty.to_string(),
                    parent_caveat_name: c.name().to_string(),
                })
                .collect(),
            expression: c.expression_text().to_string(),
        })
        .collect();
    (definitions, caveats)
}

fn reflect_definition(
    def: &Definition,
    include: impl Fn(&str, bool) -> bool,
) -> pb::ReflectionDefinition {
    use pb::reflection_type_reference::Typeref;
    let mut relations = Vec::new();
    let mut permissions = Vec::new();
    for rel in def.relations.values() {
        if !include(&rel.name, rel.is_permission()) {
            continue;
        }
        let comment = rel.doc.clone().unwrap_or_default();
        if rel.is_permission() {
            permissions.push(pb::ReflectionPermission {
                name: rel.name.clone(),
                comment,
                parent_definition_name: def.name.clone(),
            });
            continue;
        }
        let subject_types = rel
            .allowed()
            .iter()
            .map(|a| pb::ReflectionTypeReference {
                subject_definition_name: a.subject_type.clone(),
                optional_caveat_name: a.caveat.clone().unwrap_or_default(),
                typeref: Some(match &a.kind {
                    AllowedSubjectKind::Direct => Typeref::IsTerminalSubject(true),
                    AllowedSubjectKind::Relation(r) => Typeref::OptionalRelationName(r.clone()),
                    AllowedSubjectKind::Wildcard => Typeref::IsPublicWildcard(true),
                }),
            })
            .collect();
        relations.push(pb::ReflectionRelation {
            name: rel.name.clone(),
            comment,
            parent_definition_name: def.name.clone(),
            subject_types,
        });
    }
    pb::ReflectionDefinition {
        name: def.name.clone(),
        comment: def.doc.clone().unwrap_or_default(),
        relations,
        permissions,
    }
}

#[tonic::async_trait]
impl SchemaService for SchemaApi {
    async fn read_schema(
        &self,
        request: Request<pb::ReadSchemaRequest>,
    ) -> Result<Response<pb::ReadSchemaResponse>, Status> {
        let rpc = Rpc::start(SERVICE, "ReadSchema", RpcType::Unary);
        let backend = self.backend.clone();
        rpc.unary(async move {
            let caller = backend.authenticate(&request)?;
            let (text, revision) = backend
                .blocking(move |b| {
                    b.authorize(&caller, &Capability::Read)?;
                    b.tessera.read_schema(Consistency::FullyConsistent)
                })
                .await?;
            Ok(pb::ReadSchemaResponse {
                schema_text: text,
                read_at: Some(convert::zookie(revision)),
            })
        })
        .await
    }

    async fn write_schema(
        &self,
        request: Request<pb::WriteSchemaRequest>,
    ) -> Result<Response<pb::WriteSchemaResponse>, Status> {
        let rpc = Rpc::start(SERVICE, "WriteSchema", RpcType::Unary);
        let backend = self.backend.clone();
        rpc.unary(async move {
            let caller = backend.authenticate(&request)?;
            let text = request.into_inner().schema;
            let revision = backend
                .blocking(move |b| {
                    b.authorize(&caller, &Capability::WriteSchema)?;
                    b.tessera.write_schema(&text, Some(caller.id))
                })
                .await?;
            Ok(pb::WriteSchemaResponse {
                written_at: Some(convert::zookie(revision)),
            })
        })
        .await
    }

    async fn reflect_schema(
        &self,
        request: Request<pb::ReflectSchemaRequest>,
    ) -> Result<Response<pb::ReflectSchemaResponse>, Status> {
        let rpc = Rpc::start(SERVICE, "ReflectSchema", RpcType::Unary);
        let backend = self.backend.clone();
        rpc.unary(async move {
            let caller = backend.authenticate(&request)?;
            let req = request.into_inner();
            let consistency = convert::consistency(req.consistency.as_ref())?;
            let filters = reflection_filters(&req.optional_filters)?;
            backend
                .blocking(move |b| {
                    b.authorize(&caller, &Capability::Read)?;
                    let view = b.tessera.view(consistency)?;
                    let (definitions, caveats) = reflect(view.schema()?, &filters);
                    Ok(pb::ReflectSchemaResponse {
                        definitions,
                        caveats,
                        read_at: Some(convert::zookie(view.revision())),
                    })
                })
                .await
        })
        .await
    }

    async fn computable_permissions(
        &self,
        _request: Request<pb::ComputablePermissionsRequest>,
    ) -> Result<Response<pb::ComputablePermissionsResponse>, Status> {
        self.unimplemented("ComputablePermissions")
    }

    async fn dependent_relations(
        &self,
        _request: Request<pb::DependentRelationsRequest>,
    ) -> Result<Response<pb::DependentRelationsResponse>, Status> {
        self.unimplemented("DependentRelations")
    }

    async fn diff_schema(
        &self,
        _request: Request<pb::DiffSchemaRequest>,
    ) -> Result<Response<pb::DiffSchemaResponse>, Status> {
        self.unimplemented("DiffSchema")
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
        assert_eq!(defs[0].comment.trim(), "a person");
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
