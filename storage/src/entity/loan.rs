use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "loans")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub device_id: String,
    pub person_id: String,
    pub school_id: String,
    /// The user name of whoever handed the device out.
    pub lent_by: String,
    pub lent_at: DateTimeUtc,
    /// The start of the due day (UTC).
    pub due_at: Option<DateTimeUtc>,
    /// JSON array of accessory names.
    pub accessories: String,
    pub condition_out: Option<String>,
    pub returned_at: Option<DateTimeUtc>,
    pub returned_to: Option<String>,
    pub condition_in: Option<String>,
    pub damage: Option<String>,
    pub notes: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub class_name: Option<String>,
    /// JSON array of the accessories that came back.
    pub accessories_in: Option<String>,
    /// `departed`, `disabled` or `left_school`.
    pub alert: Option<String>,
    pub alert_at: Option<DateTimeUtc>,
    pub overdue_notified_at: Option<DateTimeUtc>,
    pub personalised_at: Option<DateTimeUtc>,
    pub erase_command_id: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
