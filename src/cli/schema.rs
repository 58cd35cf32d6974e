//! `tessera schema write FILE|-` and `tessera schema read`.

use std::io::Read;
use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::api::proto::authzed::api::v1 as pb;

use super::client::{ClientArgs, Connection, block_on};
use super::error::{CliError, EXIT_FAILURE, EXIT_OK};

/// `tessera schema …`
#[derive(Debug, Clone, Subcommand)]
pub enum SchemaCommand {
    /// Replace the server's schema with a `.zed` file (`-` reads stdin); prints the
    /// `written_at` zookie. The file is compiled locally first, so errors name the file.
    Write(SchemaWriteArgs),
    /// Print the server's current schema.
    Read(SchemaReadArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SchemaWriteArgs {
    /// The schema file, or `-` for standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Clone, Args)]
pub struct SchemaReadArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `tessera schema …`; returns the exit code.
pub fn run(command: &SchemaCommand) -> Result<u8, CliError> {
    match command {
        SchemaCommand::Write(args) => write(args),
        SchemaCommand::Read(args) => read(args),
    }
}

/// Reads a file argument, where `-` is standard input.
pub(crate) fn read_input(path: &std::path::Path) -> Result<(String, String), CliError> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::io("cannot read standard input", e))?;
        Ok(("<stdin>".to_string(), text))
    } else {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::io(format!("cannot read `{}`", path.display()), e))?;
        Ok((path.display().to_string(), text))
    }
}

fn write(args: &SchemaWriteArgs) -> Result<u8, CliError> {
    let (name, text) = read_input(&args.file)?;
    match crate::schema::compile(&name, &text) {
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            eprintln!("error: the schema in `{name}` does not compile; nothing was written");
            return Ok(EXIT_FAILURE);
        }
        Ok(out) => {
            if !out.warnings.items.is_empty() {
                eprintln!("{}", out.warnings);
            }
        }
    }
    block_on(async {
        let mut conn = Connection::open(&args.client).await?;
        let response = conn
            .schema
            .write_schema(pb::WriteSchemaRequest { schema: text })
            .await
            .map_err(|s| conn.error(s))?
            .into_inner();
        let token = response.written_at.map(|z| z.token).unwrap_or_default();
        println!("{token}");
        eprintln!("schema written");
        Ok(EXIT_OK)
    })
}

fn read(args: &SchemaReadArgs) -> Result<u8, CliError> {
    block_on(async {
        let mut conn = Connection::open(&args.client).await?;
        let response = conn
            .schema
            .read_schema(pb::ReadSchemaRequest {})
            .await
            .map_err(|s| conn.error(s))?
            .into_inner();
        let text = response.schema_text;
        if text.ends_with('\n') {
            print!("{text}");
        } else {
            println!("{text}");
        }
        Ok(EXIT_OK)
    })
}
