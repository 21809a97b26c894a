//! Writing with the credentials a catalog vended: an object store that asks for the current
//! credential on every request, so one renewed while an operation runs (a merge of many files
//! can outlast a credential) reaches that operation's next request, not only the next one.
//!
//! deltalake builds its stores from options once per table it opens and object_store's own
//! credential providers cannot be handed a renewed credential from outside, hence this
//! wrapper: it rebuilds its inner store through deltalake's factory whenever the credential
//! changes. Google Cloud's factory has no option for a bearer token, so that one inner store
//! is built by object_store with the token as its credential.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use dataloader_core::secret::kept_unless_secret;
use dataloader_core::{Cause, Error, StorageCredential};
use deltalake::logstore::object_store::gcp::{GcpCredential, GoogleCloudStorageBuilder};
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
    StaticCredentialProvider,
};
use deltalake::logstore::{object_store_factories, StorageConfig};
use futures::stream::{BoxStream, StreamExt};
use url::Url;

/// The credential a catalog vended for one table, shared by its destination (every store it
/// opens) and the task renewing it. Unset: the lake's own credentials.
#[derive(Clone, Default)]
pub struct VendedStorage(Arc<Mutex<Vended>>);

#[derive(Default)]
struct Vended {
    /// Counts the changes, so a store knows when to rebuild.
    generation: u64,
    credential: Option<StorageCredential>,
    /// Every value set so far, to mask: a request begun before a renewal can fail showing
    /// the credential it started with, which is still valid then.
    secrets: Vec<String>,
}

impl VendedStorage {
    /// Takes `credential` from the next request of every store of this table.
    pub fn set(&self, credential: Option<StorageCredential>) {
        if let Ok(mut vended) = self.0.lock() {
            vended.generation += 1;
            if let Some(c) = &credential {
                vended.secrets.extend(masked_parts(c));
            }
            vended.credential = credential;
        }
    }

    /// Whether a credential was ever set: until then the lake's own stores serve.
    pub(crate) fn in_use(&self) -> bool {
        self.0.lock().map(|v| v.generation > 0).unwrap_or(false)
    }

    /// The values to mask in messages: every credential set so far.
    fn secrets(&self) -> Vec<String> {
        self.0.lock().map(|v| v.secrets.clone()).unwrap_or_default()
    }

    /// The error of a failed write step of `table`. A vended credential can show in a failed
    /// request's URL (a SAS is its query): the message is masked, and the foreign error, which
    /// would show it again, not kept.
    pub(crate) fn write_error(
        &self,
        table: &str,
        step: &'static str,
        message: String,
        source: Option<Cause>,
    ) -> Error {
        let secrets = self.secrets();
        let mut message = message;
        for secret in &secrets {
            message = message.replace(secret.as_str(), "***");
        }
        let source = source.and_then(|cause| kept_unless_secret(cause, &secrets));
        Error::Write {
            table: table.to_string(),
            step,
            message,
            source,
        }
    }

    fn current(&self) -> (u64, Option<StorageCredential>) {
        self.0
            .lock()
            .map(|v| (v.generation, v.credential.clone()))
            .unwrap_or_default()
    }
}

/// An object store for the bucket of `url`, built anew whenever the vended credential changes.
pub(crate) struct VendedStore {
    url: Url,
    vended: VendedStorage,
    built: Mutex<Option<(u64, Arc<dyn ObjectStore>)>>,
}

impl VendedStore {
    pub(crate) fn new(url: Url, vended: VendedStorage) -> Self {
        VendedStore {
            url,
            vended,
            built: Mutex::new(None),
        }
    }

    /// The store for the current credential.
    fn inner(&self) -> object_store::Result<Arc<dyn ObjectStore>> {
        let (generation, credential) = self.vended.current();
        let mut built = self
            .built
            .lock()
            .map_err(|_| generic("a store lock was poisoned"))?;
        if let Some((_, store)) = built.as_ref().filter(|(at, _)| *at == generation) {
            return Ok(store.clone());
        }
        let store = root_store(&self.url, credential.as_ref())?;
        *built = Some((generation, store.clone()));
        Ok(store)
    }
}

/// `credential`'s values and, for a SAS, its parts, since they may show apart, re-ordered or
/// encoded; short ones (a version, a flag) are not secret.
fn masked_parts(credential: &StorageCredential) -> Vec<String> {
    let mut parts = Vec::new();
    for value in credential.secrets() {
        parts.extend(
            value
                .split('&')
                .filter_map(|p| p.split_once('=').map(|(_, x)| x.to_string())),
        );
        parts.push(value.to_string());
    }
    parts.retain(|s| s.len() >= 8);
    parts
}

fn generic(message: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "vended",
        source: message.to_string().into(),
    }
}

/// The object-store options `credential` stands for.
fn options_of(credential: &StorageCredential) -> HashMap<String, String> {
    let pairs: Vec<(&str, &str)> = match credential {
        StorageCredential::Aws {
            access_key_id,
            secret_access_key,
            session_token,
        } => vec![
            ("aws_access_key_id", access_key_id),
            ("aws_secret_access_key", secret_access_key),
            ("aws_session_token", session_token),
        ],
        StorageCredential::AzureSas(sas) => vec![("azure_storage_sas_token", sas)],
        StorageCredential::AzureToken(token) => vec![("azure_storage_token", token)],
        StorageCredential::GcpToken(_) => Vec::new(),
    };
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The store of `url`'s bucket writing with `credential`; the environment's without one.
fn root_store(
    url: &Url,
    credential: Option<&StorageCredential>,
) -> object_store::Result<Arc<dyn ObjectStore>> {
    if let Some(StorageCredential::GcpToken(token)) = credential {
        let builder = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
        return Ok(Arc::new(with_token(builder, token).build()?));
    }
    let scheme =
        Url::parse(&format!("{}://", url.scheme())).map_err(|e| generic(&e.to_string()))?;
    let factory = object_store_factories()
        .get(&scheme)
        .map(|entry| entry.value().clone())
        .ok_or_else(|| {
            generic(&format!(
                "no object store for {}:// locations",
                url.scheme()
            ))
        })?;
    let options = credential.map(options_of).unwrap_or_default();
    let config = StorageConfig::parse_options(options).map_err(|e| generic(&e.to_string()))?;
    let (root, _) = factory
        .parse_url_opts(url, &config)
        .map_err(|e| generic(&e.to_string()))?;
    Ok(root)
}

fn with_token(builder: GoogleCloudStorageBuilder, token: &str) -> GoogleCloudStorageBuilder {
    builder.with_credentials(Arc::new(StaticCredentialProvider::new(GcpCredential {
        bearer: token.to_string(),
    })))
}

impl fmt::Display for VendedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Vended({})", self.url)
    }
}

impl fmt::Debug for VendedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VendedStore({})", self.url)
    }
}

/// A stream that fails at once, for the listing calls, which cannot return an error.
fn failed<T: Send + 'static>(
    e: object_store::Error,
) -> BoxStream<'static, object_store::Result<T>> {
    futures::stream::once(async move { Err(e) }).boxed()
}

#[async_trait]
impl ObjectStore for VendedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner()?.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner()?.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner()?.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        match self.inner() {
            Ok(store) => store.delete_stream(locations),
            Err(e) => failed(e),
        }
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.inner() {
            Ok(store) => store.list(prefix),
            Err(e) => failed(e),
        }
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        match self.inner() {
            Ok(store) => store.list_with_offset(prefix, offset),
            Err(e) => failed(e),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner()?.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner()?.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.inner()?.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use dataloader_testkit::http_mock::HttpMock;
    use deltalake::logstore::object_store::ObjectStoreExt;
    use hmac::Mac;

    use super::*;

    /// Azurite's well-known development account key.
    const AZURITE_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    /// An account SAS for Azurite's blob service, signed with its development key.
    fn azurite_sas() -> String {
        let (permissions, expiry, version) = ("rwdlac", "2099-01-01T00:00:00Z", "2019-12-12");
        let to_sign = format!(
            "devstoreaccount1\n{permissions}\nb\nsco\n\n{expiry}\n\nhttps,http\n{version}\n"
        );
        let key = base64::engine::general_purpose::STANDARD
            .decode(AZURITE_KEY)
            .unwrap();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(to_sign.as_bytes());
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let signature: String =
            url::form_urlencoded::byte_serialize(signature.as_bytes()).collect();
        format!(
            "sv={version}&ss=b&srt=sco&sp={permissions}&se={expiry}&spr=https,http&sig={signature}"
        )
    }

    #[test]
    fn a_renewed_credential_masks_the_ones_before_it() {
        let vended = VendedStorage::default();
        let sas = |sig: &str| StorageCredential::AzureSas(format!("sv=2019-12-12&sig={sig}"));
        vended.set(Some(sas("first-signature-value")));
        vended.set(Some(sas("second-signature-value")));
        let failed = vended.write_error(
            "bronze.s.t",
            "write the data files",
            "PUT https://acct/c/f?sv=2019-12-12&sig=first-signature-value: 403".into(),
            Some(std::io::Error::other("sig=first-signature-value").into()),
        );
        let text = failed.to_string();
        assert!(!text.contains("first-signature-value"), "{text}");
        assert!(text.contains("***"), "{text}");
        assert!(std::error::Error::source(&failed).is_none());
        let kept = vended.write_error(
            "bronze.s.t",
            "write the data files",
            "disk full".into(),
            Some(std::io::Error::other("disk full").into()),
        );
        assert!(std::error::Error::source(&kept).is_some());
    }

    #[tokio::test]
    async fn a_renewed_sas_reaches_a_store_already_in_use_against_azurite() {
        let Ok(container) = std::env::var("DATALOADER_TEST_AZURE_CONTAINER") else {
            eprintln!("NOTICE: DATALOADER_TEST_AZURE_CONTAINER is not set: skipping the vended store test (scripts/test.sh starts Azurite)");
            return;
        };
        let folder = format!("vended-store-{}", std::process::id());
        let url = Url::parse(&format!(
            "abfss://{container}@devstoreaccount1.dfs.core.windows.net/{folder}"
        ))
        .unwrap();
        let vended = VendedStorage::default();
        vended.set(Some(StorageCredential::AzureSas(azurite_sas())));
        let store = VendedStore::new(url, vended.clone());
        let probe = Path::from(format!("{folder}/probe"));
        store
            .put(&probe, "one".into())
            .await
            .unwrap_or_else(|e| panic!("the signed SAS writes: {e}"));

        // Renewed to a SAS Azurite cannot verify: the same store is refused (the emulator's
        // own key, in the environment, would have been accepted).
        let bogus =
            "sv=2019-12-12&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00:00:00Z&sig=bm90LWEtc2lnbmF0dXJl";
        vended.set(Some(StorageCredential::AzureSas(bogus.into())));
        let refused = store.put(&probe, "two".into()).await.unwrap_err();
        assert!(refused.to_string().contains("403"), "{refused}");

        vended.set(Some(StorageCredential::AzureSas(azurite_sas())));
        store.put(&probe, "three".into()).await.unwrap();
        let read = store.get(&probe).await.unwrap().bytes().await.unwrap();
        assert_eq!(&read[..], b"three");
        let secrets = vended.secrets();
        assert!(
            secrets.iter().any(|s| s.contains("sig=")),
            "{}",
            secrets.len()
        );
    }

    #[tokio::test]
    async fn a_vended_gcp_token_is_the_bearer_of_each_request_against_a_mock_gcs() {
        // No GCS emulator runs here: a loopback server shows what the store sends.
        let gcs = HttpMock::start(|_| {
            (
                404,
                r#"{"error":{"code":404,"message":"No such object"}}"#.into(),
            )
        })
        .await;
        // Only this test opens gs:// stores, so no other test reads these.
        std::env::set_var("GOOGLE_BASE_URL", gcs.url());
        std::env::set_var("GOOGLE_ALLOW_HTTP", "true");
        let vended = VendedStorage::default();
        vended.set(Some(StorageCredential::GcpToken("ya29.first-token".into())));
        let store = VendedStore::new(Url::parse("gs://bucket/lake").unwrap(), vended.clone());
        let missing = Path::from("lake/_delta_log/_last_checkpoint");
        let first = store.get(&missing).await.unwrap_err();
        assert!(
            matches!(first, object_store::Error::NotFound { .. }),
            "{first}"
        );
        vended.set(Some(StorageCredential::GcpToken(
            "ya29.renewed-token".into(),
        )));
        let _ = store.get(&missing).await.unwrap_err();
        let requests = gcs.requests();
        let bearer = |token: &str| {
            requests.iter().any(|r| {
                r.header("authorization")
                    .is_some_and(|a| a.eq_ignore_ascii_case(&format!("bearer {token}")))
            })
        };
        assert!(bearer("ya29.first-token"), "{requests:#?}");
        assert!(bearer("ya29.renewed-token"), "{requests:#?}");
        assert!(!first.to_string().contains("ya29"), "{first}");
    }
}
