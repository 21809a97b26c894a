//! TLS as every connection to a server names it: libpq's `sslmode` values and its option names
//! (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`), the default for a host that names none, and
//! what to tell a user whose TLS connection failed. Shared by the PostgreSQL and MySQL sources
//! and the PostgreSQL control database, so the same words mean the same thing everywhere. No
//! TLS library here: each driver builds its own configuration from an [`SslMode`].

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::{Error, Result};

/// The option that sets the mode.
pub const SSLMODE: &str = "sslmode";
/// A PEM file of the certificates (CAs) the server's certificate must chain to.
pub const SSLROOTCERT: &str = "sslrootcert";
/// A PEM file of the client's certificate (and its chain), for servers that ask for one.
pub const SSLCERT: &str = "sslcert";
/// The client certificate's private key: a secret reference (`file:/path`, `env:NAME`, …).
pub const SSLKEY: &str = "sslkey";

/// How a connection uses TLS, as libpq's `sslmode` means it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, without checking its certificate; else in clear.
    Prefer,
    /// TLS or no connection; the certificate is not checked (unless `sslrootcert` is given:
    /// then, as libpq does, as `verify-ca`).
    Require,
    /// TLS, the certificate chained to a trusted CA; its name is not checked.
    VerifyCa,
    /// TLS, the certificate chained to a trusted CA and carrying the host's name.
    VerifyFull,
}

impl SslMode {
    /// Every value, as written.
    pub const NAMES: [&'static str; 5] =
        ["disable", "prefer", "require", "verify-ca", "verify-full"];

    /// The mode of a connection to `host` that sets none: `require` for any host reached over
    /// a network, `prefer` (libpq's default) for the loopback interface and a Unix socket, where
    /// no one can listen in and local servers often have no certificate.
    pub fn default_for(host: &str) -> SslMode {
        if is_local(host) {
            SslMode::Prefer
        } else {
            SslMode::Require
        }
    }

    /// The mode `options` sets (`sslmode`), or the default for `host`.
    pub fn of(options: &std::collections::BTreeMap<String, String>, host: &str) -> Result<SslMode> {
        options
            .get(SSLMODE)
            .map(|m| m.parse())
            .transpose()
            .map(|m| m.unwrap_or_else(|| SslMode::default_for(host)))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether the server's certificate must chain to a trusted CA.
    pub fn verifies_chain(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

impl FromStr for SslMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(Error::config(
                    SSLMODE,
                    format!(
                        "\"{s}\" is not an sslmode (one of: {})",
                        SslMode::NAMES.join(", ")
                    ),
                ))
            }
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `host` is this machine: `localhost`, a loopback address (`127.0.0.0/8`, `::1`,
/// bracketed or not) or a Unix socket folder (a path).
/// The client certificate `options` name: its file (`sslcert`) and the reference to its key
/// (`sslkey`), or `None`; one without the other is refused.
pub fn client_cert(
    options: &std::collections::BTreeMap<String, String>,
) -> Result<Option<(&str, &str)>> {
    match (options.get(SSLCERT), options.get(SSLKEY)) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        _ => Err(Error::config(
            SSLCERT,
            "a client certificate needs both sslcert (its file) and sslkey (a reference to its key)",
        )),
    }
}

pub fn is_local(host: &str) -> bool {
    let host = host.trim();
    if host.is_empty() || host.starts_with('/') || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// What to do about a failed connection, from the driver's message (lower-cased here): which
/// option to set. `None` when the message is not about TLS. `mode` is the one the connection
/// used, `rootcert` whether `sslrootcert` was given.
pub fn hint(message: &str, mode: SslMode, rootcert: bool) -> Option<String> {
    let m = message.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| m.contains(w));
    if has(&[
        "unknownissuer",
        "unknown issuer",
        "unknown ca",
        "self-signed",
        "self signed",
    ]) {
        return Some(if rootcert {
            "the server's certificate is not signed by a CA in sslrootcert: point sslrootcert at the CA that signed it".into()
        } else {
            "the server's certificate is not signed by a CA this machine trusts: set sslrootcert to the file of the CA certificate that signed it (PEM), or sslmode=require to encrypt without verifying".into()
        });
    }
    if has(&[
        "notvalidforname",
        "not valid for name",
        "does not match host name",
    ]) {
        return Some("the server's certificate does not carry the host name connected to: connect by a name it carries, or set sslmode=verify-ca to check the CA only".into());
    }
    if has(&["certexpired", "expired"]) && has(&["certificate"]) {
        return Some("the server's certificate has expired: renew it on the server".into());
    }
    if has(&[
        "does not support tls",
        "doesn't support tls",
        "does not support ssl",
        "doesn't support ssl",
        "asked for ssl but server does not",
        "ssl off",
    ]) {
        return Some(format!("the server does not accept TLS and sslmode is {mode}: turn TLS on at the server, or set sslmode=disable to connect in clear (never over an untrusted network)"));
    }
    if !matches!(
        mode,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
    ) && has(&[
        "no encryption",
        "insecure transport",
        "requires ssl",
        "requires tls",
        "require_secure_transport",
    ]) {
        return Some(format!("the server accepts only TLS connections and sslmode is {mode}: set sslmode=verify-full (with sslrootcert) or require"));
    }
    if has(&[
        "valid client certificate",
        "certificate required",
        "peer did not return a certificate",
    ]) {
        return Some("the server asks for a client certificate: set sslcert and sslkey".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_prefer_and_others_require() {
        for host in [
            "localhost",
            "127.0.0.1",
            "127.0.1.1",
            "::1",
            "[::1]",
            "/var/run/postgresql",
            "",
        ] {
            assert_eq!(SslMode::default_for(host), SslMode::Prefer, "{host}");
        }
        for host in [
            "db.internal",
            "10.0.0.5",
            "example.com",
            "localhost.example.com",
            "::2",
        ] {
            assert_eq!(SslMode::default_for(host), SslMode::Require, "{host}");
        }
        let options = [(SSLMODE.to_string(), "verify-full".to_string())].into();
        assert_eq!(
            SslMode::of(&options, "localhost").unwrap(),
            SslMode::VerifyFull
        );
        assert_eq!(
            SslMode::of(&Default::default(), "db").unwrap(),
            SslMode::Require
        );
    }

    #[test]
    fn modes_parse_as_written_only() {
        for name in SslMode::NAMES {
            assert_eq!(name.parse::<SslMode>().unwrap().as_str(), name);
        }
        let err = "verify_full".parse::<SslMode>().unwrap_err().to_string();
        assert!(
            err.contains("one of: disable, prefer, require, verify-ca, verify-full"),
            "{err}"
        );
    }

    #[test]
    fn hints_name_the_option_to_set() {
        let unknown = "invalid peer certificate: UnknownIssuer";
        assert!(hint(unknown, SslMode::VerifyFull, false)
            .unwrap()
            .contains("set sslrootcert"));
        let name = "invalid peer certificate: certificate not valid for name \"127.0.0.1\"";
        assert!(hint(name, SslMode::VerifyFull, true)
            .unwrap()
            .contains("verify-ca"));
        let plain = "no pg_hba.conf entry for host \"127.0.0.1\", user \"u\", database \"d\", no encryption";
        assert!(hint(plain, SslMode::Disable, false)
            .unwrap()
            .contains("sslmode=verify-full"));
        assert!(hint("password authentication failed", SslMode::Require, false).is_none());
    }
}
