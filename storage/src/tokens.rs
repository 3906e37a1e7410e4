//! Technician API tokens. Only a SHA-256 of each token is stored: the tokens are
//! long random strings, so a slow password hash would add nothing but latency.

use crate::db::{commit, db_err};
use crate::entity::api_token;
use crate::{Store, audit};
use chrono::{DateTime, Utc};
use flotte_core::CoreError;
use flotte_core::audit::AuditEntry;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: String,
    pub revoked: bool,
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
        audit::record(&txn, actor, now).await?;
        commit(txn).await
    }
}
