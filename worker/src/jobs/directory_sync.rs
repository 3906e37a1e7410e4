use std::time::Instant;

use crate::WorkerDeps;
use apalis::prelude::{BoxDynError, Data};
use flotte_config::Settings;
use flotte_core::Clock;
use flotte_core::directory::{DirectorySource, SyncPolicy};
use flotte_core::jobs::SyncDirectory;
use flotte_storage::{DirectoryRun, RunReport, RunStatus, Store, SyncInput, SyncRequest};

/// The worker's handler for [`SyncDirectory`]: see [`perform_directory_sync`].
/// Nothing here returns an error for a bad directory: retrying would only
/// read the same bad answer again; the next scheduled run tries afresh.
pub(crate) async fn sync_directory(
    job: SyncDirectory,
    deps: Data<WorkerDeps>,
) -> Result<(), BoxDynError> {
    let clock = deps.clock.as_ref();
    let Some(run) = deps
        .store
        .mark_directory_run_started(&job.run_id, clock.now())
        .await?
    else {
        tracing::warn!(run = %job.run_id, "directory sync job for an unknown run; dropped");
        return Ok(());
    };
    if run.finished_at.is_some() {
        tracing::info!(run = %job.run_id, "directory run already finished; job delivered again");
        return Ok(());
    }
    let Some(source) = deps.directory.clone() else {
        deps.store
            .finish_directory_run_unapplied(
                &job.run_id,
                RunStatus::Failed,
                "no LDAP directory is configured",
                None,
                clock.now(),
            )
            .await?;
        return Ok(());
    };
    let run = perform_directory_sync(
        &deps.store,
        &deps.settings,
        clock,
        source.as_ref(),
        &job.run_id,
        job.full,
    )
    .await?;
    match run.status {
        RunStatus::Applied => {
            tracing::info!(run = %run.id, report = ?run.report, "directory sync applied")
        }
        status => {
            tracing::warn!(run = %run.id, ?status, error = ?run.error, "directory sync not applied")
        }
    }
    Ok(())
}

/// Read the directory, plan and apply, for the run `run_id` (which must
/// exist). The run ends with its report: `applied`, `aborted` by a safety
/// rule, or `failed` when the read failed. A read that fails or looks unsafe
/// applies nothing and the run says why. Reads changes since the stored
/// cookie unless `full` (or there is no cookie yet).
pub async fn perform_directory_sync(
    store: &Store,
    settings: &Settings,
    clock: &dyn Clock,
    source: &dyn DirectorySource,
    run_id: &str,
    full: bool,
) -> Result<DirectoryRun, flotte_core::CoreError> {
    let started = Instant::now();
    let policy = SyncPolicy {
        max_missing_share: settings.directory.max_missing_share,
        allow_emptied_schools: settings.directory.allow_emptied_schools.clone(),
    };
    let cookie = store.directory_cookie().await?;
    // Without a cookie, an incremental read reads everything once and
    // hands out the first cookie; a full read never does.
    let mut read = if full {
        source
            .read_full()
            .await
            .map(|snapshot| (SyncInput::Snapshot(snapshot), "full".to_owned()))
    } else {
        source.read_changes(cookie.as_deref()).await.map(|read| {
            let method = if read.cookie.starts_with("sync:") {
                "content_sync"
            } else {
                "modify_timestamp"
            };
            (
                SyncInput::Changes {
                    changes: read.changes,
                    cookie: read.cookie,
                },
                method.to_owned(),
            )
        })
    };
    if let Err(failure) = &read
        && failure.cookie_unusable
    {
        tracing::warn!(run = %run_id, error = %failure, "change cookie unusable; reading everything");
        read = source
            .read_full()
            .await
            .map(|snapshot| (SyncInput::Snapshot(snapshot), "full".to_owned()));
    }
    let (input, method) = match read {
        Ok(read) => read,
        Err(failure) => {
            tracing::error!(run = %run_id, error = %failure, "directory read failed; nothing applied");
            let report = RunReport {
                method: Some(if full { "full" } else { "incremental" }.to_owned()),
                duration_ms: started.elapsed().as_millis() as u64,
                ..RunReport::default()
            };
            store
                .finish_directory_run_unapplied(
                    run_id,
                    RunStatus::Failed,
                    &format!("the directory could not be read: {failure}"),
                    Some(&report),
                    clock.now(),
                )
                .await?;
            return store.find_directory_run(run_id).await;
        }
    };
    store
        .sync_directory(
            SyncRequest {
                run_id: run_id.to_owned(),
                input,
                policy,
                method,
                started,
            },
            clock,
        )
        .await
}

/// Queue a sync every `directory.sync_every_secs` (none when 0 or without
/// LDAP). Every `full_sync_every`-th period reads everything, which also
/// catches deletions a `modifyTimestamp` poll cannot see. Each period's run
/// id is fixed (`schedule-<period>`), so several workers running this loop
/// still queue one run per period.
pub(crate) async fn schedule_directory_sync(deps: WorkerDeps) {
    let every = deps.settings.directory.sync_every_secs;
    if deps.directory.is_none() || every == 0 {
        return;
    }
    let every = every as i64;
    let full_every = i64::from(deps.settings.directory.full_sync_every.max(1));
    loop {
        let now = deps.clock.now();
        let period = now.timestamp() / every;
        // The first sync ever reads everything, whatever the period.
        let never_full = matches!(deps.store.last_full_directory_sync().await, Ok(None));
        let kind = if period % full_every == 0 || never_full {
            flotte_storage::RunKind::Full
        } else {
            flotte_storage::RunKind::Incremental
        };
        let actor = flotte_core::audit::AuditEntry::new("system", "directory.sync.schedule", "");
        if let Err(e) = deps
            .store
            .queue_directory_run(&format!("schedule-{period}"), kind, "schedule", &actor, now)
            .await
        {
            tracing::warn!(error.cause_chain = ?e, "could not schedule a directory sync");
        }
        let next = (period + 1) * every - now.timestamp();
        tokio::time::sleep(std::time::Duration::from_secs(next.max(1) as u64)).await;
    }
}
