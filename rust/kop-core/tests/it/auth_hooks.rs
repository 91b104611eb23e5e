//! The authentication hooks over the wire, with a Rust stand-in for the Python bridge: SCRAM
//! credentials from a hook (cached, failing closed, unknown users indistinguishable from wrong
//! passwords), an OAUTHBEARER validator hook, and an authorizer hook asked once per request
//! for `authorized_operations`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kop_core::auth::acl::{Operation, ResourceType};
use kop_core::auth::authorizer::{
    HookContext, HookDecision, HookScramCredential, Hooks, LoginAttempt, LoginConnection,
};
use kop_core::auth::scram::{ScramAlg, ScramCredential};
use kop_core::auth::Principal;
use kop_core::{RunningServer, ServerConfig};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Answers like the Python adapters would, from the calling thread.
#[derive(Default)]
struct FakeHooks {
    scram_calls: AtomicUsize,
    authorize_calls: AtomicUsize,
    /// Questions left unanswered (the hook "hangs").
    hanging: Mutex<Vec<oneshot::Sender<Result<HookScramCredential, String>>>>,
}

impl Hooks for FakeHooks {
    fn has_authorizer(&self) -> bool {
        true
    }

    fn has_authenticator(&self) -> bool {
        false
    }

    fn has_scram_credentials(&self) -> bool {
        true
    }

    fn has_oauthbearer_validator(&self) -> bool {
        true
    }

    fn authorize(
        &self,
        ctx: HookContext,
        actions: Vec<(Operation, ResourceType, String)>,
    ) -> oneshot::Receiver<Result<Vec<HookDecision>, String>> {
        self.authorize_calls.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        // the token user may READ and DESCRIBE topics starting with "t-", nothing else
        let decisions = actions
            .iter()
            .map(|(op, rt, name)| HookDecision {
                allowed: ctx.principal.name == "token-user"
                    && *rt == ResourceType::Topic
                    && name.starts_with("t-")
                    && matches!(
                        op,
                        Operation::Read | Operation::Describe | Operation::Create
                    ),
                ttl_ms: None,
            })
            .collect();
        let _ = tx.send(Ok(decisions));
        rx
    }

    fn authenticate(
        &self,
        _login: LoginAttempt,
    ) -> oneshot::Receiver<Result<Option<Principal>, String>> {
        unreachable!("no authenticator configured")
    }

    fn scram_credential(
        &self,
        alg: ScramAlg,
        username: String,
        _conn: LoginConnection,
    ) -> oneshot::Receiver<Result<HookScramCredential, String>> {
        self.scram_calls.fetch_add(1, Ordering::SeqCst);
        let (tx, rx) = oneshot::channel();
        let answer = match username.as_str() {
            "hooked" => Ok(HookScramCredential {
                credential: Some(ScramCredential::from_password(
                    alg,
                    "hook-pw",
                    b"0123456789abcdef",
                    4096,
                )),
                ttl_ms: None,
            }),
            "uncached" => Ok(HookScramCredential {
                credential: Some(ScramCredential::from_password(alg, "pw", b"salt", 4096)),
                ttl_ms: Some(0),
            }),
            "weak" => Ok(HookScramCredential {
                credential: Some(ScramCredential::from_password(alg, "pw", b"salt", 100)),
                ttl_ms: None,
            }),
            "boom" => Err("RuntimeError: hook bug".into()),
            "hang" => {
                self.hanging.lock().push(tx);
                return rx;
            }
            _ => Ok(HookScramCredential {
                credential: None,
                ttl_ms: None,
            }),
        };
        let _ = tx.send(answer);
        rx
    }

    fn validate_oauthbearer(
        &self,
        token: String,
        _conn: LoginConnection,
    ) -> oneshot::Receiver<Result<Option<Principal>, String>> {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(match token.as_str() {
            "good-token" => Ok(Some(Principal::user("token-user"))),
            "raise" => Err("ValueError: bad".into()),
            _ => Ok(None),
        });
        rx
    }
}

fn start(hooks: Arc<FakeHooks>) -> RunningServer {
    let json = r#"{"listeners": ["SASL_PLAINTEXT://127.0.0.1:0"], "storage": "memory://",
        "io_threads": 2, "sasl_users": ["alice:alice-pw"], "authorizer": "python",
        "super_users": ["User:alice"],
        "sasl_enabled_mechanisms": ["PLAIN", "SCRAM-SHA-256", "OAUTHBEARER"],
        "scram_credentials": "python", "oauthbearer_validator": "python",
        "hook_timeout_ms": 300, "failed_authentication_delay_ms": 0}"#;
    RunningServer::start_with_hooks(ServerConfig::from_json(json).unwrap(), Some(hooks)).unwrap()
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn authenticate(c: &mut Client, token: &[u8]) -> SaslAuthenticateResponse {
    c.call(
        &SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::copy_from_slice(token)),
        2,
    )
}

/// What a SCRAM-SHA-256 login saw: the server-first message (if any) and the final answer.
struct Exchange {
    server_first: Option<String>,
    error_code: i16,
    error_message: Option<String>,
}

fn scram_sha256(port: u16, user: &str, password: &str) -> Exchange {
    let mut c = Client::connect(port);
    let hs: SaslHandshakeResponse = c.call(
        &SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-256")),
        1,
    );
    assert_eq!(hs.error_code, 0);
    let client_nonce = "rOprNGfwEbeRWgbNEkqO";
    let first_bare = format!("n={user},r={client_nonce}");
    let r1 = authenticate(&mut c, format!("n,,{first_bare}").as_bytes());
    if r1.error_code != 0 {
        return Exchange {
            server_first: None,
            error_code: r1.error_code,
            error_message: r1.error_message.map(|m| m.to_string()),
        };
    }
    let server_first = String::from_utf8(r1.auth_bytes.to_vec()).unwrap();
    let (mut nonce, mut salt, mut iterations) = ("", Vec::new(), 0u32);
    for part in server_first.split(',') {
        match part.split_at(2) {
            ("r=", v) => nonce = v,
            ("s=", v) => salt = B64.decode(v).unwrap(),
            ("i=", v) => iterations = v.parse().unwrap(),
            _ => {}
        }
    }
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
    let client_key = hmac256(&salted, b"Client Key");
    let without_proof = format!("c=biws,r={nonce}");
    let auth_message = format!("{first_bare},{server_first},{without_proof}");
    let signature = hmac256(&Sha256::digest(&client_key), auth_message.as_bytes());
    let proof: Vec<u8> = client_key
        .iter()
        .zip(&signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let r2 = authenticate(
        &mut c,
        format!("{without_proof},p={}", B64.encode(proof)).as_bytes(),
    );
    Exchange {
        server_first: Some(server_first),
        error_code: r2.error_code,
        error_message: r2.error_message.map(|m| m.to_string()),
    }
}

fn salt_of(server_first: &str) -> &str {
    server_first
        .split(',')
        .find_map(|p| p.strip_prefix("s="))
        .unwrap()
}

#[test]
fn scram_credentials_from_a_hook() {
    let hooks = Arc::new(FakeHooks::default());
    let server = start(hooks.clone());
    let port = port(&server);
    // a hook user logs in; the credential is cached: one crossing for three logins
    for _ in 0..3 {
        assert_eq!(scram_sha256(port, "hooked", "hook-pw").error_code, 0);
    }
    assert_eq!(hooks.scram_calls.load(Ordering::SeqCst), 1);
    // configured users never reach the hook
    assert_eq!(scram_sha256(port, "alice", "alice-pw").error_code, 0);
    assert_eq!(hooks.scram_calls.load(Ordering::SeqCst), 1);
    // ttl 0: asked every time
    assert_eq!(scram_sha256(port, "uncached", "pw").error_code, 0);
    assert_eq!(scram_sha256(port, "uncached", "pw").error_code, 0);
    assert_eq!(hooks.scram_calls.load(Ordering::SeqCst), 3);
    // invalidation forgets cached credentials
    server.security().invalidate_hook_caches();
    assert_eq!(scram_sha256(port, "hooked", "hook-pw").error_code, 0);
    assert_eq!(hooks.scram_calls.load(Ordering::SeqCst), 4);

    // a wrong password, an unknown user, a raising, a weak (iterations < 4096) and a hanging
    // hook all get a server-first and then the same failure
    let wrong = scram_sha256(port, "hooked", "nope");
    assert_eq!(wrong.error_code, 58);
    assert!(wrong.server_first.is_some());
    for user in ["mallory", "boom", "weak", "hang"] {
        let started = std::time::Instant::now();
        let failed = scram_sha256(port, user, "pw");
        assert_eq!(failed.error_code, 58, "{user}");
        assert_eq!(failed.error_message, wrong.error_message, "{user}");
        let first = failed.server_first.expect("a challenge");
        assert!(first.ends_with(",i=4096"), "{first}");
        if user == "hang" {
            assert!(started.elapsed() < std::time::Duration::from_secs(3));
        }
    }
    // an unknown user's salt is the same on every attempt, like a real user's
    let a = scram_sha256(port, "mallory", "x").server_first.unwrap();
    let b = scram_sha256(port, "mallory", "y").server_first.unwrap();
    let other = scram_sha256(port, "trudy", "y").server_first.unwrap();
    assert_eq!(salt_of(&a), salt_of(&b));
    assert_ne!(salt_of(&a), salt_of(&other));
}

fn oauth_login(port: u16, token: &str) -> (Client, i16) {
    let mut c = Client::connect(port);
    let hs: SaslHandshakeResponse = c.call(
        &SaslHandshakeRequest::default().with_mechanism(s("OAUTHBEARER")),
        1,
    );
    assert_eq!(hs.error_code, 0);
    let r = authenticate(
        &mut c,
        format!("n,,\x01auth=Bearer {token}\x01\x01").as_bytes(),
    );
    (c, r.error_code)
}

fn metadata_with_operations(c: &mut Client, topics: &[&str]) -> MetadataResponse {
    c.call(
        &MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic(t))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(true)
            .with_include_cluster_authorized_operations(true)
            .with_include_topic_authorized_operations(true),
        10,
    )
}

#[test]
fn oauthbearer_validator_hook_and_authorized_operations_from_an_authorizer_hook() {
    let hooks = Arc::new(FakeHooks::default());
    let server = start(hooks.clone());
    let port = port(&server);
    for bad in ["forged", "raise"] {
        assert_eq!(oauth_login(port, bad).1, 58, "{bad}");
    }
    let (mut c, code) = oauth_login(port, "good-token");
    assert_eq!(code, 0);
    // the hook's principal is the one authorized: topics t-* only, READ/DESCRIBE/CREATE
    let before = hooks.authorize_calls.load(Ordering::SeqCst);
    let md = metadata_with_operations(&mut c, &["t-a", "t-b", "u-c"]);
    assert_eq!(
        hooks.authorize_calls.load(Ordering::SeqCst),
        before + 1,
        "one crossing for every decision of the request"
    );
    let ops: Vec<(String, i16, i32)> = md
        .topics
        .iter()
        .map(|t| {
            (
                t.name.as_ref().unwrap().to_string(),
                t.error_code,
                t.topic_authorized_operations,
            )
        })
        .collect();
    let read_describe_create = (1 << 3) | (1 << 5) | (1 << 8);
    assert_eq!(
        ops,
        vec![
            ("t-a".to_string(), 0, read_describe_create),
            ("t-b".to_string(), 0, read_describe_create),
            ("u-c".to_string(), 29, i32::MIN),
        ]
    );
    assert_eq!(md.cluster_authorized_operations, 0);
    // the same request again is answered from the cache
    metadata_with_operations(&mut c, &["t-a", "t-b", "u-c"]);
    assert_eq!(hooks.authorize_calls.load(Ordering::SeqCst), before + 1);
}

#[test]
fn the_same_action_twice_in_one_request_is_asked_once() {
    use kop_core::auth::authorizer::{Authorizer, AuthorizerKind};
    let hooks = Arc::new(FakeHooks::default());
    let authorizer = Authorizer::new(
        AuthorizerKind::Hook,
        Default::default(),
        Some(hooks.clone()),
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(60),
    );
    let ctx = HookContext {
        principal: Principal::user("token-user"),
        listener: "SASL_PLAINTEXT".into(),
        security_protocol: "SASL_PLAINTEXT",
        client_host: std::net::Ipv4Addr::LOCALHOST.into(),
        client_port: 1,
        api: "Metadata".into(),
        tenant: None,
    };
    let read = (Operation::Read, ResourceType::Topic, "t-a");
    let write = (Operation::Write, ResourceType::Topic, "t-a");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let decisions = runtime.block_on(authorizer.authorize(&ctx, &[read, write, read, write, read]));
    assert_eq!(decisions, vec![true, false, true, false, true]);
    assert_eq!(hooks.authorize_calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        authorizer
            .hook_calls
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
