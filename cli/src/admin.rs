//! Administration commands that act on the database directly: the
//! directory sync and import, and local staff accounts.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use flotte_config::Settings;
use flotte_core::audit::AuditEntry;
use flotte_core::directory::Role;
use flotte_core::{Clock, SystemClock};
use flotte_storage::{DirectoryRun, RunKind, RunStatus, Store};

/// Passwords shorter than this are refused for local accounts.
const MIN_PASSWORD_LEN: usize = 10;

async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&settings.data_dir)?;
    let store = Store::connect(&settings.database_url()).await?;
    store.migrate().await?;
    Ok(store)
}

fn print_run(run: &DirectoryRun) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(run)?);
    match run.status {
        RunStatus::Applied => Ok(()),
        status => Err(anyhow::anyhow!(
            "directory run {} {}: {}",
            run.id,
            status.as_str(),
            run.error.as_deref().unwrap_or("no reason recorded")
        )),
    }
}

/// `flotte directory sync`: read LDAP, plan and apply now, in this process,
/// and print the report. Exits non-zero when nothing was applied.
pub async fn directory_sync(settings: Settings, full: bool) -> anyhow::Result<()> {
    let Some(ldap) = crate::ldap_settings(&settings)? else {
        anyhow::bail!(
            "no LDAP directory is configured (FLOTTE_LDAP_URL); use `flotte directory import FILE`"
        );
    };
    let store = open_store(&settings).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let kind = if full {
        RunKind::Full
    } else {
        RunKind::Incremental
    };
    let run = store
        .start_directory_run(kind, "cli", "cli", clock.now())
        .await?;
    let source = flotte_directory::LdapSource::new(ldap);
    let run = flotte_worker::perform_directory_sync(
        &store,
        &settings,
        clock.as_ref(),
        &source,
        &run.id,
        full,
    )
    .await?;
    print_run(&run)
}

/// `flotte directory import FILE`: the local directory from a UCS@school CSV.
pub async fn directory_import(
    settings: Settings,
    file: &Path,
    role: Option<String>,
) -> anyhow::Result<()> {
    if settings.ldap.is_configured() {
        anyhow::bail!("the directory comes from LDAP; a CSV import is only for running without it");
    }
    let bytes = std::fs::read(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let store = open_store(&settings).await?;
    let actor = AuditEntry::new("cli", "directory.import", "")
        .from_source(Some(file.display().to_string()));
    let run = flotte_server::api::import_csv(
        &store,
        &bytes,
        role,
        &flotte_server::api::sync_policy(&settings),
        "cli",
        &actor,
        &SystemClock,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    print_run(&run)
}

/// What `flotte user add` was asked for.
pub struct NewUser {
    pub username: String,
    pub school: Option<String>,
    pub role: Option<String>,
    pub technician: bool,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub password_stdin: bool,
}

fn parse_role(role: &str) -> anyhow::Result<Role> {
    Ok(match role {
        "teacher" => Role::Teacher,
        "staff" => Role::Staff,
        "school_admin" => Role::SchoolAdmin,
        other => anyhow::bail!("--role must be teacher, staff or school_admin, got {other:?}"),
    })
}

/// Reads the password: one line from stdin with `--password-stdin`, else
/// asked twice on the terminal without echo (through `stty`).
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if from_stdin || !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let ask = |prompt: &str| -> anyhow::Result<String> {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
        let _ = std::process::Command::new("stty").arg("-echo").status();
        let mut line = String::new();
        let read = stdin.lock().read_line(&mut line);
        let _ = std::process::Command::new("stty").arg("echo").status();
        eprintln!();
        read?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    let first = ask("Passwort: ")?;
    if ask("Passwort wiederholen: ")? != first {
        anyhow::bail!("the passwords differ");
    }
    Ok(first)
}

/// `flotte user add`: a local staff account (only without LDAP). With
/// `--school` and `--role`, a person is created in the local directory when
/// none has this user name; a person from a CSV import just gets a password.
pub async fn user_add(settings: Settings, user: NewUser) -> anyhow::Result<()> {
    if settings.ldap.is_configured() {
        anyhow::bail!(
            "with LDAP configured, staff sign in with their directory password; local accounts are not used"
        );
    }
    let username = user.username.trim().to_owned();
    if username.is_empty() || username.chars().any(char::is_whitespace) {
        anyhow::bail!("the user name must not be empty or contain spaces");
    }
    let role = user.role.as_deref().map(parse_role).transpose()?;
    let store = open_store(&settings).await?;
    let now = SystemClock.now();
    let actor = AuditEntry::new("cli", "account.set_password", "");
    if !user.technician {
        let existing = store.staff_facts_for_login(None, &username).await?;
        match (existing, &user.school, role) {
            (Some(_), _, _) => {}
            (None, Some(school), Some(role)) => {
                store
                    .ensure_local_person(
                        &username,
                        user.given_name.as_deref().unwrap_or(&username),
                        user.family_name.as_deref().unwrap_or(""),
                        school,
                        role,
                        &flotte_directory::csv::person_id(&username).to_string(),
                        &AuditEntry::new("cli", "person.create", ""),
                        now,
                    )
                    .await?;
            }
            (None, _, _) => anyhow::bail!(
                "{username} is not in the local directory: import them with the CSV, or give --school CODE --role teacher"
            ),
        }
    }
    let password = read_password(user.password_stdin)?;
    if password.chars().count() < MIN_PASSWORD_LEN {
        anyhow::bail!("the password needs at least {MIN_PASSWORD_LEN} characters");
    }
    let hash = flotte_server::local_auth::hash_password(&password)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    store
        .set_local_account(&username, &hash, user.technician, &actor, now)
        .await?;
    eprintln!(
        "local account {username} is ready{}",
        if user.technician { " (technician)" } else { "" }
    );
    Ok(())
}
