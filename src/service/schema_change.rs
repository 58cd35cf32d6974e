//! The orphan check of `WriteSchema`: a new schema must still admit every stored relationship.
//! Only relations whose allowed subjects shrank (or that disappeared) are scanned, so a typical
//! schema change that adds things reads almost nothing.

use crate::model::RelationshipFilter;
use crate::schema::{RelationKind, Schema};
use crate::store::Snapshot;

/// Returns a message naming the relation and a sample relationship when `new` would orphan data.
pub(crate) fn check_no_orphans(
    old: Option<&Schema>,
    new: &Schema,
    snapshot: &dyn Snapshot,
) -> Result<(), String> {
    let Some(old) = old else {
        return Ok(());
    };
    for (type_name, def) in &old.definitions {
        for (rel_name, rel) in &def.relations {
            let RelationKind::Relation(old_allowed) = &rel.kind else {
                continue;
            };
            let filter = RelationshipFilter {
                resource_type: Some(type_name.clone()),
                relation: Some(rel_name.clone()),
                ..Default::default()
            };
            match new.relation(type_name, rel_name).map(|r| &r.kind) {
                Some(RelationKind::Relation(new_allowed)) => {
                    if old_allowed.iter().all(|a| new_allowed.contains(a)) {
                        continue;
                    }
                    for r in snapshot.query(&filter, None).map_err(|e| e.to_string())? {
                        let r = r.map_err(|e| e.to_string())?;
                        if let Err(v) = new.validate_relationship(&r) {
                            return Err(format!(
                                "cannot change relation `{type_name}#{rel_name}`: relationship `{r}` would no longer be valid ({v}); delete such relationships first"
                            ));
                        }
                    }
                }
                other => {
                    if let Some(r) = snapshot
                        .query(&filter, None)
                        .map_err(|e| e.to_string())?
                        .next()
                    {
                        let r = r.map_err(|e| e.to_string())?;
                        let what = if other.is_some() {
                            format!("turn relation `{type_name}#{rel_name}` into a permission")
                        } else if new.definition(type_name).is_none() {
                            format!("remove definition `{type_name}`")
                        } else {
                            format!("remove relation `{type_name}#{rel_name}`")
                        };
                        return Err(format!(
                            "cannot {what}: relationships still use `{type_name}#{rel_name}`, e.g. `{r}`; delete them first"
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
