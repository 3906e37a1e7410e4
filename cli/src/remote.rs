//! `flotte profile …` and `flotte push …`: profile templates and bulk pushes through the
//! admin API (see [`crate::client`]). Each command writes one JSON document to `out`;
//! progress and notes go to a [`Progress`] (standard error in the binary), so that the
//! JSON can be piped on while a person watches the bar.

use crate::client::{Client, ClientError};
use flotte_core::assignment::{AssignmentScope, PushAction, PushStatus, TargetStatus};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Where a command writes its JSON.
pub type Out<'a> = &'a mut (dyn Write + Send);

fn print_json(out: Out<'_>, value: &Value) -> anyhow::Result<()> {
    // Rendered first, so that a failed write is a plain `io::Error` the binary can tell
    // apart (a reader such as `head` that stopped reading).
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

async fn show(client: &Client, segments: &[&str], out: Out<'_>) -> anyhow::Result<Value> {
    let value = client.get(segments).await?;
    print_json(out, &value)?;
    Ok(value)
}

/// A template from a JSON file, `-` for standard input. Only JSON syntax is checked
/// here; what makes a template valid is the server's to say (`flotte profile validate`).
pub fn read_template(file: &Path) -> anyhow::Result<Value> {
    let (name, text) = if file == Path::new("-") {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| anyhow::anyhow!("standard input: {e}"))?;
        ("standard input".to_owned(), text)
    } else {
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        (file.display().to_string(), text)
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{name}: not JSON: {e}"))
}

/// `flotte profile list`: every template in its newest version.
pub async fn profile_list(client: &Client, out: Out<'_>) -> anyhow::Result<Value> {
    show(client, &["profiles"], out).await
}

/// `flotte profile show ID`: a template (by id or identifier), newest version.
pub async fn profile_show(client: &Client, id: &str, out: Out<'_>) -> anyhow::Result<Value> {
    show(client, &["profiles", id], out).await
}

/// `flotte profile versions ID`: every saved version, oldest first.
pub async fn profile_versions(client: &Client, id: &str, out: Out<'_>) -> anyhow::Result<Value> {
    show(client, &["profiles", id, "versions"], out).await
}

/// `flotte profile create FILE`: save a new template as version 1.
pub async fn profile_create(client: &Client, file: &Path, out: Out<'_>) -> anyhow::Result<Value> {
    let template = read_template(file)?;
    let saved = client.post(&["profiles"], &template).await?;
    print_json(out, &saved)?;
    Ok(saved)
}

/// `flotte profile update ID FILE`: save the file as the template's next version.
pub async fn profile_update(
    client: &Client,
    id: &str,
    file: &Path,
    out: Out<'_>,
) -> anyhow::Result<Value> {
    let template = read_template(file)?;
    let saved = client.put(&["profiles", id], &template).await?;
    print_json(out, &saved)?;
    Ok(saved)
}

/// `flotte profile validate FILE`: the server's checks without saving. An invalid
/// template is an error naming the file and the server's reasons.
pub async fn profile_validate(client: &Client, file: &Path, out: Out<'_>) -> anyhow::Result<Value> {
    let template = read_template(file)?;
    match client.post(&["profiles", "validate"], &template).await {
        Ok(answer) => {
            print_json(out, &answer)?;
            Ok(answer)
        }
        Err(ClientError::Api { status, message }) if status == StatusCode::BAD_REQUEST => Err(
            anyhow::anyhow!("{}: invalid template: {message}", file.display()),
        ),
        Err(e) => Err(e.into()),
    }
}

/// What `flotte push start` asks for; the fields of `POST /api/v1/pushes`.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// The template (id or identifier); `None` for a sync.
    pub profile: Option<String>,
    /// The version to install; the newest when `None`.
    pub version: Option<i32>,
    pub action: PushAction,
    pub scope: AssignmentScope,
    /// Devices per fan-out job; the server's `profiles.push_batch_size` when `None`.
    pub batch_size: Option<u32>,
    /// Wake silent devices again after this long; the server's default when `None`.
    pub silent_after_secs: Option<u64>,
}

impl PushRequest {
    /// The request body. Absent options are left out rather than sent as `null`, so that
    /// the server's defaults apply.
    pub fn body(&self) -> Value {
        let mut body = json!({ "action": self.action, "scope": self.scope });
        if let Some(profile) = &self.profile {
            body["profile"] = json!(profile);
        }
        if let Some(version) = self.version {
            body["version"] = json!(version);
        }
        if let Some(batch_size) = self.batch_size {
            body["batch_size"] = json!(batch_size);
        }
        if let Some(secs) = self.silent_after_secs {
            body["silent_after_secs"] = json!(secs);
        }
        body
    }
}

/// `flotte push start`: queue a push and print it; with `wait`, follow it until it is
/// finished, print it as it ended, and fail as [`outcome`] says.
pub async fn push_start(
    client: &Client,
    request: &PushRequest,
    wait: Option<&mut Progress<'_>>,
    out: Out<'_>,
) -> anyhow::Result<Value> {
    let push = client.post(&["pushes"], &request.body()).await?;
    let Some(progress) = wait else {
        print_json(out, &push)?;
        return Ok(push);
    };
    let view = PushProgressView::from_json(&push)?;
    progress.note(&describe(&view, &push))?;
    let last = follow(client, &view.id, progress).await?;
    print_json(out, &last)?;
    outcome(&last)?;
    Ok(last)
}

/// `flotte push watch ID`: follow a push until it is finished; as `push start --wait`.
pub async fn push_watch(
    client: &Client,
    id: &str,
    progress: &mut Progress<'_>,
    out: Out<'_>,
) -> anyhow::Result<Value> {
    let last = follow(client, id, progress).await?;
    print_json(out, &last)?;
    outcome(&last)?;
    Ok(last)
}

/// `flotte push list`: the newest pushes the caller may see.
pub async fn push_list(client: &Client, out: Out<'_>) -> anyhow::Result<Value> {
    show(client, &["pushes"], out).await
}

/// `flotte push status ID`: a push with its counts per device status.
pub async fn push_status(client: &Client, id: &str, out: Out<'_>) -> anyhow::Result<Value> {
    show(client, &["pushes", id], out).await
}

/// `flotte push devices ID`: the push's devices, optionally of one status.
pub async fn push_devices(
    client: &Client,
    id: &str,
    status: Option<TargetStatus>,
    limit: Option<u64>,
    out: Out<'_>,
) -> anyhow::Result<Value> {
    let limit = limit.map(|l| l.to_string());
    let mut query = Vec::new();
    if let Some(status) = &status {
        query.push(("status", status.as_str()));
    }
    if let Some(limit) = &limit {
        query.push(("limit", limit.as_str()));
    }
    let devices = client.get_query(&["pushes", id, "devices"], &query).await?;
    print_json(out, &devices)?;
    Ok(devices)
}

/// What `pause`, `resume` and `cancel` do to a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushControl {
    Pause,
    Resume,
    Cancel,
}

/// `flotte push pause|resume|cancel ID`: prints the push after the change.
pub async fn push_control(
    client: &Client,
    id: &str,
    control: PushControl,
    out: Out<'_>,
) -> anyhow::Result<Value> {
    let verb = match control {
        PushControl::Pause => "pause",
        PushControl::Resume => "resume",
        PushControl::Cancel => "cancel",
    };
    let push = client.post(&["pushes", id, verb], &json!({})).await?;
    print_json(out, &push)?;
    Ok(push)
}

fn describe(view: &PushProgressView, push: &Value) -> String {
    let what = match (view.action.as_str(), view.version) {
        ("sync", _) => "sync".to_owned(),
        (action, Some(version)) => format!("{action} {} v{version}", view.profile),
        (action, None) => format!("{action} {}", view.profile),
    };
    let scope = &push["scope"];
    let scope = match scope["id"].as_str() {
        Some(id) if !id.is_empty() => format!("{} {id}", scope["kind"].as_str().unwrap_or("?")),
        _ => scope["kind"].as_str().unwrap_or("?").to_owned(),
    };
    let devices = if view.total == 1 { "device" } else { "devices" };
    format!(
        "push {}: {what} to {scope}, {} {devices}",
        view.id,
        grouped(view.total)
    )
}

/// The exit status of `push start --wait` and `push watch` when a push was cancelled.
pub const EXIT_CANCELLED: u8 = 4;
/// The exit status when a push completed but some devices failed or never answered.
pub const EXIT_INCOMPLETE: u8 = 3;

/// A followed push that did not reach every device: the binary exits with `code`.
#[derive(Debug)]
pub struct PushEnded {
    pub code: u8,
    pub message: String,
    /// The push as it ended.
    pub push: Value,
}

impl fmt::Display for PushEnded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PushEnded {}

/// Success is every device having what the push asked for: acknowledged, or unchanged
/// because it already had it (superseded devices were handed on to a later push, which
/// answers for them). A push that ended with failed or expired devices, or was
/// cancelled, is not a success, so that a script can tell.
pub fn outcome(push: &Value) -> Result<(), PushEnded> {
    let Ok(view) = PushProgressView::from_json(push) else {
        return Ok(());
    };
    let ended = |code, message| PushEnded {
        code,
        message,
        push: push.clone(),
    };
    if view.status == PushStatus::Cancelled.as_str() {
        return Err(ended(
            EXIT_CANCELLED,
            format!(
                "push {} was cancelled: {} of {} devices acknowledged",
                view.id,
                grouped(view.count(TargetStatus::Acknowledged)),
                grouped(view.total)
            ),
        ));
    }
    let failed = view.count(TargetStatus::Failed);
    let expired = view.count(TargetStatus::Expired);
    if failed + expired > 0 {
        return Err(ended(
            EXIT_INCOMPLETE,
            format!(
                "push {id} completed with {} failed and {} expired of {} devices; \
                 see `flotte push devices {id} --status failed`",
                grouped(failed),
                grouped(expired),
                grouped(view.total),
                id = view.id,
            ),
        ));
    }
    Ok(())
}

/// How long the event stream may stay silent: the server sends a keep-alive every 15 s,
/// so this much silence means a dead connection, and polling takes over.
const STREAM_IDLE: Duration = Duration::from_secs(45);
const POLL_EVERY: Duration = Duration::from_secs(1);
/// Polling rides out a server restart this long before giving up.
const POLL_PATIENCE: Duration = Duration::from_secs(60);

/// Follow a push until it is finished: the server-sent events, then (if the stream ends
/// early or breaks) polling every second. Returns the push as it ended.
pub async fn follow(
    client: &Client,
    id: &str,
    progress: &mut Progress<'_>,
) -> anyhow::Result<Value> {
    match client.stream(&["pushes", id, "events"]).await {
        Ok(mut response) => {
            let mut parser = SseParser::default();
            'stream: loop {
                let chunk = match tokio::time::timeout(STREAM_IDLE, response.chunk()).await {
                    Ok(Ok(Some(chunk))) => chunk,
                    _ => break 'stream,
                };
                for event in parser.push(&chunk) {
                    match event.event.as_str() {
                        "progress" | "done" => {
                            let Ok(push) = serde_json::from_str::<Value>(&event.data) else {
                                continue;
                            };
                            let view = PushProgressView::from_json(&push)?;
                            if event.event == "done" || view.is_finished() {
                                progress.finish(&view)?;
                                return Ok(push);
                            }
                            progress.update(&view)?;
                        }
                        "error" => {
                            progress.note(&format!(
                                "push {id}: the event stream stopped ({}); polling instead",
                                event.data
                            ))?;
                            break 'stream;
                        }
                        _ => {}
                    }
                }
                progress.tick()?;
            }
        }
        // The server answered: the push is unknown, or the token refused. Polling would
        // only hear the same.
        Err(e @ ClientError::Api { .. }) => return Err(e.into()),
        Err(e) => progress.note(&format!("push {id}: {e}; polling instead"))?,
    }
    let mut unreachable_since: Option<Instant> = None;
    loop {
        match client.get(&["pushes", id]).await {
            Ok(push) => {
                unreachable_since = None;
                let view = PushProgressView::from_json(&push)?;
                if view.is_finished() {
                    progress.finish(&view)?;
                    return Ok(push);
                }
                progress.update(&view)?;
            }
            Err(e @ ClientError::Transport { .. }) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > POLL_PATIENCE {
                    return Err(e.into());
                }
            }
            Err(e) => return Err(e.into()),
        }
        tokio::time::sleep(POLL_EVERY).await;
        progress.tick()?;
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field; `message` when absent.
    pub event: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// A text/event-stream decoder fed with chunks as they arrive; a chunk may end anywhere,
/// even inside a UTF-8 sequence, so only complete lines are decoded.
#[derive(Debug, Default)]
pub struct SseParser {
    partial: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// The events completed by this chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.partial.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.partial.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    events.push(SseEvent {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        data,
                    });
                }
                self.event = None;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_ref(), ""),
            };
            match field {
                "event" => self.event = Some(value.to_owned()),
                "data" => match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        events
    }
}

/// The parts of a push that progress shows. Unknown statuses (a newer server) are
/// tolerated: they count as neither done nor failed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct PushProgressView {
    pub id: String,
    #[serde(default)]
    pub profile: String,
    #[serde(default)]
    pub version: Option<i32>,
    #[serde(default)]
    pub action: String,
    pub status: String,
    /// Devices the push reaches.
    #[serde(default)]
    pub total: i64,
    /// Devices per target status (`acknowledged`, `not_now`, …).
    #[serde(default)]
    pub counts: BTreeMap<String, i64>,
}

impl PushProgressView {
    pub fn from_json(push: &Value) -> anyhow::Result<Self> {
        Self::deserialize(push).map_err(|e| anyhow::anyhow!("not a push: {e}: {push}"))
    }

    pub fn count(&self, status: TargetStatus) -> i64 {
        self.counts.get(status.as_str()).copied().unwrap_or(0)
    }

    /// Completed or cancelled.
    pub fn is_finished(&self) -> bool {
        self.status
            .parse::<PushStatus>()
            .is_ok_and(PushStatus::is_finished)
    }

    /// Devices whose part is over, whichever way.
    pub fn done(&self) -> i64 {
        self.counts
            .iter()
            .filter(|(status, _)| {
                status
                    .parse::<TargetStatus>()
                    .is_ok_and(TargetStatus::is_final)
            })
            .map(|(_, n)| n)
            .sum()
    }
}

/// 2703 → `2,703`.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The progress as words: `1,203/2,703 acknowledged · 12 failed · 40 not now · queued 2,703`,
/// then any devices unchanged, superseded, expired or cancelled, then the push's status
/// unless it is simply running. "queued" counts the devices planned so far.
pub fn progress_text(view: &PushProgressView) -> String {
    let mut parts = vec![
        format!(
            "{}/{} acknowledged",
            grouped(view.count(TargetStatus::Acknowledged)),
            grouped(view.total)
        ),
        format!("{} failed", grouped(view.count(TargetStatus::Failed))),
        format!("{} not now", grouped(view.count(TargetStatus::NotNow))),
    ];
    for status in [
        TargetStatus::Unchanged,
        TargetStatus::Superseded,
        TargetStatus::Expired,
        TargetStatus::Cancelled,
    ] {
        let n = view.count(status);
        if n > 0 {
            parts.push(format!("{} {status}", grouped(n)));
        }
    }
    let planned = (view.total - view.count(TargetStatus::Pending)).max(0);
    parts.push(format!("queued {}", grouped(planned)));
    match view.status.parse::<PushStatus>() {
        Ok(PushStatus::Running) => {}
        Ok(PushStatus::Queued) => parts.push("starting".into()),
        _ => parts.push(view.status.clone()),
    }
    parts.join(" · ")
}

const BAR_MAX: usize = 30;
const BAR_MIN: usize = 8;

/// The progress line for a terminal `width` columns wide: a bar of the devices done
/// (`[#####.....]`) followed by [`progress_text`]. The bar shrinks, then goes, then the
/// text is cut, so that the line never wraps: a wrapped line cannot be redrawn with `\r`.
pub fn progress_line(view: &PushProgressView, width: usize) -> String {
    let text = progress_text(view);
    let text_len = text.chars().count();
    let bar_width = width.saturating_sub(text_len + 3).min(BAR_MAX);
    if bar_width >= BAR_MIN {
        let filled = if view.total > 0 {
            let done = view.done().clamp(0, view.total);
            // Full only when every device is done, not when rounding says so.
            usize::try_from(done * bar_width as i64 / view.total).unwrap_or(0)
        } else {
            0
        };
        return format!(
            "[{}{}] {text}",
            "#".repeat(filled),
            ".".repeat(bar_width - filled)
        );
    }
    if text_len <= width {
        return text;
    }
    if width == 0 {
        return String::new();
    }
    let mut cut: String = text.chars().take(width - 1).collect();
    cut.push('…');
    cut
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressStyle {
    /// A terminal: one line, redrawn in place.
    Redraw { width: usize },
    /// A log or a pipe: one line per change, at most once a second.
    Lines,
}

/// Where a followed push's progress and notes go.
pub struct Progress<'a> {
    out: &'a mut (dyn Write + Send),
    style: ProgressStyle,
    shown: Option<String>,
    shown_at: Option<Instant>,
    held: Option<String>,
    drawn: usize,
}

const LINES_EVERY: Duration = Duration::from_secs(1);

impl<'a> Progress<'a> {
    pub fn new(out: &'a mut (dyn Write + Send), style: ProgressStyle) -> Self {
        Self {
            out,
            style,
            shown: None,
            shown_at: None,
            held: None,
            drawn: 0,
        }
    }

    /// Show the push's progress if it changed.
    pub fn update(&mut self, view: &PushProgressView) -> io::Result<()> {
        self.update_at(view, Instant::now())
    }

    fn update_at(&mut self, view: &PushProgressView, now: Instant) -> io::Result<()> {
        match self.style {
            ProgressStyle::Redraw { width } => {
                // One column spare: some terminals wrap on writing the last one.
                self.draw(&progress_line(view, width.saturating_sub(1)))
            }
            ProgressStyle::Lines => {
                let line = format!("push {}: {}", view.id, progress_text(view));
                if self.shown.as_deref() == Some(line.as_str()) {
                    self.held = None;
                    return Ok(());
                }
                if self
                    .shown_at
                    .is_some_and(|at| now.duration_since(at) < LINES_EVERY)
                {
                    self.held = Some(line);
                    return Ok(());
                }
                self.write_line(line, now)
            }
        }
    }

    /// Let a line held back by the once-a-second limit out, once its second is over.
    pub fn tick(&mut self) -> io::Result<()> {
        self.tick_at(Instant::now())
    }

    fn tick_at(&mut self, now: Instant) -> io::Result<()> {
        let due = self
            .shown_at
            .is_none_or(|at| now.duration_since(at) >= LINES_EVERY);
        match self.held.take() {
            Some(line) if due => self.write_line(line, now),
            held => {
                self.held = held;
                Ok(())
            }
        }
    }

    /// The final state: always shown, and a drawn line is ended.
    pub fn finish(&mut self, view: &PushProgressView) -> io::Result<()> {
        self.held = None;
        match self.style {
            ProgressStyle::Redraw { .. } => {
                self.update(view)?;
                self.end_drawn_line()
            }
            ProgressStyle::Lines => {
                let line = format!("push {}: {}", view.id, progress_text(view));
                if self.shown.as_deref() == Some(line.as_str()) {
                    return Ok(());
                }
                self.write_line(line, Instant::now())
            }
        }
    }

    /// A line of its own (what was queued, a fallback to polling).
    pub fn note(&mut self, text: &str) -> io::Result<()> {
        self.end_drawn_line()?;
        writeln!(self.out, "{text}")?;
        self.out.flush()
    }

    fn draw(&mut self, line: &str) -> io::Result<()> {
        if self.drawn > 0 && self.shown.as_deref() == Some(line) {
            return Ok(());
        }
        let len = line.chars().count();
        // Blank out the rest of a longer previous line.
        let pad = self.drawn.saturating_sub(len);
        write!(self.out, "\r{line}{}", " ".repeat(pad))?;
        self.out.flush()?;
        self.drawn = len;
        self.shown = Some(line.to_owned());
        Ok(())
    }

    fn end_drawn_line(&mut self) -> io::Result<()> {
        if self.drawn > 0 {
            writeln!(self.out)?;
            self.out.flush()?;
            self.drawn = 0;
            self.shown = None;
        }
        Ok(())
    }

    fn write_line(&mut self, line: String, now: Instant) -> io::Result<()> {
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        self.shown = Some(line);
        self.shown_at = Some(now);
        self.held = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: &str, total: i64, counts: &[(&str, i64)]) -> PushProgressView {
        PushProgressView {
            id: "p1".into(),
            profile: "de.flotte.portal".into(),
            version: Some(2),
            action: "install".into(),
            status: status.into(),
            total,
            counts: counts.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
        }
    }

    fn running() -> PushProgressView {
        view(
            "running",
            2703,
            &[
                ("pending", 0),
                ("queued", 1200),
                ("sent", 248),
                ("not_now", 40),
                ("acknowledged", 1203),
                ("failed", 12),
            ],
        )
    }

    #[test]
    fn the_progress_line_reads_as_counts_with_a_bar_of_the_devices_done() {
        assert_eq!(
            progress_line(&running(), 120),
            "[#############.................] \
             1,203/2,703 acknowledged · 12 failed · 40 not now · queued 2,703"
        );
    }

    #[test]
    fn the_progress_line_never_outgrows_the_terminal() {
        let v = running();
        for width in [0, 1, 10, 40, 66, 70, 80, 200] {
            let line = progress_line(&v, width);
            assert!(line.chars().count() <= width, "{width}: {line:?}");
        }
        // Too narrow for a bar of BAR_MIN: the words alone, cut.
        let narrow = progress_line(&v, 40);
        assert!(!narrow.starts_with('['), "{narrow}");
        assert!(narrow.ends_with('…'), "{narrow}");
        // Wide: the bar stops growing.
        assert!(progress_line(&v, 200).starts_with(&format!("[{}.", "#".repeat(13))));
        assert_eq!(progress_line(&v, 200).find(']'), Some(BAR_MAX + 1));
    }

    #[test]
    fn the_bar_is_full_only_when_every_device_is_done_and_extras_appear_when_present() {
        let almost = view(
            "running",
            1000,
            &[("acknowledged", 998), ("unchanged", 1), ("sent", 1)],
        );
        let line = progress_line(&almost, 100);
        assert!(line.contains('.'), "999/1000 is not a full bar: {line}");
        assert!(line.contains("1 unchanged"), "{line}");
        let done = view(
            "completed",
            3,
            &[("acknowledged", 1), ("expired", 1), ("superseded", 1)],
        );
        let line = progress_line(&done, 200);
        assert!(
            line.starts_with(&format!("[{}]", "#".repeat(BAR_MAX))),
            "{line}"
        );
        assert!(
            line.ends_with("1 superseded · 1 expired · queued 3 · completed"),
            "{line}"
        );
        let fresh = view("queued", 5, &[("pending", 5)]);
        assert!(progress_text(&fresh).ends_with("queued 0 · starting"));
        let empty = view("queued", 0, &[]);
        assert!(progress_line(&empty, 100).starts_with(&format!("[{}]", ".".repeat(BAR_MAX))));
    }

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(2703), "2,703");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(-1200), "-1,200");
    }

    #[test]
    fn events_are_decoded_across_chunk_boundaries_and_keep_alives_are_skipped() {
        let stream = ": keep-alive\n\nevent: progress\ndata: {\"a\":\"é\"}\r\n\r\n\
                      data: x\ndata: y\n\nevent: done\ndata:z\n\n"
            .as_bytes();
        let expected = vec![
            SseEvent {
                event: "progress".into(),
                data: "{\"a\":\"é\"}".into(),
            },
            SseEvent {
                event: "message".into(),
                data: "x\ny".into(),
            },
            SseEvent {
                event: "done".into(),
                data: "z".into(),
            },
        ];
        // Whole, byte by byte (which splits the é), and in uneven pieces.
        for size in [stream.len(), 1, 7] {
            let mut parser = SseParser::default();
            let events: Vec<SseEvent> = stream
                .chunks(size)
                .flat_map(|chunk| parser.push(chunk))
                .collect();
            assert_eq!(events, expected, "chunks of {size}");
        }
    }

    #[test]
    fn a_terminal_gets_one_line_redrawn_and_ended_at_the_finish() {
        let mut buf = Vec::new();
        {
            let mut p = Progress::new(&mut buf, ProgressStyle::Redraw { width: 100 });
            p.update(&running()).unwrap();
            p.update(&running()).unwrap();
            let mut done = running();
            done.status = "completed".into();
            p.finish(&done).unwrap();
        }
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(
            text.matches('\r').count(),
            2,
            "unchanged progress is not redrawn"
        );
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.ends_with("completed\n"), "{text:?}");
    }

    #[test]
    fn a_log_gets_a_line_per_change_at_most_once_a_second_and_always_the_end() {
        let mut buf = Vec::new();
        let start = Instant::now();
        {
            let mut p = Progress::new(&mut buf, ProgressStyle::Lines);
            let mut v = running();
            p.update_at(&v, start).unwrap();
            p.update_at(&v, start).unwrap();
            v.counts.insert("acknowledged".into(), 1300);
            p.update_at(&v, start + Duration::from_millis(300)).unwrap();
            p.tick_at(start + Duration::from_millis(600)).unwrap();
            p.tick_at(start + Duration::from_millis(1100)).unwrap();
            v.counts.insert("acknowledged".into(), 1400);
            p.update_at(&v, start + Duration::from_millis(1200))
                .unwrap();
            v.status = "completed".into();
            p.finish(&v).unwrap();
        }
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("push p1: 1,203/2,703 acknowledged"));
        assert!(lines[1].starts_with("push p1: 1,300/2,703 acknowledged"));
        assert!(lines[2].starts_with("push p1: 1,400/2,703 acknowledged"));
        assert!(lines[2].ends_with("completed"));
        assert!(!text.contains('\r'));
    }

    #[test]
    fn a_cancelled_push_or_one_with_failures_is_not_a_success() {
        let ok = json!({ "id": "p", "status": "completed", "total": 2,
            "counts": { "acknowledged": 1, "unchanged": 1, "failed": 0 } });
        assert!(outcome(&ok).is_ok());
        let failed = json!({ "id": "p", "status": "completed", "total": 2,
            "counts": { "acknowledged": 1, "failed": 1 } });
        let e = outcome(&failed).unwrap_err();
        assert_eq!(e.code, EXIT_INCOMPLETE);
        assert!(e.message.contains("1 failed"), "{}", e.message);
        let cancelled = json!({ "id": "p", "status": "cancelled", "total": 2,
            "counts": { "acknowledged": 1, "cancelled": 1 } });
        assert_eq!(outcome(&cancelled).unwrap_err().code, EXIT_CANCELLED);
    }

    #[test]
    fn a_push_request_leaves_out_what_was_not_given() {
        let r = PushRequest {
            profile: None,
            version: None,
            action: PushAction::Sync,
            scope: AssignmentScope::School("GYM1".into()),
            batch_size: None,
            silent_after_secs: Some(600),
        };
        assert_eq!(
            r.body(),
            json!({ "action": "sync", "scope": { "kind": "school", "id": "GYM1" },
                    "silent_after_secs": 600 })
        );
        let r = PushRequest {
            profile: Some("de.flotte.portal".into()),
            version: Some(2),
            action: PushAction::Install,
            scope: AssignmentScope::All,
            batch_size: Some(50),
            silent_after_secs: None,
        };
        assert_eq!(
            r.body(),
            json!({ "action": "install", "scope": { "kind": "all" },
                    "profile": "de.flotte.portal", "version": 2, "batch_size": 50 })
        );
    }
}
