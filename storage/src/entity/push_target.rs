//! One device of a push and how far it got.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "push_targets")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub push_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_id: String,
    pub seq: i32,
    pub status: String,
    pub command_id: Option<String>,
    pub woken_at: Option<DateTimeUtc>,
    pub wakes: i32,
    pub error: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
