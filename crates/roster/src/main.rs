//! `roster`: the command line. Parsing only; the work is in the library (`server`, `provision`).
//!
//! Errors print as one line on stderr with a non-zero exit. Machine-readable output (credentials,
//! tenant lists, the OpenAPI document) goes to stdout; logs go to stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use roster::config::{Config, FlagOverrides, LogFormat};
use roster::{provision, server, telemetry};
use roster_domain::TenantName;
use roster_store::Store;

#[derive(Parser)]
#[command(name = "roster", version, about = "Identity and user profile management, Auth0-compatible")]
struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database: sqlite://PATH (default: sqlite://<data-dir>/roster.db) or postgres://...
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Base URL clients use to reach this server (issuers and links are built from it).
    #[arg(long, global = true, value_name = "URL")]
    public_url: Option<String>,
    /// Folder for the SQLite database and other local files.
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrates the database first).
    Serve {
        /// Address to listen on (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Where mail goes when a tenant has none of its own: smtp://[user:pass@]host[:port][?tls=starttls]
        /// or smtps://... (default: .eml files in <data-dir>/mail/).
        #[arg(long, value_name = "URL")]
        smtp_url: Option<String>,
        /// Default sender: "Name <address>" or an address.
        #[arg(long, value_name = "MAILBOX")]
        mail_from: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Print the Management API's OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its credentials as one JSON object.
    Create { name: String },
    /// List tenants as JSON lines.
    List,
    /// Delete a tenant and all its data.
    Delete {
        name: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
    },
}

/// mimalloc: the request path allocates many small objects (JSON values, strings) from two threads;
/// glibc's malloc showed up at ~15% of CPU in profiles of `GET /users/{id}`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes joined with ": ".
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let (listen, smtp_url, mail_from) = match &cli.command {
        Command::Serve { listen, smtp_url, mail_from } => (*listen, smtp_url.clone(), mail_from.clone()),
        _ => (None, None, None),
    };
    let flags = FlagOverrides {
        listen,
        public_url: cli.public_url.clone(),
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        log_format: cli.log_format,
        smtp_url,
        mail_from,
    };
    let (cfg, warnings) = Config::load(cli.config.as_deref(), &flags)?;
    let quiet_level = if matches!(cli.command, Command::Serve { .. }) { cfg.log_level.clone() } else { "warn".to_owned() };
    telemetry::init(cfg.log_format, &quiet_level);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    match cli.command {
        Command::Serve { .. } => serve(cfg).await,
        Command::Migrate => {
            server::open_store(&cfg).await?.close().await;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Openapi => {
            print!("{}", roster_http::openapi::document_json());
            Ok(())
        }
        Command::Tenant { command } => tenant(cfg, command).await,
    }
}

async fn serve(cfg: Config) -> Result<()> {
    let store = server::open_store(&cfg).await?;
    if let Some(creds) = server::bootstrap(&store, &cfg).await? {
        tracing::warn!("created the tenant 'default': its credentials are printed once on stdout, store them now");
        println!("{}", serde_json::to_string_pretty(&creds)?);
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen).await.with_context(|| format!("cannot listen on {}", cfg.listen))?;
    server::run(&cfg, store, listener, server::shutdown_signal()).await
}

async fn tenant(cfg: Config, command: TenantCommand) -> Result<()> {
    // Validate the name before touching the database.
    let parse = |n: &str| TenantName::parse(n).map_err(|e| anyhow::anyhow!("{e}"));
    match command {
        TenantCommand::Create { name } => {
            let name = parse(&name)?;
            let store = server::open_store(&cfg).await?;
            let result = provision::create_tenant(&store, name, &cfg.public_url()).await;
            store.close().await;
            println!("{}", serde_json::to_string(&result?)?);
        }
        TenantCommand::List => {
            let store = server::open_store(&cfg).await?;
            for t in store.list_tenants().await? {
                println!(
                    "{}",
                    serde_json::json!({"tenant": t.name, "issuer": roster_http::issuer_for(&cfg.public_url(), &t.name), "created_at": t.created_at})
                );
            }
            store.close().await;
        }
        TenantCommand::Delete { name, yes } => {
            let name = parse(&name)?;
            if !yes {
                bail!("deleting tenant '{name}' removes all its users and data; add --yes to confirm");
            }
            let store: Store = server::open_store(&cfg).await?;
            let deleted = store.delete_tenant(&name).await?;
            store.close().await;
            if !deleted {
                bail!("tenant '{name}' does not exist");
            }
            eprintln!("tenant '{name}' deleted");
        }
    }
    Ok(())
}
