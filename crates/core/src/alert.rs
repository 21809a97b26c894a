//! Alert rules and their deliveries: on a failed run, on a table's recovery, on a run longer
//! than N minutes, on a table not loaded successfully for N minutes; delivered to a webhook
//! as generic JSON or in Slack's incoming-webhook shape. The scheduler finds the events and
//! delivers them; the store keeps one delivery per rule and event, so none is sent twice.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::secret::SecretSetting;
use crate::{Error, Result};

/// What a rule fires on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// A run ended `Failed`.
    Failure,
    /// A run succeeded right after a failed one of the same table.
    Recovery,
    /// A run has been running longer than the rule's minutes.
    LongRun,
    /// A table's last success is older than the rule's minutes.
    Freshness,
}

impl AlertEvent {
    pub const ALL: [AlertEvent; 4] = [
        AlertEvent::Failure,
        AlertEvent::Recovery,
        AlertEvent::LongRun,
        AlertEvent::Freshness,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertEvent::Failure => "failure",
            AlertEvent::Recovery => "recovery",
            AlertEvent::LongRun => "long_run",
            AlertEvent::Freshness => "freshness",
        }
    }

    /// Whether the rule needs `threshold_minutes`.
    pub fn has_threshold(self) -> bool {
        matches!(self, AlertEvent::LongRun | AlertEvent::Freshness)
    }
}

impl FromStr for AlertEvent {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let s = s.replace('-', "_");
        AlertEvent::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                Error::config(
                    "event",
                    format!("\"{s}\" is not failure, recovery, long_run or freshness"),
                )
            })
    }
}

/// The shape of the webhook's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertFormat {
    /// `{"event", "rule", "table", "run_id", "message", …}`.
    Json,
    /// Slack's incoming webhook: `{"text": "…"}`.
    Slack,
}

impl AlertFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertFormat::Json => "json",
            AlertFormat::Slack => "slack",
        }
    }
}

impl FromStr for AlertFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "json" => Ok(AlertFormat::Json),
            "slack" => Ok(AlertFormat::Slack),
            other => Err(Error::config(
                "format",
                format!("\"{other}\" is not json or slack"),
            )),
        }
    }
}

/// An `alert_rules` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRule {
    pub name: String,
    pub event: AlertEvent,
    /// `long_run` and `freshness`: minutes.
    pub threshold_minutes: Option<i64>,
    /// Which tables: a destination, or a prefix ending in `*` (`bronze.sales.*`); all when none.
    pub tables: Option<String>,
    /// The webhook's URL, or a reference to it (a Slack webhook's URL is a secret):
    /// never shown whole, see [`AlertRule::shown_url`].
    #[serde(skip)]
    pub url: String,
    pub format: AlertFormat,
    pub is_active: bool,
}

impl AlertRule {
    pub fn validate(&self) -> Result<()> {
        if !crate::naming::is_plain_name(&self.name) {
            return Err(Error::config(
                "name",
                format!(
                    "alert name \"{}\" must be letters, digits, '_' or '-'",
                    self.name
                ),
            ));
        }
        match (self.event.has_threshold(), self.threshold_minutes) {
            (true, None) => {
                return Err(Error::config(
                    "after",
                    format!("a {} alert needs --after (minutes)", self.event.as_str()),
                ))
            }
            (_, Some(m)) if m <= 0 => {
                return Err(Error::config("after", "must be more than 0 minutes"))
            }
            (false, Some(_)) => {
                return Err(Error::config(
                    "after",
                    format!("a {} alert takes no --after", self.event.as_str()),
                ))
            }
            _ => {}
        }
        match self.webhook()? {
            SecretSetting::Value(url) if scheme_and_host(&url).is_none() => Err(Error::config(
                "webhook",
                "must be an http(s) URL, or a reference to one",
            )),
            _ => Ok(()),
        }
    }

    /// `after` (a duration given as `90m`, `26h`) as the rule's whole minutes; less than a
    /// minute is refused.
    pub fn minutes(after: std::time::Duration) -> Result<i64> {
        match after.as_secs() / 60 {
            0 => Err(Error::config("after", "must be a minute or more")),
            m => Ok(m as i64),
        }
    }

    /// The URL as a value or a reference, read when a delivery is sent.
    pub fn webhook(&self) -> Result<SecretSetting> {
        SecretSetting::parse("webhook", &self.url)
    }

    /// The URL as it may be shown: a reference as it is, a URL as its scheme and host only
    /// (a Slack webhook's path is its secret).
    pub fn shown_url(&self) -> String {
        match self.webhook() {
            Ok(SecretSetting::Reference(r)) => r.to_string(),
            _ => match scheme_and_host(&self.url) {
                Some((scheme, host)) => format!("{scheme}://{host}/…"),
                None => "(not a URL)".into(),
            },
        }
    }

    /// Whether the rule covers the table `destination`.
    pub fn covers(&self, destination: &str) -> bool {
        match self.tables.as_deref() {
            None | Some("") | Some("*") => true,
            Some(p) => match p.strip_suffix('*') {
                Some(prefix) => destination.starts_with(prefix),
                None => destination == p,
            },
        }
    }
}

/// `http(s)` and the host (without user info) of `url`; `None` for anything else.
fn scheme_and_host(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    if !matches!(scheme, "http" | "https") {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then_some((scheme, host))
}

/// A delivery to queue: one per rule and `event_key` (the store ignores a second).
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub rule: String,
    /// What the event is about, unique for the rule: `failure:run:42`,
    /// `freshness:table:7:since:2026-12-07T02:00:00Z`.
    pub event_key: String,
    pub table_id: Option<i64>,
    pub run_id: Option<i64>,
    /// The body to POST.
    pub payload: String,
}

/// How a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(Error::store_message(
                "decode a delivery",
                format!("unknown status \"{other}\""),
            )),
        }
    }
}

/// An `alert_deliveries` row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub delivery_id: i64,
    pub rule: String,
    pub event_key: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    /// The last attempt's failure: an HTTP status or a connection error, never the URL.
    pub last_error: Option<String>,
    pub payload: String,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered,
    /// Try again at the time given.
    Retry {
        error: String,
        at: DateTime<Utc>,
    },
    /// No more tries.
    Failed {
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(event: AlertEvent, minutes: Option<i64>, url: &str) -> AlertRule {
        AlertRule {
            name: "oncall".into(),
            event,
            threshold_minutes: minutes,
            tables: Some("bronze.sales.*".into()),
            url: url.into(),
            format: AlertFormat::Slack,
            is_active: true,
        }
    }

    #[test]
    fn rules_check_their_threshold_and_url_and_never_show_a_webhook_path() {
        let slack = "https://hooks.slack.com/services/T000/B000/SECRETPATH";
        assert!(rule(AlertEvent::Failure, None, slack).validate().is_ok());
        assert!(rule(AlertEvent::LongRun, Some(30), slack)
            .validate()
            .is_ok());
        for (r, says) in [
            (rule(AlertEvent::LongRun, None, slack), "needs --after"),
            (
                rule(AlertEvent::Failure, Some(5), slack),
                "takes no --after",
            ),
            (rule(AlertEvent::Freshness, Some(0), slack), "more than 0"),
            (rule(AlertEvent::Failure, None, "ftp://x"), "http(s)"),
            (rule(AlertEvent::Failure, None, "aws-sm://"), "secret id"),
        ] {
            let err = r.validate().unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
        assert_eq!(
            rule(AlertEvent::Failure, None, slack).shown_url(),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            rule(AlertEvent::Failure, None, "aws-sm://ops/slack#url").shown_url(),
            "aws-sm://ops/slack#url"
        );
        assert_eq!(
            "long-run".parse::<AlertEvent>().unwrap(),
            AlertEvent::LongRun
        );
    }

    #[test]
    fn a_rule_covers_its_tables() {
        let r = rule(AlertEvent::Failure, None, "https://x.example/h");
        assert!(r.covers("bronze.sales.orders"));
        assert!(!r.covers("bronze.hr.people"));
        let one = AlertRule {
            tables: Some("bronze.hr.people".into()),
            ..r.clone()
        };
        assert!(one.covers("bronze.hr.people") && !one.covers("bronze.hr.people2"));
        let all = AlertRule { tables: None, ..r };
        assert!(all.covers("anything.at.all"));
    }
}
