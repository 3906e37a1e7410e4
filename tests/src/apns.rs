//! A local stand-in for Apple's push gateway: an HTTP/2 TLS server that
//! demands a client certificate (the MDM push certificate), records every push
//! and answers as APNs does. Tests can make it slow or make tokens fail.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use flotte_pki::{CertificateAuthority, ClientCertificateRequest};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One push as the stand-in received it.
#[derive(Debug, Clone)]
pub struct RecordedPush {
    pub token_hex: String,
    pub push_magic: Option<String>,
    pub expiration: Option<String>,
    pub priority: Option<String>,
    pub topic: Option<String>,
}

#[derive(Default)]
struct Behaviour {
    delay: Option<Duration>,
    /// token → (status, reason) to answer instead of 200.
    failures: HashMap<String, (u16, String)>,
}

#[derive(Clone, Default)]
struct Shared {
    pushes: Arc<Mutex<Vec<RecordedPush>>>,
    arrivals: Arc<Mutex<u64>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

pub struct ApnsStandIn {
    pub addr: SocketAddr,
    /// PEM of the push certificate and key Flotte must present.
    pub identity_path: PathBuf,
    /// The CA that signed the stand-in's server certificate.
    pub ca_path: PathBuf,
    pub topic: String,
    shared: Shared,
    handle: axum_server::Handle<SocketAddr>,
    _dir: tempfile::TempDir,
}

impl ApnsStandIn {
    pub async fn start() -> Self {
        flotte::install_crypto_provider();
        let dir = tempfile::tempdir().expect("temp dir");
        let now = chrono::Utc::now();
        let ca =
            CertificateAuthority::load_or_create(dir.path(), "APNs stand-in", now).expect("CA");
        let server = ca
            .issue_server_certificate(&["127.0.0.1".into(), "localhost".into()], now, 30)
            .expect("server cert");
        let topic = format!("com.apple.mgmt.External.{}", uuid::Uuid::new_v4());
        let mut push_cert_req = ClientCertificateRequest::new(format!("APSP:{topic}"), 365);
        push_cert_req.user_id = Some(topic.clone());
        let push_cert = ca
            .issue_client_certificate(&push_cert_req, now)
            .expect("push cert");
        let identity_path = dir.path().join("push.pem");
        std::fs::write(
            &identity_path,
            format!(
                "{}{}",
                push_cert.cert_pem,
                push_cert.key_pem.clone().expect("key")
            ),
        )
        .expect("write identity");
        let ca_path = dir.path().join("apns-ca.pem");
        std::fs::write(&ca_path, format!("{}{}", ca.root_pem(), ca.issuing_pem()))
            .expect("write CA");

        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(ca.root_der()))
            .expect("root");
        roots
            .add(CertificateDer::from(ca.issuing_der()))
            .expect("issuing");
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .expect("verifier");
        let chain = CertificateDer::pem_slice_iter(
            format!("{}{}", server.cert_pem, ca.issuing_pem()).as_bytes(),
        )
        .collect::<Result<Vec<_>, _>>()
        .expect("chain");
        let key =
            PrivateKeyDer::from_pem_slice(server.key_pem.expect("key").as_bytes()).expect("key");
        let mut config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .expect("tls config");
        config.alpn_protocols = vec![b"h2".to_vec()];

        let shared = Shared::default();
        let app = Router::new()
            .route("/3/device/{token}", post(receive))
            .with_state(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let handle = axum_server::Handle::new();
        let server = axum_server::from_tcp_rustls(
            listener,
            axum_server::tls_rustls::RustlsConfig::from_config(Arc::new(config)),
        )
        .expect("server")
        .handle(handle.clone());
        tokio::spawn(server.serve(app.into_make_service()));
        Self {
            addr,
            identity_path,
            ca_path,
            topic,
            shared,
            handle,
            _dir: dir,
        }
    }

    /// Point Flotte's APNs settings at this stand-in.
    pub fn configure(&self, settings: &mut flotte_config::Settings) {
        settings.apns.endpoint = format!("https://127.0.0.1:{}", self.addr.port());
        settings.apns.certificate_path = Some(self.identity_path.clone());
        settings.apns.ca_path = Some(self.ca_path.clone());
    }

    pub fn pushes(&self) -> Vec<RecordedPush> {
        self.shared.pushes.lock().expect("lock").clone()
    }

    /// Requests that reached the handler, answered or not.
    pub fn arrivals(&self) -> u64 {
        *self.shared.arrivals.lock().expect("lock")
    }

    /// Hold every answer this long (to catch a worker mid-push).
    pub fn set_delay(&self, delay: Option<Duration>) {
        self.shared.behaviour.lock().expect("lock").delay = delay;
    }

    /// Answer pushes to `token_hex` with this status and APNs reason.
    pub fn fail_token(&self, token_hex: &str, status: u16, reason: &str) {
        self.shared
            .behaviour
            .lock()
            .expect("lock")
            .failures
            .insert(token_hex.to_owned(), (status, reason.to_owned()));
    }
}

impl Drop for ApnsStandIn {
    fn drop(&mut self) {
        self.handle.shutdown();
    }
}

async fn receive(
    State(shared): State<Shared>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> (StatusCode, String) {
    *shared.arrivals.lock().expect("lock") += 1;
    let (delay, failure) = {
        let b = shared.behaviour.lock().expect("lock");
        (b.delay, b.failures.get(&token).cloned())
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some((status, reason)) = failure {
        return (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            serde_json::json!({ "reason": reason }).to_string(),
        );
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let push_magic = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("mdm").and_then(|m| m.as_str()).map(str::to_owned));
    shared.pushes.lock().expect("lock").push(RecordedPush {
        token_hex: token,
        push_magic,
        expiration: header("apns-expiration"),
        priority: header("apns-priority"),
        topic: header("apns-topic"),
    });
    (StatusCode::OK, String::new())
}
