//! The full read.

use std::time::Instant;

use flotte_core::directory::DirectorySnapshot;
use ldap3::{Ldap, Scope};

use crate::conn::{Query, RawEntry, connect_service, search};
use crate::error::DirectoryError;
use crate::guarded;
use crate::mapping::{
    FullRead, GROUP_ATTRS, SCHOOL_ATTRS, assemble_snapshot, days_since_epoch, group_filter,
    people_filter, person_attrs, school_filter,
};
use crate::settings::LdapSettings;

/// Reads every school, school user, class and workgroup below the base with
/// the service account, in pages.
///
/// Fails as a whole on any connection, bind, time-out, referral or result
/// code other than success, so a caller can never apply half a directory.
/// Entries that are present but unusable are reported in the snapshot's
/// `problems` (see the `mapping` module for which ones make it incomplete).
pub async fn read_snapshot(settings: &LdapSettings) -> Result<DirectorySnapshot, DirectoryError> {
    let settings = settings.clone();
    guarded(async move { read(&settings).await }).await
}

async fn read(settings: &LdapSettings) -> Result<DirectorySnapshot, DirectoryError> {
    let started = Instant::now();
    let mut ldap = connect_service(settings).await?;
    let layout = &settings.layout;
    let base = settings.base_dn.as_str();

    let schools = search(
        &mut ldap,
        settings,
        &Query {
            operation: "the school search",
            base,
            scope: Scope::Subtree,
            filter: &school_filter(layout),
            attrs: SCHOOL_ATTRS,
            paged: true,
        },
    )
    .await?;
    let people = search(
        &mut ldap,
        settings,
        &Query {
            operation: "the people search",
            base,
            scope: Scope::Subtree,
            filter: &people_filter(),
            attrs: &person_attrs(layout),
            paged: true,
        },
    )
    .await?;
    let groups = search(
        &mut ldap,
        settings,
        &Query {
            operation: "the group search",
            base,
            scope: Scope::Subtree,
            filter: &group_filter(layout),
            attrs: GROUP_ATTRS,
            paged: true,
        },
    )
    .await?;

    let mut problems = Vec::new();
    let technician_group = match &settings.technician_group_dn {
        None => None,
        Some(dn) => {
            let group = read_group(&mut ldap, settings, dn).await?;
            if group.is_none() {
                problems.push(format!("technician group {dn} does not exist"));
            }
            group
        }
    };
    let _ = ldap.unbind().await;

    let fetched = started.elapsed();
    let (school_count, people_count, group_count) = (schools.len(), people.len(), groups.len());
    let snapshot = assemble_snapshot(
        FullRead {
            schools,
            people,
            groups,
            technician_group,
            problems,
        },
        layout,
        days_since_epoch(chrono::Utc::now()),
    );
    tracing::info!(
        schools = school_count,
        people = people_count,
        groups = group_count,
        problems = snapshot.problems.len(),
        complete = snapshot.complete,
        fetch_ms = fetched.as_millis() as u64,
        total_ms = started.elapsed().as_millis() as u64,
        "directory snapshot read"
    );
    Ok(snapshot)
}

/// One group entry by DN; `None` when it does not exist.
pub(crate) async fn read_group(
    ldap: &mut Ldap,
    settings: &LdapSettings,
    dn: &str,
) -> Result<Option<RawEntry>, DirectoryError> {
    let found = search(
        ldap,
        settings,
        &Query {
            operation: "the technician group read",
            base: dn,
            scope: Scope::Base,
            filter: "(objectClass=*)",
            attrs: &["uniqueMember", "member", "memberUid"],
            paged: false,
        },
    )
    .await;
    match found {
        Ok(mut entries) => Ok(entries.pop()),
        Err(DirectoryError::Ldap { rc: 32, .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
