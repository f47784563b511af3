//! PostgreSQL: the pool, the migrations, and one query module per aggregate.
//!
//! Jobs that write are idempotent by construction: each writes through a unique key or a
//! state guard (`WHERE state = 'PROPOSED'`), so a second run, or a concurrent one, changes
//! nothing. ARCHITECTURE.md lists how each job achieves it.

pub mod balances;
pub mod events;
pub mod governance;
pub mod markets;
pub mod notifications;
pub mod onchain;
pub mod outbox;
pub mod points;
pub mod retention;
pub mod settings;
pub mod snapshots;
pub mod stats;
pub mod sync_runs;

use std::time::Duration;

use sqlx::migrate::MigrateDatabase;
use std::str::FromStr;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

pub use settings::DatabaseSettings;

/// The migrations in `migrations/`, compiled into the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// sqlx's errors are shown in the message and not chained: their own messages already hold
/// their causes (`error returned from database: ...` with the same error as its source), so a
/// chain would say each cause twice.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database: {}", crate::job::error::error_chain(.0))]
    Sqlx(sqlx::Error),
    #[error("migrations: {}", crate::job::error::error_chain(.0))]
    Migrate(sqlx::migrate::MigrateError),
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        DbError::Sqlx(e)
    }
}

impl From<sqlx::migrate::MigrateError> for DbError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        DbError::Migrate(e)
    }
}

/// A pool that connects on first use, so processes that never touch the database (and
/// workers whose database is briefly down) start anyway; the jobs that need it retry.
pub fn lazy_pool(settings: &DatabaseSettings) -> Result<PgPool, DbError> {
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_lazy_with(options(settings.url.expose())?))
}

/// Connection options: the set-based job statements take seconds on big tables by design, so
/// only statements slower than 30 s are logged as slow.
pub fn options(url: &str) -> Result<PgConnectOptions, DbError> {
    Ok(PgConnectOptions::from_str(url)?
        .log_slow_statements(log::LevelFilter::Warn, Duration::from_secs(30)))
}

/// Creates the database if it does not exist, then applies every pending migration.
pub async fn migrate(settings: &DatabaseSettings) -> Result<Vec<String>, DbError> {
    let url = settings.url.expose();
    if !sqlx::Postgres::database_exists(url).await? {
        sqlx::Postgres::create_database(url).await?;
    }
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options(url)?)
        .await?;
    let before: Vec<i64> = applied(&pool).await?;
    MIGRATOR.run(&pool).await?;
    let after: Vec<i64> = applied(&pool).await?;
    pool.close().await;
    Ok(MIGRATOR
        .iter()
        .filter(|m| after.contains(&m.version) && !before.contains(&m.version))
        .map(|m| format!("{} {}", m.version, m.description))
        .collect())
}

async fn applied(pool: &PgPool) -> Result<Vec<i64>, DbError> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    Ok(
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await?,
    )
}
