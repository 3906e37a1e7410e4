//! Carrying out bulk pushes: one job per batch of devices plans, renders, signs and queues
//! (`PushBatch`), and a chain of progress ticks follows the devices' answers, wakes the
//! silent ones again and finishes the push (`PushProgress`).

use super::reconcile::{Focus, Planner};
use crate::WorkerDeps;
use apalis::prelude::{BoxDynError, Data};
use chrono::Duration;
use flotte_core::assignment::PushAction;
use flotte_core::jobs::{PushBatch, PushProgress};

/// Plan and queue one batch. A re-run (a worker killed after planning, or two workers on
/// the same batch) queues nothing twice: `commit_push_batch` claims each device's target
/// in the transaction that queues its commands.
pub(crate) async fn push_batch(job: PushBatch, deps: Data<WorkerDeps>) -> Result<(), BoxDynError> {
    // Devices whose records another writer changed while they were planned (a progress
    // tick settling an answer, a reconciliation) are handed back as pending: plan those
    // again from what is recorded now. A few rounds settle any realistic contention; past
    // them the job fails and apalis retries it later.
    for _ in 0..PLANNING_ROUNDS {
        if !plan_and_queue(&job, &deps).await? {
            return Ok(());
        }
    }
    Err(format!(
        "push {} batch {}: devices kept changing while planned",
        job.push_id, job.batch
    )
    .into())
}

/// Rounds of planning a batch's raced devices again before the job gives up for now.
const PLANNING_ROUNDS: usize = 5;

/// One round: plan the batch's pending devices and queue their commands. True when some
/// devices raced and are pending again.
async fn plan_and_queue(job: &PushBatch, deps: &WorkerDeps) -> Result<bool, BoxDynError> {
    let now = deps.clock.now();
    let Some(work) = deps.store.push_batch_work(job, now).await? else {
        return Ok(false);
    };
    if work.devices.is_empty() {
        return Ok(false);
    }
    deps.store
        .settle_profile_states(Some(&work.devices), now)
        .await?;
    let facts = deps.store.device_profile_facts(&work.devices).await?;
    let mut planner = Planner::new(deps).await?;
    let (focus, ask_profile_list) = match work.action {
        PushAction::Sync => (Focus::All, true),
        PushAction::Install | PushAction::Remove => (Focus::One(work.identifier.clone()), false),
    };
    let mut planned = Vec::with_capacity(facts.len());
    for device in &facts {
        planned.push(planner.plan(device, &focus, ask_profile_list, now).await?);
    }
    let outcome = deps
        .store
        .commit_push_batch(
            &work,
            &planned,
            i64::try_from(deps.settings.apns.coalesce_secs)?,
            deps.clock.now(),
        )
        .await?;
    tracing::info!(
        push = %job.push_id,
        batch = job.batch,
        renders = planner.renders,
        ?outcome,
        "push batch queued"
    );
    Ok(!outcome.raced.is_empty())
}

/// One progress tick; enqueues the next one unless the push is over. Ticks come every
/// `progress_every_secs` for the first hour and ten times as far apart after that, so a
/// push waiting days for offline devices stays cheap.
pub(crate) async fn push_progress(
    job: PushProgress,
    deps: Data<WorkerDeps>,
) -> Result<(), BoxDynError> {
    let now = deps.clock.now();
    let coalesce = i64::try_from(deps.settings.apns.coalesce_secs)?;
    let report = deps
        .store
        .push_progress(&job.push_id, coalesce, now)
        .await?;
    if report.updated > 0 || report.woken > 0 || report.finished {
        tracing::info!(push = %job.push_id, tick = job.tick, ?report, "push progress");
    }
    if !report.finished {
        let every = i64::try_from(deps.settings.profiles.progress_every_secs.max(1))?;
        let first_hour = u64::try_from(3600 / every).unwrap_or(0);
        let gap = if job.tick < first_hour {
            every
        } else {
            every * 10
        };
        deps.store
            .enqueue_job(
                &PushProgress {
                    push_id: job.push_id.clone(),
                    tick: job.tick + 1,
                },
                now + Duration::seconds(gap),
            )
            .await?;
    }
    Ok(())
}
