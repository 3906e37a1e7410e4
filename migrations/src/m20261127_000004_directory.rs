//! Tables for the directory sync and staff sign-in: sync runs and their
//! reports, the incremental-sync cookie, the people columns a sync needs,
//! local accounts (only used without LDAP), the failed-login throttle, browser
//! sessions, and staff tokens (`api_tokens` gains a person and an expiry).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DirectoryRuns {
    Table,
    Id,
    Kind,
    Trigger,
    RequestedBy,
    CreatedAt,
    StartedAt,
    FinishedAt,
    Status,
    Report,
    Error,
}

#[derive(DeriveIden)]
enum DirectorySyncState {
    Table,
    Id,
    Cookie,
    Generation,
    LastFullAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum People {
    Table,
    Id,
    ManagedBy,
    LoanAlert,
    LoanAlertAt,
}

#[derive(DeriveIden)]
enum PersonSchools {
    Table,
    SchoolId,
}

#[derive(DeriveIden)]
enum ClassMembers {
    Table,
    PersonId,
}

#[derive(DeriveIden)]
enum LocalAccounts {
    Table,
    Id,
    Username,
    PasswordHash,
    Technician,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LoginThrottle {
    Table,
    Key,
    Failures,
    WindowStartedAt,
}

#[derive(DeriveIden)]
enum WebSessions {
    Table,
    Id,
    SessionHash,
    CsrfToken,
    Role,
    Name,
    PersonId,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum ApiTokens {
    Table,
    PersonId,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DirectoryRuns::Table)
                    .if_not_exists()
                    .col(string_len(DirectoryRuns::Id, 36).primary_key())
                    // full | incremental | import
                    .col(string_len(DirectoryRuns::Kind, 16))
                    // schedule | api | cli
                    .col(string_len(DirectoryRuns::Trigger, 16))
                    .col(string(DirectoryRuns::RequestedBy))
                    .col(timestamp_with_time_zone(DirectoryRuns::CreatedAt))
                    .col(timestamp_with_time_zone_null(DirectoryRuns::StartedAt))
                    .col(timestamp_with_time_zone_null(DirectoryRuns::FinishedAt))
                    // queued | running | applied | aborted | failed
                    .col(string_len(DirectoryRuns::Status, 16))
                    .col(text_null(DirectoryRuns::Report))
                    .col(text_null(DirectoryRuns::Error))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_directory_runs_created")
                    .table(DirectoryRuns::Table)
                    .col(DirectoryRuns::CreatedAt)
                    .to_owned(),
            )
            .await?;

        // One row per source (`ldap`): where the last incremental read ended,
        // and a generation that every applied sync bumps, so that a plan made
        // from an older state is refused instead of applied twice.
        manager
            .create_table(
                Table::create()
                    .table(DirectorySyncState::Table)
                    .if_not_exists()
                    .col(string_len(DirectorySyncState::Id, 16).primary_key())
                    .col(text_null(DirectorySyncState::Cookie))
                    .col(big_integer(DirectorySyncState::Generation).default(0))
                    .col(timestamp_with_time_zone_null(
                        DirectorySyncState::LastFullAt,
                    ))
                    .col(timestamp_with_time_zone(DirectorySyncState::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        // `directory` people come and go with the directory; `local` ones were
        // created by hand (`flotte user add`) and are left alone by syncs
        // until the directory names them.
        manager
            .alter_table(
                Table::alter()
                    .table(People::Table)
                    .add_column(string_len(People::ManagedBy, 16).default("directory"))
                    .to_owned(),
            )
            .await?;
        // Set when a borrower departs or is disabled (departed | disabled).
        manager
            .alter_table(
                Table::alter()
                    .table(People::Table)
                    .add_column(string_len_null(People::LoanAlert, 16))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(People::Table)
                    .add_column(timestamp_with_time_zone_null(People::LoanAlertAt))
                    .to_owned(),
            )
            .await?;
        // Sign-in looks people up by user name regardless of case.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX IF NOT EXISTS idx_people_username_lower ON people (LOWER(username))",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_person_schools_school")
                    .table(PersonSchools::Table)
                    .col(PersonSchools::SchoolId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_class_members_person")
                    .table(ClassMembers::Table)
                    .col(ClassMembers::PersonId)
                    .to_owned(),
            )
            .await?;

        // Only without LDAP: staff passwords as Argon2id PHC strings.
        manager
            .create_table(
                Table::create()
                    .table(LocalAccounts::Table)
                    .if_not_exists()
                    .col(string_len(LocalAccounts::Id, 36).primary_key())
                    .col(string(LocalAccounts::Username).unique_key())
                    .col(string(LocalAccounts::PasswordHash))
                    .col(boolean(LocalAccounts::Technician).default(false))
                    .col(timestamp_with_time_zone(LocalAccounts::CreatedAt))
                    .col(timestamp_with_time_zone(LocalAccounts::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        // Failed sign-ins per user name and per address, shared by every
        // server on the same database.
        manager
            .create_table(
                Table::create()
                    .table(LoginThrottle::Table)
                    .if_not_exists()
                    .col(string(LoginThrottle::Key).primary_key())
                    .col(integer(LoginThrottle::Failures))
                    .col(timestamp_with_time_zone(LoginThrottle::WindowStartedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebSessions::Table)
                    .if_not_exists()
                    .col(string_len(WebSessions::Id, 36).primary_key())
                    // SHA-256 of the cookie value: a database leak yields no sessions.
                    .col(string_len(WebSessions::SessionHash, 64).unique_key())
                    .col(string_len(WebSessions::CsrfToken, 64))
                    .col(string_len(WebSessions::Role, 16))
                    .col(string(WebSessions::Name))
                    .col(string_len_null(WebSessions::PersonId, 36))
                    .col(timestamp_with_time_zone(WebSessions::CreatedAt))
                    .col(timestamp_with_time_zone(WebSessions::ExpiresAt))
                    .col(timestamp_with_time_zone_null(WebSessions::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebSessions::Table, WebSessions::PersonId)
                            .to(People::Table, People::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // Staff tokens name their person (their schools are looked up on
        // every request) and expire; technician tokens may expire.
        manager
            .alter_table(
                Table::alter()
                    .table(ApiTokens::Table)
                    .add_column(string_len_null(ApiTokens::PersonId, 36))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiTokens::Table)
                    .add_column(timestamp_with_time_zone_null(ApiTokens::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebSessions::Table.into_iden(),
            LoginThrottle::Table.into_iden(),
            LocalAccounts::Table.into_iden(),
            DirectorySyncState::Table.into_iden(),
            DirectoryRuns::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
