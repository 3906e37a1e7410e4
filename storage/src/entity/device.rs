use sea_orm::entity::prelude::*;

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
    pub product_name: Option<String>,
    pub os_version: Option<String>,
    pub build_version: Option<String>,
    pub device_name: Option<String>,
    pub capacity_gb: Option<f64>,
    pub available_gb: Option<f64>,
    pub battery_level: Option<f64>,
    pub school_id: Option<String>,
    pub assigned_person_id: Option<String>,
    pub enrollment_state: String,
    pub enrolled_at: Option<DateTimeUtc>,
    pub last_seen_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub wifi_mac: Option<String>,
    pub supervised: Option<bool>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
