//! Tables for the Windows device protocol: technicians' enrolment secrets, each enrolled
//! laptop's management credentials and session, and which queued command went out in which
//! message.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Schools {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Commands {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum WindowsEnrollmentSecrets {
    Table,
    Id,
    Label,
    SecretHash,
    SchoolId,
    ExpiresAt,
    MaxUses,
    Uses,
    CreatedBy,
    CreatedAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum WindowsDevices {
    Table,
    DeviceId,
    WindowsDeviceId,
    HwDevId,
    EnrollmentType,
    DigestUsername,
    DigestSecret,
    Nonce,
    PreviousNonce,
    ServerSecret,
    ServerNonce,
    SessionId,
    LastMsgId,
    SessionSeenAt,
    LoginStatus,
    EnrolledVia,
    UnenrolledAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WindowsCommandDeliveries {
    Table,
    CommandId,
    DeviceId,
    SessionId,
    MsgId,
    DeliveredAt,
}

fn fk(
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WindowsEnrollmentSecrets::Table)
                    .if_not_exists()
                    .col(string_len(WindowsEnrollmentSecrets::Id, 36).primary_key())
                    .col(string(WindowsEnrollmentSecrets::Label))
                    // SHA-256 of the secret: the secret itself is shown once and never stored.
                    .col(string_len(WindowsEnrollmentSecrets::SecretHash, 64).unique_key())
                    .col(string_len_null(WindowsEnrollmentSecrets::SchoolId, 36))
                    .col(timestamp_with_time_zone_null(
                        WindowsEnrollmentSecrets::ExpiresAt,
                    ))
                    .col(integer_null(WindowsEnrollmentSecrets::MaxUses))
                    .col(integer(WindowsEnrollmentSecrets::Uses).default(0))
                    .col(string(WindowsEnrollmentSecrets::CreatedBy))
                    .col(timestamp_with_time_zone(
                        WindowsEnrollmentSecrets::CreatedAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        WindowsEnrollmentSecrets::RevokedAt,
                    ))
                    .foreign_key(&mut fk(
                        (
                            WindowsEnrollmentSecrets::Table,
                            WindowsEnrollmentSecrets::SchoolId,
                        ),
                        (Schools::Table, Schools::Id),
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WindowsDevices::Table)
                    .if_not_exists()
                    .col(string_len(WindowsDevices::DeviceId, 36).primary_key())
                    // The DeviceID Windows sends as SyncML Source.
                    .col(string(WindowsDevices::WindowsDeviceId).unique_key())
                    .col(string_null(WindowsDevices::HwDevId))
                    .col(string_len(WindowsDevices::EnrollmentType, 16))
                    .col(string(WindowsDevices::DigestUsername))
                    // Kept in clear: the server needs it to check the device's MD5 digest,
                    // and it is a generated per-device secret, not a person's password.
                    .col(string(WindowsDevices::DigestSecret))
                    .col(string(WindowsDevices::Nonce))
                    .col(string_null(WindowsDevices::PreviousNonce))
                    .col(string(WindowsDevices::ServerSecret))
                    .col(string(WindowsDevices::ServerNonce))
                    .col(string_null(WindowsDevices::SessionId))
                    .col(big_integer(WindowsDevices::LastMsgId).default(0))
                    .col(timestamp_with_time_zone_null(WindowsDevices::SessionSeenAt))
                    .col(string_len_null(WindowsDevices::LoginStatus, 16))
                    .col(string(WindowsDevices::EnrolledVia))
                    .col(timestamp_with_time_zone_null(WindowsDevices::UnenrolledAt))
                    .col(timestamp_with_time_zone(WindowsDevices::CreatedAt))
                    .col(timestamp_with_time_zone(WindowsDevices::UpdatedAt))
                    .foreign_key(&mut fk(
                        (WindowsDevices::Table, WindowsDevices::DeviceId),
                        (Devices::Table, Devices::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_windows_devices_hw_dev_id")
                    .table(WindowsDevices::Table)
                    .col(WindowsDevices::HwDevId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WindowsCommandDeliveries::Table)
                    .if_not_exists()
                    .col(string_len(WindowsCommandDeliveries::CommandId, 36).primary_key())
                    .col(string_len(WindowsCommandDeliveries::DeviceId, 36))
                    .col(string(WindowsCommandDeliveries::SessionId))
                    .col(big_integer(WindowsCommandDeliveries::MsgId))
                    .col(timestamp_with_time_zone(
                        WindowsCommandDeliveries::DeliveredAt,
                    ))
                    .foreign_key(&mut fk(
                        (
                            WindowsCommandDeliveries::Table,
                            WindowsCommandDeliveries::CommandId,
                        ),
                        (Commands::Table, Commands::Id),
                    ))
                    .foreign_key(&mut fk(
                        (
                            WindowsCommandDeliveries::Table,
                            WindowsCommandDeliveries::DeviceId,
                        ),
                        (Devices::Table, Devices::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_windows_deliveries_device_session")
                    .table(WindowsCommandDeliveries::Table)
                    .col(WindowsCommandDeliveries::DeviceId)
                    .col(WindowsCommandDeliveries::SessionId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WindowsCommandDeliveries::Table.into_iden(),
            WindowsDevices::Table.into_iden(),
            WindowsEnrollmentSecrets::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
