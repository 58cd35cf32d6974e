//! `tessera import FILE` and `tessera export [FILE]`: bulk relationship transfer.
//!
//! Files hold one relationship per line, in the text syntax
//! (`document:readme#viewer@user:alice[expiration:2030-01-01T00:00:00Z]`) or as JSON objects
//! in the API's JSON shape (`{"resource":{"objectType":"document","objectId":"readme"},
//! "relation":"viewer","subject":{"object":{"objectType":"user","objectId":"alice"}}}`;
//! snake_case field names are accepted too). Import detects the form line by line; blank lines
//! and lines starting with `//` or `#` are skipped.
//!
//! Import checks the whole input before sending anything, then streams it to
//! ImportBulkRelationships in chunks. Export streams ExportBulkRelationships and, when
//! interrupted, prints the cursor that `--resume-cursor` continues from.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt as _;

use crate::api::proto::authzed::api::v1 as pb;
use crate::model::{
    CaveatRef, Context, ObjectRef, Relationship, SubjectRef, Timestamp, format_relationship,
    parse_relationship,
};

use super::client::{ClientArgs, Connection, ConsistencyArgs, block_on};
use super::error::{CliError, EXIT_OK};
use super::relationship::parse_filter;
use super::wire;

/// Relationships asked for per export chunk when `--limit` is given.
const EXPORT_CHUNK: u64 = 1000;

/// Errors reported at most per import (the rest are counted).
const MAX_REPORTED_ERRORS: usize = 20;

/// File formats of relationships.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum TransferFormat {
    /// The text syntax, one relationship per line.
    #[default]
    Text,
    /// One JSON object per line.
    Jsonl,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Relationships in the text syntax or as JSON lines (detected per line); `-` for stdin.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Relationships per streamed message.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000), value_name = "N")]
    pub batch_size: u32,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// Where to write; `-` or nothing for standard output. With `--resume-cursor` the file
    /// is appended to.
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    pub format: TransferFormat,
    /// Only relationships matching this filter (the syntax of `relationship read`).
    #[arg(long, value_name = "FILTER")]
    pub filter: Option<String>,
    /// Continue an interrupted export from the cursor it printed (use the same --filter).
    #[arg(long, value_name = "CURSOR")]
    pub resume_cursor: Option<String>,
    /// Stop after this many relationships and print the cursor to continue from
    /// (export in parts).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub limit: Option<u64>,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub consistency: ConsistencyArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

// ---- the JSON lines shape ------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonObject {
    #[serde(alias = "object_type")]
    object_type: String,
    #[serde(alias = "object_id")]
    object_id: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonSubject {
    object: JsonObject,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        alias = "optional_relation"
    )]
    optional_relation: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonCaveat {
    #[serde(alias = "caveat_name")]
    caveat_name: String,
    #[serde(default, skip_serializing_if = "Context::is_empty")]
    context: Context,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct JsonRelationship {
    resource: JsonObject,
    relation: String,
    subject: JsonSubject,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "optional_caveat"
    )]
    optional_caveat: Option<JsonCaveat>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "optional_expires_at"
    )]
    optional_expires_at: Option<Timestamp>,
}

impl From<&Relationship> for JsonRelationship {
    fn from(r: &Relationship) -> Self {
        let object = |o: &ObjectRef| JsonObject {
            object_type: o.object_type.clone(),
            object_id: o.object_id.clone(),
        };
        JsonRelationship {
            resource: object(&r.resource),
            relation: r.relation.clone(),
            subject: JsonSubject {
                object: object(&r.subject.object),
                optional_relation: r.subject.relation.clone().unwrap_or_default(),
            },
            optional_caveat: r.caveat.as_ref().map(|c| JsonCaveat {
                caveat_name: c.name.clone(),
                context: c.context.clone(),
            }),
            optional_expires_at: r.expiration,
        }
    }
}

impl JsonRelationship {
    fn into_relationship(self) -> Relationship {
        let relation = self.subject.optional_relation;
        Relationship {
            resource: ObjectRef::new(self.resource.object_type, self.resource.object_id),
            relation: self.relation,
            subject: SubjectRef {
                object: ObjectRef::new(
                    self.subject.object.object_type,
                    self.subject.object.object_id,
                ),
                relation: (!relation.is_empty() && relation != "...").then_some(relation),
            },
            caveat: self.optional_caveat.map(|c| CaveatRef {
                name: c.caveat_name,
                context: c.context,
            }),
            expiration: self.optional_expires_at,
        }
    }
}

/// Parses one line of an import file; `Ok(None)` for blank and comment lines.
fn parse_line(line: &str) -> Result<Option<Relationship>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with("//") || line.starts_with('#') {
        return Ok(None);
    }
    let relationship = if line.starts_with('{') {
        let json: JsonRelationship =
            serde_json::from_str(line).map_err(|e| format!("invalid JSON relationship: {e}"))?;
        let r = json.into_relationship();
        r.validate().map_err(|e| e.to_string())?;
        r
    } else {
        parse_relationship(line).map_err(|e| e.to_string())?
    };
    Ok(Some(relationship))
}

/// Formats one relationship as a line of `format` (without the line break).
fn format_line(r: &Relationship, format: TransferFormat) -> Result<String, CliError> {
    match format {
        TransferFormat::Text => Ok(format_relationship(r)),
        TransferFormat::Jsonl => serde_json::to_string(&JsonRelationship::from(r))
            .map_err(|e| CliError::Failed(format!("cannot encode a relationship as JSON: {e}"))),
    }
}

// ---- import --------------------------------------------------------------------------------

/// The import input, readable twice (once to check, once to send).
enum Input {
    File(PathBuf),
    Memory(String),
}

impl Input {
    fn open(path: &Path) -> Result<Input, CliError> {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::io("cannot read standard input", e))?;
            return Ok(Input::Memory(text));
        }
        // Fail now on a missing or unreadable file, before any other work.
        File::open(path)
            .map_err(|e| CliError::io(format!("cannot read `{}`", path.display()), e))?;
        Ok(Input::File(path.to_path_buf()))
    }

    fn name(&self) -> String {
        match self {
            Input::File(path) => path.display().to_string(),
            Input::Memory(_) => "<stdin>".into(),
        }
    }

    fn reader(&self) -> Result<Box<dyn BufRead + Send + '_>, CliError> {
        match self {
            Input::File(path) => {
                let f = File::open(path)
                    .map_err(|e| CliError::io(format!("cannot read `{}`", path.display()), e))?;
                Ok(Box::new(BufReader::with_capacity(1 << 16, f)))
            }
            Input::Memory(text) => Ok(Box::new(text.as_bytes())),
        }
    }

    /// Calls `each` with every relationship of the input, in order, with its line number.
    fn for_each(
        &self,
        mut each: impl FnMut(usize, Result<Relationship, String>) -> bool,
    ) -> Result<(), CliError> {
        let name = self.name();
        for (i, line) in self.reader()?.lines().enumerate() {
            let line = line.map_err(|e| CliError::io(format!("cannot read `{name}`"), e))?;
            match parse_line(&line) {
                Ok(None) => {}
                Ok(Some(r)) => {
                    if !each(i + 1, Ok(r)) {
                        break;
                    }
                }
                Err(e) => {
                    if !each(i + 1, Err(e)) {
                        break;
                    }
                }
            }
        }
        Ok(())
    }
}

fn progress_bar(total: Option<u64>, hidden: bool, what: &'static str) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} relationships {msg} ({per_sec}, eta {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {pos} relationships {msg} ({per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(what);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs `tessera import`; returns the exit code.
pub fn import(args: &ImportArgs) -> Result<u8, CliError> {
    let input = Input::open(&args.file)?;
    let name = input.name();

    // Pass 1: check every line, so a bad line fails the import before anything is sent.
    let mut total: u64 = 0;
    let mut errors = Vec::new();
    let mut error_count = 0usize;
    input.for_each(|line, parsed| {
        match parsed {
            Ok(_) => total += 1,
            Err(e) => {
                error_count += 1;
                if errors.len() < MAX_REPORTED_ERRORS {
                    errors.push(format!("{name}:{line}: {e}"));
                }
            }
        }
        true
    })?;
    if error_count > 0 {
        for e in &errors {
            eprintln!("{e}");
        }
        if error_count > errors.len() {
            eprintln!("… and {} more", error_count - errors.len());
        }
        return Err(CliError::Failed(format!(
            "`{name}` has {error_count} invalid line(s); nothing was imported"
        )));
    }
    if total == 0 {
        eprintln!("`{name}` holds no relationships; nothing to import");
        return Ok(EXIT_OK);
    }

    let batch_size = args.batch_size as usize;
    let bar = progress_bar(Some(total), args.no_progress, "sent");
    let imported = block_on(async {
        let mut conn = Connection::open(&args.client).await?;
        // Pass 2 reads on the blocking pool (file reads block) and feeds the request stream;
        // it stops early when the call ends (the receiver is dropped).
        let (tx, rx) = tokio::sync::mpsc::channel::<pb::ImportBulkRelationshipsRequest>(4);
        let producer = tokio::task::spawn_blocking(move || -> Result<(), CliError> {
            let mut batch = Vec::with_capacity(batch_size);
            let mut open = true;
            input.for_each(|_, parsed| {
                if let Ok(r) = parsed {
                    batch.push(wire::relationship_to_proto(&r));
                }
                if batch.len() >= batch_size {
                    let relationships =
                        std::mem::replace(&mut batch, Vec::with_capacity(batch_size));
                    open = tx
                        .blocking_send(pb::ImportBulkRelationshipsRequest { relationships })
                        .is_ok();
                }
                open
            })?;
            if open && !batch.is_empty() {
                let _ = tx.blocking_send(pb::ImportBulkRelationshipsRequest {
                    relationships: batch,
                });
            }
            Ok(())
        });
        let shown = bar.clone();
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |req| {
            shown.inc(req.relationships.len() as u64);
            req
        });
        let result = conn.permissions.import_bulk_relationships(stream).await;
        let produced = producer
            .await
            .map_err(|e| CliError::Failed(format!("reading the input failed: {e}")))?;
        let response = result.map_err(|s| conn.error(s))?.into_inner();
        produced?;
        Ok(response.num_loaded)
    });
    bar.finish_and_clear();
    let imported = imported?;
    eprintln!("imported {imported} relationships from `{name}`");
    Ok(EXIT_OK)
}

// ---- export --------------------------------------------------------------------------------

/// Runs `tessera export`; returns the exit code.
pub fn export(args: &ExportArgs) -> Result<u8, CliError> {
    let filter = args.filter.as_deref().map(parse_filter).transpose()?;
    let consistency = args.consistency.to_proto()?;
    // `-` is standard output, as `import -` reads standard input.
    let file = args.file.as_ref().filter(|p| p.as_os_str() != "-");
    let mut out: Box<dyn Write> = match file {
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .append(args.resume_cursor.is_some())
                .truncate(args.resume_cursor.is_none())
                .open(path)
                .map_err(|e| CliError::io(format!("cannot write `{}`", path.display()), e))?;
            Box::new(BufWriter::with_capacity(1 << 16, file))
        }
    };
    let target = file
        .map(|p| format!("`{}`", p.display()))
        .unwrap_or_else(|| "standard output".into());
    let write_err = |e: std::io::Error| CliError::io(format!("cannot write to {target}"), e);

    let bar = progress_bar(None, args.no_progress, "exported");
    let mut cursor = args.resume_cursor.clone();
    let mut exported: u64 = 0;
    let mut stopped_at_limit = false;
    let result: Result<(), CliError> = block_on(async {
        let mut conn = Connection::open(&args.client).await?;
        // One request normally; with --limit, the last request asks for exactly what is left
        // so the cursor lands on the limit.
        'requests: loop {
            let remaining = args.limit.map(|l| l.saturating_sub(exported));
            if remaining == Some(0) {
                stopped_at_limit = true;
                break;
            }
            // 0 lets the server choose its chunk size.
            let chunk = remaining.map_or(0, |r| r.min(EXPORT_CHUNK) as u32);
            let mut stream = conn
                .permissions
                .export_bulk_relationships(pb::ExportBulkRelationshipsRequest {
                    consistency: Some(consistency.clone()),
                    optional_limit: chunk,
                    optional_cursor: cursor.clone().map(|token| pb::Cursor { token }),
                    optional_relationship_filter: filter.clone(),
                })
                .await
                .map_err(|s| conn.error(s))?
                .into_inner();
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(|s| conn.error(s))?;
                for r in batch.relationships {
                    let line = format_line(&wire::relationship_from_proto(r)?, args.format)?;
                    writeln!(out, "{line}").map_err(write_err)?;
                    exported += 1;
                }
                // The cursor is recorded only once its batch is written out.
                out.flush().map_err(write_err)?;
                if let Some(c) = batch.after_result_cursor {
                    cursor = Some(c.token);
                }
                bar.set_position(exported);
                if let Some(limit) = args.limit {
                    let left = limit.saturating_sub(exported);
                    if left == 0 {
                        stopped_at_limit = true;
                        break 'requests;
                    }
                    if left < u64::from(chunk) {
                        continue 'requests;
                    }
                }
            }
            break;
        }
        Ok(())
    });
    bar.finish_and_clear();
    let flushed = out.flush().map_err(write_err);
    let resume_hint = |cursor: &str| {
        let mut command = String::from("tessera export");
        if let Some(p) = &args.file {
            command.push_str(&format!(" {}", shell_quote(&p.display().to_string())));
        }
        if args.format != TransferFormat::Text {
            command.push_str(" --format jsonl");
        }
        if let Some(f) = &args.filter {
            command.push_str(&format!(" --filter {}", shell_quote(f)));
        }
        format!("{command} --resume-cursor {cursor}")
    };
    match result.and(flushed) {
        Ok(()) => {
            eprintln!("exported {exported} relationships to {target}");
            if stopped_at_limit && let Some(c) = &cursor {
                eprintln!("stopped at --limit; continue with: {}", resume_hint(c));
            }
            Ok(EXIT_OK)
        }
        Err(e) => {
            eprintln!("export interrupted after {exported} relationships");
            if let Some(c) = cursor.filter(|_| exported > 0 || args.resume_cursor.is_some()) {
                eprintln!("resume with: {}", resume_hint(&c));
            }
            Err(e)
        }
    }
}

/// Quotes a shell word when it needs it.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-:=+,@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_hints_quote_for_the_shell() {
        assert_eq!(shell_quote("backup/rels.txt"), "backup/rels.txt");
        assert_eq!(shell_quote("my file"), "'my file'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(
            shell_quote("document@group:eng#member"),
            "'document@group:eng#member'"
        );
    }

    #[test]
    fn lines_in_both_forms() {
        let text = parse_line("document:readme#viewer@group:eng#member")
            .unwrap()
            .unwrap();
        let json = parse_line(
            r#"{"resource":{"objectType":"document","objectId":"readme"},"relation":"viewer","subject":{"object":{"objectType":"group","objectId":"eng"},"optionalRelation":"member"}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(text, json);
        let snake = parse_line(
            r#"{"resource":{"object_type":"document","object_id":"readme"},"relation":"viewer","subject":{"object":{"object_type":"group","object_id":"eng"},"optional_relation":"member"}}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(text, snake);
        assert_eq!(parse_line("   ").unwrap(), None);
        assert_eq!(parse_line("// comment").unwrap(), None);
        assert_eq!(parse_line("# comment").unwrap(), None);
    }

    #[test]
    fn bad_lines_name_the_problem() {
        assert!(
            parse_line("document:readme#viewer")
                .unwrap_err()
                .contains('@')
        );
        assert!(
            parse_line("{\"resource\":1}")
                .unwrap_err()
                .contains("invalid JSON relationship")
        );
        let bad_id = r#"{"resource":{"objectType":"document","objectId":"a b"},"relation":"viewer","subject":{"object":{"objectType":"user","objectId":"x"}}}"#;
        assert!(parse_line(bad_id).is_err());
    }

    #[test]
    fn json_lines_round_trip_with_caveats_and_expiration() {
        let text = r#"document:readme#viewer@user:alice[on_vpn:{"cidr":"10.0.0.0/8"}][expiration:2030-01-01T00:00:00Z]"#;
        let r = parse_relationship(text).unwrap();
        let line = format_line(&r, TransferFormat::Jsonl).unwrap();
        assert!(
            line.contains("\"optionalExpiresAt\":\"2030-01-01T00:00:00Z\""),
            "{line}"
        );
        assert!(line.contains("\"caveatName\":\"on_vpn\""), "{line}");
        assert_eq!(parse_line(&line).unwrap().unwrap(), r);
        assert_eq!(format_line(&r, TransferFormat::Text).unwrap(), text);
    }
}
