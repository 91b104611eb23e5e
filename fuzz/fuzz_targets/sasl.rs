//! SASL token parsing and checking, as a client's SaslAuthenticate tokens reach it: PLAIN
//! (`auth::plain`), OAUTHBEARER messages and JWTs (`auth::jwt`), and both SCRAM exchanges
//! (`auth::scram`). The first byte picks the mechanism:
//!   0 PLAIN message
//!   1 OAUTHBEARER client message, its token then validated
//!   2 `header NUL payload`: the target signs them with its EdDSA key, so the claim checks
//!     after the signature (exp, nbf, iss, aud, sub) are reached
//!   3 a bare JWT
//!   4 / 5 SCRAM-SHA-256 / -512: `client-first NUL client-final`, where `%N` in client-final
//!     stands for the nonce the server sent (so the proof check is reached)
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use kop_core::auth::jwt::{self, JwtValidator};
use kop_core::auth::plain;
use kop_core::auth::scram::{ScramAlg, ScramCredential, ScramServer};
use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair};

/// "Now" for token expiry checks (seconds).
const NOW: i64 = 1_700_000_000;

struct Keys {
    validator: JwtValidator,
    signer: Ed25519KeyPair,
    sha256: ScramCredential,
    sha512: ScramCredential,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let signer = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("seed");
        // SubjectPublicKeyInfo of an Ed25519 key: fixed prefix, then the 32-byte key.
        let mut spki = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
        ];
        spki.extend_from_slice(signer.public_key().as_ref());
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            base64::engine::general_purpose::STANDARD.encode(&spki)
        );
        let path = std::env::temp_dir().join(format!("kop-fuzz-jwt-{}.pem", std::process::id()));
        std::fs::write(&path, pem).expect("write the public key");
        let file = path.to_string_lossy().into_owned();
        let validator = JwtValidator::from_files(&[file], Some("kop".into()), Some("kafka".into()))
            .expect("the target's own key");
        let _ = std::fs::remove_file(&path);
        Keys {
            validator,
            signer,
            sha256: ScramCredential::from_password(ScramAlg::Sha256, "pw", b"salt", 4096),
            sha512: ScramCredential::from_password(ScramAlg::Sha512, "pw", b"salt", 4096),
        }
    })
}

fn signed_token(header: &[u8], payload: &[u8]) -> String {
    let signed = format!("{}.{}", B64URL.encode(header), B64URL.encode(payload));
    let sig = keys().signer.sign(signed.as_bytes());
    format!("{signed}.{}", B64URL.encode(sig.as_ref()))
}

fn scram(alg: ScramAlg, data: &[u8]) {
    let (first, last) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    // As net/sasl.rs does: the user first (to look the credential up), then the exchange.
    let Ok(user) = ScramServer::user_of(first) else {
        return;
    };
    let credential = match (user.as_str(), alg) {
        ("alice", ScramAlg::Sha256) => keys().sha256.clone(),
        ("alice", ScramAlg::Sha512) => keys().sha512.clone(),
        _ => ScramCredential::unknown_user(alg, &user, b"server secret"),
    };
    let mut server = ScramServer::new(alg);
    let Ok(challenge) = server.first(first, |_| credential) else {
        return;
    };
    let challenge = String::from_utf8(challenge).expect("server-first is text");
    let nonce = challenge
        .strip_prefix("r=")
        .and_then(|r| r.split(',').next())
        .expect("server-first starts with the nonce");
    let mut last = last.to_vec();
    if let Some(at) = last.windows(2).position(|w| w == b"%N") {
        last.splice(at..at + 2, nonce.bytes());
    }
    let _ = server.last(&last);
    // Any further message is out of order.
    assert!(server.last(b"c=biws,r=x,p=AAAA").is_err());
}

fn seeds() -> Vec<Vec<u8>> {
    let with = |m: u8, rest: &[u8]| [&[m][..], rest].concat();
    let token = signed_token(
        br#"{"alg":"EdDSA","typ":"JWT"}"#,
        br#"{"sub":"alice","exp":1800000000,"nbf":1600000000,"iss":"kop","aud":["kafka"]}"#,
    );
    vec![
        with(0, b"\0alice\0secret"),
        with(0, b"alice\0alice\0token:abc.def.ghi"),
        with(1, format!("n,,\x01auth=Bearer {token}\x01\x01").as_bytes()),
        with(2, b"{\"alg\":\"EdDSA\"}\0{\"sub\":\"bob\",\"exp\":1800000000,\"iss\":\"kop\",\"aud\":\"kafka\"}"),
        with(3, token.as_bytes()),
        with(4, b"n,,n=alice,r=abcdef\0c=biws,r=%N,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
        with(5, b"n,a=bob,n=bob,r=xyz\0c=biws,r=%N,p=AAAA"),
    ]
}

fuzz_target!(init: kop_fuzz::write_seeds(seeds), |data: &[u8]| {
    let [pick, rest @ ..] = data else {
        return;
    };
    match pick % 6 {
        0 => {
            let _ = plain::parse(rest);
        }
        1 => {
            if let Ok(token) = jwt::oauthbearer_token(rest) {
                let _ = keys().validator.validate(&token, NOW);
            }
        }
        2 => {
            let (header, payload) = match rest.iter().position(|&b| b == 0) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            let _ = keys().validator.validate(&signed_token(header, payload), NOW);
        }
        3 => {
            if let Ok(token) = std::str::from_utf8(rest) {
                let _ = keys().validator.validate(token, NOW);
            }
        }
        4 => scram(ScramAlg::Sha256, rest),
        _ => scram(ScramAlg::Sha512, rest),
    }
});
