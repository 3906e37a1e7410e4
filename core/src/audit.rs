//! Who did what, when and from where: the audit log's entry.

use serde::Serialize;

/// One state change worth recording. `actor` names a technician token, a staff
/// member's username, a device (`device:<udid>`) or `system` for the worker.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source: Option<String>,
    pub details: serde_json::Value,
}

impl AuditEntry {
    pub fn new(
        actor: impl Into<String>,
        action: impl Into<String>,
        target: impl Into<String>,
    ) -> Self {
        Self {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            source: None,
            details: serde_json::Value::Null,
        }
    }

    pub fn from_source(mut self, source: Option<String>) -> Self {
        self.source = source;
        self
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}
