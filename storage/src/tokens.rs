//! Technician API tokens. Only a SHA-256 of each token is stored: the tokens are
//! long random strings, so a slow password hash would add nothing but latency.

use crate::db::{commit, db_err};
use crate::entity::api_token;
use crate::{Store, audit};
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};

#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    /// `technician` or `staff`.
    pub role: String,
    pub revoked: bool,
    /// Staff tokens: the person whose schools scope the requests.
    pub person_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token to issue. The secret itself is the caller's (it is shown once and
/// only its hash is stored).
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub role: String,
    pub person_id: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub fn hash_token(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl From<api_token::Model> for TokenRecord {
    fn from(m: api_token::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            role: m.role,
            revoked: m.revoked_at.is_some(),
            person_id: m.person_id,
            created_at: m.created_at,
            expires_at: m.expires_at,
        }
    }
}

impl Store {
    /// Store a token (by hash) unless one with that hash exists already.
    /// Returns whether it was new.
    pub async fn ensure_token(
        &self,
        name: &str,
        token: &str,
        role: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, CoreError> {
        let hash = hash_token(token);
        let txn = self.write().await?;
        let existing = api_token::Entity::find()
            .filter(api_token::Column::TokenHash.eq(&hash))
            .one(&txn)
            .await
            .map_err(CoreError::storage)?;
        if existing.is_some() {
            return Ok(false);
        }
        let id = uuid::Uuid::new_v4().to_string();
        api_token::ActiveModel {
            id: Set(id.clone()),
            name: Set(name.to_owned()),
            token_hash: Set(hash),
            role: Set(role.to_owned()),
            created_at: Set(now),
            last_used_at: Set(None),
            revoked_at: Set(None),
            person_id: Set(None),
            expires_at: Set(None),
        }
        .insert(&txn)
        .await
        .map_err(db_err("token"))?;
        audit::record(
            &txn,
            &AuditEntry::new("system", "token.create", format!("token:{id}"))
                .with_details(serde_json::json!({ "name": name, "role": role })),
            now,
        )
        .await?;
        commit(txn).await?;
        Ok(true)
    }

    /// The token with this secret, if any (revoked ones included, so the caller can say so).
    pub async fn find_token(&self, token: &str) -> Result<Option<TokenRecord>, CoreError> {
        let found = api_token::Entity::find()
            .filter(api_token::Column::TokenHash.eq(hash_token(token)))
            .one(&self.db)
            .await
            .map_err(CoreError::storage)?;
        Ok(found.map(Into::into))
    }

    pub async fn revoke_token(
        &self,
        id: &str,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<(), CoreError> {
        let txn = self.write().await?;
        let token = api_token::Entity::find_by_id(id)
            .one(&txn)
            .await
            .map_err(CoreError::storage)?
            .ok_or_else(|| CoreError::NotFound(format!("token {id}")))?;
        if token.revoked_at.is_some() {
            return Err(CoreError::Conflict(format!(
                "token {id} is already revoked"
            )));
        }
        let mut active: api_token::ActiveModel = token.into();
        active.revoked_at = Set(Some(now));
        active.update(&txn).await.map_err(CoreError::storage)?;
        let mut entry = actor.clone();
        if entry.target.is_empty() {
            entry.target = format!("token:{id}");
        }
        audit::record(&txn, &entry, now).await?;
        commit(txn).await
    }

    /// Store a new token by the hash of `secret`, with its audit row.
    pub async fn issue_token(
        &self,
        new: &NewToken,
        secret: &str,
        actor: &AuditEntry,
        now: DateTime<Utc>,
    ) -> Result<TokenRecord, CoreError> {
        let txn = self.write().await?;
        let id = uuid::Uuid::new_v4().to_string();
        let row = api_token::ActiveModel {
            id: Set(id.clone()),
            name: Set(new.name.clone()),
            token_hash: Set(hash_token(secret)),
            role: Set(new.role.clone()),
            created_at: Set(now),
            last_used_at: Set(None),
            revoked_at: Set(None),
            person_id: Set(new.person_id.clone()),
            expires_at: Set(new.expires_at),
        }
        .insert(&txn)
        .await
        .map_err(db_err("token"))?;
        let mut entry = actor.clone();
        entry.target = format!("token:{id}");
        entry.details = serde_json::json!({
            "name": new.name, "role": new.role, "expires_at": new.expires_at,
        });
        audit::record(&txn, &entry, now).await?;
        commit(txn).await?;
        Ok(row.into())
    }

    /// Every token, newest first (secrets are not stored, so none is shown).
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, CoreError> {
        Ok(api_token::Entity::find()
            .order_by_desc(api_token::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(CoreError::storage)?
            .into_iter()
            .map(Into::into)
            .collect())
    }
}
