use crate::WorkerDeps;
use apalis::prelude::{BoxDynError, Data};
use flotte_core::audit::AuditEntry;
use flotte_core::jobs::PruneTables;

/// Delete finished commands and jobs past their retention.
pub(crate) async fn prune_tables(
    job: PruneTables,
    deps: Data<WorkerDeps>,
) -> Result<(), BoxDynError> {
    let retention = &deps.settings.retention;
    let now = deps.clock.now();
    let report = deps
        .store
        .prune(now, retention.command_days, retention.job_days)
        .await?;
    // Finished pushes go with the commands they followed.
    let pushes = deps
        .store
        .prune_pushes(now - chrono::Duration::days(i64::from(retention.command_days)))
        .await?;
    tracing::info!(?report, pushes, requested_by = %job.requested_by, "pruned finished commands and jobs");
    if report.commands_deleted + report.jobs_deleted + pushes > 0 {
        deps.store
            .audit(
                &AuditEntry::new("system", "tables.prune", "queues")
                    .with_details(serde_json::to_value(report)?),
                now,
            )
            .await?;
    }
    Ok(())
}
