use sea_orm::entity::prelude::*;

/// What stays of a loan after its retention: no person, no free text.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "loan_history")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub device_id: String,
    pub school_id: Option<String>,
    pub lent_at: DateTimeUtc,
    pub due_at: Option<DateTimeUtc>,
    pub returned_at: DateTimeUtc,
    pub accessories: String,
    pub accessories_in: Option<String>,
    pub condition_out: Option<String>,
    pub condition_in: Option<String>,
    pub damaged: bool,
    pub anonymised_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
