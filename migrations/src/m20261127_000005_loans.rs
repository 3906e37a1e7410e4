//! Loans and the device register: what the supplier's delivery list adds to a device
//! (funding programme, purchase date, warranty end), what a loan needs beyond the
//! foundation's `loans` table (the pupil's class at the time, accessories back, flags
//! for overdue notices, departed borrowers and the device's personalisation), and the
//! anonymous device history that a loan becomes after its retention period.
//!
//! The foundation already holds the rule that matters most: the partial unique index
//! `idx_loans_one_open_per_device` (at most one open loan per device).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    FundingProgramme,
    PurchaseDate,
    WarrantyEnd,
}

#[derive(DeriveIden)]
enum Schools {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Loans {
    Table,
    SchoolId,
    PersonId,
    DueAt,
    ReturnedAt,
    ClassName,
    AccessoriesIn,
    Alert,
    AlertAt,
    OverdueNotifiedAt,
    PersonalisedAt,
    EraseCommandId,
}

#[derive(DeriveIden)]
enum LoanHistory {
    Table,
    Id,
    DeviceId,
    SchoolId,
    LentAt,
    DueAt,
    ReturnedAt,
    Accessories,
    AccessoriesIn,
    ConditionOut,
    ConditionIn,
    Damaged,
    AnonymisedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            string_null(Devices::FundingProgramme),
            date_null(Devices::PurchaseDate),
            date_null(Devices::WarrantyEnd),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Devices::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for column in [
            // The pupil's class at the device's school when it was lent: the contract
            // and the class lists show it even after the pupil moved on.
            string_null(Loans::ClassName),
            // JSON array: the accessories that came back.
            text_null(Loans::AccessoriesIn),
            // `departed`, `disabled` or `left_school`: the borrower of an open loan is
            // gone, and the school has to act.
            string_len_null(Loans::Alert, 16),
            timestamp_with_time_zone_null(Loans::AlertAt),
            // Set once the school has been told the loan is overdue, so it is told once.
            timestamp_with_time_zone_null(Loans::OverdueNotifiedAt),
            // Set once the worker queued the pupil's device name (and profiles).
            timestamp_with_time_zone_null(Loans::PersonalisedAt),
            // The erase command a confirmed return queued.
            string_len_null(Loans::EraseCommandId, 36),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Loans::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        for (name, columns) in [
            (
                "idx_loans_school_returned",
                vec![Loans::SchoolId, Loans::ReturnedAt],
            ),
            ("idx_loans_person", vec![Loans::PersonId]),
            ("idx_loans_due", vec![Loans::DueAt]),
            ("idx_loans_returned", vec![Loans::ReturnedAt]),
        ] {
            let mut index = Index::create();
            index.name(name).table(Loans::Table).if_not_exists();
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }

        // What stays of a loan after its retention: the device's history without the
        // person (condition, whether damage was recorded, dates), for repairs and counts.
        manager
            .create_table(
                Table::create()
                    .table(LoanHistory::Table)
                    .if_not_exists()
                    .col(string_len(LoanHistory::Id, 36).primary_key())
                    .col(string_len(LoanHistory::DeviceId, 36))
                    .col(string_len_null(LoanHistory::SchoolId, 36))
                    .col(timestamp_with_time_zone(LoanHistory::LentAt))
                    .col(timestamp_with_time_zone_null(LoanHistory::DueAt))
                    .col(timestamp_with_time_zone(LoanHistory::ReturnedAt))
                    .col(text(LoanHistory::Accessories))
                    .col(text_null(LoanHistory::AccessoriesIn))
                    .col(string_len_null(LoanHistory::ConditionOut, 16))
                    .col(string_len_null(LoanHistory::ConditionIn, 16))
                    .col(boolean(LoanHistory::Damaged).default(false))
                    .col(timestamp_with_time_zone(LoanHistory::AnonymisedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(LoanHistory::Table, LoanHistory::DeviceId)
                            .to(Devices::Table, Devices::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(LoanHistory::Table, LoanHistory::SchoolId)
                            .to(Schools::Table, Schools::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_loan_history_device")
                    .table(LoanHistory::Table)
                    .col(LoanHistory::DeviceId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(LoanHistory::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
