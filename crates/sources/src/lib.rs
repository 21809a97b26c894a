//! DataLoader's source connectors. Each database is one module behind a cargo feature; all of
//! them speak the [`Source`] seam and render SQL through [`dialect::SqlDialect`].

use std::sync::Arc;

use dataloader_core::{ConnectionConfig, DbType, Error, Result, Source};

pub mod batch;
#[cfg(feature = "clickhouse")]
pub mod clickhouse;
pub mod dialect;
#[cfg(feature = "mssql")]
pub mod mssql;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "oracle")]
pub mod oracle;
pub mod per_table;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod read;
#[cfg(feature = "snowflake")]
pub mod snowflake;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// Rows per Arrow batch unless a load asks otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 65_536;

/// Opens a source for a stored connection. Connecting happens here, so an unreachable
/// database or a wrong password fails before any load starts.
pub async fn connect(config: &ConnectionConfig) -> Result<Arc<dyn Source>> {
    config.validate()?;
    match config.db_type {
        #[cfg(feature = "postgres")]
        DbType::Postgresql => Ok(Arc::new(postgres::PostgresSource::connect(config).await?)),
        #[cfg(feature = "clickhouse")]
        DbType::Clickhouse => Ok(Arc::new(clickhouse::ClickHouseSource::connect(config).await?)),
        #[cfg(feature = "mssql")]
        DbType::Mssql => Ok(Arc::new(mssql::MssqlSource::connect(config).await?)),
        #[cfg(feature = "oracle")]
        DbType::Oracle => Ok(Arc::new(oracle::OracleSource::connect(config).await?)),
        #[cfg(feature = "snowflake")]
        DbType::Snowflake | DbType::SnowflakePem => {
            Ok(Arc::new(snowflake::SnowflakeSource::connect(config).await?))
        }
        #[cfg(feature = "mysql")]
        DbType::Mysql => Ok(Arc::new(mysql::MysqlSource::connect(config).await?)),
        #[cfg(feature = "sqlite")]
        DbType::Sqlite => Ok(Arc::new(sqlite::SqliteSource::connect(config).await?)),
        #[allow(unreachable_patterns)]
        other => Err(Error::config(
            "type",
            format!("this build of dataloader has no {other} connector (enable the \"{other}\" feature)"),
        )),
    }
}
