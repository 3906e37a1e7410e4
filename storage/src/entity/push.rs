//! A bulk push: a profile version (or its removal, or a full sync) to a scope.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "pushes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub profile_id: Option<String>,
    pub identifier: String,
    pub version: Option<i32>,
    pub action: String,
    pub scope_kind: String,
    pub scope_id: String,
    pub school_id: Option<String>,
    pub status: String,
    pub total: i32,
    pub batch_size: i32,
    pub batches: i32,
    pub generation: i32,
    pub silent_after_secs: i64,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub queued_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
