//! slapd harness (being written).
