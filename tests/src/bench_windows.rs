//! The Windows benchmark: simulated laptops (`windows_device::SimLaptop`) enrol and run
//! management sessions against the real server over HTTPS, each laptop on its own
//! keep-alive connection as a real laptop has, `CONCURRENCY` laptops at a time.
//!
//! Keys are drawn from a small pool generated before timing: key generation is the laptop's
//! cost, and the server's work per CSR (verify, sign, store) does not depend on the key.

use crate::app::{TestApp, TestEnv};
use crate::benchmarks::{Figure, percentile_ms};
use crate::windows_device::SimLaptop;
use std::time::{Duration, Instant};

/// Laptops in flight at once.
pub const CONCURRENCY: usize = 32;
const KEY_POOL: usize = 16;

struct Phase {
    done: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `work` on every laptop, `CONCURRENCY` at a time, timing each call and the whole.
async fn phase<F, Fut>(laptops: Vec<SimLaptop>, work: F) -> anyhow::Result<(Vec<SimLaptop>, Phase)>
where
    F: Fn(SimLaptop) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<SimLaptop>> + Send,
{
    let mut chunks: Vec<Vec<SimLaptop>> = (0..CONCURRENCY).map(|_| Vec::new()).collect();
    for (i, laptop) in laptops.into_iter().enumerate() {
        chunks[i % CONCURRENCY].push(laptop);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(chunk.len());
            let mut latencies = Vec::with_capacity(chunk.len());
            for laptop in chunk {
                let t = Instant::now();
                out.push(work(laptop).await?);
                latencies.push(t.elapsed());
            }
            anyhow::Ok((out, latencies))
        }));
    }
    let mut laptops = Vec::new();
    let mut latencies = Vec::new();
    for task in tasks {
        let (l, t) = task.await??;
        laptops.extend(l);
        latencies.extend(t);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok((
        laptops,
        Phase {
            done: latencies.len(),
            elapsed,
            latencies,
        },
    ))
}

/// Enrols `laptops` simulated laptops, then runs two rounds of sessions (the first
/// delivers the inventory query queued at enrolment, the second is an idle poll) and a
/// round with one queued command per laptop. On PostgreSQL when `postgres_admin_url` is
/// given, else SQLite.
pub async fn run(postgres_admin_url: Option<&str>, laptops: usize) -> anyhow::Result<Vec<Figure>> {
    let backend = if postgres_admin_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let env = TestEnv::on(postgres_admin_url).await;
    let mut settings = env.settings();
    settings.log_level = "warn".into();
    let app = TestApp::spawn_in(&env, settings).await;
    let (status, created) = app
        .post_json(
            "/api/v1/windows/enrollment-secrets",
            &serde_json::json!({ "label": "benchmark" }),
        )
        .await;
    anyhow::ensure!(status.is_success(), "secret: {created}");
    let secret = created["secret"].as_str().unwrap_or_default().to_owned();
    let ca_pem = std::fs::read(app.data_path("ca.pem"))?;

    let keys = tokio::task::spawn_blocking(move || {
        (0..KEY_POOL)
            .map(|_| crate::windows_device::new_key())
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await??;
    let mut fleet = Vec::with_capacity(laptops);
    for n in 0..laptops {
        fleet.push(SimLaptop::with_key(
            &ca_pem,
            &app.base_url,
            n as u64,
            keys[n % keys.len()].clone(),
        )?);
    }

    let (fleet, enrol) = phase(fleet, move |mut laptop| {
        let secret = secret.clone();
        async move {
            laptop.enroll("bench@schule.example", &secret).await?;
            Ok(laptop)
        }
    })
    .await?;
    let sync = |mut laptop: SimLaptop| async move {
        laptop.sync().await?;
        Ok(laptop)
    };
    let (fleet, first) = phase(fleet, sync).await?;
    let (fleet, idle) = phase(fleet, sync).await?;
    for laptop in &fleet {
        app.queue(&laptop.device_id, "Windows:Reboot", serde_json::json!({}))
            .await;
    }
    let (_, command) = phase(fleet, sync).await?;

    let note = |p: &Phase| {
        format!(
            "{} laptops, p50 {:.1} ms, p99 {:.1} ms",
            p.done,
            percentile_ms(&p.latencies, 50.0),
            percentile_ms(&p.latencies, 99.0)
        )
    };
    let figures = vec![
        Figure::new(
            format!("{backend}: enrolments (discovery, policy, CSR signed, provisioning doc)"),
            enrol.rate(),
            "enrolments/s",
            note(&enrol),
        ),
        Figure::new(
            format!("{backend}: first session (challenge, digest, inventory Get and Results)"),
            first.rate(),
            "sessions/s",
            note(&first),
        ),
        Figure::new(
            format!("{backend}: idle poll session (challenge, digest, nothing queued)"),
            idle.rate(),
            "sessions/s",
            note(&idle),
        ),
        Figure::new(
            format!("{backend}: session with one queued command (Reboot, Status)"),
            command.rate(),
            "sessions/s",
            note(&command),
        ),
    ];
    app.stop().await;
    Ok(figures)
}
