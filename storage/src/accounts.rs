//! What staff sign-in needs from the database: who a person is allowed to be
//! (their schools, looked up on every request), browser sessions, the
//! failed-login throttle and, without LDAP, local accounts.

use chrono::{DateTime, Duration, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use flotte_core::directory::Role;
use sea_orm::sea_query::{Expr, ExprTrait, Func, OnConflict};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter,
};

use crate::db::{commit, db_err};
use crate::directory::{parse_role, role_str};
use crate::entity::{local_account, login_throttle, person, person_school, school, web_session};
use crate::{Store, audit, hash_token};

/// A person as sign-in sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffFacts {
    pub person_id: String,
    pub username: String,
    /// `active`, `disabled` or `departed`.
    pub state: String,
    /// Schools where the person is a teacher, staff or school admin. Pupils'
    /// memberships give no rights.
    pub school_ids: Vec<String>,
}

impl StaffFacts {
    /// Only active people with a staff role somewhere may act as staff.
    pub fn may_sign_in(&self) -> bool {
        self.state == "active" && !self.school_ids.is_empty()
    }
}

/// A browser session as stored.
#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: String,
    /// The synchronizer token that forms must echo.
    pub csrf_token: String,
    /// `technician` or `staff`.
    pub role: String,
    pub name: String,
    pub person_id: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub revoked: bool,
}

impl From<web_session::Model> for SessionRecord {
    fn from(m: web_session::Model) -> Self {
        SessionRecord {
            id: m.id,
            csrf_token: m.csrf_token,
            role: m.role,
            name: m.name,
            person_id: m.person_id,
            expires_at: m.expires_at,
            revoked: m.revoked_at.is_some(),
        }
    }
}

/// A session to create; the secret (cookie value) is the caller's.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub csrf_token: String,
    pub role: String,
    pub name: String,
    pub person_id: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// A local account (only used without LDAP).
#[derive(Debug, Clone)]
pub struct LocalAccount {
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    pub technician: bool,
}

/// How many failed sign-ins a throttle key may collect, and in what window.
#[derive(Debug, Clone, Copy)]
pub struct ThrottleLimit {
    pub max_failures: u32,
    pub window: Duration,
}

const STAFF_ROLES: [Role; 3] = [Role::Teacher, Role::Staff, Role::SchoolAdmin];

impl Store {
    /// The person and the schools they may act in, by Flotte id.
    pub async fn staff_facts(&self, person_id: &str) -> Result<Option<StaffFacts>, CoreError> {
        let Some(p) = person::Entity::find_by_id(person_id)
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
        else {
            return Ok(None);
        };
        self.facts_of(p).await.map(Some)
    }

    /// The person signing in: by the directory's id when the directory
    /// vouched for them, else by user name (case-insensitive).
    pub async fn staff_facts_for_login(
        &self,
        external_id: Option<&str>,
        username: &str,
    ) -> Result<Option<StaffFacts>, CoreError> {
        let mut cond = Condition::any();
        if let Some(ext) = external_id.filter(|e| !e.is_empty()) {
            cond = cond.add(person::Column::ExternalId.eq(ext));
        } else {
            cond = cond.add(
                Expr::expr(Func::lower(Expr::col(person::Column::Username)))
                    .eq(username.trim().to_lowercase()),
            );
        }
        let Some(p) = person::Entity::find()
            .filter(cond)
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
        else {
            return Ok(None);
        };
        self.facts_of(p).await.map(Some)
    }

    async fn facts_of(&self, p: person::Model) -> Result<StaffFacts, CoreError> {
        let staff_roles: Vec<&str> = STAFF_ROLES.iter().map(|r| role_str(*r)).collect();
        let mut school_ids: Vec<String> = person_school::Entity::find()
            .filter(person_school::Column::PersonId.eq(p.id.clone()))
            .filter(person_school::Column::Role.is_in(staff_roles))
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .filter(|m| parse_role(&m.role).is_some())
            .map(|m| m.school_id)
            .collect();
        school_ids.sort();
        school_ids.dedup();
        Ok(StaffFacts {
            person_id: p.id,
            username: p.username,
            state: p.state,
            school_ids,
        })
    }

    /// Store a browser session by the hash of `secret`.
    pub async fn create_session(
        &self,
        secret: &str,
        new: &NewSession,
        now: DateTime<Utc>,
    ) -> Result<SessionRecord, CoreError> {
        let row = web_session::ActiveModel {
            id: Set(uuid::Uuid::new_v4().to_string()),
            session_hash: Set(hash_token(secret)),
            csrf_token: Set(new.csrf_token.clone()),
            role: Set(new.role.clone()),
            name: Set(new.name.clone()),
            person_id: Set(new.person_id.clone()),
            created_at: Set(now),
            expires_at: Set(new.expires_at),
            revoked_at: Set(None),
        }
        .insert(&self.db)
        .await
        .map_err(db_err("session"))?;
        Ok(row.into())
    }

    /// The session whose cookie is `secret`, if any (expired and revoked
    /// ones included, so the caller can tell).
    pub async fn find_session(&self, secret: &str) -> Result<Option<SessionRecord>, CoreError> {
        Ok(web_session::Entity::find()
            .filter(web_session::Column::SessionHash.eq(hash_token(secret)))
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .map(Into::into))
    }

    /// End a session (sign-out), with an audit row.
    pub async fn revoke_session(
        &self,
        id: &str,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let txn = self.write().await?;
        web_session::Entity::update_many()
            .col_expr(web_session::Column::RevokedAt, Expr::value(now))
            .filter(web_session::Column::Id.eq(id))
            .filter(web_session::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .map_err(CoreError::storage)?;
        let mut entry = actor.clone();
        entry.target = format!("session:{id}");
        audit::record(&txn, &entry, now).await?;
        commit(txn).await
    }

    /// Seconds until the first of `keys` that has used up its failures may
    /// try again; `None` when none is throttled.
    pub async fn login_throttled(
        &self,
        keys: &[(String, ThrottleLimit)],
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, CoreError> {
        let names: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
        let rows = login_throttle::Entity::find()
            .filter(login_throttle::Column::Key.is_in(names))
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?;
        let mut wait = None;
        for row in rows {
            let Some((_, limit)) = keys.iter().find(|(k, _)| *k == row.key) else {
                continue;
            };
            let ends = row.window_started_at + limit.window;
            if ends > now && row.failures >= limit.max_failures as i32 {
                let secs = Ord::max((ends - now).num_seconds(), 1);
                wait = Some(wait.map_or(secs, |w: i64| Ord::max(w, secs)));
            }
        }
        Ok(wait)
    }

    /// Count a failed sign-in against each key. A key whose window has
    /// passed starts a new window.
    pub async fn record_login_failure(
        &self,
        keys: &[(String, ThrottleLimit)],
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let txn = self.write().await?;
        for (key, limit) in keys {
            let existing = login_throttle::Entity::find_by_id(key.clone())
                .one(&txn)
                .await
                .map_err(CoreError::storage)?;
            let (failures, started) = match existing {
                Some(row) if row.window_started_at + limit.window > now => {
                    (row.failures.saturating_add(1), row.window_started_at)
                }
                _ => (1, now),
            };
            login_throttle::Entity::insert(login_throttle::ActiveModel {
                key: Set(key.clone()),
                failures: Set(failures),
                window_started_at: Set(started),
            })
            .on_conflict(
                OnConflict::column(login_throttle::Column::Key)
                    .update_columns([
                        login_throttle::Column::Failures,
                        login_throttle::Column::WindowStartedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .map_err(CoreError::storage)?;
        }
        commit(txn).await
    }

    /// Forget the failures of `key` (after a successful sign-in).
    pub async fn clear_login_failures(&self, key: &str) -> Result<(), CoreError> {
        login_throttle::Entity::delete_by_id(key.to_owned())
            .exec(&self.db)
            .await
            .map_err(CoreError::storage)?;
        Ok(())
    }

    /// The local account with this user name (case-insensitive).
    pub async fn find_local_account(
        &self,
        username: &str,
    ) -> Result<Option<LocalAccount>, CoreError> {
        Ok(local_account::Entity::find()
            .filter(
                Expr::expr(Func::lower(Expr::col(local_account::Column::Username)))
                    .eq(username.trim().to_lowercase()),
            )
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?
            .map(|m| LocalAccount {
                username: m.username,
                password_hash: m.password_hash,
                technician: m.technician,
            }))
    }

    /// Create a local account or replace its password hash, with an audit
    /// row (without the hash).
    pub async fn set_local_account(
        &self,
        username: &str,
        password_hash: &str,
        technician: bool,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let txn = self.write().await?;
        let existing = local_account::Entity::find()
            .filter(local_account::Column::Username.eq(username))
            .one(&txn)
            .await
            .map_err(CoreError::storage)?;
        match existing {
            Some(row) => {
                let mut active: local_account::ActiveModel = row.into();
                active.password_hash = Set(password_hash.to_owned());
                active.technician = Set(technician);
                active.updated_at = Set(now);
                active.update(&txn).await.map_err(CoreError::storage)?;
            }
            None => {
                local_account::ActiveModel {
                    id: Set(uuid::Uuid::new_v4().to_string()),
                    username: Set(username.to_owned()),
                    password_hash: Set(password_hash.to_owned()),
                    technician: Set(technician),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(&txn)
                .await
                .map_err(db_err(&format!("account {username}")))?;
            }
        }
        let mut entry = actor.clone();
        entry.target = format!("account:{username}");
        entry.details = serde_json::json!({ "technician": technician });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await
    }

    /// A staff member created by hand in the local directory, unless a person
    /// with this user name exists already (then nothing changes). Such a
    /// person is `local`: syncs leave them alone until the directory (a CSV
    /// import) names them, and then takes them over.
    #[allow(clippy::too_many_arguments)]
    pub async fn ensure_local_person(
        &self,
        username: &str,
        given_name: &str,
        family_name: &str,
        school: &str,
        role: Role,
        external_id: &str,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let txn = self.write().await?;
        if person::Entity::find()
            .filter(person::Column::Username.eq(username))
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .is_some()
        {
            return Ok(false);
        }
        let school = school::Entity::find()
            .filter(
                Condition::any()
                    .add(school::Column::Id.eq(school))
                    .add(school::Column::Code.eq(school)),
            )
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("school {school}")))?;
        let id = uuid::Uuid::new_v4().to_string();
        person::ActiveModel {
            id: Set(id.clone()),
            external_id: Set(external_id.to_owned()),
            username: Set(username.to_owned()),
            given_name: Set(given_name.to_owned()),
            family_name: Set(family_name.to_owned()),
            mail: Set(None),
            state: Set("active".to_owned()),
            state_changed_at: Set(Some(now)),
            created_at: Set(now),
            updated_at: Set(now),
            managed_by: Set("local".to_owned()),
            loan_alert: Set(None),
            loan_alert_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(db_err(&format!("person {username}")))?;
        person_school::ActiveModel {
            person_id: Set(id.clone()),
            school_id: Set(school.id),
            role: Set(role_str(role).to_owned()),
        }
        .insert(&txn)
        .await
        .map_err(db_err("school membership"))?;
        let mut entry = actor.clone();
        entry.target = format!("person:{id}");
        entry.details = serde_json::json!({ "username": username, "role": role_str(role) });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        Ok(true)
    }
}
