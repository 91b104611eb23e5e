//! The schema registry's HTTP/1.1 listener: a small hand-written responder like the metrics
//! listener's (kop has no HTTP framework; the registry needs only Content-Length bodies and
//! keep-alive). Authentication and authorization are the Kafka listeners': HTTPS with their
//! certificate when they use TLS (a client certificate is a principal), HTTP basic against
//! the SASL PLAIN/SCRAM users and the PLAIN authenticator hook, then kop's authorizer. With
//! the `tenants` option the login then selects the tenant whose registry, ACLs and SCRAM
//! credentials serve the request, as a Kafka login selects its broker (`tenants.rs`).

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::error::{RegistryError, Result};
use super::routes::{self, Access, Reply, Request};
use super::service::Registry;
use crate::auth::acl::{Operation, ResourceType, CLUSTER_NAME};
use crate::auth::authorizer::{HookContext, LoginAttempt};
use crate::auth::scram::{ScramAlg, ScramCredential};
use crate::auth::{plain, Principal, Security};
use crate::tenants::{Choice, Tenants};

/// How long a connection may stay idle between requests (and take to send one).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_HEAD: usize = 16 * 1024;
/// Schemas are small; Confluent's own limit on a request is of this order too.
const MAX_BODY: usize = 8 * 1024 * 1024;
/// The listener's name in authorizer and authenticator hook calls.
pub const LISTENER: &str = "SCHEMA_REGISTRY";
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub struct Served {
    pub registry: Registry,
    pub security: Arc<Security>,
    /// Clients must authenticate: some Kafka listener uses SASL.
    pub require_auth: bool,
    /// With the `tenants` option: each tenant's registry (`registry` then serves nobody).
    pub tenants: Option<TenantRegistries>,
}

/// The registries of the `tenants` option: by `TENANT/NS`, each tenant's registry and
/// security (ACLs, SCRAM credentials).
pub struct TenantRegistries {
    pub tenants: Arc<Tenants>,
    pub registries: HashMap<String, (Registry, Arc<Security>)>,
}

/// Who a request is: its principal and, for credentials a PLAIN login would take (SASL users,
/// `token:` passwords, the authenticator hook), the user name, which may name the tenant.
struct Login {
    principal: Principal,
    plain_user: Option<String>,
}

/// How long a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the listener until the runtime stops: HTTPS when the Kafka listeners use TLS (their
/// certificate and `ssl_client_auth`), else plain HTTP.
pub async fn serve(listener: TcpListener, served: Arc<Served>) {
    let acceptor = served
        .security
        .tls
        .clone()
        .map(tokio_rustls::TlsAcceptor::from);
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                match &acceptor {
                    Some(a) => {
                        tokio::spawn(tls_connection(a.clone(), stream, peer, served.clone()));
                    }
                    None => {
                        tokio::spawn(connection(stream, peer, served.clone(), None));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "schema registry listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The TLS handshake; a verified client certificate names the principal (mTLS, through
/// `ssl_principal_mapping_rules`) unless the request brings basic credentials.
async fn tls_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    served: Arc<Served>,
) {
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "schema registry: TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first().cloned());
    let principal = match leaf {
        Some(leaf) => match served.security.tls_principal.principal(&leaf) {
            Some(p) => Some(p),
            None => return,
        },
        None => None,
    };
    connection(stream, peer, served, principal).await;
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    served: Arc<Served>,
    certificate: Option<Principal>,
) {
    let mut buffered = Vec::new();
    loop {
        let read =
            tokio::time::timeout(IDLE_TIMEOUT, read_request(&mut stream, &mut buffered)).await;
        let (req, headers, keep_alive) = match read {
            Ok(Ok(Some(r))) => r,
            Ok(Err(e)) => {
                let _ = write_reply(&mut stream, Err(e), false).await;
                return;
            }
            _ => return,
        };
        let reply = served
            .answer(req, &headers, peer, certificate.as_ref())
            .await;
        if write_reply(&mut stream, reply, keep_alive).await.is_err() || !keep_alive {
            let _ = stream.shutdown().await;
            return;
        }
    }
}

/// Header names (lower case) and values of one request.
pub type Headers = Vec<(String, String)>;

fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Reads one request (None: the client closed the connection between requests).
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffered: &mut Vec<u8>,
) -> Result<Option<(Request, Headers, bool)>> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buffered.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buffered.len() > MAX_HEAD {
            return Err(RegistryError::bad_request("request head too large"));
        }
        let n = stream.read(&mut chunk).await.map_err(RegistryError::from)?;
        if n == 0 {
            return Ok(None);
        }
        buffered.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffered[..head_end]).into_owned();
    let (mut req, headers, http10) = parse_head(&head)?;
    if header(&headers, "transfer-encoding").is_some() {
        return Err(RegistryError::bad_request(
            "chunked request bodies are not supported; send Content-Length",
        ));
    }
    let len: usize = header(&headers, "content-length")
        .map(|v| {
            v.trim()
                .parse()
                .map_err(|_| RegistryError::bad_request("bad Content-Length"))
        })
        .transpose()?
        .unwrap_or(0);
    if len > MAX_BODY {
        return Err(RegistryError::bad_request("request body too large"));
    }
    buffered.drain(..head_end);
    while buffered.len() < len {
        let n = stream.read(&mut chunk).await.map_err(RegistryError::from)?;
        if n == 0 {
            return Ok(None);
        }
        buffered.extend_from_slice(&chunk[..n]);
    }
    req.body = buffered.drain(..len).collect();
    let connection = header(&headers, "connection")
        .unwrap_or("")
        .to_ascii_lowercase();
    let keep_alive = if http10 {
        connection == "keep-alive"
    } else {
        connection != "close"
    };
    Ok(Some((req, headers, keep_alive)))
}

/// Request line and headers; the bool is HTTP/1.0.
pub fn parse_head(head: &str) -> Result<(Request, Headers, bool)> {
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (method, target, version) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Err(RegistryError::bad_request("not an HTTP/1.x request"));
    }
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect::<Result<Vec<_>>>()?;
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((percent_decode(k)?, percent_decode(&v.replace('+', " "))?))
        })
        .collect::<Result<Vec<_>>>()?;
    let req = Request {
        method: method.to_string(),
        segments,
        query,
        body: Vec::new(),
    };
    Ok((req, headers, version == "HTTP/1.0"))
}

fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| RegistryError::bad_request("bad percent-encoding in the URL"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| RegistryError::bad_request("the URL is not UTF-8"))
}

async fn write_reply<S: AsyncWrite + Unpin>(
    stream: &mut S,
    reply: Result<Reply>,
    keep_alive: bool,
) -> io::Result<()> {
    let (status, content_type, body, extra) = match reply {
        Ok(Reply::Json(v)) => (200, CONTENT_TYPE, v.to_string(), ""),
        Ok(Reply::Text(t)) => (200, "text/plain", t, ""),
        Err(e) => {
            let extra = if e.status == 401 {
                "WWW-Authenticate: Basic realm=\"kop\"\r\n"
            } else {
                ""
            };
            (e.status, CONTENT_TYPE, e.body(), extra)
        }
    };
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        _ => "Internal Server Error",
    };
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {connection}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    stream.write_all(&out).await?;
    stream.flush().await
}

/// `Authorization: Basic ...` as (user, password).
pub fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

impl Served {
    fn protocol(&self) -> &'static str {
        match (self.require_auth, self.security.tls.is_some()) {
            (true, true) => "SASL_SSL",
            (true, false) => "SASL_PLAINTEXT",
            (false, true) => "SSL",
            (false, false) => "PLAINTEXT",
        }
    }

    async fn answer(
        &self,
        req: Request,
        headers: &Headers,
        peer: SocketAddr,
        certificate: Option<&Principal>,
    ) -> Result<Reply> {
        let login = self.authenticate(headers, peer, certificate).await?;
        let (registry, security) = self.tenant(&login)?;
        let (action, access) = routes::route(&req)?;
        let ctx = HookContext {
            principal: login.principal,
            listener: LISTENER.into(),
            security_protocol: self.protocol(),
            client_host: peer.ip(),
            client_port: peer.port(),
            api: "SchemaRegistry".into(),
            tenant: self.security.tenant.clone(),
        };
        Self::authorize(registry, security, &ctx, &access).await?;
        let reply = tokio::task::block_in_place(|| routes::execute(registry, action))?;
        if access != Access::SubjectList {
            return Ok(reply);
        }
        // Only the subjects the client may see.
        let Reply::Json(serde_json::Value::Array(all)) = reply else {
            return Ok(reply);
        };
        let names: Vec<String> = all
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let actions: Vec<_> = names
            .iter()
            .map(|s| {
                (
                    Operation::Describe,
                    ResourceType::Topic,
                    routes::topic_of(s),
                )
            })
            .collect();
        let allowed = security.authorizer.authorize(&ctx, &actions).await;
        let visible: Vec<_> = names
            .into_iter()
            .zip(allowed)
            .filter(|(_, ok)| *ok)
            .map(|(s, _)| s)
            .collect();
        Ok(Reply::Json(serde_json::json!(visible)))
    }

    /// The registry and security (ACLs) serving a login: the instance's, or with tenants the
    /// tenant the login selects (the PLAIN user name `tenant` or `tenant/namespace`, else the
    /// principal's `tenant_roles` entry); no tenant is 401 with the reason.
    fn tenant(&self, login: &Login) -> Result<(&Registry, &Arc<Security>)> {
        let Some(t) = &self.tenants else {
            return Ok((&self.registry, &self.security));
        };
        let refuse = |why: String| {
            tracing::info!(principal = %login.principal, %why, "schema registry: no tenant");
            RegistryError::unauthorized_because(&why)
        };
        match t.tenants.resolve(
            login.plain_user.as_deref(),
            &login.principal,
            LISTENER,
            self.require_auth,
        ) {
            Ok(Choice::Tenant(tenant)) => {
                let (registry, security) = &t.registries[&tenant.key];
                Ok((registry, security))
            }
            Ok(Choice::Instance) => Err(refuse(format!(
                "{} has no tenant (the registry serves tenants only)",
                login.principal
            ))),
            Err(why) => Err(refuse(why)),
        }
    }

    async fn authorize(
        registry: &Registry,
        security: &Security,
        ctx: &HookContext,
        access: &Access,
    ) -> Result<()> {
        let (op, rtype, names): (Operation, ResourceType, Vec<String>) = match access {
            Access::Anyone | Access::SubjectList => return Ok(()),
            Access::Cluster(op) => (*op, ResourceType::Cluster, vec![CLUSTER_NAME.into()]),
            Access::Subject(s, op) => (*op, ResourceType::Topic, vec![routes::topic_of(s).into()]),
            Access::SchemaId(id) => {
                let uses = tokio::task::block_in_place(|| registry.uses_of(*id, true))?;
                if uses.is_empty() {
                    (
                        Operation::Describe,
                        ResourceType::Cluster,
                        vec![CLUSTER_NAME.into()],
                    )
                } else {
                    let topics = uses
                        .iter()
                        .map(|(s, _)| routes::topic_of(s).to_string())
                        .collect();
                    (Operation::Describe, ResourceType::Topic, topics)
                }
            }
        };
        let actions: Vec<_> = names.iter().map(|n| (op, rtype, n.as_str())).collect();
        let allowed = security.authorizer.authorize(ctx, &actions).await;
        if allowed.iter().any(|&a| a) {
            return Ok(());
        }
        let principal = format!("{}:{}", ctx.principal.principal_type, ctx.principal.name);
        Err(RegistryError::denied(
            &principal,
            op.name(),
            &format!("{} {}", rtype.name(), names.join(",")),
        ))
    }

    /// The client's principal: from HTTP basic credentials, else the verified client
    /// certificate, else ANONYMOUS (refused when a Kafka listener uses SASL).
    async fn authenticate(
        &self,
        headers: &Headers,
        peer: SocketAddr,
        certificate: Option<&Principal>,
    ) -> Result<Login> {
        let Some(value) = header(headers, "authorization") else {
            let principal = match certificate {
                Some(p) => p.clone(),
                None if self.require_auth => return Err(RegistryError::unauthorized()),
                None => Principal::anonymous(),
            };
            return Ok(Login {
                principal,
                plain_user: None,
            });
        };
        let (user, password) = basic_credentials(value).ok_or_else(RegistryError::unauthorized)?;
        let security = &self.security;
        if security.check_plain(&user, &password) {
            return Ok(Login {
                principal: Principal::user(user.clone()),
                plain_user: Some(user),
            });
        }
        // A SCRAM user is a SCRAM login: its tenant is its tenant_roles entry.
        if self.scram_matches(&user, &password) {
            return Ok(Login {
                principal: Principal::user(user),
                plain_user: None,
            });
        }
        let plain = |principal| Login {
            principal,
            plain_user: Some(user.clone()),
        };
        if let Some(t) = password.strip_prefix("token:") {
            if security.plain_token_auth {
                let conn = crate::auth::authorizer::LoginConnection {
                    listener: LISTENER.into(),
                    security_protocol: self.protocol(),
                    client_host: peer.ip(),
                    client_port: peer.port(),
                };
                return security
                    .validate_bearer_token(t, conn)
                    .await
                    .map(plain)
                    .map_err(|_| RegistryError::unauthorized());
            }
        }
        let Some(hooks) = security.hooks.clone().filter(|h| h.has_authenticator()) else {
            return Err(RegistryError::unauthorized());
        };
        let login = LoginAttempt {
            mechanism: "PLAIN".into(),
            username: user.clone(),
            password,
            listener: LISTENER.into(),
            security_protocol: self.protocol(),
            client_host: peer.ip(),
            client_port: peer.port(),
        };
        match tokio::time::timeout(security.hook_timeout, hooks.authenticate(login)).await {
            Ok(Ok(Ok(Some(principal)))) => Ok(plain(principal)),
            _ => Err(RegistryError::unauthorized()),
        }
    }

    /// A user whose SCRAM credential (set with kafka-configs / AlterUserScramCredentials)
    /// matches the password; with tenants the credentials are in the user's `tenant_roles`
    /// tenant, as for a SCRAM login on the Kafka listeners.
    fn scram_matches(&self, user: &str, password: &str) -> bool {
        let tenant = self
            .tenants
            .as_ref()
            .and_then(|t| t.tenants.login_security(user));
        let security = tenant.as_ref().unwrap_or(&self.security);
        [ScramAlg::Sha256, ScramAlg::Sha512].into_iter().any(|alg| {
            security.scram_credential(alg, user).is_some_and(|stored| {
                let derived =
                    ScramCredential::from_password(alg, password, &stored.salt, stored.iterations);
                plain::constant_time_eq(&derived.stored_key, &stored.stored_key)
            })
        })
    }
}
