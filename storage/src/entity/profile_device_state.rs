//! What one device is expected to carry of one profile, what it acknowledged, and the
//! command on its way.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "device_profile_state")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub device_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub identifier: String,
    pub expected_version: Option<i32>,
    pub expected_checksum: Option<String>,
    pub installed_version: Option<i32>,
    pub installed_checksum: Option<String>,
    pub installed_at: Option<DateTimeUtc>,
    /// Windows: the commands that undo the installed version (JSON).
    pub removal: Option<String>,
    pub pending_command_id: Option<String>,
    /// `install` or `remove`.
    pub pending_action: Option<String>,
    pub pending_version: Option<i32>,
    pub pending_checksum: Option<String>,
    /// Windows: the commands that undo the pending version, once it is installed (JSON).
    pub pending_removal: Option<String>,
    pub last_error: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
