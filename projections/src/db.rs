//! Opening the read database: create it when missing, then migrate.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

/// Why the read database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ReadDbError {
    #[error("invalid database URL: {0}")]
    InvalidUrl(#[source] sqlx::Error),
    #[error("the read database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("could not create database {name}: {source}")]
    Create { name: String, source: sqlx::Error },
    #[error("migrating the read database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// The maintenance database every Postgres server has; new databases are created
/// from a connection to it.
const MAINTENANCE_DB: &str = "postgres";

/// Opens a pool on `database_url`, creating the database when it does not exist yet,
/// and applies the embedded migrations (`projections/migrations/`).
pub async fn connect(database_url: &str) -> Result<PgPool, ReadDbError> {
    let options = PgConnectOptions::from_str(database_url).map_err(ReadDbError::InvalidUrl)?;
    ensure_database(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(ReadDbError::Unavailable)?;
    // sqlx's migrator holds an advisory lock while it runs, so processes starting
    // together do not apply a migration twice.
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

async fn ensure_database(options: &PgConnectOptions) -> Result<(), ReadDbError> {
    let name = options.get_database().unwrap_or(MAINTENANCE_DB).to_owned();
    match PgConnection::connect_with(options).await {
        Ok(connection) => {
            let _ = connection.close().await;
            return Ok(());
        }
        Err(error) if database_code(&error).as_deref() == Some("3D000") => {}
        Err(error) => return Err(ReadDbError::Unavailable(error)),
    }
    let maintenance = options.clone().database(MAINTENANCE_DB);
    let mut connection = PgConnection::connect_with(&maintenance).await.map_err(ReadDbError::Unavailable)?;
    // Identifiers cannot be bound as parameters; quoting with doubled quotes makes
    // any name a single identifier.
    let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    let created = sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&mut connection).await;
    let _ = connection.close().await;
    match created {
        Ok(_) => Ok(()),
        // Another process created it between our two connections: 42P04 is
        // "duplicate_database"; a race inside the catalog shows as 23505.
        Err(error) if matches!(database_code(&error).as_deref(), Some("42P04" | "23505")) => Ok(()),
        Err(source) => Err(ReadDbError::Create { name, source }),
    }
}

pub(crate) fn database_code(error: &sqlx::Error) -> Option<String> {
    match error {
        sqlx::Error::Database(db) => db.code().map(|code| code.into_owned()),
        _ => None,
    }
}
