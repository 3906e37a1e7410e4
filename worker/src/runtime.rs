//! Wiring: which job type runs on which queue, with what retry policy, on
//! which database; and the scheduler that enqueues periodic work.

use crate::jobs;
use apalis::layers::retry::RetryPolicy;
use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use flotte_config::Settings;
use flotte_core::Clock;
use flotte_core::directory::DirectorySource;
use flotte_core::jobs::{
    Job, MaintainCertificates, MaintainLoans, PersonaliseLoanDevice, PruneTables, PushBatch,
    PushProgress, ReconcileDevice, SyncDirectory, WakeDevice,
};
use flotte_core::push::PushNotifier;
use flotte_storage::{JobPool, Store};
use std::sync::Arc;
use std::time::Duration;

/// What job handlers may use.
#[derive(Clone)]
pub struct WorkerDeps {
    pub store: Store,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub pusher: Arc<dyn PushNotifier>,
    /// The LDAP directory to sync from; `None` without LDAP (local directory).
    pub directory: Option<Arc<dyn DirectorySource>>,
    /// The CA for profiles' client certificates and the profile-signing identity.
    pub profiles: Arc<jobs::ProfileKit>,
}

/// Attempts within one worker before a job is left as failed.
const RETRIES: usize = 5;

/// 1 s, 2 s, 4 s … up to a minute, with jitter so that retries after an APNs
/// outage do not arrive in lockstep.
fn backoff() -> tower::retry::backoff::ExponentialBackoff<tower::util::rng::HasherRng> {
    use tower::retry::backoff::{ExponentialBackoffMaker, MakeBackoff};
    ExponentialBackoffMaker::new(
        Duration::from_secs(1),
        Duration::from_secs(60),
        0.2,
        tower::util::rng::HasherRng::default(),
    )
    .expect("constant, valid bounds")
    .make_backoff()
}

macro_rules! job_worker {
    ($storage:expr, $job:ty, $handler:path, $name:expr, $deps:expr) => {{
        let deps = $deps.clone();
        let storage = $storage.clone();
        let concurrency = deps.settings.worker.concurrency;
        let worker_name = format!("{}-{}", $name, <$job as Job>::QUEUE);
        move |_restarts: usize| {
            WorkerBuilder::new(worker_name.clone())
                .backend(storage.clone())
                .concurrency(concurrency)
                .retry(RetryPolicy::retries(RETRIES).with_backoff(backoff()))
                .data(deps.clone())
                .build($handler)
        }
    }};
}

/// Every job type on its queue with its handler, registered on `$monitor` over one backend
/// (the SQLite and PostgreSQL storages are different types, so the list is a macro).
macro_rules! register_jobs {
    ($monitor:expr, $storage:ident, $config:expr, $pool:expr, $poll:expr, $name:expr, $deps:expr) => {
        register_jobs!(@each $monitor, $storage, $config, $pool, $poll, $name, $deps, [
            (WakeDevice, jobs::wake_device),
            (PruneTables, jobs::prune_tables),
            (SyncDirectory, jobs::sync_directory),
            (PushBatch, jobs::push_batch),
            (PushProgress, jobs::push_progress),
            (ReconcileDevice, jobs::reconcile_device),
            (MaintainCertificates, jobs::maintain_certificates),
            (PersonaliseLoanDevice, jobs::personalise_loan_device),
            (MaintainLoans, jobs::maintain_loans),
        ])
    };
    (@each $monitor:expr, $storage:ident, $config:expr, $pool:expr, $poll:expr, $name:expr, $deps:expr,
     [$(($job:ty, $handler:path)),* $(,)?]) => {{
        let monitor = $monitor;
        $(
            let storage = $storage::<$job>::new(&$pool)
                .with_config($config(<$job as Job>::QUEUE))
                .poll_with_interval($poll);
            let monitor = monitor.register(job_worker!(storage, $job, $handler, $name, $deps));
        )*
        monitor
    }};
}

/// Run every job worker until `shutdown` resolves;/// Run every job worker until `shutdown` resolves; jobs in flight get the
/// shutdown grace period to finish, and any left unfinished are picked up again
/// by the next worker once this one's heartbeat is overdue.
pub async fn run(
    deps: WorkerDeps,
    name: String,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let w = deps.settings.worker.clone();
    let heartbeat = Duration::from_secs(w.heartbeat_secs.max(1));
    let missed = (w.orphan_after_secs / w.heartbeat_secs.max(1)).max(1) as usize;
    let grace = Duration::from_secs(deps.settings.http.shutdown_grace_secs);
    // apalis 1.0's SQL backends fetch again after an empty fetch only when something wakes
    // the worker; on their own that is the heartbeat timer, and a heartbeat that falls due
    // while a fetch is running is lost, parking the worker for good. The interval wakes it.
    let poll = Duration::from_millis(w.poll_interval_ms.max(10));

    let scheduler = tokio::spawn(schedule_periodic(deps.clone()));
    let directory_schedule = tokio::spawn(jobs::schedule_directory_sync(deps.clone()));
    let certificate_schedule = tokio::spawn(jobs::schedule_certificates(deps.clone()));
    let loan_schedule = tokio::spawn(jobs::schedule_loans(deps.clone()));
    let signal = async move {
        shutdown.await;
        Ok(())
    };
    // A worker whose heartbeat or fetch fails (a database briefly unreachable, SQLite busy
    // past its time-out) ends; without a restart its queue would stop for good.
    let watchdog = crate::watchdog::Watchdog::default();
    let watching = tokio::spawn(watchdog.clone().run(heartbeat));
    let monitor = Monitor::new()
        .shutdown_timeout(grace)
        .on_event(move |worker, event| watchdog.saw(worker, event))
        .should_restart(|worker, error| {
            tracing::warn!(worker = %worker.name(), %error, "job worker failed; restarting it");
            true
        });
    let result = match deps.store.job_pool() {
        JobPool::Sqlite(pool) => {
            let config = |queue: &str| {
                apalis_sqlite::Config::default()
                    .queue(queue)
                    .heartbeat_interval(heartbeat)
                    .missed_heartbeats(missed)
            };
            register_jobs!(monitor, SqliteStorage, config, pool, poll, name, deps)
                .run_with_signal(signal)
                .await
        }
        JobPool::Postgres(pool) => {
            let config = |queue: &str| {
                apalis_postgres::Config::default()
                    .queue(queue)
                    .heartbeat_interval(heartbeat)
                    .missed_heartbeats(missed)
            };
            register_jobs!(monitor, PostgresStorage, config, pool, poll, name, deps)
                .run_with_signal(signal)
                .await
        }
    };
    scheduler.abort();
    directory_schedule.abort();
    certificate_schedule.abort();
    loan_schedule.abort();
    watching.abort();
    result.map_err(|e| anyhow::anyhow!("worker monitor stopped: {e}"))
}

/// Enqueue the periodic jobs. Several workers may run this loop: the
/// idempotency key (one per period) keeps it to one job per period.
async fn schedule_periodic(deps: WorkerDeps) {
    let every = deps.settings.worker.prune_every_secs.max(1);
    loop {
        let now = deps.clock.now();
        let job = PruneTables {
            requested_by: format!("schedule:{}", now.timestamp() / every as i64),
        };
        if let Err(e) = deps.store.enqueue_job(&job, now).await {
            tracing::warn!(error.cause_chain = ?e, "could not schedule table pruning");
        }
        tokio::time::sleep(Duration::from_secs(every)).await;
    }
}
