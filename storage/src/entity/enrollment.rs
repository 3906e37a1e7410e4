use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "enrollments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub device_id: String,
    pub platform: String,
    pub identity_sha256: Option<String>,
    pub identity_serial: Option<String>,
    pub identity_not_after: Option<DateTimeUtc>,
    pub push_token: Option<String>,
    pub push_magic: Option<String>,
    pub push_topic: Option<String>,
    pub unlock_token: Option<String>,
    pub token_invalid_at: Option<DateTimeUtc>,
    pub bootstrap_token: Option<String>,
    pub started_at: DateTimeUtc,
    pub ended_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
