//! The `certificates` table with the columns EAP-TLS client certificates use (the shared
//! `certificate` entity predates them).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "certificates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub serial_hex: String,
    pub sha256: String,
    pub kind: String,
    pub subject: String,
    pub person_id: Option<String>,
    pub device_id: Option<String>,
    pub not_before: DateTimeUtc,
    pub not_after: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub school_id: Option<String>,
    pub cert_pem: Option<String>,
    pub key_sealed: Option<String>,
    pub is_current: bool,
    pub revocation_reason: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
