//! Key-pair authentication: the JWT Snowflake accepts in place of a password. The private key
//! is a PEM file (PKCS#8, optionally encrypted, or PKCS#1); the token is signed RS256 and names
//! the public key by its SHA-256 fingerprint.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use pkcs8::der::pem::PemLabel;

/// How long a login token is valid; it is used once, at login.
const TOKEN_LIFETIME_SECS: i64 = 3600;

pub struct KeyPair {
    key: RsaKeyPair,
    /// `SHA256:<base64 of the public key's SubjectPublicKeyInfo digest>`, as Snowflake shows
    /// it in `DESC USER … RSA_PUBLIC_KEY_FP`.
    pub fingerprint: String,
}

impl KeyPair {
    /// Reads a PEM private key. Errors never contain key material.
    pub fn from_pem(pem: &str, passphrase: Option<&str>) -> Result<Self, String> {
        let (label, der) = pkcs8::der::pem::decode_vec(pem.trim().as_bytes())
            .map_err(|e| format!("the private key is not a PEM file ({e})"))?;
        let key = match label {
            pkcs8::EncryptedPrivateKeyInfo::PEM_LABEL => {
                let passphrase = passphrase.ok_or(
                    "the private key is encrypted: set --option private_key_passphrase=env:NAME (or file:/path)",
                )?;
                let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der.as_slice())
                    .map_err(|e| format!("the encrypted private key cannot be read ({e})"))?;
                let plain = info.decrypt(passphrase).map_err(|_| {
                    "the private key cannot be decrypted: wrong passphrase, or an unsupported cipher (use PKCS#8 with AES-256 or DES3)".to_string()
                })?;
                RsaKeyPair::from_pkcs8(plain.as_bytes())
            }
            pkcs8::PrivateKeyInfo::PEM_LABEL => RsaKeyPair::from_pkcs8(&der),
            "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
            other => {
                return Err(format!(
                    "the PEM file holds a \"{other}\", not an RSA private key"
                ))
            }
        }
        .map_err(|e| format!("the private key is not a usable RSA key ({e})"))?;
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| "the public key cannot be encoded".to_string())?;
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki.as_ref());
        Ok(KeyPair {
            key,
            fingerprint: format!("SHA256:{}", STANDARD.encode(digest.as_ref())),
        })
    }

    /// The login token for `user` of `account`, issued at `issued_at` (Unix seconds).
    pub fn token(&self, account: &str, user: &str, issued_at: i64) -> Result<String, String> {
        let qualified = format!("{}.{}", account_locator(account), user.to_uppercase());
        // Written out so the claims keep this order whatever serde_json's map does.
        let quoted = |s: &str| serde_json::Value::from(s).to_string();
        let claims = format!(
            r#"{{"iss":{},"sub":{},"iat":{issued_at},"exp":{}}}"#,
            quoted(&format!("{qualified}.{}", self.fingerprint)),
            quoted(&qualified),
            issued_at + TOKEN_LIFETIME_SECS
        );
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let mut signature = vec![0u8; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| "signing the login token failed".to_string())?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

/// The account part of a token's issuer: upper case, without region or cloud
/// (`xy12345.eu-west-1` → `XY12345`; `myorg-account1` stays whole).
pub fn account_locator(account: &str) -> String {
    account.split('.').next().unwrap_or(account).to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("testdata/key.p8");
    /// The fingerprint and the token PyJWT (an independent implementation) produced from
    /// `testdata/key.p8` for MYORG-ACCOUNT1.LOADER issued at 1764115200.
    const EXPECTED: &str = include_str!("testdata/expected_jwt.txt");

    #[test]
    fn known_answer_jwt() {
        let mut lines = EXPECTED.lines();
        let (fingerprint, token) = (lines.next().unwrap(), lines.next().unwrap());
        let key = KeyPair::from_pem(KEY, None).unwrap();
        assert_eq!(key.fingerprint, fingerprint);
        assert_eq!(
            key.token("myorg-account1.eu-west-1", "loader", 1_764_115_200)
                .unwrap(),
            token
        );
    }

    #[test]
    fn encrypted_and_pkcs1_keys_sign_the_same_token() {
        let expected = KeyPair::from_pem(KEY, None)
            .unwrap()
            .token("acct", "u", 1)
            .unwrap();
        for (pem, passphrase) in [
            (include_str!("testdata/key_des3.p8"), Some("pass phrase!")),
            (include_str!("testdata/key_aes256.p8"), Some("pass phrase!")),
            (include_str!("testdata/key_pkcs1.pem"), None),
        ] {
            let key = KeyPair::from_pem(pem, passphrase).unwrap();
            assert_eq!(key.token("acct", "u", 1).unwrap(), expected);
        }
    }

    #[test]
    fn bad_keys_say_what_is_wrong_without_key_material() {
        let encrypted = include_str!("testdata/key_aes256.p8");
        let Err(missing) = KeyPair::from_pem(encrypted, None) else {
            panic!("an encrypted key without a passphrase was accepted")
        };
        assert!(missing.contains("private_key_passphrase"), "{missing}");
        let Err(wrong) = KeyPair::from_pem(encrypted, Some("nope")) else {
            panic!("a wrong passphrase was accepted")
        };
        assert!(wrong.contains("wrong passphrase"), "{wrong}");
        let Err(not_pem) = KeyPair::from_pem("hunter2", None) else {
            panic!("garbage was accepted")
        };
        assert!(not_pem.contains("not a PEM file"), "{not_pem}");
        assert!(!not_pem.contains("hunter2"));
    }
}
