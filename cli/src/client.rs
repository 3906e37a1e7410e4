//! The HTTP plumbing of the remote commands (`flotte profile …`, `flotte push …`): they
//! call Flotte's own admin API over HTTPS, so a technician's command goes through the
//! same authorisation, school scoping and audit log as any other API call, and works
//! against a server on another machine.

use flotte_config::Settings;
use reqwest::{Method, StatusCode, Url};
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where and as whom to call the API.
#[derive(Clone)]
pub struct Connection {
    /// The server's base URL, e.g. `https://mdm.schule.example:8443`.
    pub url: String,
    /// A bearer token (a technician's, or school staff's for their own schools).
    pub token: String,
    /// PEM of the root that signed the server's TLS certificate (Flotte's `ca.pem`).
    pub ca_pem: Vec<u8>,
}

impl fmt::Debug for Connection {
    // The token is a credential: keep it out of logs and panic messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("url", &self.url)
            .field("token", &"…")
            .finish_non_exhaustive()
    }
}

/// The connection from the options given, the rest from the settings: the public URL,
/// `FLOTTE_ADMIN_TOKEN` or else the bootstrap token in `<data dir>/admin-token`, and
/// `<data dir>/ca.pem`. `settings` is only called when an option is missing, so that a
/// remote machine with all three options needs no Flotte configuration at all.
pub fn resolve_connection(
    url: Option<String>,
    token: Option<String>,
    ca: Option<PathBuf>,
    settings: impl FnOnce() -> anyhow::Result<Settings>,
) -> anyhow::Result<Connection> {
    let settings = if url.is_none() || token.is_none() || ca.is_none() {
        Some(settings().map_err(|e| {
            // The settings loader refuses FLOTTE_ variables it does not know, and these
            // three are the client's, not the server's.
            let ours: Vec<&str> = ["FLOTTE_URL", "FLOTTE_TOKEN", "FLOTTE_CA"]
                .into_iter()
                .filter(|name| std::env::var_os(name).is_some())
                .collect();
            let hint = if ours.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} in the environment trips the settings loader, which knows no such \
                     key, so give all three of FLOTTE_URL, FLOTTE_TOKEN and FLOTTE_CA",
                    ours.join(", ")
                )
            };
            anyhow::anyhow!(
                "{e:#}\n(the settings are read for the defaults of --url, --token and --ca; \
                 give all three to do without them{hint})"
            )
        })?)
    } else {
        None
    };
    let from_settings = || settings.as_ref().expect("loaded when an option is missing");
    let url = match url {
        Some(url) => url,
        None => from_settings().public_url(),
    };
    let token = match token {
        Some(token) => token,
        None => {
            let settings = from_settings();
            match settings.admin_token.as_deref().filter(|t| !t.is_empty()) {
                Some(token) => token.to_owned(),
                None => {
                    let path = settings.data_dir.join(flotte_server::bootstrap::TOKEN_FILE);
                    std::fs::read_to_string(&path)
                        .map(|t| t.trim().to_owned())
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "no API token: give --token or FLOTTE_TOKEN \
                                 ({} cannot be read: {e})",
                                path.display()
                            )
                        })?
                }
            }
        }
    };
    let ca = ca.unwrap_or_else(|| from_settings().data_dir.join("ca.pem"));
    let ca_pem = std::fs::read(&ca).map_err(|e| {
        anyhow::anyhow!(
            "the CA certificate {} cannot be read: {e}; give --ca",
            ca.display()
        )
    })?;
    Ok(Connection { url, token, ca_pem })
}

/// Why a call failed.
#[derive(Debug)]
pub enum ClientError {
    /// The server answered, with a status outside 2xx; `message` is its `{message}`.
    Api { status: StatusCode, message: String },
    /// No answer: connection, TLS or time-out.
    Transport { url: String, reason: String },
    /// An answer that is not the JSON the API promises.
    Invalid { url: String, reason: String },
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Api { status, message } if *status == StatusCode::UNAUTHORIZED => write!(
                f,
                "the server refused the token ({status}): {message}; \
                 check --token / FLOTTE_TOKEN"
            ),
            Self::Api { status, message } => write!(f, "{status}: {message}"),
            Self::Transport { url, reason } => write!(f, "cannot reach {url}: {reason}"),
            Self::Invalid { url, reason } => write!(f, "unexpected answer from {url}: {reason}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// reqwest's own message ("error sending request") hides the cause that matters (an
/// unknown issuer, a refused connection), which sits further down the chain.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Ordinary calls answer at once; a call that hangs this long is broken.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An API client bound to one server and token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    token: String,
}

impl Client {
    /// A client trusting only the given CA: Flotte's server certificate comes from its
    /// own CA, which no system store knows.
    pub fn new(connection: &Connection) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        let base = Url::parse(connection.url.trim())
            .map_err(|e| anyhow::anyhow!("--url {:?}: {e}", connection.url))?;
        if base.scheme() != "https" {
            // The token would travel in clear text, and Flotte only speaks HTTPS anyway.
            anyhow::bail!("--url must be an https:// URL, got {:?}", connection.url);
        }
        if base.cannot_be_a_base() {
            anyhow::bail!("--url {:?} cannot be a base URL", connection.url);
        }
        let token = connection.token.trim();
        if token.is_empty() {
            anyhow::bail!("no API token: give --token or FLOTTE_TOKEN");
        }
        let certs = reqwest::Certificate::from_pem_bundle(&connection.ca_pem)
            .map_err(|e| anyhow::anyhow!("the CA file is not PEM: {}", chain(&e)))?;
        if certs.is_empty() {
            anyhow::bail!("the CA file holds no certificate");
        }
        let http = reqwest::Client::builder()
            .tls_backend_rustls()
            .tls_certs_only(certs)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("flotte-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("HTTPS client: {}", chain(&e)))?;
        Ok(Self {
            http,
            base,
            token: token.to_owned(),
        })
    }

    /// `/api/v1/<segments…>` under the base URL; each segment is percent-encoded, so an
    /// id with a `/` or `?` in it stays one segment.
    pub fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.http.request(method, url).bearer_auth(&self.token)
    }

    pub async fn get(&self, segments: &[&str]) -> Result<Value, ClientError> {
        self.get_query(segments, &[]).await
    }

    pub async fn get_query(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Value, ClientError> {
        let mut url = self.endpoint(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let request = self.request(Method::GET, url.clone());
        self.json(request, url).await
    }

    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, ClientError> {
        let url = self.endpoint(segments);
        let request = self.request(Method::POST, url.clone()).json(body);
        self.json(request, url).await
    }

    pub async fn put(&self, segments: &[&str], body: &Value) -> Result<Value, ClientError> {
        let url = self.endpoint(segments);
        let request = self.request(Method::PUT, url.clone()).json(body);
        self.json(request, url).await
    }

    /// A streaming GET (server-sent events): no overall time-out, the caller reads the
    /// body chunk by chunk.
    pub async fn stream(&self, segments: &[&str]) -> Result<reqwest::Response, ClientError> {
        let url = self.endpoint(segments);
        let response = self
            .request(Method::GET, url.clone())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|e| transport(&url, &e))?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(refusal(response, &url).await)
        }
    }

    async fn json(&self, request: reqwest::RequestBuilder, url: Url) -> Result<Value, ClientError> {
        let response = request
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| transport(&url, &e))?;
        if !response.status().is_success() {
            return Err(refusal(response, &url).await);
        }
        let bytes = response.bytes().await.map_err(|e| transport(&url, &e))?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Invalid {
            url: url.to_string(),
            reason: format!("not JSON: {e}"),
        })
    }
}

fn transport(url: &Url, error: &reqwest::Error) -> ClientError {
    ClientError::Transport {
        url: url.to_string(),
        reason: chain(error),
    }
}

/// The server's own words for a refusal: the API answers `{"message": …}`; layers in
/// front of it (body limit, time-out, a proxy) may answer plain text or nothing.
async fn refusal(response: reqwest::Response, url: &Url) -> ClientError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .or_else(|| {
            let text = body.trim();
            (!text.is_empty()).then(|| text.chars().take(500).collect())
        })
        .unwrap_or_else(|| {
            status
                .canonical_reason()
                .unwrap_or("no reason given")
                .to_owned()
        });
    tracing::debug!(%url, %status, "request refused");
    ClientError::Api { status, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Client {
        let ca = test_ca_pem();
        Client::new(&Connection {
            url: url.into(),
            token: "t0ken".into(),
            ca_pem: ca,
        })
        .expect("client")
    }

    /// A real root, only so that the client builds; nothing is contacted.
    fn test_ca_pem() -> Vec<u8> {
        let dir = tempfile_dir();
        let ca = flotte_pki::CertificateAuthority::load_or_create(&dir, "Test", chrono::Utc::now())
            .expect("CA");
        let pem = ca.root_pem().into_bytes();
        let _ = std::fs::remove_dir_all(&dir);
        pem
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "flotte-cli-test-{}-{}",
            std::process::id(),
            flotte_server::bootstrap::generate_token()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    #[test]
    fn endpoints_keep_a_base_path_and_encode_ids_as_one_segment() {
        let c = client("https://mdm.example:8443");
        assert_eq!(
            c.endpoint(&["profiles", "de.flotte.portal", "versions"])
                .as_str(),
            "https://mdm.example:8443/api/v1/profiles/de.flotte.portal/versions"
        );
        let c = client("https://proxy.example/flotte/");
        assert_eq!(
            c.endpoint(&["pushes", "a/b?c"]).as_str(),
            "https://proxy.example/flotte/api/v1/pushes/a%2Fb%3Fc"
        );
    }

    #[test]
    fn plain_http_and_an_empty_token_are_refused() {
        let ca = test_ca_pem();
        let http = Client::new(&Connection {
            url: "http://mdm.example".into(),
            token: "t".into(),
            ca_pem: ca.clone(),
        });
        assert!(http.err().unwrap().to_string().contains("https://"));
        let empty = Client::new(&Connection {
            url: "https://mdm.example".into(),
            token: " ".into(),
            ca_pem: ca,
        });
        assert!(empty.err().unwrap().to_string().contains("--token"));
        let not_pem = Client::new(&Connection {
            url: "https://mdm.example".into(),
            token: "t".into(),
            ca_pem: b"hello".to_vec(),
        });
        assert!(not_pem.is_err());
    }

    #[test]
    fn a_refused_token_says_which_option_to_check() {
        let e = ClientError::Api {
            status: StatusCode::UNAUTHORIZED,
            message: "unknown token".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("unknown token") && text.contains("--token"),
            "{text}"
        );
        let e = ClientError::Api {
            status: StatusCode::CONFLICT,
            message: "push p is already completed and cannot be cancelled".into(),
        };
        assert_eq!(
            e.to_string(),
            "409 Conflict: push p is already completed and cannot be cancelled"
        );
    }
}
