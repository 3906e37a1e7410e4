use crate::group_commit::GroupCommit;
use flotte_core::CoreError;
use flotte_migrations::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, SqlErr, SqliteTransactionMode,
    SqlxPostgresConnector, SqlxSqliteConnector, TransactionOptions, TransactionTrait,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

/// Which database engine is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The raw pool the job runner (apalis) needs; it shares sea-orm's pool.
#[derive(Debug, Clone)]
pub enum JobPool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// The handle every server and worker task shares. Cloning is cheap.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) db: DatabaseConnection,
    pub(crate) backend: Backend,
    /// SQLite has one writer at a time. Writers of this process queue here,
    /// on an async lock, instead of inside SQLite's busy handler, which sleeps
    /// in steps of up to 100 ms and made every write wait tens of milliseconds.
    write_gate: Option<std::sync::Arc<tokio::sync::Mutex<()>>>,
    /// SQLite: the one connection write transactions use. In WAL mode a connection drops its
    /// whole page cache whenever another connection has written since its last transaction;
    /// with writes spread over the pool every write started cold and read its pages again
    /// (half of a check-in's CPU, profiled). Writes on one connection keep its cache warm.
    writer: Option<DatabaseConnection>,
    /// Check-in writes of many devices, each batch in one transaction.
    pub(crate) token_writes: std::sync::Arc<GroupCommit<crate::checkin_batch::TokenWrite, ()>>,
    pub(crate) first_contacts: std::sync::Arc<
        GroupCommit<crate::checkin_batch::FirstContact, flotte_core::device::Device>,
    >,
    pub(crate) sealer: Option<std::sync::Arc<crate::seal::Sealer>>,
}

impl Store {
    /// Connect to `url` (`sqlite://…` or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Self, CoreError> {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(CoreError::storage)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // NORMAL is durable across process crashes in WAL mode; only a power
                // cut can lose the last transactions, never corrupt the file.
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
                // A page cache per connection that holds a school board's hot rows (32 MiB;
                // SQLite's default is 2 MiB). Not mmap: a growing file is mapped again on every
                // connection, and the TLB shootdowns cost more than the read() calls they save.
                .pragma("cache_size", "-32768")
                .pragma("temp_store", "memory");
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options.clone())
                .await
                .map_err(CoreError::storage)?;
            let writer = SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
                .map_err(CoreError::storage)?;
            Ok(Self {
                db: SqlxSqliteConnector::from_sqlx_sqlite_pool(pool),
                backend: Backend::Sqlite,
                write_gate: Some(std::sync::Arc::new(tokio::sync::Mutex::new(()))),
                writer: Some(SqlxSqliteConnector::from_sqlx_sqlite_pool(writer)),
                token_writes: Default::default(),
                first_contacts: Default::default(),
                sealer: None,
            })
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(CoreError::storage)?;
            Ok(Self {
                db: SqlxPostgresConnector::from_sqlx_postgres_pool(pool),
                backend: Backend::Postgres,
                write_gate: None,
                writer: None,
                token_writes: Default::default(),
                first_contacts: Default::default(),
                sealer: None,
            })
        } else {
            Err(CoreError::Invalid(format!(
                "database URL must start with sqlite:// or postgres://, got {:?}",
                url.split(':').next().unwrap_or_default()
            )))
        }
    }

    /// Bring the schema up to date: Flotte's tables and the job runner's. Safe to run repeatedly.
    pub async fn migrate(&self) -> Result<(), CoreError> {
        Migrator::up(&self.db, None)
            .await
            .map_err(CoreError::storage)?;
        match self.job_pool() {
            JobPool::Sqlite(pool) => apalis_sqlite::SqliteStorage::migrations()
                .run(&pool)
                .await
                .map_err(CoreError::storage)?,
            JobPool::Postgres(pool) => apalis_postgres::PostgresStorage::migrations()
                .run(&pool)
                .await
                .map_err(CoreError::storage)?,
        }
        Ok(())
    }

    /// Seal secrets at rest with this key (from the data directory).
    pub fn with_sealing_key(mut self, key: &[u8; 32]) -> Self {
        self.sealer = Some(std::sync::Arc::new(crate::seal::Sealer::new(key)));
        self
    }

    pub(crate) fn sealer(&self) -> Result<&crate::seal::Sealer, CoreError> {
        self.sealer.as_deref().ok_or_else(|| {
            CoreError::Invalid("no sealing key configured for secrets at rest".into())
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn job_pool(&self) -> JobPool {
        match self.backend {
            Backend::Sqlite => JobPool::Sqlite(self.db.get_sqlite_connection_pool().clone()),
            Backend::Postgres => JobPool::Postgres(self.db.get_postgres_connection_pool().clone()),
        }
    }

    /// The sea-orm connection, for the rare caller that needs raw access (tests, benchmarks).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// One round trip to the database: what `/healthz` reports.
    pub async fn ping(&self) -> Result<(), CoreError> {
        self.db.ping().await.map_err(CoreError::storage)
    }

    pub async fn close(self) -> Result<(), CoreError> {
        if let Some(writer) = self.writer {
            writer.close().await.map_err(CoreError::storage)?;
        }
        self.db.close().await.map_err(CoreError::storage)
    }

    /// A write transaction. On SQLite it takes the write lock at BEGIN, so that
    /// two writers queue on the busy timeout instead of one failing when it
    /// upgrades from reading to writing.
    pub(crate) async fn write(&self) -> Result<WriteTxn, CoreError> {
        let gate = match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        };
        let options = TransactionOptions {
            isolation_level: None,
            access_mode: None,
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        };
        let txn = self
            .writer
            .as_ref()
            .unwrap_or(&self.db)
            .begin_with_options(options)
            .await
            .map_err(CoreError::storage)?;
        Ok(WriteTxn { txn, _gate: gate })
    }
}

/// Turn a database error into the core's vocabulary: a unique-key clash is a
/// conflict the caller can explain, anything else is a storage failure.
pub(crate) fn db_err(what: &str) -> impl Fn(DbErr) -> CoreError + '_ {
    move |e: DbErr| match e.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => {
            CoreError::Conflict(format!("{what} already exists"))
        }
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
            CoreError::Invalid(format!("{what} refers to something that does not exist"))
        }
        _ => CoreError::storage(e),
    }
}

pub(crate) async fn commit(txn: WriteTxn) -> Result<(), CoreError> {
    txn.commit().await.map_err(CoreError::storage)
}

/// A write transaction, holding this process's SQLite write gate until it
/// ends. Derefs to the sea-orm transaction, and is a connection itself.
pub(crate) struct WriteTxn {
    txn: DatabaseTransaction,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTxn {
    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> sea_orm::DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: sea_orm::Statement) -> Result<sea_orm::ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<sea_orm::ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(
        &self,
        stmt: sea_orm::Statement,
    ) -> Result<Option<sea_orm::QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(
        &self,
        stmt: sea_orm::Statement,
    ) -> Result<Vec<sea_orm::QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
}

/// Used by queries that must behave the same on both engines.
pub(crate) fn is_sqlite(conn: &impl ConnectionTrait) -> bool {
    matches!(conn.get_database_backend(), sea_orm::DbBackend::Sqlite)
}
