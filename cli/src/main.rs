//! `flotte`: one binary for every role. `up` runs the server and the worker in
//! one process on the embedded defaults; `server` and `worker` run them apart
//! so that several of each can share one PostgreSQL. `profile` and `push` are
//! clients of a running server's API (docs/cli.md).

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use flotte::remote::{self, Progress, ProgressStyle, PushControl, PushRequest};
use flotte::{Runtime, init_tracing};
use flotte_core::assignment::{AssignmentScope, PushAction, TargetStatus};
use flotte_core::device::Platform;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

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
    /// Profile templates, through the API of a running server: list, show, create, update, validate.
    Profile {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: ProfileCommand,
    },
    /// Bulk pushes of profiles, through the API of a running server, with a progress bar.
    Push {
        #[command(flatten)]
        remote: RemoteArgs,
        #[command(subcommand)]
        command: PushCommand,
    },
}

/// How `flotte profile` and `flotte push` reach the API. They are HTTPS clients: a command
/// passes the same authorisation, school scoping and audit log as any API call.
#[derive(Args)]
struct RemoteArgs {
    /// Flotte's base URL [default: the settings' public URL].
    #[arg(long, global = true, env = "FLOTTE_URL", help_heading = "Connection")]
    url: Option<String>,
    /// An API bearer token [default: FLOTTE_ADMIN_TOKEN, else the contents of <data dir>/admin-token].
    #[arg(
        long,
        global = true,
        env = "FLOTTE_TOKEN",
        hide_env_values = true,
        help_heading = "Connection"
    )]
    token: Option<String>,
    /// PEM of the CA that signed the server's TLS certificate [default: <data dir>/ca.pem].
    #[arg(long, global = true, env = "FLOTTE_CA", help_heading = "Connection")]
    ca: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ProfileCommand {
    /// Every template, newest version each (JSON).
    List,
    /// One template (by id or identifier) in its newest version.
    Show { id: String },
    /// Every saved version of a template, oldest first.
    Versions { id: String },
    /// Save a new template (version 1) from a JSON file (`-` for standard input).
    Create { file: PathBuf },
    /// Save a JSON file as the next version of a template; the identifier must stay.
    Update { id: String, file: PathBuf },
    /// Check a template with the server's rules without saving it; exits 1 with the reasons when invalid.
    Validate { file: PathBuf },
}

const PUSH_EXIT_STATUS: &str = "Exit status when following a push: 0 when it completed and every \
device acknowledged it (or already had it); 3 when it completed with failed or expired devices \
(see `flotte push devices ID --status failed`); 4 when it was cancelled; 1 on any other error, \
with the server's message. Ctrl-C stops following, not the push.";

#[derive(Subcommand)]
enum PushCommand {
    /// Queue a push of a profile to a scope and print it (JSON); --wait follows it to the end.
    #[command(after_help = PUSH_EXIT_STATUS)]
    Start(StartArgs),
    /// The newest pushes you may see (JSON).
    List,
    /// A push with its devices counted per status (JSON).
    Status { id: String },
    /// A push's devices with status, command and error (JSON).
    Devices {
        id: String,
        /// Only devices in this status: pending, queued, sent, not_now, acknowledged, failed,
        /// unchanged, superseded, cancelled or expired.
        #[arg(long, value_parser = parse_target_status)]
        status: Option<TargetStatus>,
        /// At most this many (the server caps at 5000; default 500).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Follow a push's progress until it is finished, then print it (JSON).
    #[command(after_help = PUSH_EXIT_STATUS)]
    Watch { id: String },
    /// Stop planning further devices; commands already queued stay.
    Pause { id: String },
    /// Continue a paused push.
    Resume { id: String },
    /// Cancel a push: pending devices are skipped, unsent commands withdrawn.
    Cancel { id: String },
}

#[derive(Args)]
#[command(group(
    ArgGroup::new("scope")
        .required(true)
        .args(["all", "school", "class", "platform", "group", "device"])
))]
struct StartArgs {
    /// The template (id or identifier); leave out for --action sync.
    #[arg(long)]
    profile: Option<String>,
    /// The version to install [default: the newest].
    #[arg(long)]
    version: Option<i32>,
    /// install assigns the version to the scope; remove withdraws the assignment; sync brings
    /// every device of the scope to its desired state (all profiles).
    #[arg(long, value_enum, default_value_t = ActionArg::Install)]
    action: ActionArg,
    /// Scope: every device (technicians only).
    #[arg(long)]
    all: bool,
    /// Scope: the devices of one school (code or id).
    #[arg(long, value_name = "CODE")]
    school: Option<String>,
    /// Scope: the devices lent to pupils of one class (id or directory id).
    #[arg(long, value_name = "ID")]
    class: Option<String>,
    /// Scope: every device of one platform (technicians only).
    #[arg(long, value_enum)]
    platform: Option<PlatformArg>,
    /// Scope: the members of a device group (name or id).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Scope: one device (id, UDID or serial number).
    #[arg(long, value_name = "ID")]
    device: Option<String>,
    /// Devices per fan-out job [default: the server's profiles.push_batch_size].
    #[arg(long)]
    batch_size: Option<u32>,
    /// Wake devices again that stay silent this long [default: the server's profiles.silent_after_secs].
    #[arg(long, value_name = "SECS")]
    silent_after_secs: Option<u64>,
    /// Follow the push's progress until it is finished (see the exit status below).
    #[arg(long)]
    wait: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ActionArg {
    Install,
    Remove,
    Sync,
}

#[derive(Clone, Copy, ValueEnum)]
enum PlatformArg {
    Apple,
    Windows,
}

fn parse_target_status(text: &str) -> Result<TargetStatus, String> {
    text.parse()
        .map_err(|e: flotte_core::CoreError| e.to_string())
}

impl StartArgs {
    fn request(&self) -> PushRequest {
        let scope = if let Some(code) = &self.school {
            AssignmentScope::School(code.clone())
        } else if let Some(class) = &self.class {
            AssignmentScope::Class(class.clone())
        } else if let Some(platform) = self.platform {
            AssignmentScope::Platform(match platform {
                PlatformArg::Apple => Platform::Apple,
                PlatformArg::Windows => Platform::Windows,
            })
        } else if let Some(group) = &self.group {
            AssignmentScope::DeviceGroup(group.clone())
        } else if let Some(device) = &self.device {
            AssignmentScope::Device(device.clone())
        } else {
            // clap's "scope" group lets exactly one through; what is left is --all.
            AssignmentScope::All
        };
        PushRequest {
            profile: self.profile.clone(),
            version: self.version,
            action: match self.action {
                ActionArg::Install => PushAction::Install,
                ActionArg::Remove => PushAction::Remove,
                ActionArg::Sync => PushAction::Sync,
            },
            scope,
            batch_size: self.batch_size,
            silent_after_secs: self.silent_after_secs,
        }
    }
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // The remote commands load the settings only for the defaults they need, and log
    // nothing: their standard output is JSON for the next program in a pipe.
    match cli.command {
        Command::Profile { remote, command } => {
            return exit_on_push_end(runtime.block_on(until_interrupted(profile(
                cli.config.as_deref(),
                remote,
                command,
            ))));
        }
        Command::Push { remote, command } => {
            return exit_on_push_end(runtime.block_on(until_interrupted(push(
                cli.config.as_deref(),
                remote,
                command,
            ))));
        }
        _ => {}
    }
    let settings = flotte_config::Settings::load(cli.config.as_deref())?;
    init_tracing(&settings);
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
            Command::Profile { .. } | Command::Push { .. } => {
                unreachable!("the remote commands return above")
            }
        }
    })
}

fn connect(config: Option<&Path>, remote: RemoteArgs) -> anyhow::Result<flotte::client::Client> {
    let connection =
        flotte::client::resolve_connection(remote.url, remote.token, remote.ca, || {
            flotte_config::Settings::load(config).map_err(Into::into)
        })?;
    flotte::client::Client::new(&connection)
}

async fn profile(
    config: Option<&Path>,
    remote: RemoteArgs,
    command: ProfileCommand,
) -> anyhow::Result<()> {
    let client = connect(config, remote)?;
    let mut stdout = std::io::stdout();
    let out = &mut stdout;
    match command {
        ProfileCommand::List => remote::profile_list(&client, out).await?,
        ProfileCommand::Show { id } => remote::profile_show(&client, &id, out).await?,
        ProfileCommand::Versions { id } => remote::profile_versions(&client, &id, out).await?,
        ProfileCommand::Create { file } => remote::profile_create(&client, &file, out).await?,
        ProfileCommand::Update { id, file } => {
            remote::profile_update(&client, &id, &file, out).await?
        }
        ProfileCommand::Validate { file } => remote::profile_validate(&client, &file, out).await?,
    };
    Ok(())
}

async fn push(
    config: Option<&Path>,
    remote: RemoteArgs,
    command: PushCommand,
) -> anyhow::Result<()> {
    let client = connect(config, remote)?;
    let mut stdout = std::io::stdout();
    let out = &mut stdout;
    let mut stderr = std::io::stderr();
    let style = if stderr.is_terminal() {
        ProgressStyle::Redraw {
            width: terminal_width(),
        }
    } else {
        ProgressStyle::Lines
    };
    let mut progress = Progress::new(&mut stderr, style);
    match command {
        PushCommand::Start(args) => {
            let wait = args.wait.then_some(&mut progress);
            remote::push_start(&client, &args.request(), wait, out).await?
        }
        PushCommand::List => remote::push_list(&client, out).await?,
        PushCommand::Status { id } => remote::push_status(&client, &id, out).await?,
        PushCommand::Devices { id, status, limit } => {
            remote::push_devices(&client, &id, status, limit, out).await?
        }
        PushCommand::Watch { id } => remote::push_watch(&client, &id, &mut progress, out).await?,
        PushCommand::Pause { id } => {
            remote::push_control(&client, &id, PushControl::Pause, out).await?
        }
        PushCommand::Resume { id } => {
            remote::push_control(&client, &id, PushControl::Resume, out).await?
        }
        PushCommand::Cancel { id } => {
            remote::push_control(&client, &id, PushControl::Cancel, out).await?
        }
    };
    Ok(())
}

/// Terminal columns as the shell exports them; 80 otherwise (reading the terminal's size
/// needs an ioctl, and this crate has no unsafe code).
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
        .filter(|&c: &usize| c > 0)
        .unwrap_or(80)
}

/// Ctrl-C stops following a push, not the push; the drawn progress line is ended first so
/// the shell's prompt starts on a line of its own.
async fn until_interrupted(
    command: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    tokio::select! {
        result = command => result,
        _ = tokio::signal::ctrl_c() => {
            eprintln!();
            std::process::exit(130);
        }
    }
}

/// A followed push that ended badly exits with its own status (see `PUSH_EXIT_STATUS`);
/// a reader that stopped reading (`| head`) is no error of ours.
fn exit_on_push_end(result: anyhow::Result<()>) -> anyhow::Result<()> {
    if let Err(e) = &result {
        if let Some(ended) = e.downcast_ref::<remote::PushEnded>() {
            eprintln!("Error: {ended}");
            std::process::exit(i32::from(ended.code));
        }
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            std::process::exit(0);
        }
    }
    result
}
