//! Credential vending: temporary storage credentials Unity Catalog hands out for one table
//! (`READ_WRITE`) or, before the table is registered, for its path (`PATH_CREATE_TABLE`),
//! mapped into the object store's options, so a worker needs a catalog identity and no
//! storage keys. A server that answers with no credentials at all (a local path, a server
//! that vends none) leaves the lake's own credentials in use.

use chrono::{DateTime, Utc};
use dataloader_core::VendedCredentials;
use serde_json::Value;

use super::api::{Api, Failure};

/// Credentials for the table `full_name` at `location`.
pub(crate) async fn vend(
    api: &Api,
    full_name: &str,
    location: &str,
) -> Result<VendedCredentials, Failure> {
    let answer = match api.get_table(full_name).await? {
        Some(info) if info.table_id.is_some() => {
            let body = serde_json::json!({"table_id": info.table_id, "operation": "READ_WRITE"});
            api.credentials("temporary-table-credentials", body).await?
        }
        _ => {
            let body = serde_json::json!({"url": location, "operation": "PATH_CREATE_TABLE"});
            api.credentials("temporary-path-credentials", body).await?
        }
    };
    options_of(&answer).map_err(Failure::Other)
}

/// The object-store options an answer (`TemporaryCredentials`) stands for.
fn options_of(answer: &Value) -> Result<VendedCredentials, String> {
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("the vended credentials lack {key}"))
    };
    let present = |key: &str| answer.get(key).filter(|v| !v.is_null());
    let mut options = std::collections::BTreeMap::new();
    if let Some(aws) = present("aws_temp_credentials") {
        options.insert("aws_access_key_id".into(), text(aws, "access_key_id")?);
        options.insert(
            "aws_secret_access_key".into(),
            text(aws, "secret_access_key")?,
        );
        options.insert("aws_session_token".into(), text(aws, "session_token")?);
    } else if let Some(sas) = present("azure_user_delegation_sas") {
        options.insert("azure_storage_sas_token".into(), text(sas, "sas_token")?);
    } else if let Some(aad) = present("azure_aad") {
        options.insert("azure_storage_token".into(), text(aad, "aad_token")?);
    } else if present("gcp_oauth_token").is_some() || present("r2_temp_credentials").is_some() {
        return Err("the catalog vends GCS or R2 credentials, which DataLoader cannot use yet: give the workers the lake's own credentials, or set vend_credentials=false".into());
    }
    let expires_at = answer
        .get("expiration_time")
        .and_then(Value::as_i64)
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    Ok(VendedCredentials {
        options,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_object_store_options() {
        let aws = options_of(&serde_json::json!({
            "aws_temp_credentials": {"access_key_id": "AK", "secret_access_key": "SK", "session_token": "ST"},
            "expiration_time": 1_800_000_000_000i64
        }))
        .unwrap();
        assert_eq!(
            aws.options.keys().collect::<Vec<_>>(),
            [
                "aws_access_key_id",
                "aws_secret_access_key",
                "aws_session_token"
            ]
        );
        assert_eq!(aws.options["aws_session_token"], "ST");
        assert_eq!(aws.expires_at.unwrap().timestamp(), 1_800_000_000);
        let debug = format!("{aws:?}");
        assert!(!debug.contains("SK") && !debug.contains("ST\""), "{debug}");

        let sas = options_of(
            &serde_json::json!({"azure_user_delegation_sas": {"sas_token": "sv=1&sig=x"}}),
        )
        .unwrap();
        assert_eq!(sas.options["azure_storage_sas_token"], "sv=1&sig=x");
        let aad = options_of(&serde_json::json!({"azure_aad": {"aad_token": "eyJ"}})).unwrap();
        assert_eq!(aad.options["azure_storage_token"], "eyJ");

        // All null: nothing vended, the lake's own credentials stay in use.
        let none = options_of(&serde_json::json!({
            "aws_temp_credentials": null, "azure_user_delegation_sas": null,
            "gcp_oauth_token": null, "expiration_time": null
        }))
        .unwrap();
        assert_eq!(none, VendedCredentials::default());

        let gcp = options_of(&serde_json::json!({"gcp_oauth_token": {"oauth_token": "x"}}));
        assert!(gcp.unwrap_err().contains("GCS or R2"));
        let broken =
            options_of(&serde_json::json!({"aws_temp_credentials": {"access_key_id": "AK"}}));
        assert!(broken.unwrap_err().contains("lack secret_access_key"));
    }
}
