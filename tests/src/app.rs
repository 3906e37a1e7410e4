//! `TestApp`: the real Flotte (server and worker, as `flotte up` runs them) on
//! port 0 with a fresh database, spoken to over HTTPS that trusts its own CA.
//!
//! The database is SQLite in a temporary directory, or a fresh PostgreSQL
//! database when `TEST_POSTGRES_URL` names a server (as CI does).

use crate::apns::ApnsStandIn;
use flotte::Runtime;
use flotte_config::Settings;
use flotte_storage::Store;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::oneshot;

/// A running Flotte. Dropping it stops the server and worker.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub data_dir: PathBuf,
    pub settings: Settings,
    pub store: Store,
    pub client: reqwest::Client,
    pub token: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: Option<Arc<tempfile::TempDir>>,
}

/// Where a test's data lives; kept alive across restarts of the app.
#[derive(Clone)]
pub struct TestEnv {
    pub dir: Arc<tempfile::TempDir>,
    pub database_url: String,
}

impl TestEnv {
    /// A fresh data directory and a fresh database.
    pub async fn new() -> Self {
        Self::on(std::env::var("TEST_POSTGRES_URL").ok().as_deref()).await
    }

    /// A fresh environment on PostgreSQL (a new database on the server behind
    /// `postgres_admin_url`) or, when `None`, on SQLite.
    pub async fn on(postgres_admin_url: Option<&str>) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let database_url = match postgres_admin_url {
            Some(admin_url) if !admin_url.is_empty() => fresh_postgres_database(admin_url).await,
            _ => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("flotte.db").display()
            ),
        };
        Self { dir, database_url }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Settings for a test app: port 0, quick worker heartbeats, this env's database.
    pub fn settings(&self) -> Settings {
        // A known port rather than 0, so the public URL in enrolment profiles is right.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut s = Settings {
            data_dir: self.data_dir(),
            listen: format!("127.0.0.1:{port}").parse().expect("address"),
            public_url: Some(format!("https://localhost:{port}")),
            database_url: Some(self.database_url.clone()),
            ..Settings::default()
        };
        s.worker.heartbeat_secs = 1;
        s.worker.orphan_after_secs = 3;
        s.worker.poll_interval_ms = 100;
        s.http.shutdown_grace_secs = 1;
        s
    }
}

/// Create `flotte_test_<random>` on the server behind `admin_url` and return its URL.
async fn fresh_postgres_database(admin_url: &str) -> String {
    use sea_orm::{ConnectionTrait, Database};
    let name = format!("flotte_test_{}", uuid::Uuid::new_v4().simple());
    let admin = Database::connect(admin_url)
        .await
        .expect("connect to TEST_POSTGRES_URL");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create test database");
    admin.close().await.ok();
    let (base, _) = admin_url
        .rsplit_once('/')
        .expect("URL with a database name");
    format!("{base}/{name}")
}

impl TestApp {
    /// Start with default test settings in a fresh environment.
    pub async fn spawn() -> Self {
        let env = TestEnv::new().await;
        let settings = env.settings();
        Self::spawn_in(&env, settings).await
    }

    /// Start with the APNs stand-in as push gateway.
    pub async fn spawn_with_apns(apns: &ApnsStandIn) -> Self {
        let env = TestEnv::new().await;
        let mut settings = env.settings();
        apns.configure(&mut settings);
        Self::spawn_in(&env, settings).await
    }

    /// Start (or restart) in `env` with `settings`, running server and worker.
    pub async fn spawn_in(env: &TestEnv, settings: Settings) -> Self {
        Self::spawn_roles(env, settings, true, true).await
    }

    pub async fn spawn_roles(env: &TestEnv, settings: Settings, serve: bool, work: bool) -> Self {
        init_test_logs();
        let runtime = Runtime::start(settings.clone())
            .await
            .expect("flotte starts");
        let store = runtime.store.clone();
        let data_dir = settings.data_dir.clone();
        // Bind here rather than inside `run` so the test learns the port.
        let app = runtime.bind().expect("bind");
        let addr = app.local_addr().expect("address");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            let (tx_server, rx_server) = oneshot::channel::<()>();
            let (tx_worker, rx_worker) = oneshot::channel::<()>();
            let fan_out = tokio::spawn(async move {
                stop.await;
                let _ = tx_server.send(());
                let _ = tx_worker.send(());
            });
            let server = serve.then(|| {
                tokio::spawn(app.run_until_stopped(async {
                    let _ = rx_server.await;
                }))
            });
            let worker = if work {
                let deps = runtime.worker_deps()?;
                Some(tokio::spawn(flotte_worker::run(
                    deps,
                    flotte::worker_name(),
                    async {
                        let _ = rx_worker.await;
                    },
                )))
            } else {
                None
            };
            if let Some(s) = server {
                s.await??;
            }
            if let Some(w) = worker {
                w.await??;
            }
            fan_out.abort();
            Ok(())
        });
        let ca = std::fs::read(data_dir.join("ca.pem")).expect("ca.pem written");
        let client = https_client(&ca);
        let token = std::fs::read_to_string(data_dir.join("admin-token"))
            .map(|t| t.trim().to_owned())
            .or_else(|_| settings.admin_token.clone().ok_or(()))
            .unwrap_or_default();
        Self {
            addr,
            base_url: format!("https://localhost:{}", addr.port()),
            data_dir,
            settings,
            store,
            client,
            token,
            stop: Some(tx),
            task: Some(task),
            _dir: Some(env.dir.clone()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// A request with the technician token.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.token)
    }

    pub async fn get_json(&self, path: &str) -> (reqwest::StatusCode, serde_json::Value) {
        let r = self
            .api(reqwest::Method::GET, path)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let r = self
            .api(reqwest::Method::POST, path)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = r.status();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Stop server and worker gracefully and wait for them.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
        }
    }

    pub fn data_path(&self, name: &str) -> PathBuf {
        self.data_dir.join(name)
    }

    /// Wait until `check` holds, polling; panics with `what` after `secs`.
    pub async fn eventually<F, Fut>(&self, secs: u64, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        eventually(secs, what, &mut check).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Poll `check` every 50 ms until it holds; panic naming `what` after `secs`.
pub async fn eventually<F, Fut>(secs: u64, what: &str, check: &mut F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if check().await {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!("timed out after {secs} s waiting for: {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// An HTTPS client that trusts only `ca_pem` (our generated root).
pub fn https_client(ca_pem: &[u8]) -> reqwest::Client {
    flotte::install_crypto_provider();
    let certs = reqwest::Certificate::from_pem_bundle(ca_pem).expect("CA PEM");
    reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only(certs)
        .build()
        .expect("client")
}

/// Like [`https_client`], but hands redirects to the caller: browser tests
/// look at the `Location` and `Set-Cookie` of each answer.
pub fn https_client_without_redirects(ca_pem: &[u8]) -> reqwest::Client {
    flotte::install_crypto_provider();
    let certs = reqwest::Certificate::from_pem_bundle(ca_pem).expect("CA PEM");
    reqwest::Client::builder()
        .tls_backend_rustls()
        .tls_certs_only(certs)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

impl TestApp {
    /// Create a school through the API; returns its id.
    pub async fn create_school(&self, code: &str, name: &str) -> String {
        let (status, body) = self
            .post_json(
                "/api/v1/schools",
                &serde_json::json!({ "code": code, "name": name }),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Download a signed enrolment profile for a school, as a technician.
    pub async fn enrollment_profile(&self, school: &str) -> Vec<u8> {
        let response = self
            .api(
                reqwest::Method::GET,
                &format!("/api/v1/apple/enrollment-profile?school={school}"),
            )
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"],
            "application/x-apple-aspen-config"
        );
        response.bytes().await.expect("body").to_vec()
    }

    /// A simulated iPad holding a fresh identity for `school`, not yet enrolled.
    pub async fn new_ipad(&self, school: &str, n: u64) -> crate::apple_device::SimIpad {
        let profile = self.enrollment_profile(school).await;
        let enrollment = crate::apple_device::EnrollmentPayload::from_signed_profile(&profile)
            .expect("the profile installs");
        crate::apple_device::SimIpad::new(enrollment, self.client.clone(), n)
    }

    /// A simulated iPad that has sent Authenticate and TokenUpdate.
    pub async fn enrolled_ipad(&self, school: &str, n: u64) -> crate::apple_device::SimIpad {
        let ipad = self.new_ipad(school, n).await;
        ipad.enrol().await.expect("enrolment");
        ipad
    }

    /// Queue a command through the API; returns its UUID.
    pub async fn queue(
        &self,
        device: &str,
        request_type: &str,
        parameters: serde_json::Value,
    ) -> String {
        let (status, body) = self
            .post_json(
                &format!("/api/v1/devices/{device}/commands"),
                &serde_json::json!({ "request_type": request_type, "parameters": parameters }),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::ACCEPTED, "{body}");
        body["command_uuid"].as_str().expect("uuid").to_owned()
    }

    /// The CA of this app's data directory (to mint certificates in tests).
    pub fn ca(&self) -> flotte_pki::CertificateAuthority {
        flotte_pki::CertificateAuthority::load_or_create(
            &self.data_dir,
            "Flotte",
            chrono::Utc::now(),
        )
        .expect("the app's CA")
    }
}

/// With `FLOTTE_TEST_LOG` set (an `EnvFilter`, e.g. `warn` or `flotte_worker=debug`), the
/// apps a test spawns log to the test's output: the way to see why a test waits in vain.
fn init_test_logs() {
    if let Ok(filter) = std::env::var("FLOTTE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}
