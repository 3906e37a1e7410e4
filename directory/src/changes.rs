//! Incremental reads: RFC 4533 content sync when the server offers it,
//! `modifyTimestamp` polling otherwise.
//!
//! Both end in the same [`DirectoryChanges`], which
//! [`flotte_core::directory::KnownDirectory::with_changes`] merges into a
//! snapshot for the ordinary planner, safety checks included.
//!
//! * **Content sync** (`syncprov` on the server) runs a refreshOnly search
//!   with the stored cookie. The server sends changed entries and either the
//!   deleted ids (delete phase, with a session log) or the ids of every
//!   unchanged entry (present phase); both become [`Deletions`].
//! * **`modifyTimestamp>=`** cannot see deletions ([`Deletions::Unknown`]),
//!   so it must be paired with periodic full reads. The cookie is the newest
//!   timestamp seen; entries stamped in that same second are delivered again
//!   on the next poll. That repeats a little work but can never miss a change
//!   made later in the same second, which a strict `>` would.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use flotte_core::directory::{Deletions, DirSchool, DirectoryChanges, GroupKind};
use ldap3::controls::{
    Control, ControlType, EntryState, MakeCritical, RefreshMode, SyncDone, SyncInfo, SyncRequest,
    SyncState, parse_syncinfo,
};
use ldap3::{Ldap, Scope};
use uuid::Uuid;

use crate::conn::{
    Query, RawEntry, check_result, connect_service, op_error, raw_entry, search, supported_controls,
};
use crate::error::DirectoryError;
use crate::guarded;
use crate::mapping::{
    Collector, GROUP_ATTRS, MapContext, MemberIndex, MemberRef, Outcome, SCHOOL_ATTRS,
    days_since_epoch, entry_uuid, group_filter, map_group, map_people, map_school, parse_dn,
    people_filter, person_attrs, resolve_groups, school_filter, unresolved_members,
};
use crate::settings::LdapSettings;

/// OID of the RFC 4533 Sync Request control, as listed in the root DSE's
/// `supportedControl` when `syncprov` is loaded.
pub const CONTENT_SYNC_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";

/// Where the previous incremental read ended. Store it as text
/// ([`fmt::Display`] / [`FromStr`]) and hand it back next time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeCookie {
    /// The server's opaque RFC 4533 cookie.
    ContentSync(Vec<u8>),
    /// The newest `modifyTimestamp` seen, as GeneralizedTime.
    ModifyTimestamp(String),
}

impl fmt::Display for ChangeCookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeCookie::ContentSync(bytes) => {
                f.write_str("sync:")?;
                for b in bytes {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            ChangeCookie::ModifyTimestamp(ts) => write!(f, "ts:{ts}"),
        }
    }
}

impl FromStr for ChangeCookie {
    type Err = DirectoryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| DirectoryError::Cookie(format!("{text:?}: {why}"));
        if let Some(hex) = text.strip_prefix("sync:") {
            if hex.len() % 2 != 0 {
                return Err(bad("odd number of hex digits"));
            }
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| bad("not hex"))?;
            Ok(ChangeCookie::ContentSync(bytes))
        } else if let Some(ts) = text.strip_prefix("ts:") {
            if parse_generalized_time(ts).is_none() {
                return Err(bad("not a GeneralizedTime"));
            }
            Ok(ChangeCookie::ModifyTimestamp(ts.to_owned()))
        } else {
            Err(bad("expected sync:<hex> or ts:<GeneralizedTime>"))
        }
    }
}

/// Which mechanism produced a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeMethod {
    ContentSync,
    ModifyTimestamp,
}

/// The result of an incremental read.
#[derive(Debug, Clone)]
pub struct ChangeBatch {
    pub changes: DirectoryChanges,
    /// Hand this to the next call.
    pub cookie: ChangeCookie,
    pub method: ChangeMethod,
}

/// Whether the server advertises RFC 4533 content sync in its root DSE.
pub async fn supports_content_sync(settings: &LdapSettings) -> Result<bool, DirectoryError> {
    let mut ldap = connect_service(settings).await?;
    let supported = offers_content_sync(&mut ldap, settings).await;
    let _ = ldap.unbind().await;
    supported
}

async fn offers_content_sync(
    ldap: &mut Ldap,
    settings: &LdapSettings,
) -> Result<bool, DirectoryError> {
    Ok(supported_controls(ldap, settings)
        .await?
        .iter()
        .any(|oid| oid == CONTENT_SYNC_OID))
}

/// Reads what changed since `cookie`. Without a cookie it reads everything
/// (every entry counts as changed and everything else as deleted), using
/// content sync if the server offers it and timestamps otherwise; with a
/// cookie it uses the cookie's mechanism. Errors fail the whole read, as for
/// [`crate::read_snapshot`].
pub async fn read_changes_since(
    settings: &LdapSettings,
    cookie: Option<&ChangeCookie>,
) -> Result<ChangeBatch, DirectoryError> {
    let settings = settings.clone();
    let cookie = cookie.cloned();
    guarded(async move { read(&settings, cookie).await }).await
}

async fn read(
    settings: &LdapSettings,
    cookie: Option<ChangeCookie>,
) -> Result<ChangeBatch, DirectoryError> {
    let mut ldap = connect_service(settings).await?;
    let batch = match cookie {
        Some(ChangeCookie::ContentSync(bytes)) => {
            if !offers_content_sync(&mut ldap, settings).await? {
                return Err(DirectoryError::Cookie(
                    "the server no longer offers content sync; do a full read".to_owned(),
                ));
            }
            content_sync(&mut ldap, settings, Some(bytes)).await?
        }
        Some(ChangeCookie::ModifyTimestamp(since)) => {
            timestamps(&mut ldap, settings, Some(since)).await?
        }
        None if offers_content_sync(&mut ldap, settings).await? => {
            content_sync(&mut ldap, settings, None).await?
        }
        None => timestamps(&mut ldap, settings, None).await?,
    };
    let _ = ldap.unbind().await;
    tracing::info!(
        method = ?batch.method,
        schools = batch.changes.schools.len(),
        people = batch.changes.people.len(),
        groups = batch.changes.classes.len() + batch.changes.workgroups.len(),
        problems = batch.changes.problems.len(),
        "directory changes read"
    );
    Ok(batch)
}

/// Everything an incremental read looks at: schools, school users and groups.
fn sync_filter(settings: &LdapSettings) -> String {
    format!(
        "(|{}{}{})",
        school_filter(&settings.layout),
        people_filter(),
        group_filter(&settings.layout)
    )
}

fn sync_attrs(settings: &LdapSettings) -> Vec<&str> {
    let mut attrs: Vec<&str> = person_attrs(&settings.layout);
    attrs.extend(SCHOOL_ATTRS);
    attrs.extend(GROUP_ATTRS);
    attrs.push("modifyTimestamp");
    attrs.sort_unstable_by_key(|a| a.to_ascii_lowercase());
    attrs.dedup_by_key(|a| a.to_ascii_lowercase());
    attrs
}

async fn content_sync(
    ldap: &mut Ldap,
    settings: &LdapSettings,
    cookie: Option<Vec<u8>>,
) -> Result<ChangeBatch, DirectoryError> {
    const OPERATION: &str = "the content sync search";
    let fail = |e| op_error(OPERATION, e, settings);
    let had_cookie = cookie.is_some();
    // Critical: a server that ignored the control would answer with a plain
    // search, which we would misread as "everything changed".
    ldap.with_controls(
        SyncRequest {
            mode: RefreshMode::RefreshOnly,
            cookie: cookie.clone(),
            reload_hint: false,
        }
        .critical(),
    );
    ldap.with_timeout(settings.timeout);
    let filter = sync_filter(settings);
    let mut stream = ldap
        .streaming_search(
            &settings.base_dn,
            Scope::Subtree,
            &filter,
            sync_attrs(settings),
        )
        .await
        .map_err(fail)?;

    let mut new_cookie = None;
    let mut changed = Vec::new();
    let mut changed_ids = BTreeSet::new();
    let mut present = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    while let Some(item) = stream.next().await.map_err(fail)? {
        if item.is_ref() {
            let _ = stream.finish().await;
            return Err(DirectoryError::Referral {
                operation: OPERATION.to_owned(),
                refs: ldap3::parse_refs(item.0),
            });
        }
        if item.is_intermediate() {
            match parse_syncinfo(item) {
                SyncInfo::NewCookie(c) => new_cookie = Some(c),
                SyncInfo::RefreshDelete { cookie, .. }
                | SyncInfo::RefreshPresent { cookie, .. } => {
                    new_cookie = cookie.or(new_cookie);
                }
                SyncInfo::SyncIdSet {
                    cookie,
                    refresh_deletes,
                    sync_uuids,
                } => {
                    new_cookie = cookie.or(new_cookie);
                    let target = if refresh_deletes {
                        &mut deleted
                    } else {
                        &mut present
                    };
                    for raw in sync_uuids {
                        target.insert(sync_uuid(&raw)?);
                    }
                }
            }
            continue;
        }
        let state = item.1.iter().find_map(|c| match c {
            Control(Some(ControlType::SyncState), raw) => Some(raw.parse::<SyncState>()),
            _ => None,
        });
        let Some(state) = state else {
            return Err(DirectoryError::Ldap {
                operation: OPERATION.to_owned(),
                rc: 2,
                text: "an entry arrived without a Sync State control".to_owned(),
            });
        };
        new_cookie = state.cookie.or(new_cookie);
        let id = sync_uuid(&state.entry_uuid)?;
        match state.state {
            EntryState::Present => {
                present.insert(id);
            }
            EntryState::Delete => {
                deleted.insert(id);
            }
            EntryState::Add | EntryState::Modify => {
                changed_ids.insert(id);
                changed.push(raw_entry(item));
            }
        }
    }
    let result = stream.finish().await;
    if result.rc == 4096 {
        return Err(DirectoryError::Cookie(
            "the server asks for a full refresh (e-syncRefreshRequired)".to_owned(),
        ));
    }
    let result = check_result(OPERATION, result)?;
    let mut refresh_deletes = false;
    for control in &result.ctrls {
        if let Control(Some(ControlType::SyncDone), raw) = control {
            let done: SyncDone = raw.parse();
            new_cookie = done.cookie.or(new_cookie);
            refresh_deletes = done.refresh_deletes;
        }
    }
    let deletions = if !had_cookie {
        // The initial refresh sends every entry in scope, so whatever it did
        // not send is gone, however the server sets refreshDeletes (slapd
        // sets it).
        present.extend(changed_ids.iter().copied());
        Deletions::AllExcept(present)
    } else if refresh_deletes {
        Deletions::Listed(deleted)
    } else if present.is_empty() && changed_ids.is_empty() && deleted.is_empty() {
        // A present phase names every unchanged entry, so an empty one can
        // only mean the server had nothing to say. Reading it as "everything
        // was deleted" would be the worst possible misunderstanding.
        Deletions::Listed(BTreeSet::new())
    } else {
        present.extend(changed_ids.iter().copied());
        Deletions::AllExcept(present)
    };
    let Some(cookie) = new_cookie.or(cookie) else {
        return Err(DirectoryError::Cookie(
            "the server sent no sync cookie".to_owned(),
        ));
    };
    let changes = assemble_changes(ldap, settings, changed, deletions).await?;
    Ok(ChangeBatch {
        changes,
        cookie: ChangeCookie::ContentSync(cookie),
        method: ChangeMethod::ContentSync,
    })
}

fn sync_uuid(raw: &[u8]) -> Result<Uuid, DirectoryError> {
    Uuid::from_slice(raw).map_err(|_| DirectoryError::Ldap {
        operation: "the content sync search".to_owned(),
        rc: 2,
        text: format!("a sync state carried a {}-byte entryUUID", raw.len()),
    })
}

async fn timestamps(
    ldap: &mut Ldap,
    settings: &LdapSettings,
    since: Option<String>,
) -> Result<ChangeBatch, DirectoryError> {
    let base_filter = sync_filter(settings);
    let filter = match &since {
        Some(ts) => format!(
            "(&{base_filter}(modifyTimestamp>={}))",
            ldap3::ldap_escape(ts)
        ),
        None => base_filter,
    };
    let entries = search(
        ldap,
        settings,
        &Query {
            operation: "the modifyTimestamp search",
            base: &settings.base_dn,
            scope: Scope::Subtree,
            filter: &filter,
            attrs: &sync_attrs(settings),
            paged: true,
        },
    )
    .await?;
    let newest = entries
        .iter()
        .filter_map(|e| e.single("modifyTimestamp").ok().flatten())
        .filter_map(|ts| parse_generalized_time(ts).map(|t| (t, ts.to_owned())))
        .chain(
            since
                .as_deref()
                .and_then(|ts| parse_generalized_time(ts).map(|t| (t, ts.to_owned()))),
        )
        .max_by_key(|(t, _)| *t)
        .map(|(_, ts)| ts)
        .unwrap_or_else(|| "19700101000000Z".to_owned());
    let deletions = match since {
        // A read from the beginning sees everything, so what it did not see is gone.
        None => Deletions::AllExcept(entries.iter().filter_map(|e| entry_uuid(e).ok()).collect()),
        Some(_) => Deletions::Unknown,
    };
    let changes = assemble_changes(ldap, settings, entries, deletions).await?;
    Ok(ChangeBatch {
        changes,
        cookie: ChangeCookie::ModifyTimestamp(newest),
        method: ChangeMethod::ModifyTimestamp,
    })
}

/// `YYYYMMDDHHMMSS[.fraction]Z` → a sortable value. Only the UTC form that
/// OpenLDAP writes is accepted.
fn parse_generalized_time(text: &str) -> Option<chrono::NaiveDateTime> {
    let body = text.strip_suffix('Z')?;
    let (whole, fraction) = match body.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (body, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base = chrono::NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S").ok()?;
    match fraction {
        None => Some(base),
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            let nanos: u32 = format!("{f:0<9}").get(..9)?.parse().ok()?;
            Some(base + chrono::Duration::nanoseconds(i64::from(nanos)))
        }
        Some(_) => None,
    }
}

/// Maps the changed entries. Group members that are not among the changed
/// people are looked up on the server one by one; changes are small.
async fn assemble_changes(
    ldap: &mut Ldap,
    settings: &LdapSettings,
    entries: Vec<RawEntry>,
    deletions: Deletions,
) -> Result<DirectoryChanges, DirectoryError> {
    let layout = &settings.layout;
    // Codes are canonicalised against all schools, not just changed ones.
    let all_schools = search(
        ldap,
        settings,
        &Query {
            operation: "the school search",
            base: &settings.base_dn,
            scope: Scope::Subtree,
            filter: &school_filter(layout),
            attrs: SCHOOL_ATTRS,
            paged: true,
        },
    )
    .await?;
    let known_schools: Vec<DirSchool> = all_schools
        .iter()
        .filter_map(|e| match map_school(e) {
            Outcome::Mapped(s) => Some(s),
            _ => None,
        })
        .collect();
    let ctx = MapContext::new(layout, days_since_epoch(chrono::Utc::now()), &known_schools);

    let (mut school_entries, mut person_entries, mut group_entries) =
        (Vec::new(), Vec::new(), Vec::new());
    for entry in entries {
        if entry.has_object_class(&layout.school_object_class) {
            school_entries.push(entry);
        } else if entry.has_object_class(&layout.group_object_class) {
            group_entries.push(entry);
        } else {
            person_entries.push(entry);
        }
    }

    let mut collector = Collector::default();
    let schools: Vec<DirSchool> = school_entries
        .iter()
        .filter_map(|e| collector.take(map_school(e)))
        .collect();
    let mut index = MemberIndex::default();
    let people = map_people(&person_entries, &ctx, &mut collector, &mut index);
    let groups: Vec<_> = group_entries
        .iter()
        .filter_map(|e| {
            let outcome = map_group(e, &ctx, &mut collector.problems);
            collector.take(outcome)
        })
        .collect();
    for member in unresolved_members(&groups, &index) {
        if let Some(id) = lookup_member(ldap, settings, &member).await? {
            index.insert_ref(member, id);
        }
    }
    let (classes, workgroups): (Vec<_>, Vec<_>) =
        resolve_groups(groups, &index, layout, &mut collector.problems)
            .into_iter()
            .map(|(_, g)| g)
            .partition(|g| g.kind == GroupKind::Class);

    Ok(DirectoryChanges {
        schools,
        people: people.into_iter().map(|r| r.person).collect(),
        classes,
        workgroups,
        deletions,
        complete: collector.complete,
        problems: collector.problems,
        held_back: collector.held_back,
    })
}

/// The `entryUUID` of the school user a member reference points at, if any.
async fn lookup_member(
    ldap: &mut Ldap,
    settings: &LdapSettings,
    member: &MemberRef,
) -> Result<Option<Uuid>, DirectoryError> {
    let people = people_filter();
    let (base, scope, filter) = match member {
        MemberRef::Dn(key) => {
            let dn = parse_dn(key)
                .iter()
                .map(|rdn| format!("{}={}", rdn.attr, ldap3::dn_escape(&rdn.value)))
                .collect::<Vec<_>>()
                .join(",");
            (dn, Scope::Base, people)
        }
        MemberRef::Uid(uid) => (
            settings.base_dn.clone(),
            Scope::Subtree,
            format!("(&(uid={}){people})", ldap3::ldap_escape(uid)),
        ),
    };
    let found = search(
        ldap,
        settings,
        &Query {
            operation: "the group member lookup",
            base: &base,
            scope,
            filter: &filter,
            attrs: &["entryUUID"],
            paged: false,
        },
    )
    .await;
    match found {
        Ok(entries) if entries.len() == 1 => Ok(entry_uuid(&entries[0]).ok()),
        Ok(_) => Ok(None),
        Err(DirectoryError::Ldap { rc: 32, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_survive_a_round_trip_through_text() {
        for cookie in [
            ChangeCookie::ContentSync(
                b"rid=000,csn=20261127111315.456544Z#000000#000#000000".to_vec(),
            ),
            ChangeCookie::ContentSync(vec![0, 255, 16]),
            ChangeCookie::ModifyTimestamp("20261127111315Z".to_owned()),
        ] {
            let text = cookie.to_string();
            assert_eq!(
                text.parse::<ChangeCookie>().expect("parse"),
                cookie,
                "{text}"
            );
        }
    }

    #[test]
    fn garbled_cookies_are_refused() {
        for text in [
            "",
            "sync:abc",
            "sync:zz",
            "ts:yesterday",
            "ts:20261127111315",
            "csn:1",
        ] {
            assert!(
                matches!(text.parse::<ChangeCookie>(), Err(DirectoryError::Cookie(_))),
                "{text:?} was accepted"
            );
        }
    }

    #[test]
    fn generalized_times_compare_by_instant() {
        let a = parse_generalized_time("20261127111315Z").expect("a");
        let b = parse_generalized_time("20261127111315.5Z").expect("b");
        assert!(b > a);
        assert_eq!(parse_generalized_time("2026112711131Z"), None);
        assert_eq!(parse_generalized_time("20261327111315Z"), None);
    }
}
