//! The SASL state machine of a connection on a SASL_PLAINTEXT / SASL_SSL listener, as Kafka's
//! `SaslServerAuthenticator` runs it:
//!
//! 1. ApiVersions (any number) and SaslHandshake; anything else closes the connection.
//! 2. After SaslHandshake v1: SaslAuthenticate requests carry the tokens; after v0: raw
//!    length-prefixed tokens without a Kafka header.
//! 3. Authenticated: every API; a SaslHandshake starts a re-authentication (KIP-368); once the
//!    session lifetime has passed, any other request closes the connection.
//!
//! A failed authentication is answered after `failed_authentication_delay_ms` and the
//! connection is closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::Decodable;

use crate::auth::authorizer::{LoginAttempt, LoginConnection};
use crate::auth::scram::{ScramAlg, ScramServer};
use crate::auth::{jwt, plain, Principal, Security};
use crate::codec::frame::{encode_response, RequestFrame};
use crate::error::KafkaError;
use crate::handlers::sb;
use crate::tenants::{Choice, Tenants};

/// One mechanism's server side, mid-exchange.
pub enum Mechanism {
    /// The user name of the last PLAIN token (it may name the tenant, `tenants.rs`).
    Plain(Option<String>),
    OAuthBearer,
    Scram(ScramServer),
}

/// The result of one SASL token.
pub enum Step {
    /// Send this challenge; more tokens follow.
    Challenge(Vec<u8>),
    /// Authenticated as this principal; send the final token.
    Done(Principal, Vec<u8>),
    /// Failed, with Kafka's error message.
    Failed(String),
}

impl Mechanism {
    /// The user name a PLAIN login gave.
    fn plain_user(&self) -> Option<String> {
        match self {
            Mechanism::Plain(user) => user.clone(),
            _ => None,
        }
    }

    fn new(name: &str) -> Option<Mechanism> {
        match name {
            "PLAIN" => Some(Mechanism::Plain(None)),
            "OAUTHBEARER" => Some(Mechanism::OAuthBearer),
            other => ScramAlg::from_mechanism(other).map(|a| Mechanism::Scram(ScramServer::new(a))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Mechanism::Plain(_) => "PLAIN",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::Scram(ScramServer::Start { alg } | ScramServer::SentFirst { alg, .. }) => {
                alg.mechanism()
            }
            Mechanism::Scram(ScramServer::Finished) => "SCRAM",
        }
    }

    async fn step(&mut self, security: &Security, conn: &ConnInfo, token: &[u8]) -> Step {
        match self {
            Mechanism::OAuthBearer => {
                let checked = match jwt::oauthbearer_token(token) {
                    Ok(t) => security.validate_bearer_token(&t, conn.login()).await,
                    Err(why) => Err(why),
                };
                match checked {
                    Ok(principal) => Step::Done(principal, Vec::new()),
                    Err(why) => Step::Failed(format!(
                        "Authentication failed: invalid OAUTHBEARER token ({why})"
                    )),
                }
            }
            Mechanism::Plain(seen) => match plain::parse(token) {
                Err(e) => Step::Failed(e),
                Ok((user, password)) => {
                    *seen = Some(user.clone());
                    if security.check_plain(&user, &password) {
                        return Step::Done(Principal::user(user), Vec::new());
                    }
                    // KoP: the password `token:<jwt>` is a (Pulsar) token; the principal is its sub.
                    if let Some(t) = password.strip_prefix("token:") {
                        if security.plain_token_auth {
                            return match security.validate_bearer_token(t, conn.login()).await {
                                Ok(principal) => Step::Done(principal, Vec::new()),
                                Err(why) => Step::Failed(format!(
                                    "Authentication failed: invalid token ({why})"
                                )),
                            };
                        }
                    }
                    let invalid = "Authentication failed: Invalid username or password";
                    let Some(hooks) = security.hooks.clone().filter(|h| h.has_authenticator())
                    else {
                        return Step::Failed(invalid.into());
                    };
                    let login = LoginAttempt {
                        mechanism: "PLAIN".into(),
                        username: user.clone(),
                        password,
                        listener: conn.listener.clone(),
                        security_protocol: conn.protocol,
                        client_host: conn.peer.ip(),
                        client_port: conn.peer.port(),
                    };
                    let asked_at = std::time::Instant::now();
                    let answer =
                        tokio::time::timeout(security.hook_timeout, hooks.authenticate(login))
                            .await;
                    // A denial is an answer; a raise, a lost bridge or a timeout a failure.
                    security
                        .authenticator_hook_stats
                        .called(asked_at.elapsed(), matches!(answer, Ok(Ok(Ok(_)))));
                    match answer {
                        Ok(Ok(Ok(Some(principal)))) => Step::Done(principal, Vec::new()),
                        Ok(Ok(Ok(None))) => Step::Failed(invalid.into()),
                        Ok(Ok(Err(e))) => {
                            tracing::warn!(user = %user, error = %e, "authenticator hook raised; denying");
                            Step::Failed(invalid.into())
                        }
                        Ok(Err(_)) => {
                            tracing::warn!(user = %user, "authenticator hook bridge went away; denying");
                            Step::Failed(invalid.into())
                        }
                        Err(_) => {
                            tracing::warn!(user = %user, timeout_ms = security.hook_timeout.as_millis() as u64, "authenticator hook timed out; denying");
                            Step::Failed(invalid.into())
                        }
                    }
                }
            },
            Mechanism::Scram(server) => match server {
                ScramServer::Start { alg } => {
                    let alg = *alg;
                    let user = match ScramServer::user_of(token) {
                        Ok(u) => u,
                        Err(e) => return Step::Failed(e.0),
                    };
                    // With tenants, a user's credentials are in its tenant_roles tenant.
                    let tenant_security =
                        conn.tenants.as_ref().and_then(|t| t.login_security(&user));
                    let credential = tenant_security
                        .as_deref()
                        .unwrap_or(security)
                        .scram_login_credential(alg, &user, conn.login())
                        .await;
                    match server.first(token, |_| credential) {
                        Ok(challenge) => Step::Challenge(challenge),
                        Err(e) => Step::Failed(e.0),
                    }
                }
                _ => match server.last(token) {
                    Ok((user, last)) => Step::Done(Principal::user(user), last),
                    Err(e) => Step::Failed(e.0),
                },
            },
        }
    }
}

/// With tenants: who serves the connection a login authenticated (`tenants.rs`). A
/// re-authentication may not move it to another tenant. Err: the login fails with this reason.
fn choose_tenant(
    conn: &ConnInfo,
    current: &mut Option<Option<String>>,
    plain_user: Option<&str>,
    principal: &Principal,
) -> Result<Option<Choice>, String> {
    let Some(tenants) = &conn.tenants else {
        return Ok(None);
    };
    let choice = tenants
        .resolve(plain_user, principal, &conn.listener, true)
        .map_err(|why| format!("Authentication failed: {why}"))?;
    let key = match &choice {
        Choice::Tenant(t) => Some(t.key.clone()),
        Choice::Instance => None,
    };
    if let Some(before) = current.as_ref().filter(|before| **before != key) {
        return Err(format!(
            "Cannot change tenants during re-authentication from {}",
            before.as_deref().unwrap_or("the instance")
        ));
    }
    *current = Some(key);
    Ok(Some(choice))
}

pub enum State {
    /// Waiting for SaslHandshake (ApiVersions allowed).
    Handshake,
    /// Exchanging tokens; `raw` after SaslHandshake v0.
    Authenticating {
        mechanism: Box<Mechanism>,
        raw: bool,
        /// The principal being re-authenticated (KIP-368), if any.
        reauth: Option<(Principal, &'static str)>,
    },
    Authenticated {
        mechanism: &'static str,
        expires: Option<Instant>,
    },
}

/// What the connection does with a frame the SASL layer looked at.
pub enum Action {
    /// Not a SASL matter: dispatch it normally.
    Dispatch(RequestFrame),
    /// Write these bytes (a full frame), keep going.
    Respond(Bytes),
    /// Write these bytes after the failed-authentication delay, then close.
    FailAndClose(Bytes, String),
    /// Write these bytes, then close.
    RespondAndClose(Bytes, String),
    /// Close without answering.
    Close(String),
    /// Authenticated: write the bytes and switch the connection's principal (and, with
    /// tenants, its broker).
    Authenticated(Bytes, Principal, Option<Choice>),
}

/// Who is authenticating (for the authentication hooks).
pub struct ConnInfo {
    pub listener: String,
    pub protocol: &'static str,
    pub peer: std::net::SocketAddr,
    /// With the `tenants` option: where a login's tenant is looked up.
    pub tenants: Option<Arc<Tenants>>,
}

impl ConnInfo {
    fn login(&self) -> LoginConnection {
        LoginConnection {
            listener: self.listener.clone(),
            security_protocol: self.protocol,
            client_host: self.peer.ip(),
            client_port: self.peer.port(),
        }
    }
}

pub struct Sasl {
    pub state: State,
    conn: ConnInfo,
    /// The tenant of the last authentication (None: instance); a re-authentication keeps it.
    tenant: Option<Option<String>>,
}

/// When a session authenticated now ends (KIP-368), if it does.
fn session_expiry(security: &Security) -> Option<Instant> {
    let lifetime = security.session_lifetime_ms;
    (lifetime > 0).then(|| Instant::now() + Duration::from_millis(lifetime as u64))
}

fn raw_frame(token: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(4 + token.len());
    out.extend_from_slice(&(token.len() as i32).to_be_bytes());
    out.extend_from_slice(token);
    out.into()
}

impl Sasl {
    pub fn new(conn: ConnInfo) -> Sasl {
        Sasl {
            state: State::Handshake,
            conn,
            tenant: None,
        }
    }

    /// True when the next frame is a raw SASL token (after SaslHandshake v0).
    pub fn expects_raw_token(&self) -> bool {
        matches!(self.state, State::Authenticating { raw: true, .. })
    }

    pub fn failure_delay(security: &Security) -> Duration {
        Duration::from_millis(security.failed_auth_delay_ms)
    }

    /// A raw token (SaslHandshake v0 flow).
    pub async fn raw_token(&mut self, security: &Security, token: &[u8]) -> Action {
        let State::Authenticating { mechanism, .. } = &mut self.state else {
            return Action::Close("unexpected SASL token".into());
        };
        match mechanism.step(security, &self.conn, token).await {
            Step::Challenge(c) => Action::Respond(raw_frame(&c)),
            Step::Done(principal, last) => {
                let name = mechanism.name();
                let plain_user = mechanism.plain_user();
                let choice = match choose_tenant(
                    &self.conn,
                    &mut self.tenant,
                    plain_user.as_deref(),
                    &principal,
                ) {
                    Ok(c) => c,
                    Err(why) => return Action::FailAndClose(Bytes::new(), why),
                };
                self.state = State::Authenticated {
                    mechanism: name,
                    expires: session_expiry(security),
                };
                Action::Authenticated(raw_frame(&last), principal, choice)
            }
            // Kafka closes the connection; a v0 client has no way to read an error.
            Step::Failed(why) => Action::FailAndClose(Bytes::new(), why),
        }
    }

    /// A Kafka request on a SASL listener.
    pub async fn request(&mut self, security: &Security, frame: RequestFrame) -> Action {
        let key = frame.api_key;
        let version = frame.header.request_api_version;
        let correlation_id = frame.header.correlation_id;
        match (&mut self.state, key) {
            (State::Handshake, ApiKey::ApiVersions) => Action::Dispatch(frame),
            (State::Handshake, ApiKey::SaslHandshake) => self.handshake(security, frame, None),
            (State::Handshake, other) => Action::Close(format!(
                "unexpected {other:?} request before SASL authentication"
            )),
            (State::Authenticating { raw: false, .. }, ApiKey::SaslAuthenticate) => {
                self.authenticate(security, frame).await
            }
            (State::Authenticating { .. }, other) => Action::Close(format!(
                "unexpected {other:?} request during SASL authentication"
            )),
            (State::Authenticated { mechanism, .. }, ApiKey::SaslHandshake) => {
                let m = *mechanism;
                self.handshake(security, frame, Some(m))
            }
            (State::Authenticated { expires, .. }, _) => {
                if expires.is_some_and(|e| Instant::now() >= e) {
                    return Action::Close(format!(
                        "SASL session expired; {key:?} v{version} (correlation id {correlation_id}) not served before re-authentication"
                    ));
                }
                Action::Dispatch(frame)
            }
        }
    }

    fn handshake(
        &mut self,
        security: &Security,
        frame: RequestFrame,
        reauth_of: Option<&'static str>,
    ) -> Action {
        let version = frame.header.request_api_version;
        let correlation_id = frame.header.correlation_id;
        let mut body = frame.body;
        let req = match SaslHandshakeRequest::decode(&mut body, version) {
            Ok(r) => r,
            Err(e) => return Action::Close(format!("bad SaslHandshake: {e}")),
        };
        let mechanisms = security.mechanisms.iter().map(|m| sb(m.clone())).collect();
        let wanted = req.mechanism.as_str();
        let mut resp = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
        let encode = |resp: &SaslHandshakeResponse| {
            encode_response(ApiKey::SaslHandshake, version, correlation_id, resp)
        };
        let mechanism = security
            .mechanism_enabled(wanted)
            .then(|| Mechanism::new(wanted))
            .flatten();
        let Some(mechanism) = mechanism else {
            resp.error_code = KafkaError::UnsupportedSaslMechanism.code();
            return match encode(&resp) {
                Ok(b) => {
                    Action::RespondAndClose(b, format!("unsupported SASL mechanism {wanted:?}"))
                }
                Err(e) => Action::Close(e.to_string()),
            };
        };
        let reauth = match reauth_of {
            None => None,
            Some(previous) => {
                if version == 0 || previous != mechanism.name() {
                    resp.error_code = KafkaError::IllegalSaslState.code();
                    return match encode(&resp) {
                        Ok(b) => Action::RespondAndClose(
                            b,
                            "re-authentication must use SaslHandshake v1 and the same mechanism"
                                .into(),
                        ),
                        Err(e) => Action::Close(e.to_string()),
                    };
                }
                Some(previous)
            }
        };
        match encode(&resp) {
            Ok(b) => {
                let reauth = reauth.map(|m| (Principal::anonymous(), m));
                self.state = State::Authenticating {
                    mechanism: Box::new(mechanism),
                    raw: version == 0,
                    reauth,
                };
                Action::Respond(b)
            }
            Err(e) => Action::Close(e.to_string()),
        }
    }

    /// Sets the principal a re-authentication must keep (called by the connection).
    pub fn set_reauth_principal(&mut self, current: &Principal) {
        if let State::Authenticating {
            reauth: Some((p, _)),
            ..
        } = &mut self.state
        {
            *p = current.clone();
        }
    }

    async fn authenticate(&mut self, security: &Security, frame: RequestFrame) -> Action {
        let version = frame.header.request_api_version;
        let correlation_id = frame.header.correlation_id;
        let mut body = frame.body;
        let req = match SaslAuthenticateRequest::decode(&mut body, version) {
            Ok(r) => r,
            Err(e) => return Action::Close(format!("bad SaslAuthenticate: {e}")),
        };
        let State::Authenticating {
            mechanism, reauth, ..
        } = &mut self.state
        else {
            return Action::Close("unexpected SaslAuthenticate".into());
        };
        let encode = |resp: &SaslAuthenticateResponse| {
            encode_response(ApiKey::SaslAuthenticate, version, correlation_id, resp)
        };
        let fail = |why: String| {
            let resp = SaslAuthenticateResponse::default()
                .with_error_code(KafkaError::SaslAuthenticationFailed.code())
                .with_error_message(Some(sb(why.clone())));
            match encode(&resp) {
                Ok(b) => Action::FailAndClose(b, why),
                Err(e) => Action::Close(e.to_string()),
            }
        };
        match mechanism.step(security, &self.conn, &req.auth_bytes).await {
            Step::Challenge(c) => {
                match encode(&SaslAuthenticateResponse::default().with_auth_bytes(c.into())) {
                    Ok(b) => Action::Respond(b),
                    Err(e) => Action::Close(e.to_string()),
                }
            }
            Step::Failed(why) => fail(why),
            Step::Done(principal, last) => {
                if let Some((previous, _)) = reauth {
                    if *previous != principal {
                        return fail(format!(
                            "Cannot change principals during re-authentication from {previous}: {principal}"
                        ));
                    }
                }
                let plain_user = mechanism.plain_user();
                let choice = match choose_tenant(
                    &self.conn,
                    &mut self.tenant,
                    plain_user.as_deref(),
                    &principal,
                ) {
                    Ok(c) => c,
                    Err(why) => return fail(why),
                };
                let lifetime = security.session_lifetime_ms;
                let mut resp = SaslAuthenticateResponse::default().with_auth_bytes(last.into());
                if version >= 1 {
                    resp.session_lifetime_ms = lifetime;
                }
                self.state = State::Authenticated {
                    mechanism: mechanism.name(),
                    expires: session_expiry(security),
                };
                match encode(&resp) {
                    Ok(b) => Action::Authenticated(b, principal, choice),
                    Err(e) => Action::Close(e.to_string()),
                }
            }
        }
    }
}
