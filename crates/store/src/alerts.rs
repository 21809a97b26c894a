//! `alert_rules` and `alert_deliveries`: the rules, one delivery per rule and event (a second
//! scheduler finding the same event adds nothing), and deliveries claimed for a while by the
//! worker that sends them, so two workers never send one twice.

use chrono::{DateTime, Utc};
use dataloader_core::alert::{AlertRule, Attempt, Delivery, DeliveryStatus, NewDelivery};
use dataloader_core::{Error, Result, RunRecord};
use sqlx::{ColumnIndex, Encode, Executor, Type};

use crate::backend::{Backend, Conn, DbRow, Param, RowsAffected, Value};
use crate::rows::{ControlRow, RUN_COLUMNS};
use crate::store::SqlStore;

/// name, event, threshold_minutes, tables, url, format, is_active
type RuleRow = (
    String,
    String,
    Option<i64>,
    Option<String>,
    String,
    String,
    bool,
);

/// delivery_id, rule, event_key, status, attempts, last_error, payload, created_at,
/// delivered_at, next_attempt_at
type DeliveryRow = (
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

const DELIVERY_COLUMNS: &str = "delivery_id, rule, event_key, status, attempts, last_error, \
    payload, created_at, delivered_at, next_attempt_at";

fn delivery(r: DeliveryRow) -> Result<Delivery> {
    Ok(Delivery {
        delivery_id: r.0,
        rule: r.1,
        event_key: r.2,
        status: r.3.parse::<DeliveryStatus>()?,
        attempts: r.4,
        last_error: r.5,
        payload: r.6,
        created_at: r.7,
        delivered_at: r.8,
        next_attempt_at: r.9,
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
    pub(crate) async fn save_alert_rule(&self, rule: &AlertRule, now: DateTime<Utc>) -> Result<()> {
        rule.validate()?;
        sqlx::query(
            "INSERT INTO alert_rules (name, event, threshold_minutes, tables, url, format, \
             is_active, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
             ON CONFLICT (name) DO UPDATE SET event = excluded.event, \
             threshold_minutes = excluded.threshold_minutes, tables = excluded.tables, \
             url = excluded.url, format = excluded.format, is_active = excluded.is_active, \
             updated_at = excluded.updated_at",
        )
        .bind(&rule.name)
        .bind(rule.event.as_str())
        .bind(rule.threshold_minutes)
        .bind(&rule.tables)
        .bind(&rule.url)
        .bind(rule.format.as_str())
        .bind(rule.is_active)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| Error::store("save the alert rule", e))?;
        Ok(())
    }

    pub(crate) async fn alert_rules(&self) -> Result<Vec<AlertRule>> {
        let rows: Vec<RuleRow> = sqlx::query_as(
            "SELECT name, event, threshold_minutes, tables, url, format, is_active \
             FROM alert_rules ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Error::store("read the alert rules", e))?;
        rows.into_iter()
            .map(|r| {
                Ok(AlertRule {
                    name: r.0,
                    event: r.1.parse()?,
                    threshold_minutes: r.2,
                    tables: r.3,
                    url: r.4,
                    format: r.5.parse()?,
                    is_active: r.6,
                })
            })
            .collect()
    }

    pub(crate) async fn delete_alert_rule(&self, name: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM alert_rules WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(|e| Error::store("remove the alert rule", e))?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn queue_delivery(&self, d: &NewDelivery, now: DateTime<Utc>) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO alert_deliveries (rule, event_key, table_id, run_id, payload, \
             created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (rule, event_key) DO NOTHING",
        )
        .bind(&d.rule)
        .bind(&d.event_key)
        .bind(d.table_id)
        .bind(d.run_id)
        .bind(&d.payload)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| Error::store("queue an alert", e))?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn claim_deliveries(
        &self,
        now: DateTime<Utc>,
        hold_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE status = 'pending' \
             AND next_attempt_at <= $1 ORDER BY delivery_id LIMIT $2"
        );
        let due: Vec<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::store("read the alerts to send", e))?;
        let mut claimed = Vec::new();
        for row in due {
            // Whoever moves the attempt time first sends it; another worker finds it later.
            let taken = sqlx::query(
                "UPDATE alert_deliveries SET next_attempt_at = $1 \
                 WHERE delivery_id = $2 AND status = 'pending' AND next_attempt_at <= $3",
            )
            .bind(hold_until)
            .bind(row.0)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| Error::store("claim an alert to send", e))?;
            if taken.rows_affected() == 1 {
                claimed.push(delivery(row)?);
            }
        }
        Ok(claimed)
    }

    pub(crate) async fn record_attempt(
        &self,
        delivery_id: i64,
        attempt: &Attempt,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let (status, error, next, delivered) = match attempt {
            Attempt::Delivered => ("delivered", None, None, Some(now)),
            Attempt::Retry { error, at } => ("pending", Some(error.as_str()), Some(*at), None),
            Attempt::Failed { error } => ("failed", Some(error.as_str()), None, None),
        };
        sqlx::query(
            "UPDATE alert_deliveries SET status = $1, attempts = attempts + 1, \
             last_error = COALESCE($2, last_error), next_attempt_at = $3, delivered_at = $4 \
             WHERE delivery_id = $5",
        )
        .bind(status)
        .bind(error)
        .bind(next)
        .bind(delivered)
        .bind(delivery_id)
        .execute(&self.pool)
        .await
        .map_err(|e| Error::store("record an alert's delivery", e))?;
        Ok(())
    }

    pub(crate) async fn deliveries(&self, limit: i64) -> Result<Vec<Delivery>> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries ORDER BY delivery_id DESC LIMIT $1"
        );
        sqlx::query_as::<_, DeliveryRow>(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::store("read the alert deliveries", e))?
            .into_iter()
            .map(delivery)
            .collect()
    }

    pub(crate) async fn runs_finished_since(&self, since: DateTime<Utc>) -> Result<Vec<RunRecord>> {
        let sql = format!(
            "SELECT {RUN_COLUMNS} FROM historical_metadata WHERE finished_at >= $1 \
             ORDER BY run_id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(since)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Error::store("read the runs that ended lately", e))?
            .iter()
            .map(ControlRow::run_record)
            .collect()
    }
}
