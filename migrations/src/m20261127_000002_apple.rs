//! Tables for the Apple device protocol: one-time enrolment links, the APNs
//! push certificate, profiles a device reports as installed, and the columns
//! the check-in and DeviceInformation messages fill.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum EnrollmentLinks {
    Table,
    Id,
    TokenHash,
    SchoolId,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum PushCertificates {
    Table,
    Id,
    Topic,
    Sha256,
    CertPem,
    KeySealed,
    NotAfter,
    UploadedBy,
    CreatedAt,
    Active,
}

#[derive(DeriveIden)]
enum InstalledProfiles {
    Table,
    DeviceId,
    Identifier,
    PayloadUuid,
    DisplayName,
    Version,
    ReportedAt,
}

#[derive(DeriveIden)]
enum Certificates {
    Table,
    SchoolId,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    WifiMac,
    Supervised,
}

#[derive(DeriveIden)]
enum Schools {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(EnrollmentLinks::Table)
                    .if_not_exists()
                    .col(string_len(EnrollmentLinks::Id, 36).primary_key())
                    .col(string_len(EnrollmentLinks::TokenHash, 64).unique_key())
                    .col(string_len(EnrollmentLinks::SchoolId, 36))
                    .col(string(EnrollmentLinks::CreatedBy))
                    .col(timestamp_with_time_zone(EnrollmentLinks::CreatedAt))
                    .col(timestamp_with_time_zone(EnrollmentLinks::ExpiresAt))
                    .col(timestamp_with_time_zone_null(EnrollmentLinks::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(EnrollmentLinks::Table, EnrollmentLinks::SchoolId)
                            .to(Schools::Table, Schools::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PushCertificates::Table)
                    .if_not_exists()
                    .col(string_len(PushCertificates::Id, 36).primary_key())
                    .col(string(PushCertificates::Topic))
                    .col(string_len(PushCertificates::Sha256, 64).unique_key())
                    .col(text(PushCertificates::CertPem))
                    .col(text(PushCertificates::KeySealed))
                    .col(timestamp_with_time_zone(PushCertificates::NotAfter))
                    .col(string(PushCertificates::UploadedBy))
                    .col(timestamp_with_time_zone(PushCertificates::CreatedAt))
                    .col(boolean(PushCertificates::Active))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(InstalledProfiles::Table)
                    .if_not_exists()
                    .col(string_len(InstalledProfiles::DeviceId, 36))
                    .col(string(InstalledProfiles::Identifier))
                    .col(string_null(InstalledProfiles::PayloadUuid))
                    .col(string_null(InstalledProfiles::DisplayName))
                    .col(integer_null(InstalledProfiles::Version))
                    .col(timestamp_with_time_zone(InstalledProfiles::ReportedAt))
                    .primary_key(
                        Index::create()
                            .col(InstalledProfiles::DeviceId)
                            .col(InstalledProfiles::Identifier),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(InstalledProfiles::Table, InstalledProfiles::DeviceId)
                            .to(Devices::Table, Devices::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // Which school an enrolment identity was issued for: the device joins
        // that school when it authenticates with it.
        manager
            .alter_table(
                Table::alter()
                    .table(Certificates::Table)
                    .add_column(string_len_null(Certificates::SchoolId, 36))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .add_column(string_null(Devices::WifiMac))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Devices::Table)
                    .add_column(boolean_null(Devices::Supervised))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            InstalledProfiles::Table.into_iden(),
            PushCertificates::Table.into_iden(),
            EnrollmentLinks::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
