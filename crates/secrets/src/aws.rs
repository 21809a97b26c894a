//! AWS Secrets Manager: `GetSecretValue` (the `AWSCURRENT` version) with the standard AWS
//! credential chain and region (environment, profile, SSO, web identity, ECS, EC2 metadata),
//! and the endpoint from `AWS_ENDPOINT_URL`/`AWS_ENDPOINT_URL_SECRETS_MANAGER` (tests, VPC
//! endpoints). The client is made at the first read, so a process with no `aws-sm` reference
//! never looks for credentials.

use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::Client;
use dataloader_core::secret::{SecretFailure, SecretRef};
use dataloader_core::{Error, Result};
use tokio::sync::OnceCell;

pub(crate) struct SecretsManager {
    client: OnceCell<Client>,
}

impl SecretsManager {
    pub(crate) fn new() -> Self {
        SecretsManager {
            client: OnceCell::new(),
        }
    }

    async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let config = aws_config::defaults(BehaviorVersion::latest())
                    .timeout_config(
                        TimeoutConfig::builder()
                            .operation_timeout(Duration::from_secs(30))
                            .build(),
                    )
                    .load()
                    .await;
                Client::new(&config)
            })
            .await
    }

    /// The secret string of `secret_id`; `reference` is what errors name.
    pub(crate) async fn read(&self, reference: &SecretRef, secret_id: &str) -> Result<String> {
        let answer = self
            .client()
            .await
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await;
        let output = match answer {
            Ok(output) => output,
            Err(err) => return Err(failure(reference, err)),
        };
        match output.secret_string() {
            Some(text) => Ok(text.to_string()),
            None => Err(Error::secret(
                reference,
                SecretFailure::Invalid,
                "the secret holds binary data (SecretBinary), not text",
                None,
            )),
        }
    }
}

/// Why `GetSecretValue` failed, by the AWS error code. A failed read carries no secret: the
/// SDK's error stays as the source.
fn failure<E, R>(reference: &SecretRef, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (failure, message) = match &err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().unwrap_or("no error code");
            let said = e.message().unwrap_or("no message");
            let (failure, reason) = match code {
                "ResourceNotFoundException" => (SecretFailure::NotFound, "not found"),
                "AccessDeniedException" | "DecryptionFailure" => {
                    (SecretFailure::Forbidden, "forbidden")
                }
                // Chiefly a secret scheduled for deletion.
                "InvalidRequestException" => (SecretFailure::Disabled, "not readable"),
                "UnrecognizedClientException"
                | "InvalidSignatureException"
                | "InvalidClientTokenId"
                | "ExpiredTokenException"
                | "IncompleteSignature" => (SecretFailure::Unauthenticated, "not authenticated"),
                "ThrottlingException" | "InternalServiceError" | "ServiceUnavailable" => {
                    (SecretFailure::Unreachable, "unreachable")
                }
                _ => (SecretFailure::Invalid, "refused"),
            };
            (
                failure,
                format!("{reason}: AWS Secrets Manager said {code}: {said}"),
            )
        }
        other => {
            let text = DisplayErrorContext(other).to_string();
            if text.to_ascii_lowercase().contains("credential") {
                (
                    SecretFailure::Unauthenticated,
                    format!("not authenticated: no AWS credentials were found ({text})"),
                )
            } else if matches!(other, SdkError::ConstructionFailure(_)) {
                (
                    SecretFailure::Invalid,
                    format!("the request could not be made ({text}); is AWS_REGION set?"),
                )
            } else {
                (
                    SecretFailure::Unreachable,
                    format!("unreachable: AWS Secrets Manager did not answer ({text})"),
                )
            }
        }
    };
    Error::secret(reference, failure, message, Some(err.into()))
}
