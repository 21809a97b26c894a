//! Credential vending: temporary storage credentials Unity Catalog hands out for one table
//! (`READ_WRITE`) or, before the table is registered, for its path (`PATH_CREATE_TABLE`),
//! read from Unity's answer (AWS, Azure or Google Cloud), so a worker needs a catalog identity and no
//! storage keys. A server that answers with no credentials at all (a local path, a server
//! that vends none) leaves the lake's own credentials in use.

use chrono::{DateTime, Utc};
use dataloader_core::{StorageCredential, VendedCredentials};
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
    credentials_of(&answer).map_err(Failure::Other)
}

/// The credentials an answer (`TemporaryCredentials`) stands for.
fn credentials_of(answer: &Value) -> Result<VendedCredentials, String> {
    let text = |v: &Value, key: &str| {
        v.get(key)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("the vended credentials lack {key}"))
    };
    let present = |key: &str| answer.get(key).filter(|v| !v.is_null());
    let credential = if let Some(aws) = present("aws_temp_credentials") {
        Some(StorageCredential::Aws {
            access_key_id: text(aws, "access_key_id")?,
            secret_access_key: text(aws, "secret_access_key")?,
            session_token: text(aws, "session_token")?,
        })
    } else if let Some(sas) = present("azure_user_delegation_sas") {
        Some(StorageCredential::AzureSas(text(sas, "sas_token")?))
    } else if let Some(aad) = present("azure_aad") {
        Some(StorageCredential::AzureToken(text(aad, "aad_token")?))
    } else if let Some(gcp) = present("gcp_oauth_token") {
        Some(StorageCredential::GcpToken(text(gcp, "oauth_token")?))
    } else if present("r2_temp_credentials").is_some() {
        return Err("the catalog vends Cloudflare R2 credentials, and deltalake opens no r2:// locations: give the workers the lake's own credentials, or set vend_credentials=false".into());
    } else {
        None
    };
    let expires_at = answer
        .get("expiration_time")
        .and_then(Value::as_i64)
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    Ok(VendedCredentials {
        credential,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_storage_credentials() {
        let aws = credentials_of(&serde_json::json!({
            "aws_temp_credentials": {"access_key_id": "AK", "secret_access_key": "SK", "session_token": "ST"},
            "expiration_time": 1_800_000_000_000i64
        }))
        .unwrap();
        assert_eq!(
            aws.credential,
            Some(StorageCredential::Aws {
                access_key_id: "AK".into(),
                secret_access_key: "SK".into(),
                session_token: "ST".into()
            })
        );
        assert_eq!(aws.expires_at.unwrap().timestamp(), 1_800_000_000);
        let debug = format!("{aws:?}");
        assert!(!debug.contains("SK") && !debug.contains("ST\""), "{debug}");

        let sas = credentials_of(
            &serde_json::json!({"azure_user_delegation_sas": {"sas_token": "sv=1&sig=x"}}),
        )
        .unwrap();
        assert_eq!(
            sas.credential,
            Some(StorageCredential::AzureSas("sv=1&sig=x".into()))
        );
        let aad = credentials_of(&serde_json::json!({"azure_aad": {"aad_token": "eyJ"}})).unwrap();
        assert_eq!(
            aad.credential,
            Some(StorageCredential::AzureToken("eyJ".into()))
        );
        let gcp = credentials_of(&serde_json::json!({"gcp_oauth_token": {"oauth_token": "ya29"}}));
        assert_eq!(
            gcp.unwrap().credential,
            Some(StorageCredential::GcpToken("ya29".into()))
        );

        // All null: nothing vended, the lake's own credentials stay in use.
        let none = credentials_of(&serde_json::json!({
            "aws_temp_credentials": null, "azure_user_delegation_sas": null,
            "gcp_oauth_token": null, "expiration_time": null
        }))
        .unwrap();
        assert_eq!(none, VendedCredentials::default());

        let r2 =
            credentials_of(&serde_json::json!({"r2_temp_credentials": {"access_key_id": "x"}}));
        assert!(r2.unwrap_err().contains("r2://"));
        let broken =
            credentials_of(&serde_json::json!({"aws_temp_credentials": {"access_key_id": "AK"}}));
        assert!(broken.unwrap_err().contains("lack secret_access_key"));
    }
}
