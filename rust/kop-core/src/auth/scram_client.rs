//! SCRAM-SHA-256 / SCRAM-SHA-512 client side (RFC 5802), for kop's own calls to peer instances
//! (`broker/peers.rs`) on SASL listeners: no channel binding, no extensions.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use super::scram::{random_nonce, ScramAlg, ScramError};

/// A client exchange: `first()`, then `last(server_first)`, then `verify(server_final)`.
pub struct ScramClient {
    alg: ScramAlg,
    password: String,
    nonce: String,
    client_first_bare: String,
    /// The server signature `server_final` must carry, once `last` computed it.
    expected_server_signature: Vec<u8>,
}

impl ScramClient {
    pub fn new(alg: ScramAlg, user: &str, password: &str) -> ScramClient {
        Self::with_nonce(alg, user, password, random_nonce())
    }

    fn with_nonce(alg: ScramAlg, user: &str, password: &str, nonce: String) -> ScramClient {
        let name = user.replace('=', "=3D").replace(',', "=2C");
        ScramClient {
            alg,
            password: password.to_string(),
            client_first_bare: format!("n={name},r={nonce}"),
            nonce,
            expected_server_signature: Vec::new(),
        }
    }

    /// client-first.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// server-first → client-final.
    pub fn last(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let bad = || ScramError("Invalid SCRAM server first message".into());
        let server_first = std::str::from_utf8(server_first).map_err(|_| bad())?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for field in server_first.split(',') {
            match field.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = B64.decode(v).ok(),
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        let (nonce, salt, iterations) = (
            nonce.ok_or_else(bad)?,
            salt.ok_or_else(bad)?,
            iterations.ok_or_else(bad)?,
        );
        if !nonce.starts_with(&self.nonce) || iterations == 0 {
            return Err(bad());
        }
        let alg = self.alg;
        let salted = alg.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = alg.hmac(&salted, b"Client Key");
        let stored_key = alg.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let signature = alg.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = alg.hmac(&salted, b"Server Key");
        self.expected_server_signature = alg.hmac(&server_key, auth_message.as_bytes());
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks server-final: the server proves it knows the credential too.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let expected = format!("v={}", B64.encode(&self.expected_server_signature));
        if self.expected_server_signature.is_empty() || server_final != expected.as_bytes() {
            return Err(ScramError(
                "the server's SCRAM signature does not match".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::{ScramCredential, ScramServer};

    // RFC 7677 section 3, the SCRAM-SHA-256 example exchange, from the client's side.
    #[test]
    fn rfc7677_sha256_vector() {
        let mut c = ScramClient::with_nonce(
            ScramAlg::Sha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(c.first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let last = c
            .last(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        assert!(c.verify(b"v=AAAA").is_err());
    }

    #[test]
    fn kops_own_server_accepts_the_client_and_refuses_a_wrong_password() {
        for (password, ok) in [("s3cret", true), ("wrong", false)] {
            let cred = ScramCredential::from_password(ScramAlg::Sha512, "s3cret", b"salty", 4096);
            let mut client = ScramClient::new(ScramAlg::Sha512, "kop=peer,1", password);
            let mut server = ScramServer::new(ScramAlg::Sha512);
            let first = server
                .first(&client.first(), |user| {
                    assert_eq!(user, "kop=peer,1");
                    cred.clone()
                })
                .unwrap();
            let last = client.last(&first).unwrap();
            match server.last(&last) {
                Ok((_, server_final)) => {
                    assert!(ok);
                    client.verify(&server_final).unwrap();
                }
                Err(_) => assert!(!ok),
            }
        }
    }
}
