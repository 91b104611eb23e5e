//! JWT validation for SASL/OAUTHBEARER (RFC 7628) and KoP's `token:<jwt>` PLAIN passwords:
//! RS256 / ES256 / EdDSA signatures against public keys from PEM files, `exp`/`nbf`, and
//! optional `iss` / `aud` checks. The principal is `User:<sub>`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use ring::signature::{self, UnparsedPublicKey};
use rustls::pki_types::pem::{PemObject, SectionKind};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
    Ed25519,
}

#[derive(Debug, Clone)]
struct PublicKey {
    kind: KeyKind,
    /// The SPKI's subjectPublicKey bits (RSAPublicKey DER, EC point, or Ed25519 key).
    bits: Vec<u8>,
}

/// Keys and claim rules; empty keys = tokens are never valid.
#[derive(Debug, Clone, Default)]
pub struct JwtValidator {
    keys: Vec<PublicKey>,
    issuer: Option<String>,
    audience: Option<String>,
}

/// A validated token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub subject: String,
    /// Seconds since the epoch, if the token expires.
    pub expires_at: Option<i64>,
}

impl JwtValidator {
    /// Reads every `PUBLIC KEY` block (SubjectPublicKeyInfo) from the PEM files.
    pub fn from_files(
        files: &[String],
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Result<JwtValidator, String> {
        let mut keys = Vec::new();
        for file in files {
            let data = std::fs::read(file)
                .map_err(|e| format!("oauthbearer_public_key_files: {file:?}: {e}"))?;
            for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(&data) {
                let (kind, der) =
                    section.map_err(|e| format!("oauthbearer_public_key_files: {file:?}: {e}"))?;
                if kind != SectionKind::PublicKey {
                    continue;
                }
                keys.push(
                    parse_spki(&der)
                        .map_err(|e| format!("oauthbearer_public_key_files: {file:?}: {e}"))?,
                );
            }
        }
        if !files.is_empty() && keys.is_empty() {
            return Err("oauthbearer_public_key_files: no PUBLIC KEY found".into());
        }
        Ok(JwtValidator {
            keys,
            issuer,
            audience,
        })
    }

    pub fn is_configured(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Checks signature and claims at `now` (seconds since the epoch).
    pub fn validate(&self, token: &str, now: i64) -> Result<Claims, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("malformed token".into());
        };
        let header: serde_json::Value = decode_json(h)?;
        let payload: serde_json::Value = decode_json(p)?;
        let signature = B64URL.decode(s).map_err(|_| "malformed signature")?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        let (kind, alg): (KeyKind, &dyn signature::VerificationAlgorithm) =
            match header["alg"].as_str() {
                Some("RS256") => (KeyKind::Rsa, &signature::RSA_PKCS1_2048_8192_SHA256),
                Some("ES256") => (KeyKind::EcP256, &signature::ECDSA_P256_SHA256_FIXED),
                Some("EdDSA") => (KeyKind::Ed25519, &signature::ED25519),
                other => return Err(format!("unsupported alg {other:?}")),
            };
        let verified = self.keys.iter().filter(|k| k.kind == kind).any(|k| {
            UnparsedPublicKey::new(alg, &k.bits)
                .verify(signed, &signature)
                .is_ok()
        });
        if !verified {
            return Err("invalid signature".into());
        }
        let exp = payload["exp"].as_i64();
        if exp.is_some_and(|e| now >= e) {
            return Err("token expired".into());
        }
        if payload["nbf"].as_i64().is_some_and(|n| now < n) {
            return Err("token not yet valid".into());
        }
        if let Some(iss) = &self.issuer {
            if payload["iss"].as_str() != Some(iss.as_str()) {
                return Err("wrong issuer".into());
            }
        }
        if let Some(aud) = &self.audience {
            let ok = match &payload["aud"] {
                serde_json::Value::String(a) => a == aud,
                serde_json::Value::Array(list) => list.iter().any(|a| a.as_str() == Some(aud)),
                _ => false,
            };
            if !ok {
                return Err("wrong audience".into());
            }
        }
        let subject = payload["sub"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or("token has no sub")?
            .to_string();
        Ok(Claims {
            subject,
            expires_at: exp,
        })
    }
}

fn decode_json(part: &str) -> Result<serde_json::Value, String> {
    let bytes = B64URL.decode(part).map_err(|_| "malformed token")?;
    serde_json::from_slice(&bytes).map_err(|_| "malformed token".to_string())
}

fn parse_spki(der: &[u8]) -> Result<PublicKey, String> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|e| e.to_string())?;
    let kind = match spki.algorithm.algorithm.to_id_string().as_str() {
        "1.2.840.113549.1.1.1" => KeyKind::Rsa,
        "1.2.840.10045.2.1" => KeyKind::EcP256,
        "1.3.101.112" => KeyKind::Ed25519,
        other => return Err(format!("unsupported key algorithm {other}")),
    };
    Ok(PublicKey {
        kind,
        bits: spki.subject_public_key.data.to_vec(),
    })
}

/// The token of an OAUTHBEARER client message (`gs2-header %x01 auth=Bearer <token> %x01 ... %x01`).
pub fn oauthbearer_token(message: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(message).map_err(|_| "invalid OAUTHBEARER message")?;
    let (gs2, rest) = text
        .split_once('\u{1}')
        .ok_or("invalid OAUTHBEARER message")?;
    if !(gs2.starts_with("n,") || gs2.starts_with("y,")) {
        return Err("invalid OAUTHBEARER message".into());
    }
    for kv in rest.split('\u{1}') {
        if let Some(auth) = kv.strip_prefix("auth=") {
            let token = auth
                .strip_prefix("Bearer ")
                .ok_or("invalid OAUTHBEARER auth value")?;
            return Ok(token.trim().to_string());
        }
    }
    Err("OAUTHBEARER message has no auth value".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    fn es256_token(pair: &EcdsaKeyPair, payload: &str) -> String {
        let h = B64URL.encode(r#"{"alg":"ES256","typ":"JWT"}"#);
        let p = B64URL.encode(payload);
        let signed = format!("{h}.{p}");
        let sig = pair.sign(&SystemRandom::new(), signed.as_bytes()).unwrap();
        format!("{signed}.{}", B64URL.encode(sig.as_ref()))
    }

    #[test]
    fn es256_tokens_signature_expiry_and_claims() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let v = JwtValidator {
            keys: vec![PublicKey {
                kind: KeyKind::EcP256,
                bits: pair.public_key().as_ref().to_vec(),
            }],
            issuer: Some("kop".into()),
            audience: Some("kafka".into()),
        };
        let good = es256_token(
            &pair,
            r#"{"sub":"alice","exp":2000,"iss":"kop","aud":["kafka"]}"#,
        );
        assert_eq!(
            v.validate(&good, 1000).unwrap(),
            Claims {
                subject: "alice".into(),
                expires_at: Some(2000)
            }
        );
        assert_eq!(v.validate(&good, 2000).unwrap_err(), "token expired");
        let wrong_iss = es256_token(&pair, r#"{"sub":"a","iss":"x","aud":"kafka"}"#);
        assert!(v.validate(&wrong_iss, 0).is_err());
        // tampered payload
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = B64URL.encode(r#"{"sub":"admin","exp":2000,"iss":"kop","aud":"kafka"}"#);
        parts[1] = &forged;
        assert_eq!(
            v.validate(&parts.join("."), 1000).unwrap_err(),
            "invalid signature"
        );
        // alg none is never accepted
        let none = format!(
            "{}.{}.",
            B64URL.encode(r#"{"alg":"none"}"#),
            B64URL.encode(r#"{"sub":"a"}"#)
        );
        assert!(v.validate(&none, 0).is_err());
        assert!(v.validate("garbage", 0).is_err());
    }

    #[test]
    fn oauthbearer_messages() {
        assert_eq!(
            oauthbearer_token(b"n,,\x01auth=Bearer abc.def.ghi\x01\x01").unwrap(),
            "abc.def.ghi"
        );
        assert_eq!(
            oauthbearer_token(b"n,a=alice,\x01host=x\x01auth=Bearer t\x01\x01").unwrap(),
            "t"
        );
        assert!(oauthbearer_token(b"n,,\x01\x01").is_err());
        assert!(oauthbearer_token(b"p=x,,\x01auth=Bearer t\x01\x01").is_err());
    }
}
