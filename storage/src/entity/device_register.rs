use sea_orm::entity::prelude::*;

/// The `devices` table as the register sees it: the columns a delivery list fills. The
/// other columns are the device's own reports and are left to the protocols (and to
/// their defaults when a register entry is created).
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "devices")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub platform: String,
    pub serial_number: Option<String>,
    pub udid: Option<String>,
    pub asset_tag: Option<String>,
    pub model: Option<String>,
    pub model_name: Option<String>,
    pub device_name: Option<String>,
    pub school_id: Option<String>,
    pub assigned_person_id: Option<String>,
    pub enrollment_state: String,
    pub enrolled_at: Option<DateTimeUtc>,
    pub last_seen_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub funding_programme: Option<String>,
    pub purchase_date: Option<Date>,
    pub warranty_end: Option<Date>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
