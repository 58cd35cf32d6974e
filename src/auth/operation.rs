//! Which capabilities each operation of the API needs: the one table every transport's calls
//! are authorized by (through [`crate::service::Tessera::execute`]), so gRPC, HTTP/JSON and
//! AuthZEN can never disagree about what a caller may do.

use std::collections::BTreeSet;

use super::Capability;

/// An operation as authorization sees it: what it does, and for writes, to which resource
/// types. Built by each service request ([`crate::service::Request::operation`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// Read the schema or analyse it (ReadSchema, ReflectSchema, ComputablePermissions,
    /// DependentRelations, DiffSchema).
    ReadSchema,
    /// Replace the schema.
    WriteSchema,
    /// Read relationships (ReadRelationships, ExportBulkRelationships).
    ReadRelationships,
    /// Evaluate permissions: checks, expansion, lookups, AuthZEN evaluations and searches.
    Evaluate,
    /// Follow the change log (Watch).
    Watch,
    /// Create, touch or delete relationships of these resource types (WriteRelationships,
    /// one batch of ImportBulkRelationships). Preconditions read data, so a write with any
    /// also needs to read.
    WriteRelationships {
        resource_types: BTreeSet<String>,
        with_preconditions: bool,
    },
    /// Delete relationships of one resource type by filter (DeleteRelationships).
    DeleteRelationships {
        resource_type: String,
        with_preconditions: bool,
    },
    /// Grant, revoke or list callers' capabilities (`tessera.admin.v1.AccessService`).
    ManageAccess,
}

impl Operation {
    /// The capabilities a caller must hold, all of them, to perform this operation.
    pub fn required_capabilities(&self) -> Vec<Capability> {
        match self {
            Operation::ReadSchema
            | Operation::ReadRelationships
            | Operation::Evaluate
            | Operation::Watch => vec![Capability::Read],
            Operation::WriteSchema => vec![Capability::WriteSchema],
            Operation::WriteRelationships {
                resource_types,
                with_preconditions,
            } => {
                let mut caps: Vec<Capability> = resource_types
                    .iter()
                    .map(|t| Capability::WriteRelationships {
                        resource_type: t.clone(),
                    })
                    .collect();
                if *with_preconditions {
                    caps.push(Capability::Read);
                }
                caps
            }
            Operation::DeleteRelationships {
                resource_type,
                with_preconditions,
            } => {
                let mut caps = vec![Capability::WriteRelationships {
                    resource_type: resource_type.clone(),
                }];
                if *with_preconditions {
                    caps.push(Capability::Read);
                }
                caps
            }
            Operation::ManageAccess => vec![Capability::Admin],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table() {
        assert_eq!(
            Operation::Evaluate.required_capabilities(),
            [Capability::Read]
        );
        assert_eq!(
            Operation::WriteSchema.required_capabilities(),
            [Capability::WriteSchema]
        );
        assert_eq!(
            Operation::ManageAccess.required_capabilities(),
            [Capability::Admin]
        );
        let write = Operation::WriteRelationships {
            resource_types: ["document".to_string(), "folder".to_string()].into(),
            with_preconditions: true,
        };
        assert_eq!(
            write.required_capabilities(),
            [
                Capability::WriteRelationships {
                    resource_type: "document".into()
                },
                Capability::WriteRelationships {
                    resource_type: "folder".into()
                },
                Capability::Read,
            ]
        );
        let delete = Operation::DeleteRelationships {
            resource_type: "document".into(),
            with_preconditions: false,
        };
        assert_eq!(
            delete.required_capabilities(),
            [Capability::WriteRelationships {
                resource_type: "document".into()
            }]
        );
    }
}
