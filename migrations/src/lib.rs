//! Flotte's database schema as sea-orm migrations, one file per change, each
//! written for SQLite and PostgreSQL alike. Migrations never import entities:
//! a migration describes the schema as it was on the day it was written.

pub use sea_orm_migration::prelude::*;

mod m20261127_000001_create_foundation;
mod m20261127_000002_apple;
mod m20261127_000003_windows;
mod m20261127_000004_directory;
mod m20261127_000005_loans;
mod m20261127_000006_profiles;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261127_000001_create_foundation::Migration),
            Box::new(m20261127_000002_apple::Migration),
            Box::new(m20261127_000003_windows::Migration),
            Box::new(m20261127_000004_directory::Migration),
            Box::new(m20261127_000005_loans::Migration),
            Box::new(m20261127_000006_profiles::Migration),
        ]
    }
}
