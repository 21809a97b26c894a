//! `api_token`: the bearer tokens of `dataloader serve`, by name and role, kept as a SHA-256
//! of the token (the caller hashes; the store never sees a token).

use chrono::{DateTime, Utc};
use dataloader_core::access::{ApiToken, Role};
use dataloader_core::{Error, Result};
use sqlx::{ColumnIndex, Encode, Executor, Type};

use crate::backend::{Backend, Conn, DbRow, Param, RowsAffected, Value};
use crate::store::SqlStore;

/// name, role, created_at, revoked_at, last_used_at
type TokenRow = (
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

const TOKEN_COLUMNS: &str = "name, role, created_at, revoked_at, last_used_at";

fn api_token((name, role, created_at, revoked_at, last_used_at): TokenRow) -> Result<ApiToken> {
    Ok(ApiToken {
        role: role
            .parse::<Role>()
            .map_err(|e| Error::store_message("read a token", format!("token {name}: {e}")))?,
        name,
        created_at,
        revoked_at,
        last_used_at,
    })
}

impl<B: Backend> SqlStore<B>
where
    for<'c> &'c mut Conn<B>: Executor<'c, Database = B::Db>,
    for<'a> &'a str: Param<B::Db> + ColumnIndex<DbRow<B>>,
    for<'a> Option<&'a str>: Type<B::Db> + Encode<'a, B::Db>,
    usize: ColumnIndex<DbRow<B>>,
    bool: Value<B::Db>,
    i64: Value<B::Db>,
    Option<i64>: Param<B::Db>,
    f64: Value<B::Db>,
    String: Value<B::Db>,
    Option<String>: Param<B::Db>,
    DateTime<Utc>: Value<B::Db>,
    Option<DateTime<Utc>>: Param<B::Db>,
{
    pub(crate) async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if name.trim().is_empty() {
            return Err(Error::config("name", "a token needs a name"));
        }
        let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_token WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| Error::store("check the token's name", e))?;
        if taken > 0 {
            return Err(Error::config(
                "name",
                format!("a token named \"{name}\" exists already (a revoked token keeps its name, for the audit trail): choose another name"),
            ));
        }
        sqlx::query(
            "INSERT INTO api_token (name, role, token_hash, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(token_hash)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| Error::store("save the token", e))?;
        Ok(())
    }

    pub(crate) async fn token_by_hash(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<ApiToken>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_token WHERE token_hash = $1");
        let Some(row) = sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(sql))
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| Error::store("look up the token", e))?
        else {
            return Ok(None);
        };
        let token = api_token(row)?;
        // At most once a minute: a busy console does not write on every request.
        let stale = token
            .last_used_at
            .is_none_or(|t| now - t > chrono::Duration::minutes(1));
        if token.revoked_at.is_none() && stale {
            // Only a note: a database that cannot take it (read-only, busy) still answers.
            let noted = sqlx::query("UPDATE api_token SET last_used_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(token_hash)
                .execute(&self.pool)
                .await;
            if let Err(e) = noted {
                tracing::warn!(token = %token.name, error = %e, "noting the token's use");
            }
        }
        Ok(Some(token))
    }

    pub(crate) async fn tokens(&self) -> Result<Vec<ApiToken>> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_token ORDER BY name");
        sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::store("list the tokens", e))?
            .into_iter()
            .map(api_token)
            .collect()
    }

    pub(crate) async fn revoke_token(&self, name: &str, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_token SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(|e| Error::store("revoke the token", e))?;
        Ok(done.rows_affected() > 0)
    }
}
