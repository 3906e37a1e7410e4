//! The first schema: schools, people and classes from the directory, the device
//! register with enrolments and the per-device command queue, loans, issued
//! certificates, profiles, API tokens and the audit log.
//!
//! Identifiers are UUIDs stored as text so that both databases show the same
//! values to an operator reading them with `psql` or `sqlite3`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Schools {
    Table,
    Id,
    ExternalId,
    Code,
    Name,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum People {
    Table,
    Id,
    ExternalId,
    Username,
    GivenName,
    FamilyName,
    Mail,
    State,
    StateChangedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PersonSchools {
    Table,
    PersonId,
    SchoolId,
    Role,
}

#[derive(DeriveIden)]
enum Classes {
    Table,
    Id,
    ExternalId,
    SchoolId,
    Name,
    Kind,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ClassMembers {
    Table,
    ClassId,
    PersonId,
}

#[derive(DeriveIden)]
enum Devices {
    Table,
    Id,
    Platform,
    SerialNumber,
    Udid,
    AssetTag,
    Model,
    ModelName,
    ProductName,
    OsVersion,
    BuildVersion,
    DeviceName,
    CapacityGb,
    AvailableGb,
    BatteryLevel,
    SchoolId,
    AssignedPersonId,
    EnrollmentState,
    EnrolledAt,
    LastSeenAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Enrollments {
    Table,
    Id,
    DeviceId,
    Platform,
    IdentitySha256,
    IdentitySerial,
    IdentityNotAfter,
    PushToken,
    PushMagic,
    PushTopic,
    UnlockToken,
    TokenInvalidAt,
    BootstrapToken,
    StartedAt,
    EndedAt,
}

#[derive(DeriveIden)]
enum Commands {
    Table,
    Id,
    DeviceId,
    RequestType,
    Payload,
    Status,
    CreatedBy,
    PushId,
    CreatedAt,
    UpdatedAt,
    SentAt,
    FinishedAt,
    Result,
    Error,
}

#[derive(DeriveIden)]
enum Certificates {
    Table,
    Id,
    SerialHex,
    Sha256,
    Kind,
    Subject,
    PersonId,
    DeviceId,
    NotBefore,
    NotAfter,
    RevokedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Profiles {
    Table,
    Id,
    Identifier,
    Name,
    Platform,
    Version,
    Body,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Loans {
    Table,
    Id,
    DeviceId,
    PersonId,
    SchoolId,
    LentBy,
    LentAt,
    DueAt,
    Accessories,
    ConditionOut,
    ReturnedAt,
    ReturnedTo,
    ConditionIn,
    Damage,
    Notes,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    At,
    Actor,
    Action,
    Target,
    Source,
    Details,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    Id,
    Name,
    TokenHash,
    Role,
    CreatedAt,
    LastUsedAt,
    RevokedAt,
}

fn fk(
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
    on_delete: ForeignKeyAction,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(on_delete)
        .to_owned()
}

fn id<T: IntoIden>(name: T) -> ColumnDef {
    string_len(name, 36).primary_key().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ForeignKeyAction::{Cascade, Restrict, SetNull};

        manager
            .create_table(
                Table::create()
                    .table(Schools::Table)
                    .if_not_exists()
                    .col(id(Schools::Id))
                    .col(string_null(Schools::ExternalId).unique_key())
                    .col(string(Schools::Code).unique_key())
                    .col(string(Schools::Name))
                    .col(timestamp_with_time_zone(Schools::CreatedAt))
                    .col(timestamp_with_time_zone(Schools::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(People::Table)
                    .if_not_exists()
                    .col(id(People::Id))
                    .col(string(People::ExternalId).unique_key())
                    .col(string(People::Username).unique_key())
                    .col(string(People::GivenName))
                    .col(string(People::FamilyName))
                    .col(string_null(People::Mail))
                    .col(string_len(People::State, 16))
                    .col(timestamp_with_time_zone_null(People::StateChangedAt))
                    .col(timestamp_with_time_zone(People::CreatedAt))
                    .col(timestamp_with_time_zone(People::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PersonSchools::Table)
                    .if_not_exists()
                    .col(string_len(PersonSchools::PersonId, 36))
                    .col(string_len(PersonSchools::SchoolId, 36))
                    .col(string_len(PersonSchools::Role, 16))
                    .primary_key(
                        Index::create()
                            .col(PersonSchools::PersonId)
                            .col(PersonSchools::SchoolId)
                            .col(PersonSchools::Role),
                    )
                    .foreign_key(&mut fk(
                        (PersonSchools::Table, PersonSchools::PersonId),
                        (People::Table, People::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        (PersonSchools::Table, PersonSchools::SchoolId),
                        (Schools::Table, Schools::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Classes::Table)
                    .if_not_exists()
                    .col(id(Classes::Id))
                    .col(string_null(Classes::ExternalId).unique_key())
                    .col(string_len(Classes::SchoolId, 36))
                    .col(string(Classes::Name))
                    .col(string_len(Classes::Kind, 16))
                    .col(timestamp_with_time_zone(Classes::CreatedAt))
                    .col(timestamp_with_time_zone(Classes::UpdatedAt))
                    .foreign_key(&mut fk(
                        (Classes::Table, Classes::SchoolId),
                        (Schools::Table, Schools::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ClassMembers::Table)
                    .if_not_exists()
                    .col(string_len(ClassMembers::ClassId, 36))
                    .col(string_len(ClassMembers::PersonId, 36))
                    .primary_key(
                        Index::create()
                            .col(ClassMembers::ClassId)
                            .col(ClassMembers::PersonId),
                    )
                    .foreign_key(&mut fk(
                        (ClassMembers::Table, ClassMembers::ClassId),
                        (Classes::Table, Classes::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        (ClassMembers::Table, ClassMembers::PersonId),
                        (People::Table, People::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Devices::Table)
                    .if_not_exists()
                    .col(id(Devices::Id))
                    .col(string_len(Devices::Platform, 16))
                    .col(string_null(Devices::SerialNumber).unique_key())
                    .col(string_null(Devices::Udid).unique_key())
                    .col(string_null(Devices::AssetTag).unique_key())
                    .col(string_null(Devices::Model))
                    .col(string_null(Devices::ModelName))
                    .col(string_null(Devices::ProductName))
                    .col(string_null(Devices::OsVersion))
                    .col(string_null(Devices::BuildVersion))
                    .col(string_null(Devices::DeviceName))
                    .col(double_null(Devices::CapacityGb))
                    .col(double_null(Devices::AvailableGb))
                    .col(double_null(Devices::BatteryLevel))
                    .col(string_len_null(Devices::SchoolId, 36))
                    .col(string_len_null(Devices::AssignedPersonId, 36))
                    .col(string_len(Devices::EnrollmentState, 16))
                    .col(timestamp_with_time_zone_null(Devices::EnrolledAt))
                    .col(timestamp_with_time_zone_null(Devices::LastSeenAt))
                    .col(timestamp_with_time_zone(Devices::CreatedAt))
                    .col(timestamp_with_time_zone(Devices::UpdatedAt))
                    .foreign_key(&mut fk(
                        (Devices::Table, Devices::SchoolId),
                        (Schools::Table, Schools::Id),
                        Restrict,
                    ))
                    .foreign_key(&mut fk(
                        (Devices::Table, Devices::AssignedPersonId),
                        (People::Table, People::Id),
                        SetNull,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_devices_school")
                    .table(Devices::Table)
                    .col(Devices::SchoolId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_devices_last_seen")
                    .table(Devices::Table)
                    .col(Devices::LastSeenAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Enrollments::Table)
                    .if_not_exists()
                    .col(id(Enrollments::Id))
                    .col(string_len(Enrollments::DeviceId, 36))
                    .col(string_len(Enrollments::Platform, 16))
                    .col(string_len_null(Enrollments::IdentitySha256, 64).unique_key())
                    .col(string_null(Enrollments::IdentitySerial))
                    .col(timestamp_with_time_zone_null(Enrollments::IdentityNotAfter))
                    .col(text_null(Enrollments::PushToken))
                    .col(text_null(Enrollments::PushMagic))
                    .col(text_null(Enrollments::PushTopic))
                    .col(text_null(Enrollments::UnlockToken))
                    .col(timestamp_with_time_zone_null(Enrollments::TokenInvalidAt))
                    .col(text_null(Enrollments::BootstrapToken))
                    .col(timestamp_with_time_zone(Enrollments::StartedAt))
                    .col(timestamp_with_time_zone_null(Enrollments::EndedAt))
                    .foreign_key(&mut fk(
                        (Enrollments::Table, Enrollments::DeviceId),
                        (Devices::Table, Devices::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_enrollments_device")
                    .table(Enrollments::Table)
                    .col(Enrollments::DeviceId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Commands::Table)
                    .if_not_exists()
                    .col(id(Commands::Id))
                    .col(string_len(Commands::DeviceId, 36))
                    .col(string(Commands::RequestType))
                    .col(text(Commands::Payload))
                    .col(string_len(Commands::Status, 16))
                    .col(string(Commands::CreatedBy))
                    .col(string_len_null(Commands::PushId, 36))
                    .col(timestamp_with_time_zone(Commands::CreatedAt))
                    .col(timestamp_with_time_zone(Commands::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Commands::SentAt))
                    .col(timestamp_with_time_zone_null(Commands::FinishedAt))
                    .col(text_null(Commands::Result))
                    .col(text_null(Commands::Error))
                    .foreign_key(&mut fk(
                        (Commands::Table, Commands::DeviceId),
                        (Devices::Table, Devices::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_commands_device_status")
                    .table(Commands::Table)
                    .col(Commands::DeviceId)
                    .col(Commands::Status)
                    .col(Commands::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_commands_finished")
                    .table(Commands::Table)
                    .col(Commands::FinishedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Certificates::Table)
                    .if_not_exists()
                    .col(id(Certificates::Id))
                    .col(string(Certificates::SerialHex).unique_key())
                    .col(string_len(Certificates::Sha256, 64).unique_key())
                    .col(string_len(Certificates::Kind, 32))
                    .col(string(Certificates::Subject))
                    .col(string_len_null(Certificates::PersonId, 36))
                    .col(string_len_null(Certificates::DeviceId, 36))
                    .col(timestamp_with_time_zone(Certificates::NotBefore))
                    .col(timestamp_with_time_zone(Certificates::NotAfter))
                    .col(timestamp_with_time_zone_null(Certificates::RevokedAt))
                    .col(timestamp_with_time_zone(Certificates::CreatedAt))
                    .foreign_key(&mut fk(
                        (Certificates::Table, Certificates::PersonId),
                        (People::Table, People::Id),
                        SetNull,
                    ))
                    .foreign_key(&mut fk(
                        (Certificates::Table, Certificates::DeviceId),
                        (Devices::Table, Devices::Id),
                        SetNull,
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Profiles::Table)
                    .if_not_exists()
                    .col(id(Profiles::Id))
                    .col(string(Profiles::Identifier).unique_key())
                    .col(string(Profiles::Name))
                    .col(string_len(Profiles::Platform, 16))
                    .col(integer(Profiles::Version))
                    .col(text(Profiles::Body))
                    .col(timestamp_with_time_zone(Profiles::CreatedAt))
                    .col(timestamp_with_time_zone(Profiles::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Loans::Table)
                    .if_not_exists()
                    .col(id(Loans::Id))
                    .col(string_len(Loans::DeviceId, 36))
                    .col(string_len(Loans::PersonId, 36))
                    .col(string_len(Loans::SchoolId, 36))
                    .col(string(Loans::LentBy))
                    .col(timestamp_with_time_zone(Loans::LentAt))
                    .col(timestamp_with_time_zone_null(Loans::DueAt))
                    .col(text(Loans::Accessories))
                    .col(text_null(Loans::ConditionOut))
                    .col(timestamp_with_time_zone_null(Loans::ReturnedAt))
                    .col(string_null(Loans::ReturnedTo))
                    .col(text_null(Loans::ConditionIn))
                    .col(text_null(Loans::Damage))
                    .col(text_null(Loans::Notes))
                    .col(timestamp_with_time_zone(Loans::CreatedAt))
                    .col(timestamp_with_time_zone(Loans::UpdatedAt))
                    .foreign_key(&mut fk(
                        (Loans::Table, Loans::DeviceId),
                        (Devices::Table, Devices::Id),
                        Restrict,
                    ))
                    .foreign_key(&mut fk(
                        (Loans::Table, Loans::PersonId),
                        (People::Table, People::Id),
                        Restrict,
                    ))
                    .foreign_key(&mut fk(
                        (Loans::Table, Loans::SchoolId),
                        (Schools::Table, Schools::Id),
                        Restrict,
                    ))
                    .to_owned(),
            )
            .await?;
        // At most one open loan per device, held by the database itself so that
        // two staff members lending the same device at once cannot both win.
        manager.get_connection().execute_unprepared(
            "CREATE UNIQUE INDEX IF NOT EXISTS idx_loans_one_open_per_device ON loans (device_id) WHERE returned_at IS NULL",
        ).await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .if_not_exists()
                    .col(big_pk_auto(AuditLog::Id))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .col(string(AuditLog::Actor))
                    .col(string(AuditLog::Action))
                    .col(string(AuditLog::Target))
                    .col(string_null(AuditLog::Source))
                    .col(text(AuditLog::Details))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_at")
                    .table(AuditLog::Table)
                    .col(AuditLog::At)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiTokens::Table)
                    .if_not_exists()
                    .col(id(ApiTokens::Id))
                    .col(string(ApiTokens::Name))
                    .col(string_len(ApiTokens::TokenHash, 64).unique_key())
                    .col(string_len(ApiTokens::Role, 16))
                    .col(timestamp_with_time_zone(ApiTokens::CreatedAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::LastUsedAt))
                    .col(timestamp_with_time_zone_null(ApiTokens::RevokedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            ApiTokens::Table.into_iden(),
            AuditLog::Table.into_iden(),
            Loans::Table.into_iden(),
            Profiles::Table.into_iden(),
            Certificates::Table.into_iden(),
            Commands::Table.into_iden(),
            Enrollments::Table.into_iden(),
            Devices::Table.into_iden(),
            ClassMembers::Table.into_iden(),
            Classes::Table.into_iden(),
            PersonSchools::Table.into_iden(),
            People::Table.into_iden(),
            Schools::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
