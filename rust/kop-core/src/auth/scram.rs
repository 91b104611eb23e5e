//! SCRAM-SHA-256 / SCRAM-SHA-512 server side (RFC 5802, RFC 7677), as Kafka's `ScramSaslServer`
//! does it: no channel binding, the `tokenauth` extension is not supported.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// The two SCRAM mechanisms Kafka has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramAlg {
    Sha256,
    Sha512,
}

impl ScramAlg {
    pub fn mechanism(self) -> &'static str {
        match self {
            ScramAlg::Sha256 => "SCRAM-SHA-256",
            ScramAlg::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_mechanism(name: &str) -> Option<ScramAlg> {
        match name {
            "SCRAM-SHA-256" => Some(ScramAlg::Sha256),
            "SCRAM-SHA-512" => Some(ScramAlg::Sha512),
            _ => None,
        }
    }

    /// Kafka's `ScramMechanism` minimum iteration count.
    pub const MIN_ITERATIONS: i32 = 4096;

    pub(crate) fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramAlg::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            ScramAlg::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramAlg::Sha256 => Sha256::digest(data).to_vec(),
            ScramAlg::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    pub(crate) fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramAlg::Sha256 => {
                let mut out = [0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out.to_vec()
            }
            ScramAlg::Sha512 => {
                let mut out = [0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out.to_vec()
            }
        }
    }
}

/// What the server stores for a user: never the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub iterations: i32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    pub fn from_password(alg: ScramAlg, password: &str, salt: &[u8], iterations: i32) -> Self {
        Self::from_salted_password(
            alg,
            &alg.salted_password(password.as_bytes(), salt, iterations.max(1) as u32),
            salt,
            iterations,
        )
    }

    /// From `SaltedPassword`, as AlterUserScramCredentials sends it.
    pub fn from_salted_password(
        alg: ScramAlg,
        salted: &[u8],
        salt: &[u8],
        iterations: i32,
    ) -> Self {
        let client_key = alg.hmac(salted, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            iterations,
            stored_key: alg.hash(&client_key),
            server_key: alg.hmac(salted, b"Server Key"),
        }
    }
}

impl ScramCredential {
    /// The credential an unknown user gets, so that the exchange goes on to fail exactly like
    /// a wrong password (same message, same round trips): a salt derived from the name with a
    /// per-server secret (the same on every attempt, as a real user's), the usual iteration
    /// count, and random keys no client proof can match. Kafka fails at client-first instead,
    /// which tells a prober the name does not exist.
    pub fn unknown_user(alg: ScramAlg, user: &str, secret: &[u8]) -> Self {
        let mut salt = alg.hmac(secret, format!("{}\0{user}", alg.mechanism()).as_bytes());
        salt.truncate(16);
        let noise = [random_bytes(), random_bytes()].concat();
        ScramCredential {
            salt,
            iterations: ScramAlg::MIN_ITERATIONS,
            stored_key: alg.hash(&noise),
            server_key: alg.hash(&noise[..16]),
        }
    }

    /// Checks a credential that did not come from kop itself (a Python hook): Kafka's minimum
    /// iteration count, a salt, and keys of the mechanism's hash length.
    pub fn check(&self, alg: ScramAlg) -> Result<(), String> {
        let key_len = alg.hash(b"").len();
        if self.iterations < ScramAlg::MIN_ITERATIONS {
            return Err(format!(
                "iterations {} is less than the minimum {} for {}",
                self.iterations,
                ScramAlg::MIN_ITERATIONS,
                alg.mechanism()
            ));
        }
        if self.salt.is_empty() {
            return Err("the salt is empty".into());
        }
        if self.stored_key.len() != key_len || self.server_key.len() != key_len {
            return Err(format!(
                "stored_key and server_key must be {key_len} bytes for {}",
                alg.mechanism()
            ));
        }
        Ok(())
    }
}

/// A random salt or nonce source: 16 random bytes per call.
pub fn random_bytes() -> [u8; 16] {
    *uuid::Uuid::new_v4().as_bytes()
}

pub(crate) fn random_nonce() -> String {
    // printable, no ',' (RFC 5802 `printable`): base64 without padding is fine
    base64::engine::general_purpose::STANDARD_NO_PAD
        .encode([random_bytes(), random_bytes()].concat())
}

/// `saslname` decoding: `=2C` is ',' and `=3D` is '='; any other '=' is an error.
fn decode_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3) {
            Some("2C") => out.push(','),
            Some("3D") => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where a SCRAM exchange stands.
#[derive(Debug)]
pub enum ScramServer {
    /// Waiting for client-first.
    Start {
        alg: ScramAlg,
    },
    /// Sent server-first; waiting for client-final.
    SentFirst {
        alg: ScramAlg,
        user: String,
        credential: ScramCredential,
        nonce: String,
        client_first_bare: String,
        server_first: String,
    },
    Finished,
}

/// A failed exchange; the text goes into the SaslAuthenticate error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramError(pub String);

/// The parsed client-first message.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientFirst {
    pub user: String,
    pub nonce: String,
    pub bare: String,
}

pub fn parse_client_first(msg: &str) -> Result<ClientFirst, ScramError> {
    let bad = || ScramError("Invalid SCRAM client first message".into());
    // gs2-header: cbind-flag "," [authzid] ","
    let (cbind, rest) = msg.split_once(',').ok_or_else(bad)?;
    match cbind {
        "n" | "y" => {}
        _ => return Err(ScramError("SCRAM channel binding is not supported".into())),
    }
    let (authzid, bare) = rest.split_once(',').ok_or_else(bad)?;
    let mut fields = bare.split(',');
    let user = fields
        .next()
        .and_then(|f| f.strip_prefix("n="))
        .and_then(decode_saslname)
        .ok_or_else(bad)?;
    let nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .ok_or_else(bad)?
        .to_string();
    if nonce.is_empty() || user.is_empty() {
        return Err(bad());
    }
    if let Some(authzid) = authzid.strip_prefix("a=") {
        if decode_saslname(authzid).as_deref() != Some(user.as_str()) {
            return Err(ScramError(
                "Authentication failed: Client requested an authorization id that is different from username".into(),
            ));
        }
    } else if !authzid.is_empty() {
        return Err(bad());
    }
    for ext in fields {
        if ext.starts_with("tokenauth=") {
            return Err(ScramError("Delegation tokens are not supported".into()));
        }
    }
    Ok(ClientFirst {
        user,
        nonce,
        bare: bare.to_string(),
    })
}

impl ScramServer {
    pub fn new(alg: ScramAlg) -> Self {
        ScramServer::Start { alg }
    }

    /// The user a client-first message names (to look the credential up before `first`).
    pub fn user_of(client_first: &[u8]) -> Result<String, ScramError> {
        let msg = std::str::from_utf8(client_first)
            .map_err(|_| ScramError("Invalid SCRAM client first message".into()))?;
        Ok(parse_client_first(msg)?.user)
    }

    /// client-first → server-first. `credential` gives the user's credential (for an unknown
    /// user, `ScramCredential::unknown_user`).
    pub fn first(
        &mut self,
        client_first: &[u8],
        credential: impl FnOnce(&str) -> ScramCredential,
    ) -> Result<Vec<u8>, ScramError> {
        self.first_with_nonce(client_first, credential, &random_nonce())
    }

    fn first_with_nonce(
        &mut self,
        client_first: &[u8],
        credential: impl FnOnce(&str) -> ScramCredential,
        server_nonce: &str,
    ) -> Result<Vec<u8>, ScramError> {
        let ScramServer::Start { alg } = *self else {
            return Err(ScramError("Unexpected SCRAM message".into()));
        };
        *self = ScramServer::Finished;
        let msg = std::str::from_utf8(client_first)
            .map_err(|_| ScramError("Invalid SCRAM client first message".into()))?;
        let cf = parse_client_first(msg)?;
        let credential = credential(&cf.user);
        let nonce = format!("{}{}", cf.nonce, server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&credential.salt),
            credential.iterations
        );
        let out = server_first.clone().into_bytes();
        *self = ScramServer::SentFirst {
            alg,
            user: cf.user,
            credential,
            nonce,
            client_first_bare: cf.bare,
            server_first,
        };
        Ok(out)
    }

    /// client-final → (user, server-final).
    pub fn last(&mut self, client_final: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        let state = std::mem::replace(self, ScramServer::Finished);
        let ScramServer::SentFirst {
            alg,
            user,
            credential,
            nonce,
            client_first_bare,
            server_first,
        } = state
        else {
            return Err(ScramError("Unexpected SCRAM message".into()));
        };
        let failed = || {
            ScramError(format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                alg.mechanism()
            ))
        };
        let msg = std::str::from_utf8(client_final).map_err(|_| failed())?;
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or_else(failed)?;
        let mut fields = without_proof.split(',');
        let cbind = fields
            .next()
            .and_then(|f| f.strip_prefix("c="))
            .ok_or_else(failed)?;
        let gs2 = B64.decode(cbind).map_err(|_| failed())?;
        if !(gs2.starts_with(b"n,") || gs2.starts_with(b"y,")) {
            return Err(failed());
        }
        if fields.next().and_then(|f| f.strip_prefix("r=")) != Some(nonce.as_str()) {
            return Err(ScramError("Invalid SCRAM nonce".into()));
        }
        let proof = B64.decode(proof).map_err(|_| failed())?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = alg.hmac(&credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(failed());
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if !constant_time_eq(&alg.hash(&client_key), &credential.stored_key) {
            return Err(failed());
        }
        let server_signature = alg.hmac(&credential.server_key, auth_message.as_bytes());
        Ok((
            user,
            format!("v={}", B64.encode(server_signature)).into_bytes(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 section 3, the SCRAM-SHA-256 example exchange.
    #[test]
    fn rfc7677_sha256_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::from_password(ScramAlg::Sha256, "pencil", &salt, 4096);
        let mut s = ScramServer::new(ScramAlg::Sha256);
        let first = s
            .first_with_nonce(
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                |u| {
                    assert_eq!(u, "user");
                    cred.clone()
                },
                "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(first).unwrap(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (user, last) = s
            .last(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(user, "user");
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn wrong_proof_unknown_user_and_bad_messages_fail() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let cred = ScramCredential::from_password(ScramAlg::Sha256, "not-pencil", &salt, 4096);
        let mut s = ScramServer::new(ScramAlg::Sha256);
        s.first_with_nonce(
            b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
            |_| cred.clone(),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        )
        .unwrap();
        assert!(s
            .last(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .is_err());
        // an unknown user gets a challenge, then fails like a wrong password
        let secret = b"server secret";
        let mut s = ScramServer::new(ScramAlg::Sha256);
        let first = s
            .first_with_nonce(
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                |u| ScramCredential::unknown_user(ScramAlg::Sha256, u, secret),
                "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            )
            .unwrap();
        let again = ScramCredential::unknown_user(ScramAlg::Sha256, "user", secret);
        let expected_salt = format!(",s={},i=4096", B64.encode(&again.salt));
        assert!(String::from_utf8(first).unwrap().ends_with(&expected_salt));
        let wrong_password = s
            .last(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap_err();
        assert!(wrong_password.0.contains("invalid credentials"));
        assert_ne!(
            again.salt,
            ScramCredential::unknown_user(ScramAlg::Sha256, "other", secret).salt
        );
        for bad in [
            &b"p=tls-unique,,n=u,r=x"[..],
            b"n,,r=x",
            b"garbage",
            b"n,,n=a=b,r=x",
        ] {
            let mut s = ScramServer::new(ScramAlg::Sha512);
            assert!(s.first(bad, |_| cred.clone()).is_err());
        }
        // a final message without a first one
        let mut s = ScramServer::new(ScramAlg::Sha256);
        assert!(s.last(b"c=biws,r=x,p=AAAA").is_err());
    }

    #[test]
    fn hook_credentials_are_checked() {
        let cred = ScramCredential::from_password(ScramAlg::Sha512, "pw", b"salt", 4096);
        assert!(cred.check(ScramAlg::Sha512).is_ok());
        assert!(cred.check(ScramAlg::Sha256).is_err()); // 64-byte keys for SHA-256
        let few = ScramCredential::from_password(ScramAlg::Sha512, "pw", b"salt", 4095);
        assert!(few.check(ScramAlg::Sha512).is_err());
    }

    #[test]
    fn saslname_and_authzid() {
        assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        let cf = parse_client_first("n,a=bob,n=bob,r=xyz").unwrap();
        assert_eq!(cf.user, "bob");
        assert!(parse_client_first("n,a=eve,n=bob,r=xyz").is_err());
    }
}
