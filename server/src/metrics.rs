//! Prometheus text metrics: request counters kept in memory, fleet gauges read
//! from the database on each scrape (a scrape every 15 s is cheap next to that).

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub(crate) struct Metrics {
    by_class: [AtomicU64; 5],
}

pub(crate) async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let class = (response.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    state.metrics.by_class[class].fetch_add(1, Ordering::Relaxed);
    response
}

pub(crate) async fn render(state: &AppState) -> Result<String, flotte_core::CoreError> {
    let mut out = String::new();
    out.push_str("# HELP flotte_http_responses_total HTTP responses by status class.\n");
    out.push_str("# TYPE flotte_http_responses_total counter\n");
    for (i, counter) in state.metrics.by_class.iter().enumerate() {
        let _ = writeln!(
            out,
            "flotte_http_responses_total{{class=\"{}xx\"}} {}",
            i + 1,
            counter.load(Ordering::Relaxed)
        );
    }
    out.push_str(
        "# HELP flotte_devices Devices in the register by platform and enrolment state.\n",
    );
    out.push_str("# TYPE flotte_devices gauge\n");
    for (platform, state_name, n) in state.store.device_counts().await? {
        let _ = writeln!(
            out,
            "flotte_devices{{platform=\"{platform}\",state=\"{state_name}\"}} {n}"
        );
    }
    out.push_str("# HELP flotte_jobs Background jobs by status.\n");
    out.push_str("# TYPE flotte_jobs gauge\n");
    for (status, n) in state.store.job_counts().await? {
        let _ = writeln!(out, "flotte_jobs{{status=\"{status}\"}} {n}");
    }
    Ok(out)
}
