//! AWS Secrets Manager against moto. scripts/test.sh starts moto, exports the `AWS_*`
//! variables and `DATALOADER_TEST_SECRETS_MANAGER`; without it these tests print a notice and
//! pass without running.

use std::time::Duration;

use aws_sdk_secretsmanager::Client;
use dataloader_core::secret::{SecretFailure, SecretRef};
use dataloader_core::Error;
use dataloader_secrets::{VaultSettings, Vaults};

fn moto() -> bool {
    let set = std::env::var_os("DATALOADER_TEST_SECRETS_MANAGER").is_some();
    if !set {
        eprintln!("NOTICE: DATALOADER_TEST_SECRETS_MANAGER is not set: skipping the AWS Secrets Manager test (scripts/test.sh starts moto)");
    }
    set
}

async fn admin() -> Client {
    Client::new(&aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await)
}

/// A secret name no other test (or run) uses.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("dataloader-test/{name}-{}-{nanos}", std::process::id())
}

async fn create(admin: &Client, name: &str, value: &str) {
    admin
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

fn vaults(cache_ttl: Duration) -> Vaults {
    Vaults::new(VaultSettings::from_env(cache_ttl))
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
async fn plain_and_json_key_references_resolve_and_a_missing_secret_is_named() {
    if !moto() {
        return;
    }
    let admin = admin().await;
    let plain = unique("plain");
    let json = unique("json");
    create(&admin, &plain, "pw-plain-7").await;
    create(
        &admin,
        &json,
        r#"{"username":"loader","password":"pw-json-7"}"#,
    )
    .await;
    let vaults = vaults(Duration::from_secs(300));

    assert_eq!(
        read(&vaults, &format!("aws-sm://{plain}")).await.unwrap(),
        "pw-plain-7"
    );
    assert_eq!(
        read(&vaults, &format!("aws-sm://{json}#password"))
            .await
            .unwrap(),
        "pw-json-7"
    );
    assert_eq!(
        read(&vaults, &format!("aws-sm://{json}#username"))
            .await
            .unwrap(),
        "loader"
    );

    let missing = format!("aws-sm://{}", unique("missing"));
    let err = read(&vaults, &missing).await.unwrap_err();
    assert_eq!(failure(&err), SecretFailure::NotFound);
    assert!(
        err.to_string()
            .starts_with(&format!("secret {missing}: not found")),
        "{err}"
    );

    // Neither a missing key nor a #key on a secret that is not JSON shows a value.
    for (reference, value) in [
        (format!("aws-sm://{json}#pass"), "pw-json-7"),
        (format!("aws-sm://{plain}#password"), "pw-plain-7"),
    ] {
        let err = read(&vaults, &reference).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(&reference), "{shown}");
        assert!(!shown.contains(value), "{shown}");
    }
}

#[tokio::test]
async fn a_rotated_secret_is_read_again_after_the_cache_bound() {
    if !moto() {
        return;
    }
    let admin = admin().await;
    let name = unique("rotated");
    create(&admin, &name, "before-rotation").await;
    let vaults = vaults(Duration::from_millis(800));
    let reference = format!("aws-sm://{name}");
    assert_eq!(read(&vaults, &reference).await.unwrap(), "before-rotation");

    admin
        .put_secret_value()
        .secret_id(&name)
        .secret_string("after-rotation")
        .send()
        .await
        .unwrap();
    // Within the bound the cached value is used, after it the new one is read.
    assert_eq!(read(&vaults, &reference).await.unwrap(), "before-rotation");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(read(&vaults, &reference).await.unwrap(), "after-rotation");

    // With no cache every read goes to the vault.
    let uncached = self::vaults(Duration::ZERO);
    admin
        .put_secret_value()
        .secret_id(&name)
        .secret_string("third")
        .send()
        .await
        .unwrap();
    assert_eq!(read(&uncached, &reference).await.unwrap(), "third");
}

#[tokio::test]
async fn a_secret_scheduled_for_deletion_is_not_readable() {
    if !moto() {
        return;
    }
    let admin = admin().await;
    let name = unique("deleted");
    create(&admin, &name, "gone-soon").await;
    admin
        .delete_secret()
        .secret_id(&name)
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    let err = read(&vaults(Duration::ZERO), &format!("aws-sm://{name}"))
        .await
        .unwrap_err();
    assert_eq!(failure(&err), SecretFailure::Disabled, "{err}");
    assert!(!format!("{err} {err:?}").contains("gone-soon"), "{err}");
}
