//! Azure Key Vault against a loopback mock: no Key Vault emulator exists on any registry here,
//! so testkit's `HttpMock` answers Azure AD's token call and Key Vault's secret GET as
//! documented (`GET /secrets/{name}[/{version}]?api-version=7.4`, errors as
//! `{"error":{"code",…}}`).

use std::time::Duration;

use dataloader_core::secret::{SecretFailure, SecretRef, SecretSetting};
use dataloader_core::Error;
use dataloader_secrets::{
    AzureCredential, AzureSettings, ManagedIdentityEndpoint, VaultSettings, Vaults,
};
use dataloader_testkit::http_mock::{HttpMock, Request};

const TOKEN: &str = "kv-bearer-token-41";

/// The mock's answer to a request: Azure AD's token endpoints and one vault, `kv1`.
fn answer(request: &Request) -> (u16, String) {
    let path = request.target.as_str();
    let body = request.body.as_str();
    let error = |code: &str, inner: &str, message: &str| {
        format!(
            r#"{{"error":{{"code":"{code}","message":"{message}","innererror":{{"code":"{inner}"}}}}}}"#
        )
    };
    let token = format!(r#"{{"access_token":"{TOKEN}","token_type":"Bearer","expires_in":3599}}"#);
    if request.method == "POST" && path.starts_with("/tenant-1/oauth2/v2.0/token") {
        let good = body.contains("client_secret=sp-secret-9")
            || body.contains("client_assertion=federated-jwt");
        return if good && body.contains("scope=https%3A%2F%2Fvault.azure.net%2F.default") {
            (200, token)
        } else {
            (401, r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#.into())
        };
    }
    if path.starts_with("/msi/token") {
        let header = request.header("x-identity-header") == Some("id-header-3")
            || request.header("metadata") == Some("true");
        return if header && path.contains("resource=https%3A%2F%2Fvault.azure.net") {
            (200, r#"{"access_token":"kv-bearer-token-41","expires_in":"3599","resource":"https://vault.azure.net"}"#.into())
        } else {
            (400, r#"{"error":"invalid_request"}"#.into())
        };
    }
    if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return (
            401,
            error(
                "Unauthorized",
                "",
                "AKV10000: Request is missing a Bearer token.",
            ),
        );
    }
    let Some(rest) = path.strip_prefix("/kv1/secrets/") else {
        return (404, error("NotFound", "", "no such vault"));
    };
    let (name, query) = rest.split_once('?').unwrap_or((rest, ""));
    assert_eq!(query, "api-version=7.4");
    let bundle = |value: &str, attributes: &str| {
        format!(
            r#"{{"value":"{value}","id":"https://kv1.vault.azure.net/secrets/{name}","attributes":{attributes}}}"#
        )
    };
    match name {
        "pg-password" => (200, bundle("kv-value-latest", r#"{"enabled":true}"#)),
        "pg-password/0123abcd" => (200, bundle("kv-value-old", r#"{"enabled":true}"#)),
        "forbidden" => (
            403,
            error(
                "Forbidden",
                "ForbiddenByRbac",
                "Caller is not authorized to perform action on resource.",
            ),
        ),
        "disabled" => (
            403,
            error(
                "Forbidden",
                "SecretDisabled",
                "Operation get is not allowed on a disabled secret.",
            ),
        ),
        "expired" => (
            200,
            bundle("kv-expired-value", r#"{"enabled":true,"exp":1500000000}"#),
        ),
        // A vault that fails and echoes the request's token.
        "echo" => (
            500,
            error("InternalError", "", &format!("boom Bearer {TOKEN}")),
        ),
        _ => (
            404,
            error(
                "SecretNotFound",
                "",
                &format!("A secret with (name/id) {name} was not found in this key vault."),
            ),
        ),
    }
}

/// Serves [`answer`] on loopback; the mock keeps each request.
async fn mock() -> HttpMock {
    HttpMock::start(answer).await
}

/// A request's first line: `POST /tenant-1/oauth2/v2.0/token HTTP/1.1`.
fn first_line(request: &Request) -> &str {
    request.raw.lines().next().unwrap_or("")
}

fn settings(url: &str, credential: AzureCredential) -> VaultSettings {
    VaultSettings {
        cache_ttl: Duration::from_secs(300),
        azure: AzureSettings {
            keyvault_url: format!("{url}/{{vault}}"),
            scope: "https://vault.azure.net/.default".into(),
            authority_host: url.into(),
            credential: Ok(credential),
        },
    }
}

fn service_principal() -> AzureCredential {
    AzureCredential::ClientSecret {
        tenant: "tenant-1".into(),
        client_id: "sp-id".into(),
        secret: SecretSetting::Value("sp-secret-9".into()),
    }
}

async fn read(vaults: &Vaults, reference: &str) -> Result<String, Error> {
    vaults.read(&SecretRef::parse(reference).unwrap()).await
}

fn failure(err: &Error) -> SecretFailure {
    match err {
        Error::Secret { failure, .. } => *failure,
        other => panic!("not a secret error: {other}"),
    }
}

#[tokio::test]
async fn client_credentials_and_versions_against_a_mock_key_vault() {
    let mock = mock().await;
    let vaults = Vaults::new(settings(&mock.url(), service_principal()));
    assert_eq!(
        read(&vaults, "azure-keyvault://kv1/pg-password")
            .await
            .unwrap(),
        "kv-value-latest"
    );
    assert_eq!(
        read(&vaults, "azure-keyvault://kv1/pg-password/0123abcd")
            .await
            .unwrap(),
        "kv-value-old"
    );
    // Cached: a third read makes no request.
    assert_eq!(
        read(&vaults, "azure-keyvault://kv1/pg-password")
            .await
            .unwrap(),
        "kv-value-latest"
    );
    let seen = mock.requests();
    let lines: Vec<&str> = seen.iter().map(first_line).collect();
    assert_eq!(
        lines,
        [
            "POST /tenant-1/oauth2/v2.0/token HTTP/1.1",
            "GET /kv1/secrets/pg-password?api-version=7.4 HTTP/1.1",
            "GET /kv1/secrets/pg-password/0123abcd?api-version=7.4 HTTP/1.1",
        ],
        "one token serves both reads"
    );
    assert!(
        seen[0]
            .body
            .contains("grant_type=client_credentials&client_id=sp-id"),
        "{:?}",
        seen[0]
    );
}

#[tokio::test]
async fn failures_against_a_mock_key_vault_name_the_reason_and_never_a_token_or_value() {
    let mock = mock().await;
    let vaults = Vaults::new(settings(&mock.url(), service_principal()));
    for (secret, failure_is, says) in [
        ("missing", SecretFailure::NotFound, "not found"),
        ("forbidden", SecretFailure::Forbidden, "forbidden"),
        ("disabled", SecretFailure::Disabled, "disabled"),
        ("expired", SecretFailure::Disabled, "expired"),
        ("echo", SecretFailure::Unreachable, "unreachable"),
    ] {
        let reference = format!("azure-keyvault://kv1/{secret}");
        let err = read(&vaults, &reference).await.unwrap_err();
        assert_eq!(failure(&err), failure_is, "{err}");
        let shown = format!("{err} {err:?}");
        assert!(
            err.to_string()
                .starts_with(&format!("secret {reference}: {says}")),
            "{err}"
        );
        for hidden in [TOKEN, "kv-expired-value", "sp-secret-9"] {
            assert!(!shown.contains(hidden), "{shown}");
        }
    }
}

#[tokio::test]
async fn a_refused_client_secret_against_a_mock_key_vault_is_unauthenticated() {
    let mock = mock().await;
    let wrong = AzureCredential::ClientSecret {
        tenant: "tenant-1".into(),
        client_id: "sp-id".into(),
        secret: SecretSetting::Value("wrong-secret-5".into()),
    };
    let vaults = Vaults::new(settings(&mock.url(), wrong));
    let err = read(&vaults, "azure-keyvault://kv1/pg-password")
        .await
        .unwrap_err();
    assert_eq!(failure(&err), SecretFailure::Unauthenticated, "{err}");
    assert!(err.to_string().contains("invalid_client"), "{err}");
    assert!(
        !format!("{err} {err:?}").contains("wrong-secret-5"),
        "{err}"
    );
}

#[tokio::test]
async fn a_client_secret_reference_workload_and_managed_identity_against_a_mock_key_vault() {
    let mock = mock().await;
    let url = mock.url();
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("sp");
    std::fs::write(&secret_file, "sp-secret-9\n").unwrap();
    let token_file = dir.path().join("federated");
    std::fs::write(&token_file, "federated-jwt").unwrap();
    let credentials = [
        AzureCredential::ClientSecret {
            tenant: "tenant-1".into(),
            client_id: "sp-id".into(),
            secret: SecretSetting::Reference(
                SecretRef::parse(&format!("file:{}", secret_file.display())).unwrap(),
            ),
        },
        AzureCredential::WorkloadIdentity {
            tenant: "tenant-1".into(),
            client_id: "wi-id".into(),
            token_file: token_file.display().to_string(),
        },
        AzureCredential::ManagedIdentity {
            client_id: Some("mi-id".into()),
            endpoint: ManagedIdentityEndpoint::Imds(format!("{url}/msi/token")),
        },
        AzureCredential::ManagedIdentity {
            client_id: None,
            endpoint: ManagedIdentityEndpoint::AppService {
                endpoint: format!("{url}/msi/token"),
                header: "id-header-3".into(),
            },
        },
    ];
    for credential in credentials {
        let vaults = Vaults::new(settings(&url, credential));
        assert_eq!(
            read(&vaults, "azure-keyvault://kv1/pg-password")
                .await
                .unwrap(),
            "kv-value-latest"
        );
    }
    let seen = mock.requests();
    let tokens: Vec<&Request> = seen
        .iter()
        .filter(|s| !first_line(s).contains("/kv1/"))
        .collect();
    assert!(tokens[1].body.contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"), "{:?}", tokens[1]);
    assert!(tokens[2].raw.starts_with("GET /msi/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id=mi-id "), "{:?}", tokens[2]);
    assert!(
        tokens[3]
            .raw
            .starts_with("GET /msi/token?api-version=2019-08-01&"),
        "{:?}",
        tokens[3]
    );
}
