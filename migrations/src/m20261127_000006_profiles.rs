//! Tables for profiles: template versions (the foundation's `profiles` table is the head of
//! each template: identifier, name, platforms, current version and body), assignments as
//! desired state, device groups, what each device is expected to carry and acknowledged
//! carrying, bulk pushes with per-device progress, the columns EAP-TLS client certificates
//! need (certificate and sealed key, so the same identity can be packed again), and the CRL
//! number.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Profiles {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ProfileVersions {
    Table,
    ProfileId,
    Version,
    Body,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ProfileAssignments {
    Table,
    Id,
    ProfileId,
    Version,
    ScopeKind,
    ScopeId,
    SchoolId,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum DeviceGroups {
    Table,
    Id,
    Name,
    SchoolId,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DeviceGroupMembers {
    Table,
    GroupId,
    DeviceId,
}

#[derive(DeriveIden)]
enum DeviceProfileState {
    Table,
    DeviceId,
    Identifier,
    ExpectedVersion,
    ExpectedChecksum,
    InstalledVersion,
    InstalledChecksum,
    InstalledAt,
    Removal,
    PendingCommandId,
    PendingAction,
    PendingVersion,
    PendingChecksum,
    PendingRemoval,
    LastError,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Pushes {
    Table,
    Id,
    ProfileId,
    Identifier,
    Version,
    Action,
    ScopeKind,
    ScopeId,
    SchoolId,
    Status,
    Total,
    BatchSize,
    Batches,
    Generation,
    SilentAfterSecs,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
    StartedAt,
    QueuedAt,
    FinishedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum PushTargets {
    Table,
    PushId,
    DeviceId,
    Seq,
    Status,
    CommandId,
    WokenAt,
    Wakes,
    Error,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Certificates {
    Table,
    CertPem,
    KeySealed,
    IsCurrent,
    RevocationReason,
}

#[derive(DeriveIden)]
enum CrlState {
    Table,
    Id,
    Number,
    Der,
    RevokedCount,
    IssuedAt,
    NextUpdate,
}

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

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        use ForeignKeyAction::{Cascade, SetNull};

        // Every saved version stays, so a push names exactly what it sends and an older
        // version can be pushed again.
        manager
            .create_table(
                Table::create()
                    .table(ProfileVersions::Table)
                    .if_not_exists()
                    .col(string_len(ProfileVersions::ProfileId, 36))
                    .col(integer(ProfileVersions::Version))
                    .col(text(ProfileVersions::Body))
                    .col(string(ProfileVersions::CreatedBy))
                    .col(timestamp_with_time_zone(ProfileVersions::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(ProfileVersions::ProfileId)
                            .col(ProfileVersions::Version),
                    )
                    .foreign_key(&mut fk(
                        (ProfileVersions::Table, ProfileVersions::ProfileId),
                        (Profiles::Table, Profiles::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        // `scope_id` is '' for the scope "all", so that the unique key treats it like any
        // other value (NULLs are distinct in a unique index). `school_id` is the school the
        // scope belongs to, for staff scoping; NULL for fleet-wide scopes.
        manager
            .create_table(
                Table::create()
                    .table(ProfileAssignments::Table)
                    .if_not_exists()
                    .col(string_len(ProfileAssignments::Id, 36).primary_key())
                    .col(string_len(ProfileAssignments::ProfileId, 36))
                    .col(integer(ProfileAssignments::Version))
                    .col(string_len(ProfileAssignments::ScopeKind, 16))
                    .col(string(ProfileAssignments::ScopeId))
                    .col(string_len_null(ProfileAssignments::SchoolId, 36))
                    .col(string(ProfileAssignments::CreatedBy))
                    .col(timestamp_with_time_zone(ProfileAssignments::CreatedAt))
                    .col(timestamp_with_time_zone(ProfileAssignments::UpdatedAt))
                    .foreign_key(&mut fk(
                        (ProfileAssignments::Table, ProfileAssignments::ProfileId),
                        (Profiles::Table, Profiles::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        (ProfileAssignments::Table, ProfileAssignments::SchoolId),
                        (Schools::Table, Schools::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_profile_assignments_scope")
                    .table(ProfileAssignments::Table)
                    .col(ProfileAssignments::ProfileId)
                    .col(ProfileAssignments::ScopeKind)
                    .col(ProfileAssignments::ScopeId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(DeviceGroups::Table)
                    .if_not_exists()
                    .col(string_len(DeviceGroups::Id, 36).primary_key())
                    .col(string(DeviceGroups::Name).unique_key())
                    .col(string_len_null(DeviceGroups::SchoolId, 36))
                    .col(string(DeviceGroups::CreatedBy))
                    .col(timestamp_with_time_zone(DeviceGroups::CreatedAt))
                    .foreign_key(&mut fk(
                        (DeviceGroups::Table, DeviceGroups::SchoolId),
                        (Schools::Table, Schools::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DeviceGroupMembers::Table)
                    .if_not_exists()
                    .col(string_len(DeviceGroupMembers::GroupId, 36))
                    .col(string_len(DeviceGroupMembers::DeviceId, 36))
                    .primary_key(
                        Index::create()
                            .col(DeviceGroupMembers::GroupId)
                            .col(DeviceGroupMembers::DeviceId),
                    )
                    .foreign_key(&mut fk(
                        (DeviceGroupMembers::Table, DeviceGroupMembers::GroupId),
                        (DeviceGroups::Table, DeviceGroups::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        (DeviceGroupMembers::Table, DeviceGroupMembers::DeviceId),
                        (Devices::Table, Devices::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;

        // Keyed by identifier, not profile id: a profile deleted from Flotte must still be
        // removable from the devices that carry it.
        manager
            .create_table(
                Table::create()
                    .table(DeviceProfileState::Table)
                    .if_not_exists()
                    .col(string_len(DeviceProfileState::DeviceId, 36))
                    .col(string(DeviceProfileState::Identifier))
                    .col(integer_null(DeviceProfileState::ExpectedVersion))
                    .col(string_len_null(DeviceProfileState::ExpectedChecksum, 64))
                    .col(integer_null(DeviceProfileState::InstalledVersion))
                    .col(string_len_null(DeviceProfileState::InstalledChecksum, 64))
                    .col(timestamp_with_time_zone_null(
                        DeviceProfileState::InstalledAt,
                    ))
                    .col(text_null(DeviceProfileState::Removal))
                    .col(string_len_null(DeviceProfileState::PendingCommandId, 36))
                    .col(string_len_null(DeviceProfileState::PendingAction, 16))
                    .col(integer_null(DeviceProfileState::PendingVersion))
                    .col(string_len_null(DeviceProfileState::PendingChecksum, 64))
                    .col(text_null(DeviceProfileState::PendingRemoval))
                    .col(text_null(DeviceProfileState::LastError))
                    .col(timestamp_with_time_zone(DeviceProfileState::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(DeviceProfileState::DeviceId)
                            .col(DeviceProfileState::Identifier),
                    )
                    .foreign_key(&mut fk(
                        (DeviceProfileState::Table, DeviceProfileState::DeviceId),
                        (Devices::Table, Devices::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_device_profile_state_pending")
                    .table(DeviceProfileState::Table)
                    .col(DeviceProfileState::PendingCommandId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Pushes::Table)
                    .if_not_exists()
                    .col(string_len(Pushes::Id, 36).primary_key())
                    .col(string_len_null(Pushes::ProfileId, 36))
                    .col(string(Pushes::Identifier))
                    .col(integer_null(Pushes::Version))
                    .col(string_len(Pushes::Action, 16))
                    .col(string_len(Pushes::ScopeKind, 16))
                    .col(string(Pushes::ScopeId))
                    .col(string_len_null(Pushes::SchoolId, 36))
                    .col(string_len(Pushes::Status, 16))
                    .col(integer(Pushes::Total))
                    .col(integer(Pushes::BatchSize))
                    .col(integer(Pushes::Batches))
                    .col(integer(Pushes::Generation))
                    .col(big_integer(Pushes::SilentAfterSecs))
                    .col(string(Pushes::CreatedBy))
                    .col(timestamp_with_time_zone(Pushes::CreatedAt))
                    .col(timestamp_with_time_zone(Pushes::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Pushes::StartedAt))
                    .col(timestamp_with_time_zone_null(Pushes::QueuedAt))
                    .col(timestamp_with_time_zone_null(Pushes::FinishedAt))
                    .col(timestamp_with_time_zone(Pushes::ExpiresAt))
                    .foreign_key(&mut fk(
                        (Pushes::Table, Pushes::ProfileId),
                        (Profiles::Table, Profiles::Id),
                        SetNull,
                    ))
                    .foreign_key(&mut fk(
                        (Pushes::Table, Pushes::SchoolId),
                        (Schools::Table, Schools::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_pushes_status_finished")
                    .table(Pushes::Table)
                    .col(Pushes::Status)
                    .col(Pushes::FinishedAt)
                    .to_owned(),
            )
            .await?;

        // One row per push and device: the primary key is what makes a fan-out batch
        // idempotent (a re-run finds the device already planned and sends nothing).
        manager
            .create_table(
                Table::create()
                    .table(PushTargets::Table)
                    .if_not_exists()
                    .col(string_len(PushTargets::PushId, 36))
                    .col(string_len(PushTargets::DeviceId, 36))
                    .col(integer(PushTargets::Seq))
                    .col(string_len(PushTargets::Status, 16))
                    .col(string_len_null(PushTargets::CommandId, 36))
                    .col(timestamp_with_time_zone_null(PushTargets::WokenAt))
                    .col(integer(PushTargets::Wakes))
                    .col(text_null(PushTargets::Error))
                    .col(timestamp_with_time_zone(PushTargets::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(PushTargets::PushId)
                            .col(PushTargets::DeviceId),
                    )
                    .foreign_key(&mut fk(
                        (PushTargets::Table, PushTargets::PushId),
                        (Pushes::Table, Pushes::Id),
                        Cascade,
                    ))
                    .foreign_key(&mut fk(
                        (PushTargets::Table, PushTargets::DeviceId),
                        (Devices::Table, Devices::Id),
                        Cascade,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_push_targets_seq")
                    .table(PushTargets::Table)
                    .col(PushTargets::PushId)
                    .col(PushTargets::Seq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_push_targets_status")
                    .table(PushTargets::Table)
                    .col(PushTargets::PushId)
                    .col(PushTargets::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_push_targets_command")
                    .table(PushTargets::Table)
                    .col(PushTargets::CommandId)
                    .to_owned(),
            )
            .await?;

        for column in [
            text_null(Certificates::CertPem),
            text_null(Certificates::KeySealed),
            boolean(Certificates::IsCurrent).default(false).to_owned(),
            string_len_null(Certificates::RevocationReason, 32),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Certificates::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        // One current EAP-TLS certificate per person and device (per device for device
        // certificates): two workers rendering for the same pupil at once cannot both
        // record a new one.
        let connection = manager.get_connection();
        connection
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS idx_certificates_current_person \
                 ON certificates (kind, person_id, device_id) \
                 WHERE is_current AND kind = 'eap_person'",
            )
            .await?;
        connection
            .execute_unprepared(
                "CREATE UNIQUE INDEX IF NOT EXISTS idx_certificates_current_device \
                 ON certificates (kind, device_id) WHERE is_current AND kind = 'eap_device'",
            )
            .await?;
        connection
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS idx_certificates_revoked \
                 ON certificates (revoked_at, not_after)",
            )
            .await?;

        // One row: the number and bytes of the newest CRL, so that every server serves the
        // same CRL and the number only grows.
        manager
            .create_table(
                Table::create()
                    .table(CrlState::Table)
                    .if_not_exists()
                    .col(string_len(CrlState::Id, 16).primary_key())
                    .col(big_integer(CrlState::Number))
                    .col(text(CrlState::Der))
                    .col(integer(CrlState::RevokedCount))
                    .col(timestamp_with_time_zone(CrlState::IssuedAt))
                    .col(timestamp_with_time_zone(CrlState::NextUpdate))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CrlState::Table.into_iden(),
            PushTargets::Table.into_iden(),
            Pushes::Table.into_iden(),
            DeviceProfileState::Table.into_iden(),
            DeviceGroupMembers::Table.into_iden(),
            DeviceGroups::Table.into_iden(),
            ProfileAssignments::Table.into_iden(),
            ProfileVersions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        let connection = manager.get_connection();
        for index in [
            "idx_certificates_current_person",
            "idx_certificates_current_device",
            "idx_certificates_revoked",
        ] {
            connection
                .execute_unprepared(&format!("DROP INDEX IF EXISTS {index}"))
                .await?;
        }
        Ok(())
    }
}
