//! `tessera relationship create|touch|delete REL…` and `tessera relationship read [FILTER]`.

use clap::{Args, Subcommand};
use tokio_stream::StreamExt as _;

use crate::api::proto::authzed::api::v1 as pb;
use crate::model::{
    Relationship, format_relationship, parse_relationship, validate_object_id,
    validate_object_type, validate_relation_name,
};

use super::client::{ClientArgs, Connection, ConsistencyArgs, block_on};
use super::error::{CliError, EXIT_OK};
use super::wire;

/// `tessera relationship …`
#[derive(Debug, Clone, Subcommand)]
pub enum RelationshipCommand {
    /// Create relationships (fails if any already exists); prints the `written_at` zookie.
    Create(WriteArgs),
    /// Create or replace relationships; prints the `written_at` zookie.
    Touch(WriteArgs),
    /// Delete relationships (absent ones are ignored); prints the `written_at` zookie.
    Delete(WriteArgs),
    /// Print relationships matching a filter in the text syntax, one per line.
    Read(ReadArgs),
}

#[derive(Debug, Clone, Args)]
pub struct WriteArgs {
    /// Relationships in the text syntax, written in one atomic transaction, e.g.
    /// `document:readme#viewer@user:alice`, `document:readme#viewer@group:eng#member`,
    /// `document:readme#viewer@user:bob[expiration:2030-01-01T00:00:00Z]`.
    #[arg(required = true, value_name = "REL")]
    pub relationships: Vec<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReadArgs {
    /// `TYPE[:ID][#RELATION][@SUBJECT_TYPE[:SUBJECT_ID][#SUBJECT_RELATION]]`; an ID ending in
    /// `*` is a prefix (`document:2024-*`). Without a filter, every relationship is printed.
    #[arg(value_name = "FILTER")]
    pub filter: Option<String>,
    #[command(flatten)]
    pub consistency: ConsistencyArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `tessera relationship …`; returns the exit code.
pub fn run(command: &RelationshipCommand) -> Result<u8, CliError> {
    use pb::relationship_update::Operation;
    match command {
        RelationshipCommand::Create(args) => write(args, Operation::Create, "created"),
        RelationshipCommand::Touch(args) => write(args, Operation::Touch, "touched"),
        RelationshipCommand::Delete(args) => write(args, Operation::Delete, "deleted"),
        RelationshipCommand::Read(args) => read(args),
    }
}

fn parse_all(texts: &[String]) -> Result<Vec<Relationship>, CliError> {
    texts
        .iter()
        .map(|t| {
            parse_relationship(t).map_err(|e| CliError::Usage(format!("invalid relationship: {e}")))
        })
        .collect()
}

fn write(
    args: &WriteArgs,
    op: pb::relationship_update::Operation,
    done: &str,
) -> Result<u8, CliError> {
    let relationships = parse_all(&args.relationships)?;
    let count = relationships.len();
    let updates = relationships
        .iter()
        .map(|r| pb::RelationshipUpdate {
            operation: op as i32,
            relationship: Some(wire::relationship_to_proto(r)),
        })
        .collect();
    block_on(async {
        let mut conn = Connection::open(&args.client).await?;
        let response = conn
            .permissions
            .write_relationships(pb::WriteRelationshipsRequest {
                updates,
                ..Default::default()
            })
            .await
            .map_err(|s| conn.error(s))?
            .into_inner();
        println!(
            "{}",
            response.written_at.map(|z| z.token).unwrap_or_default()
        );
        let noun = if count == 1 {
            "relationship"
        } else {
            "relationships"
        };
        eprintln!("{done} {count} {noun}");
        Ok(EXIT_OK)
    })
}

fn usage(text: &str, reason: impl std::fmt::Display) -> CliError {
    CliError::Usage(format!("invalid filter `{text}`: {reason}"))
}

/// Parses the filter syntax of `relationship read` into a wire filter.
pub(crate) fn parse_filter(text: &str) -> Result<pb::RelationshipFilter, CliError> {
    let text = text.trim();
    let (resource_part, subject_part) = match text.split_once('@') {
        Some((r, s)) => (r, Some(s)),
        None => (text, None),
    };
    let (resource_part, relation) = match resource_part.split_once('#') {
        Some((r, rel)) => (r, Some(rel)),
        None => (resource_part, None),
    };
    let (resource_type, resource_id) = match resource_part.split_once(':') {
        Some((t, id)) => (t, Some(id)),
        None => (resource_part, None),
    };
    validate_object_type(resource_type).map_err(|e| usage(text, e))?;
    let mut filter = pb::RelationshipFilter {
        resource_type: resource_type.to_string(),
        ..Default::default()
    };
    if let Some(id) = resource_id {
        match id.strip_suffix('*') {
            Some(prefix) if !prefix.is_empty() => {
                validate_object_id(prefix, false).map_err(|e| usage(text, e))?;
                filter.optional_resource_id_prefix = prefix.to_string();
            }
            _ => {
                validate_object_id(id, false).map_err(|e| usage(text, e))?;
                filter.optional_resource_id = id.to_string();
            }
        }
    }
    if let Some(rel) = relation {
        validate_relation_name(rel).map_err(|e| usage(text, e))?;
        filter.optional_relation = rel.to_string();
    }
    if let Some(subject) = subject_part {
        let (subject, subject_relation) = match subject.split_once('#') {
            Some((s, rel)) => (s, Some(rel)),
            None => (subject, None),
        };
        let (subject_type, subject_id) = match subject.split_once(':') {
            Some((t, id)) => (t, Some(id)),
            None => (subject, None),
        };
        validate_object_type(subject_type).map_err(|e| usage(text, e))?;
        let mut sf = pb::SubjectFilter {
            subject_type: subject_type.to_string(),
            ..Default::default()
        };
        if let Some(id) = subject_id {
            validate_object_id(id, true).map_err(|e| usage(text, e))?;
            sf.optional_subject_id = id.to_string();
        }
        sf.optional_relation = match subject_relation {
            None => None,
            // `#...` selects subjects without a relation.
            Some("...") => Some(pb::subject_filter::RelationFilter {
                relation: String::new(),
            }),
            Some(rel) => {
                validate_relation_name(rel).map_err(|e| usage(text, e))?;
                Some(pb::subject_filter::RelationFilter {
                    relation: rel.to_string(),
                })
            }
        };
        filter.optional_subject_filter = Some(sf);
    }
    Ok(filter)
}

fn read(args: &ReadArgs) -> Result<u8, CliError> {
    let filter = args.filter.as_deref().map(parse_filter).transpose()?;
    let consistency = args.consistency.to_proto()?;
    block_on(async {
        let mut conn = Connection::open(&args.client).await?;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        match filter {
            Some(filter) => {
                let mut stream = conn
                    .permissions
                    .read_relationships(pb::ReadRelationshipsRequest {
                        consistency: Some(consistency),
                        relationship_filter: Some(filter),
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| conn.error(s))?
                    .into_inner();
                while let Some(item) = stream.next().await {
                    let item = item.map_err(|s| conn.error(s))?;
                    if let Some(r) = item.relationship {
                        print_line(&mut out, &wire::relationship_from_proto(r)?)?;
                    }
                }
            }
            // ReadRelationships needs a filter; the export stream reads everything.
            None => {
                let mut stream = conn
                    .permissions
                    .export_bulk_relationships(pb::ExportBulkRelationshipsRequest {
                        consistency: Some(consistency),
                        ..Default::default()
                    })
                    .await
                    .map_err(|s| conn.error(s))?
                    .into_inner();
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(|s| conn.error(s))?;
                    for r in batch.relationships {
                        print_line(&mut out, &wire::relationship_from_proto(r)?)?;
                    }
                }
            }
        }
        use std::io::Write as _;
        out.flush()
            .map_err(|e| CliError::io("cannot write to standard output", e))?;
        Ok(EXIT_OK)
    })
}

fn print_line(out: &mut impl std::io::Write, r: &Relationship) -> Result<(), CliError> {
    writeln!(out, "{}", format_relationship(r))
        .map_err(|e| CliError::io("cannot write to standard output", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let f = parse_filter("document").unwrap();
        assert_eq!(f.resource_type, "document");
        assert!(f.optional_resource_id.is_empty() && f.optional_relation.is_empty());

        let f = parse_filter("document:readme#viewer").unwrap();
        assert_eq!(
            (
                f.optional_resource_id.as_str(),
                f.optional_relation.as_str()
            ),
            ("readme", "viewer")
        );

        let f = parse_filter("document:2024-*").unwrap();
        assert_eq!(f.optional_resource_id_prefix, "2024-");
        assert!(f.optional_resource_id.is_empty());

        let f = parse_filter("document#viewer@group:eng#member").unwrap();
        let sf = f.optional_subject_filter.unwrap();
        assert_eq!(
            (sf.subject_type.as_str(), sf.optional_subject_id.as_str()),
            ("group", "eng")
        );
        assert_eq!(sf.optional_relation.unwrap().relation, "member");

        let sf = parse_filter("document@user")
            .unwrap()
            .optional_subject_filter
            .unwrap();
        assert_eq!(sf.subject_type, "user");
        assert!(sf.optional_relation.is_none());

        let sf = parse_filter("document@group:eng#...")
            .unwrap()
            .optional_subject_filter
            .unwrap();
        assert_eq!(sf.optional_relation.unwrap().relation, "");

        for bad in [
            "",
            "Doc",
            "document:",
            "document#V",
            "document@",
            "document:a b",
        ] {
            assert!(
                matches!(parse_filter(bad), Err(CliError::Usage(_))),
                "{bad:?} accepted"
            );
        }
    }
}
