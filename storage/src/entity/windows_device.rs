use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "windows_devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_id: String,
    pub windows_device_id: String,
    pub hw_dev_id: Option<String>,
    pub enrollment_type: String,
    pub digest_username: String,
    pub digest_secret: String,
    pub nonce: String,
    pub previous_nonce: Option<String>,
    pub server_secret: String,
    pub server_nonce: String,
    pub session_id: Option<String>,
    pub last_msg_id: i64,
    pub session_seen_at: Option<DateTimeUtc>,
    pub login_status: Option<String>,
    pub enrolled_via: String,
    pub unenrolled_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
