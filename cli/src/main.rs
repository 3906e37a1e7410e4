//! `flotte`: one binary for every role. `up` runs the server and the worker in
//! one process on the embedded defaults; `server` and `worker` run them apart
//! so that several of each can share one PostgreSQL.

use clap::{Parser, Subcommand};
use flotte::{Runtime, init_tracing};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "flotte",
    version,
    about = "Flotte: device management for school iPads and Windows laptops",
    long_about = "Flotte enrols iPads (Apple MDM) and Windows laptops (OMA-DM), keeps their inventory, \
hands out commands and profiles, and records loans to pupils.\n\n\
Settings come from defaults, then the TOML file given with --config, then FLOTTE_* environment \
variables (e.g. FLOTTE_DATA_DIR, FLOTTE_LISTEN, FLOTTE_DATABASE_URL, FLOTTE_PUBLIC_URL, FLOTTE_ADMIN_TOKEN). \
See config/flotte.example.toml."
)]
struct Cli {
    /// A TOML configuration file.
    #[arg(long, short, global = true, env = "FLOTTE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTPS server and the background worker in one process (SQLite and a generated CA by default).
    Up,
    /// Run only the HTTPS server (start several behind a load balancer on PostgreSQL).
    Server,
    /// Run only the background worker (start several on PostgreSQL).
    Worker,
    /// Create or update the database schema, then exit.
    Migrate,
    /// The school directory: sync from LDAP, or import the local directory.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Local staff accounts (only without LDAP).
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Read LDAP now, apply the changes (unless a safety rule refuses) and print the report.
    Sync {
        /// Read everything instead of the changes since the last sync.
        #[arg(long)]
        full: bool,
    },
    /// Replace the local directory with a UCS@school import CSV (without LDAP only).
    Import {
        file: PathBuf,
        /// The role of every row when the file has no Benutzertyp column.
        #[arg(long)]
        role: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a local account or set its password (asked on the terminal, or --password-stdin).
    Add {
        username: String,
        /// School code; with --role, creates the person if the directory has none of this name.
        #[arg(long)]
        school: Option<String>,
        /// teacher, staff or school_admin.
        #[arg(long)]
        role: Option<String>,
        /// A technician (every school) instead of school staff.
        #[arg(long)]
        technician: bool,
        #[arg(long)]
        given_name: Option<String>,
        #[arg(long)]
        family_name: Option<String>,
        /// Read the password as one line from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = flotte_config::Settings::load(cli.config.as_deref())?;
    init_tracing(&settings);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let shutdown = flotte::shutdown_signal();
        match cli.command {
            Command::Migrate => Runtime::migrate_only(settings).await,
            Command::Directory(DirectoryCommand::Sync { full }) => {
                flotte::admin::directory_sync(settings, full).await
            }
            Command::Directory(DirectoryCommand::Import { file, role }) => {
                flotte::admin::directory_import(settings, &file, role).await
            }
            Command::User(UserCommand::Add {
                username,
                school,
                role,
                technician,
                given_name,
                family_name,
                password_stdin,
            }) => {
                flotte::admin::user_add(
                    settings,
                    flotte::admin::NewUser {
                        username,
                        school,
                        role,
                        technician,
                        given_name,
                        family_name,
                        password_stdin,
                    },
                )
                .await
            }
            Command::Up => {
                Runtime::start(settings)
                    .await?
                    .run(true, true, shutdown)
                    .await
            }
            Command::Server => {
                Runtime::start(settings)
                    .await?
                    .run(true, false, shutdown)
                    .await
            }
            Command::Worker => {
                Runtime::start(settings)
                    .await?
                    .run(false, true, shutdown)
                    .await
            }
        }
    })
}
