//! Headless Chromium for the web UI tests, driven over the W3C WebDriver protocol
//! through Debian's `chromedriver` (started here on a free port, stopped on drop).
//!
//! The client is a few JSON calls over `reqwest`, which the tests have anyway; a
//! WebDriver crate would bring its own HTTP and Unicode-segmentation stack for the same
//! handful of commands. The browser accepts the test server's certificate through the
//! standard `acceptInsecureCerts` capability: the test CA is made per test and not in
//! Chromium's NSS store, and the connection is to 127.0.0.1 only.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The element reference key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian puts them; `FLOTTE_TEST_CHROMIUM` / `FLOTTE_TEST_CHROMEDRIVER` override.
fn chromium() -> String {
    std::env::var("FLOTTE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

fn chromedriver() -> String {
    std::env::var("FLOTTE_TEST_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into())
}

/// A headless Chromium session.
pub struct Browser {
    http: reqwest::Client,
    base: String,
    _driver: tokio::process::Child,
    _profile: tempfile::TempDir,
    /// Where `screenshot` writes; `FLOTTE_TEST_SCREENSHOTS` (a directory) turns it on.
    shots: Option<std::path::PathBuf>,
}

/// An element on the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Start chromedriver and a headless Chromium with a fresh profile and a laptop-sized
    /// window (1366 × 768).
    pub async fn start() -> Result<Browser> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let driver = tokio::process::Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", chromedriver()))?;
        let profile = tempfile::tempdir()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not come up on port {port}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-extensions".to_owned(),
            "--lang=de-DE".to_owned(),
            "--window-size=1366,768".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&json!({
                "capabilities": { "alwaysMatch": {
                    "browserName": "chrome",
                    "acceptInsecureCerts": true,
                    "goog:chromeOptions": {
                        "binary": chromium(),
                        "args": args,
                        "prefs": { "intl.accept_languages": "de-DE,de" },
                    },
                } }
            }))
            .send()
            .await?
            .json()
            .await?;
        let session = created["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no WebDriver session: {created}"))?;
        Ok(Browser {
            http,
            base: format!("{base}/session/{session}"),
            _driver: driver,
            _profile: profile,
            shots: std::env::var_os("FLOTTE_TEST_SCREENSHOTS").map(Into::into),
        })
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let value: Value = response.json().await?;
        if !status.is_success() {
            bail!(
                "WebDriver {path}: {} ({})",
                value["value"]["message"].as_str().unwrap_or_default(),
                value["value"]["error"].as_str().unwrap_or_default()
            );
        }
        Ok(value["value"].clone())
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Result<Value> {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Open `url` and wait for the page to load.
    pub async fn goto(&self, url: &str) -> Result<()> {
        self.post("/url", json!({ "url": url })).await.map(|_| ())
    }

    pub async fn url(&self) -> Result<String> {
        Ok(self
            .get("/url")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The page's HTML as the browser has it now.
    pub async fn source(&self) -> Result<String> {
        Ok(self
            .get("/source")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The visible text of the page.
    pub async fn page_text(&self) -> Result<String> {
        self.text(&self.find("body").await?).await
    }

    /// The first element matching the CSS selector.
    pub async fn find(&self, css: &str) -> Result<Element> {
        let found = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await
            .with_context(|| format!("finding {css}"))?;
        found[ELEMENT]
            .as_str()
            .map(|id| Element(id.to_owned()))
            .ok_or_else(|| anyhow!("no element {css}"))
    }

    /// Every element matching the CSS selector.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>> {
        let found = self
            .post(
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await?;
        Ok(found
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_owned())))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Wait up to `secs` for an element matching `css`.
    pub async fn wait_for(&self, css: &str, secs: u64) -> Result<Element> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Ok(e) = self.find(css).await {
                return Ok(e);
            }
            if Instant::now() > deadline {
                bail!("no {css} after {secs} s on {}", self.url().await?);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        let e = self.find(css).await?;
        self.post(&format!("/element/{}/click", e.0), json!({}))
            .await
            .with_context(|| format!("clicking {css}"))
            .map(|_| ())
    }

    /// Type into an element as a keyboard (or a scanner, which is one) would;
    /// `"\u{E007}"` is Enter.
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let e = self.find(css).await?;
        self.post(&format!("/element/{}/value", e.0), json!({ "text": text }))
            .await
            .with_context(|| format!("typing into {css}"))
            .map(|_| ())
    }

    /// Type into whatever has the keyboard focus now.
    pub async fn type_into_focus(&self, text: &str) -> Result<()> {
        let active = self.get("/element/active").await?;
        let id = active[ELEMENT]
            .as_str()
            .ok_or_else(|| anyhow!("nothing has the focus"))?;
        self.post(&format!("/element/{id}/value"), json!({ "text": text }))
            .await
            .map(|_| ())
    }

    pub async fn clear(&self, css: &str) -> Result<()> {
        let e = self.find(css).await?;
        self.post(&format!("/element/{}/clear", e.0), json!({}))
            .await
            .map(|_| ())
    }

    pub async fn text(&self, e: &Element) -> Result<String> {
        Ok(self
            .get(&format!("/element/{}/text", e.0))
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Run a script in the page and return its result.
    pub async fn execute(&self, script: &str) -> Result<Value> {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// The `id` of the element with the keyboard focus.
    pub async fn focused_id(&self) -> Result<String> {
        Ok(self
            .execute("return document.activeElement ? document.activeElement.id : '';")
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Resize the window (a tablet is 820 × 1180 in portrait).
    pub async fn set_window(&self, width: u32, height: u32) -> Result<()> {
        self.post("/window/rect", json!({ "width": width, "height": height }))
            .await
            .map(|_| ())
    }

    /// A PNG of the window, written to `$FLOTTE_TEST_SCREENSHOTS/<name>.png` when that
    /// variable names a directory (during development); otherwise only taken, to prove
    /// the page renders.
    pub async fn screenshot(&self, name: &str) -> Result<Vec<u8>> {
        let data = self.get("/screenshot").await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .context("screenshot is not base64")?;
        if let Some(dir) = &self.shots {
            std::fs::create_dir_all(dir)?;
            std::fs::write(Path::new(dir).join(format!("{name}.png")), &png)?;
        }
        Ok(png)
    }

    /// A Chrome DevTools command through chromedriver (e.g. `Emulation.setEmulatedMedia`
    /// to see the print styles).
    pub async fn post_cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        self.post("/goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
            .await
    }

    /// End the browser session (chromedriver stops when the `Browser` is dropped).
    pub async fn quit(self) -> Result<()> {
        self.call(reqwest::Method::DELETE, "", None)
            .await
            .map(|_| ())
    }
}
