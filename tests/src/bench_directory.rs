//! The directory benchmark: a full sync of the city-sized directory (57
//! schools, 30,000 pupils, 3,000 teachers) from a real slapd through the
//! real path (LDAP read, plan, one-transaction apply), then an incremental
//! sync after 100 changes. Seconds and peak memory, on SQLite and, when a
//! PostgreSQL admin URL is given, on PostgreSQL.
//!
//! Peak memory is this process's `VmHWM` (slapd runs in its own process and
//! is not counted), reset through `/proc/self/clear_refs` before each step
//! so that generating the fixture does not count as the sync's.

use std::time::Instant;

use flotte_config::Settings;
use flotte_core::directory::{PersonState, Role};
use flotte_core::{Clock, SystemClock};
use flotte_directory::LdapSource;
use flotte_storage::{RunKind, RunStatus, Store};

use crate::slapd::{BASE_DN, CitySpec, ContentSync, Fixtures, Slapd};

/// One figure of this benchmark (the shared type of `flotte-bench`).
pub type BenchFigure = crate::benchmarks::Figure;

/// How many entries the incremental step changes.
const CHANGES: usize = 100;

/// Peak resident memory of this process so far, in MiB (`VmHWM`).
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// Start a new peak from the current resident size (Linux ≥ 4.0).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Runs the benchmark; slapd must be installed (see [`crate::slapd`]).
pub async fn run(pg_url: Option<&str>) -> anyhow::Result<Vec<BenchFigure>> {
    let spec = CitySpec::luebeck();
    let city = Fixtures::city(&spec);
    let people = spec.pupils + spec.teachers;
    // modifyTimestamp polling: works against any directory, content sync or not.
    let mut slapd = Some(
        Slapd::builder()
            .ldif(&city.ldif)
            .content_sync(ContentSync::Off)
            .start(),
    );
    drop(city);
    let mut figures = Vec::new();
    let mut databases: Vec<(&str, String, Option<tempfile::TempDir>)> = Vec::new();
    let dir = tempfile::tempdir()?;
    databases.push((
        "sqlite",
        format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
        Some(dir),
    ));
    if let Some(admin) = pg_url {
        databases.push(("postgres", fresh_postgres_database(admin).await?, None));
    }
    for (backend, url, _dir) in databases {
        // Each backend starts from the same, unchanged directory.
        let ldap = slapd.take().unwrap_or_else(|| {
            Slapd::builder()
                .ldif(&Fixtures::city(&spec).ldif)
                .content_sync(ContentSync::Off)
                .start()
        });
        figures.extend(bench_backend(backend, &url, &ldap, people).await?);
    }
    Ok(figures)
}

async fn bench_backend(
    backend: &str,
    url: &str,
    ldap: &Slapd,
    people: usize,
) -> anyhow::Result<Vec<BenchFigure>> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let mut settings = Settings::default();
    settings.directory.max_missing_share = 0.10;
    let mut ldap_settings = ldap.settings();
    ldap_settings.page_size = 1000;
    ldap_settings.timeout = std::time::Duration::from_secs(60);
    ldap_settings.technician_group_dn = None;
    let source = LdapSource::new(ldap_settings);
    let clock = SystemClock;
    let mut figures = Vec::new();

    reset_peak();
    let started = Instant::now();
    let run = store
        .start_directory_run(RunKind::Full, "bench", "bench", clock.now())
        .await?;
    let run =
        flotte_worker::perform_directory_sync(&store, &settings, &clock, &source, &run.id, true)
            .await?;
    let full_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        run.status == RunStatus::Applied,
        "full sync not applied: {:?}",
        run.error
    );
    let added = run.report.as_ref().map_or(0, |r| r.added);
    anyhow::ensure!(added == people, "full sync added {added} of {people}");
    figures.push(BenchFigure::new(
        format!("directory full sync ({backend})"),
        full_secs,
        "s",
        format!("{people} people, 57 schools; LDAP read + plan + apply in one transaction"),
    ));
    if let Some(peak) = peak_mib() {
        figures.push(BenchFigure::new(
            format!("directory full sync peak memory ({backend})"),
            peak,
            "MiB",
            "VmHWM of the syncing process (slapd not counted)",
        ));
    }

    // The first incremental read without a cookie reads everything and
    // stores the cookie the measured one starts from.
    let run = store
        .start_directory_run(RunKind::Incremental, "bench", "bench", clock.now())
        .await?;
    flotte_worker::perform_directory_sync(&store, &settings, &clock, &source, &run.id, false)
        .await?;

    ldap.modify(&hundred_changes(&store).await?);
    reset_peak();
    let started = Instant::now();
    let run = store
        .start_directory_run(RunKind::Incremental, "bench", "bench", clock.now())
        .await?;
    let run =
        flotte_worker::perform_directory_sync(&store, &settings, &clock, &source, &run.id, false)
            .await?;
    let incremental_secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        run.status == RunStatus::Applied,
        "incremental sync not applied: {:?}",
        run.error
    );
    let report = run.report.unwrap_or_default();
    anyhow::ensure!(
        report.changed + report.disabled == CHANGES,
        "expected {CHANGES} changes, got {report:?}"
    );
    figures.push(BenchFigure::new(
        format!("directory incremental sync after {CHANGES} changes ({backend})"),
        incremental_secs,
        "s",
        "modifyTimestamp poll; 90 renamed, 10 disabled",
    ));
    if let Some(peak) = peak_mib() {
        figures.push(BenchFigure::new(
            format!("directory incremental sync peak memory ({backend})"),
            peak,
            "MiB",
            "VmHWM since the step began",
        ));
    }
    store.close().await?;
    Ok(figures)
}

/// `ldapmodify` input: 90 pupils get a new family name, 10 are disabled.
async fn hundred_changes(store: &Store) -> anyhow::Result<String> {
    let known = store.load_known_directory().await?.known;
    let mut ldif = String::new();
    let pupils = known
        .people
        .iter()
        .filter(|p| p.state == PersonState::Active)
        .filter(|p| p.memberships.iter().any(|m| m.role == Role::Pupil))
        .step_by(97)
        .take(CHANGES);
    for (n, pupil) in pupils.enumerate() {
        let school = &pupil.memberships[0].school_code;
        let dn = format!(
            "uid={},cn=schueler,cn=users,ou={school},{BASE_DN}",
            pupil.username
        );
        if n < 90 {
            ldif.push_str(&format!(
                "dn: {dn}\nchangetype: modify\nreplace: sn\nsn: Neuname{n}\n-\n\n"
            ));
        } else {
            ldif.push_str(&format!(
                "dn: {dn}\nchangetype: modify\nreplace: krb5KDCFlags\nkrb5KDCFlags: 254\n-\n\n"
            ));
        }
    }
    Ok(ldif)
}

async fn fresh_postgres_database(admin_url: &str) -> anyhow::Result<String> {
    use sea_orm::{ConnectionTrait, Database};
    let name = format!("flotte_bench_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(admin_url).await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await?;
    let (base, _) = admin_url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("the PostgreSQL URL needs a database name"))?;
    Ok(format!("{base}/{name}"))
}
