//! TLS for SSL / SASL_SSL listeners (rustls with the ring provider, PEM files) and the
//! principal of a client certificate (Kafka's `ssl.principal.mapping.rules`).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::Principal;
use crate::config::{ServerConfig, SslClientAuth};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls server config from `ssl_certfile` / `ssl_keyfile` (and `ssl_cafile` for client
/// certificates).
pub fn server_config(config: &ServerConfig) -> Result<rustls::ServerConfig, String> {
    let certfile = config
        .ssl_certfile
        .as_deref()
        .ok_or("ssl_certfile is required for SSL and SASL_SSL listeners")?;
    let keyfile = config
        .ssl_keyfile
        .as_deref()
        .ok_or("ssl_keyfile is required for SSL and SASL_SSL listeners")?;
    let (certs, key) = cert_and_key(certfile, keyfile)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match config.ssl_client_auth {
        SslClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let cafile = config
                .ssl_cafile
                .as_deref()
                .ok_or("ssl_cafile is required when ssl_client_auth is requested or required")?;
            let roots = root_store(cafile)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if auth == SslClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| e.to_string())?)
        }
    };
    builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("ssl_certfile/ssl_keyfile: {e}"))
}

/// The rustls client config kop calls peer instances with on a TLS listener (as Kafka's brokers
/// use their keystore and truststore between brokers): peers' certificates must chain to
/// `ssl_cafile`, and this instance presents its own `ssl_certfile` (so it needs the client-auth
/// key usage too when the listener asks for client certificates).
pub fn client_config(config: &ServerConfig) -> Result<rustls::ClientConfig, String> {
    let cafile = config.ssl_cafile.as_deref().ok_or(
        "ssl_cafile is required for calls between kop instances on a TLS listener \
         (the CA the instances' certificates chain to)",
    )?;
    let roots = root_store(cafile)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match (&config.ssl_certfile, &config.ssl_keyfile) {
        (Some(certfile), Some(keyfile)) => {
            let (certs, key) = cert_and_key(certfile, keyfile)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("ssl_certfile/ssl_keyfile: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn root_store(cafile: &str) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in
        CertificateDer::pem_file_iter(cafile).map_err(|e| format!("ssl_cafile {cafile:?}: {e}"))?
    {
        let ca = ca.map_err(|e| format!("ssl_cafile {cafile:?}: {e}"))?;
        roots
            .add(ca)
            .map_err(|e| format!("ssl_cafile {cafile:?}: {e}"))?;
    }
    Ok(roots)
}

fn cert_and_key(
    certfile: &str,
    keyfile: &str,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let certs = CertificateDer::pem_file_iter(certfile)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("ssl_certfile {certfile:?}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("ssl_certfile {certfile:?}: no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_file(keyfile)
        .map_err(|e| format!("ssl_keyfile {keyfile:?}: {e}"))?;
    Ok((certs, key))
}

/// The subject of a DER certificate as Java's `X500Principal.getName()` (RFC 2253) writes it:
/// most specific RDN first, `,` between RDNs, `+` inside one.
pub fn subject_rfc2253(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter() {
        let mut atvs = Vec::new();
        for atv in rdn.iter() {
            let oid = atv.attr_type().to_id_string();
            let key = match oid.as_str() {
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.6" => "C".to_string(),
                "2.5.4.7" => "L".to_string(),
                "2.5.4.8" => "ST".to_string(),
                "2.5.4.10" => "O".to_string(),
                "2.5.4.11" => "OU".to_string(),
                "2.5.4.9" => "STREET".to_string(),
                "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                "0.9.2342.19200300.100.1.1" => "UID".to_string(),
                other => other.to_string(),
            };
            let value = atv.as_str().ok()?;
            atvs.push(format!("{key}={}", escape_rfc2253(value)));
        }
        rdns.push(atvs.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let leading = i == 0 && (c == ' ' || c == '#');
        let trailing = i + 1 == value.chars().count() && c == ' ';
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') || leading || trailing {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One `ssl.principal.mapping.rules` entry.
#[derive(Debug, Clone)]
enum Rule {
    Default,
    Map {
        pattern: regex::Regex,
        replacement: String,
        case: Option<char>,
    },
}

/// Kafka's `SslPrincipalMapper`: `RULE:pattern/replacement/[LU]` entries and `DEFAULT`,
/// comma separated; the first rule whose pattern matches the whole DN wins; no match →
/// the DN itself (as with DEFAULT).
#[derive(Debug, Clone)]
pub struct PrincipalBuilder {
    rules: Vec<Rule>,
}

impl PrincipalBuilder {
    pub fn parse(rules: &str) -> Result<PrincipalBuilder, String> {
        let bad = |why: &str| format!("ssl_principal_mapping_rules: {why} in {rules:?}");
        let mut out = Vec::new();
        let mut rest = rules.trim();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("DEFAULT") {
                out.push(Rule::Default);
                rest = r;
            } else if let Some(r) = rest.strip_prefix("RULE:") {
                let (pattern, r) =
                    split_unescaped_slash(r).ok_or_else(|| bad("unterminated pattern"))?;
                let (replacement, r) =
                    split_unescaped_slash(r).ok_or_else(|| bad("unterminated replacement"))?;
                let (case, r) = match r.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &r[1..]),
                    _ => (None, r),
                };
                let pattern = regex::Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| bad(&format!("bad pattern ({e})")))?;
                out.push(Rule::Map {
                    pattern,
                    replacement: replacement.replace("\\/", "/"),
                    case,
                });
                rest = r;
            } else {
                return Err(bad("expected RULE:... or DEFAULT"));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(r) => rest = r.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(bad("expected ',' between rules")),
            }
        }
        Ok(PrincipalBuilder { rules: out })
    }

    /// The principal name for a certificate subject DN.
    pub fn name_for(&self, dn: &str) -> String {
        for rule in &self.rules {
            match rule {
                Rule::Default => return dn.to_string(),
                Rule::Map {
                    pattern,
                    replacement,
                    case,
                } => {
                    if let Some(caps) = pattern.captures(dn) {
                        let mut name = String::new();
                        caps.expand(replacement, &mut name);
                        return match case {
                            Some('L') => name.to_lowercase(),
                            Some('U') => name.to_uppercase(),
                            _ => name,
                        };
                    }
                }
            }
        }
        dn.to_string()
    }

    /// The principal of a verified client certificate chain (leaf first).
    pub fn principal(&self, leaf_der: &[u8]) -> Option<Principal> {
        subject_rfc2253(leaf_der).map(|dn| Principal::user(self.name_for(&dn)))
    }
}

/// Splits at the first '/' not preceded by a backslash.
fn split_unescaped_slash(s: &str) -> Option<(&str, &str)> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'/' => return Some((&s[..i], &s[i + 1..])),
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_rules_like_kafka() {
        let b = PrincipalBuilder::parse(
            r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L, RULE:^CN=([^,]*),O=(.*)$/${1}@${2}/, DEFAULT",
        )
        .unwrap();
        assert_eq!(b.name_for("CN=Alice,OU=ServiceUsers,O=kop"), "alice");
        assert_eq!(b.name_for("CN=bob,O=acme"), "bob@acme");
        assert_eq!(b.name_for("CN=carol,OU=x,O=y,C=z"), "CN=carol,OU=x,O=y,C=z");
        let d = PrincipalBuilder::parse("DEFAULT").unwrap();
        assert_eq!(d.name_for("CN=x"), "CN=x");
        assert!(PrincipalBuilder::parse("RULE:abc").is_err());
        assert!(PrincipalBuilder::parse("NONSENSE").is_err());
        assert!(PrincipalBuilder::parse(r"RULE:(/x/").is_err());
        let u = PrincipalBuilder::parse(r"RULE:^CN=(.*)$/$1/U").unwrap();
        assert_eq!(u.name_for("CN=dave"), "DAVE");
    }

    #[test]
    fn rfc2253_escaping() {
        assert_eq!(escape_rfc2253("a,b"), "a\\,b");
        assert_eq!(escape_rfc2253(" x "), "\\ x\\ ");
    }
}
