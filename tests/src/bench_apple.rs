//! The Apple check-in benchmark: thousands of simulated iPads over HTTPS with
//! keep-alive against the real server, on SQLite and PostgreSQL, next to a
//! trivial handler on the same TLS stack as the ceiling.
//!
//! Request bodies are signed before the clock starts: the load generator shares
//! the machine with the server, and signing is the device's cost, not ours.

use crate::apns::ApnsStandIn;
use crate::app::{TestApp, TestEnv};
use crate::apple_device::{EnrollmentPayload, SimIpad};
use crate::benchmarks::{Figure, percentile_ms};
use base64::Engine;
use flotte_apple::CommandReport;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Concurrent connections of the load generator.
const CONNECTIONS: usize = 32;
/// Distinct RSA keys shared by the simulated identities (each identity is its own certificate).
const KEY_POOL: usize = 32;

/// One signed request, ready to send.
#[derive(Clone)]
struct Signed {
    url: String,
    content_type: &'static str,
    body: Arc<Vec<u8>>,
    signature: String,
}

struct Phase {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    failures: usize,
    /// Process CPU time (user + system) spent during the phase.
    cpu: Duration,
}

/// CPU time this process has used so far, from /proc (clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the command name: state is field 0, utime 11, stime 12.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

impl Phase {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

fn client(ca_pem: &[u8]) -> reqwest::Client {
    let certs = reqwest::Certificate::from_pem_bundle(ca_pem).expect("CA");
    reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only(certs)
        .http1_only()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("client")
}

/// Send every request once, `CONNECTIONS` at a time; groups run in order per device.
async fn drive(client: &reqwest::Client, groups: Arc<Vec<Vec<Signed>>>) -> Phase {
    let next = Arc::new(AtomicUsize::new(0));
    let cpu_before = process_cpu();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let client = client.clone();
        let groups = groups.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(group) = groups.get(i) else { break };
                for req in group {
                    let t = Instant::now();
                    let response = client
                        .put(&req.url)
                        .header("content-type", req.content_type)
                        .header("mdm-signature", &req.signature)
                        .body(req.body.as_ref().clone())
                        .send()
                        .await;
                    let ok = match response {
                        Ok(r) => {
                            let good = r.status().is_success();
                            let _ = r.bytes().await;
                            good
                        }
                        Err(_) => false,
                    };
                    latencies.push(t.elapsed());
                    if !ok {
                        failures += 1;
                    }
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for t in tasks {
        let (l, f) = t.await.expect("load task");
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    latencies.sort();
    Phase {
        requests: latencies.len(),
        elapsed,
        latencies,
        failures,
        cpu,
    }
}

fn sign(ipad: &SimIpad, url: &str, content_type: &'static str, body: Vec<u8>) -> Signed {
    let sig = flotte_pki::sign_detached(
        &body,
        &ipad.enrollment.identity_cert_pem,
        &ipad.enrollment.identity_key_pem,
    )
    .expect("sign");
    Signed {
        url: url.to_owned(),
        content_type,
        body: Arc::new(body),
        signature: base64::engine::general_purpose::STANDARD.encode(sig),
    }
}

/// Simulated iPads with identities from the app's CA, recorded as enrolment identities.
async fn make_ipads(
    app: &TestApp,
    school_id: &str,
    topic: &str,
    n: usize,
) -> anyhow::Result<Vec<SimIpad>> {
    let ca = app.ca();
    let now = chrono::Utc::now();
    let keys: Vec<String> = (0..KEY_POOL.min(n))
        .map(|i| flotte_pki::generate_csr(&format!("pool {i}")).map(|(_, key)| key))
        .collect::<Result<_, _>>()?;
    let actor = flotte_core::audit::AuditEntry::new("bench", "apple.identity", "");
    let mut ipads = Vec::with_capacity(n);
    for i in 0..n {
        let key = &keys[i % keys.len()];
        let csr = flotte_pki::csr_with_key(&format!("Flotte device identity bench {i}"), key)?;
        let issued = ca.sign_csr(
            &csr,
            &flotte_pki::ClientCertificateRequest::new(format!("bench device {i}"), 365),
            now,
        )?;
        app.store
            .record_issued_certificate(
                &flotte_storage::IssuedRecord {
                    kind: flotte_storage::APPLE_IDENTITY.into(),
                    serial_hex: issued.serial_hex.clone(),
                    sha256: issued.sha256_hex.clone(),
                    subject: format!("bench device {i}"),
                    not_before: issued.not_before,
                    not_after: issued.not_after,
                    school_id: Some(school_id.to_owned()),
                    person_id: None,
                    device_id: None,
                },
                &actor,
                now,
            )
            .await?;
        let enrollment = EnrollmentPayload {
            server_url: app.url("/mdm/apple/connect"),
            check_in_url: app.url("/mdm/apple/checkin"),
            topic: topic.to_owned(),
            sign_message: true,
            access_rights: 8191,
            identity_cert_pem: issued.cert_pem,
            identity_key_pem: key.clone(),
            profile_identifier: "de.flotte.mdm.enrollment".into(),
            profile_uuid: String::new(),
        };
        ipads.push(SimIpad::new(
            enrollment,
            app.client.clone(),
            1_000_000 + i as u64,
        ));
    }
    Ok(ipads)
}

/// A plain handler on the same rustls configuration: what HTTPS alone costs here.
async fn ceiling(
    app: &TestApp,
    bodies: Arc<Vec<Vec<Signed>>>,
    ca_pem: &[u8],
) -> anyhow::Result<Phase> {
    let router = axum::Router::new().fallback(|_body: axum::body::Bytes| async { "" });
    bare(app, router, bodies, ca_pem).await
}

/// What any Apple MDM server must spend on a check-in before touching its database, on the
/// same TLS stack: the `Mdm-Signature` checked (a new identity's certificate chained to the
/// CA once, then its cached key) and the plist parsed. The gap between this and the ceiling
/// is the protocol's own price; the gap between this and Flotte's check-in is Flotte's.
async fn floor(
    app: &TestApp,
    bodies: Arc<Vec<Vec<Signed>>>,
    ca_pem: &[u8],
) -> anyhow::Result<Phase> {
    type Keys = std::sync::RwLock<std::collections::HashMap<String, Arc<flotte_pki::SignerKey>>>;
    let ca = Arc::new(app.ca());
    let keys: Arc<Keys> = Arc::default();
    let check = move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
        let ca = ca.clone();
        let keys = keys.clone();
        async move {
            let verified = (|| -> anyhow::Result<()> {
                let sig = headers
                    .get("mdm-signature")
                    .ok_or_else(|| anyhow::anyhow!("no signature"))?;
                let sig = base64::engine::general_purpose::STANDARD.decode(sig.as_bytes())?;
                let parsed = flotte_pki::DetachedSignature::parse(&sig)?;
                let cert = parsed.signer_der();
                let sha256 = flotte_pki::sha256_fingerprint(cert);
                let known = keys.read().expect("keys").get(&sha256).cloned();
                match known {
                    Some(key) => parsed.verify(&body, &key)?,
                    None => {
                        let key = flotte_pki::SignerKey::from_certificate(cert)?;
                        parsed.verify(&body, &key)?;
                        ca.verify_issued(cert, chrono::Utc::now())?;
                        keys.write().expect("keys").insert(sha256, Arc::new(key));
                    }
                }
                flotte_apple::parse_checkin(&body)?;
                Ok(())
            })();
            match verified {
                Ok(()) => axum::http::StatusCode::OK,
                Err(_) => axum::http::StatusCode::BAD_REQUEST,
            }
        }
    };
    bare(app, axum::Router::new().fallback(check), bodies, ca_pem).await
}

/// Serve `router` on the app's rustls configuration and drive `bodies` at it.
async fn bare(
    app: &TestApp,
    router: axum::Router,
    bodies: Arc<Vec<Vec<Signed>>>,
    ca_pem: &[u8],
) -> anyhow::Result<Phase> {
    let chain = std::fs::read_to_string(app.data_path("tls.pem"))?;
    let key = std::fs::read_to_string(app.data_path("tls-key.pem"))?;
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes())?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let port = listener.local_addr()?.port();
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        listener,
        axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)),
    )?
    .handle(handle.clone());
    tokio::spawn(server.serve(router.into_make_service()));
    let base = app.base_url.clone();
    let to_ceiling: Vec<Vec<Signed>> = bodies
        .iter()
        .map(|g| {
            g.iter()
                .map(|s| Signed {
                    url: s.url.replace(&base, &format!("https://localhost:{port}")),
                    ..s.clone()
                })
                .collect()
        })
        .collect();
    let phase = drive(&client(ca_pem), Arc::new(to_ceiling)).await;
    handle.shutdown();
    Ok(phase)
}

fn figures(label: &str, phase: &Phase, ceiling: Option<f64>, out: &mut Vec<Figure>) {
    let ratio = ceiling
        .map(|c| format!("{:.2} of the ceiling", phase.rate() / c))
        .unwrap_or_default();
    let failures = if phase.failures > 0 {
        format!("; {} failed", phase.failures)
    } else {
        String::new()
    };
    out.push(Figure::new(
        format!("{label}: throughput"),
        phase.rate(),
        "requests/s",
        format!("{} requests{failures} {ratio}", phase.requests),
    ));
    out.push(Figure::new(
        format!("{label}: p50"),
        percentile_ms(&phase.latencies, 50.0),
        "ms",
        "",
    ));
    out.push(Figure::new(
        format!("{label}: CPU per request"),
        phase.cpu.as_secs_f64() * 1000.0 / phase.requests.max(1) as f64,
        "ms",
        "server and load generator together",
    ));
    out.push(Figure::new(
        format!("{label}: p99"),
        percentile_ms(&phase.latencies, 99.0),
        "ms",
        "",
    ));
}

/// Idle polls per device (`FLOTTE_BENCH_IDLE_ROUNDS`, default 2): raise it to profile the poll path.
fn idle_rounds() -> usize {
    std::env::var("FLOTTE_BENCH_IDLE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// Run the benchmark for `devices` iPads on the given database.
pub async fn run(postgres_admin_url: Option<&str>, devices: usize) -> anyhow::Result<Vec<Figure>> {
    let backend = if postgres_admin_url.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let apns = ApnsStandIn::start().await;
    let env = TestEnv::on(postgres_admin_url).await;
    let mut settings = env.settings();
    apns.configure(&mut settings);
    settings.log_level = "warn".into();
    let app = TestApp::spawn_in(&env, settings).await;
    let school = app.create_school("BENCH", "Benchmark-Schule").await;
    let ipads = make_ipads(&app, &school, &apns.topic, devices).await?;
    let ca_pem = std::fs::read(app.data_path("ca.pem"))?;
    let http = client(&ca_pem);
    let checkin = "application/x-apple-aspen-mdm-checkin";
    let connect = "application/x-apple-aspen-mdm";

    // Check-in: Authenticate then TokenUpdate, every device.
    let enrol: Vec<Vec<Signed>> = ipads
        .iter()
        .map(|d| {
            vec![
                sign(
                    d,
                    &d.enrollment.check_in_url,
                    checkin,
                    d.authenticate_message().to_plist(),
                ),
                sign(
                    d,
                    &d.enrollment.check_in_url,
                    checkin,
                    d.token_update_message().to_plist(),
                ),
            ]
        })
        .collect();
    let enrol = Arc::new(enrol);
    let checkin_phase = drive(&http, enrol.clone()).await;
    anyhow::ensure!(
        checkin_phase.failures == 0,
        "{} check-ins failed",
        checkin_phase.failures
    );

    // Polls on an empty queue: Idle, twice per device.
    let idle: Vec<Vec<Signed>> = ipads
        .iter()
        .map(|d| {
            let s = sign(
                d,
                &d.enrollment.server_url,
                connect,
                CommandReport::idle(&d.udid).to_plist(),
            );
            vec![s; idle_rounds()]
        })
        .collect();
    let idle = Arc::new(idle);
    let poll_phase = drive(&http, idle.clone()).await;

    // A command for every device: Idle hands it out, Acknowledged completes it.
    let mut command_rounds = Vec::with_capacity(ipads.len());
    let actor = flotte_core::audit::AuditEntry::new("bench", "command.queue", "");
    for d in &ipads {
        let cmd = app
            .store
            .queue_command(
                &d.udid,
                flotte_storage::NewCommand {
                    request_type: "SecurityInfo".into(),
                    payload: serde_json::json!({ "request_type": "SecurityInfo" }),
                },
                &flotte_core::auth::SchoolScope::All,
                &actor,
                3600,
                chrono::Utc::now(),
            )
            .await?;
        let mut ack = CommandReport::acknowledged(&d.udid, &cmd.id);
        ack.request_type = Some("SecurityInfo".into());
        command_rounds.push(vec![
            sign(
                d,
                &d.enrollment.server_url,
                connect,
                CommandReport::idle(&d.udid).to_plist(),
            ),
            sign(d, &d.enrollment.server_url, connect, ack.to_plist()),
        ]);
    }
    let command_phase = drive(&http, Arc::new(command_rounds)).await;

    let ceiling_phase = ceiling(&app, idle, &ca_pem).await?;
    let ceiling_rate = ceiling_phase.rate();
    let floor_phase = floor(&app, enrol, &ca_pem).await?;
    anyhow::ensure!(
        floor_phase.failures == 0,
        "{} floor requests failed",
        floor_phase.failures
    );

    let mut out = Vec::new();
    let label = |what: &str| format!("{backend}, {devices} iPads, {what}");
    figures(
        &label("check-in (Authenticate + TokenUpdate)"),
        &checkin_phase,
        Some(ceiling_rate),
        &mut out,
    );
    figures(
        &label("command poll, empty queue (Idle)"),
        &poll_phase,
        Some(ceiling_rate),
        &mut out,
    );
    figures(
        &label("command round (Idle → command, Acknowledged)"),
        &command_phase,
        Some(ceiling_rate),
        &mut out,
    );
    figures(
        &label("floor: signature check and plist parse of the check-ins, same TLS"),
        &floor_phase,
        Some(ceiling_rate),
        &mut out,
    );
    figures(
        &label("ceiling: empty handler, same TLS"),
        &ceiling_phase,
        None,
        &mut out,
    );
    app.stop().await;
    Ok(out)
}
