//! Calls to the other kop instances sharing the storage, as Kafka brokers call each other: the
//! transaction coordinator writes markers on partitions led elsewhere (WriteTxnMarkers), and a
//! partition leader or group coordinator asks the transaction coordinator elsewhere to verify
//! or add a partition or a group (AddPartitionsToTxn v5, AddOffsetsToTxn).
//!
//! One connection per peer on the listener `inter_instance_listener` (the first listener by
//! default; Kafka's `inter.broker.listener.name`), authenticated with `inter_instance_sasl_*` on
//! SASL listeners, so the peer authorizes kop as that user (it needs CLUSTER_ACTION, as Kafka's
//! broker principal). On a TLS listener the peer's certificate must chain to `ssl_cafile` and
//! this instance presents its own certificate, as Kafka brokers use their keystore and
//! truststore. Calls are pipelined on the connection; a broken connection fails its calls and
//! the next call opens a new one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_rustls::TlsConnector;

use crate::auth::scram::ScramAlg;
use crate::auth::scram_client::ScramClient;
use crate::config::{SecurityProtocol, ServerConfig};
use crate::error::KafkaError;
use crate::storage::Endpoint;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A marker on Pulsar waits for its receipt; anything slower than this is a stuck peer.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A peer that stays down is logged about this often (every failure at debug level).
const WARN_EVERY: Duration = Duration::from_secs(30);
/// The largest response a peer may send (kop's own requests have small answers).
const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// How kop authenticates to a peer's SASL listener.
struct Credentials {
    mechanism: String,
    user: String,
    password: String,
}

/// A connection to a peer: plain TCP or TLS.
trait PeerStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> PeerStream for S {}
type Stream = Box<dyn PeerStream>;

pub struct Peers {
    client_id: String,
    listener: String,
    protocol: SecurityProtocol,
    credentials: Option<Credentials>,
    /// On a TLS listener: how to reach peers, or why it cannot.
    tls: Option<Result<TlsConnector, String>>,
    links: Mutex<HashMap<i32, Arc<Link>>>,
    /// When a failed call to each peer was last logged as a warning.
    warned: Mutex<HashMap<i32, Instant>>,
}

/// One connection to a peer: callers write under the writer lock and wait on their reply; one
/// task reads the responses and hands them out by correlation id.
struct Link {
    endpoint: Endpoint,
    writer: tokio::sync::Mutex<WriteHalf<Stream>>,
    waiting: Mutex<HashMap<i32, oneshot::Sender<Bytes>>>,
    next_correlation: AtomicI32,
    broken: AtomicBool,
}

impl Peers {
    pub fn new(config: &ServerConfig) -> Peers {
        let listener = config.inter_instance_listener();
        let protocol = config
            .security_protocols()
            .ok()
            .and_then(|p| p.get(&listener.name).copied())
            .unwrap_or(SecurityProtocol::Plaintext);
        let credentials = match (
            &config.inter_instance_sasl_user,
            &config.inter_instance_sasl_password,
        ) {
            (Some(user), Some(password)) => Some(Credentials {
                mechanism: config.inter_instance_sasl_mechanism.clone(),
                user: user.clone(),
                password: password.clone(),
            }),
            _ => None,
        };
        let tls = protocol.is_tls().then(|| {
            crate::auth::tls::client_config(config).map(|c| TlsConnector::from(Arc::new(c)))
        });
        Peers {
            client_id: crate::tenants::instance_client_id(config),
            listener: listener.name,
            protocol,
            credentials,
            tls,
            links: Mutex::new(HashMap::new()),
            warned: Mutex::new(HashMap::new()),
        }
    }

    /// The listener name whose endpoint peers are called on.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// Sends `req` to the peer `node` at `endpoint` and returns its response. A peer that
    /// cannot be reached or answers garbage is COORDINATOR_NOT_AVAILABLE for the caller to
    /// retry; the reason is logged (at most every `WARN_EVERY` per peer: callers retry often
    /// while a peer is down).
    pub async fn call<R: Request>(
        &self,
        node: i32,
        endpoint: &Endpoint,
        req: &R,
        version: i16,
    ) -> Result<R::Response, KafkaError> {
        let result = async {
            let link = self.link(node, endpoint).await?;
            let called =
                tokio::time::timeout(CALL_TIMEOUT, link.call(&self.client_id, req, version));
            match called.await {
                Ok(r) => r,
                Err(_) => {
                    link.close();
                    Err(format!("no answer in {CALL_TIMEOUT:?}"))
                }
            }
        }
        .await;
        result.map_err(|reason| {
            if !self.should_warn(node) {
                tracing::debug!(node, %reason, "call to a peer kop instance failed");
                return KafkaError::CoordinatorNotAvailable;
            }
            tracing::warn!(
                node,
                host = %endpoint.host,
                port = endpoint.port,
                api = ?ApiKey::try_from(R::KEY),
                %reason,
                "call to a peer kop instance failed"
            );
            KafkaError::CoordinatorNotAvailable
        })
    }

    /// Whether a failed call to `node` is logged as a warning now.
    fn should_warn(&self, node: i32) -> bool {
        let now = Instant::now();
        let mut warned = self.warned.lock();
        let due = warned
            .get(&node)
            .is_none_or(|at| now.duration_since(*at) >= WARN_EVERY);
        if due {
            warned.insert(node, now);
        }
        due
    }

    async fn link(&self, node: i32, endpoint: &Endpoint) -> Result<Arc<Link>, String> {
        if let Some(link) = self.links.lock().get(&node) {
            if !link.broken.load(Ordering::Acquire) && link.endpoint == *endpoint {
                return Ok(link.clone());
            }
            link.close();
        }
        let link = self.connect(endpoint).await?;
        if let Some(old) = self.links.lock().insert(node, link.clone()) {
            old.close();
        }
        Ok(link)
    }

    async fn connect(&self, endpoint: &Endpoint) -> Result<Arc<Link>, String> {
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, self.open(endpoint))
            .await
            .map_err(|_| "connect timed out".to_string())??;
        if self.protocol.is_sasl() {
            tokio::time::timeout(CALL_TIMEOUT, self.authenticate(&mut stream))
                .await
                .map_err(|_| "SASL authentication timed out".to_string())??;
        }
        let (reader, writer) = tokio::io::split(stream);
        let link = Arc::new(Link {
            endpoint: endpoint.clone(),
            writer: tokio::sync::Mutex::new(writer),
            waiting: Mutex::new(HashMap::new()),
            next_correlation: AtomicI32::new(0),
            broken: AtomicBool::new(false),
        });
        tokio::spawn(read_responses(reader, link.clone()));
        Ok(link)
    }

    /// A TCP connection to the peer, with TLS on a TLS listener.
    async fn open(&self, endpoint: &Endpoint) -> Result<Stream, String> {
        let addr = (endpoint.host.as_str(), endpoint.port as u16);
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).ok();
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let connector = tls.as_ref().map_err(Clone::clone)?;
        let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
            .map_err(|e| format!("TLS server name {:?}: {e}", endpoint.host))?;
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        Ok(Box::new(stream))
    }

    /// SaslHandshake + SaslAuthenticate rounds on a fresh connection.
    async fn authenticate(&self, stream: &mut Stream) -> Result<(), String> {
        let c = self.credentials.as_ref().ok_or_else(|| {
            format!(
                "listener {} needs SASL: set inter_instance_sasl_user and inter_instance_sasl_password",
                self.listener
            )
        })?;
        let handshake = SaslHandshakeRequest::default().with_mechanism(sb(&c.mechanism));
        let resp = roundtrip(stream, &self.client_id, &handshake, 1).await?;
        if resp.error_code != 0 {
            return Err(format!(
                "the peer does not enable {} (error {})",
                c.mechanism, resp.error_code
            ));
        }
        let step =
            |token: Vec<u8>| SaslAuthenticateRequest::default().with_auth_bytes(token.into());
        let answer = |resp: SaslAuthenticateResponse| {
            if resp.error_code == 0 {
                Ok(resp.auth_bytes)
            } else {
                Err(format!(
                    "SASL authentication as {} failed: {}",
                    c.user,
                    resp.error_message.as_deref().unwrap_or("")
                ))
            }
        };
        match ScramAlg::from_mechanism(&c.mechanism) {
            None => {
                let token = format!("\0{}\0{}", c.user, c.password).into_bytes();
                answer(roundtrip(stream, &self.client_id, &step(token), 2).await?)?;
            }
            Some(alg) => {
                let mut scram = ScramClient::new(alg, &c.user, &c.password);
                let first = roundtrip(stream, &self.client_id, &step(scram.first()), 2).await?;
                let last = scram.last(&answer(first)?).map_err(|e| e.0)?;
                let done = answer(roundtrip(stream, &self.client_id, &step(last), 2).await?)?;
                scram.verify(&done).map_err(|e| e.0)?;
            }
        }
        Ok(())
    }
}

impl Link {
    /// Stops using the connection and closes it (its reader task then ends, failing the calls
    /// still waiting).
    fn close(self: &Arc<Self>) {
        if self.broken.swap(true, Ordering::AcqRel) {
            return;
        }
        let link = self.clone();
        tokio::spawn(async move {
            let _ = link.writer.lock().await.shutdown().await;
        });
    }

    async fn call<R: Request>(
        &self,
        client_id: &str,
        req: &R,
        version: i16,
    ) -> Result<R::Response, String> {
        let correlation = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request(client_id, correlation, req, version)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut writer = self.writer.lock().await;
            self.waiting.lock().insert(correlation, tx);
            if let Err(e) = writer.write_all(&frame).await {
                self.broken.store(true, Ordering::Release);
                self.waiting.lock().remove(&correlation);
                return Err(format!("send: {e}"));
            }
        }
        let frame = rx.await.map_err(|_| "the connection closed".to_string())?;
        decode_response::<R>(frame, version)
    }
}

/// Reads response frames until the connection fails, handing each to its caller; then marks
/// the link broken and drops the remaining callers' senders (they see the connection closed).
async fn read_responses(mut reader: ReadHalf<Stream>, link: Arc<Link>) {
    loop {
        let frame = match read_frame(&mut reader).await {
            Ok(f) => f,
            Err(reason) => {
                tracing::debug!(%reason, "a peer connection ended");
                break;
            }
        };
        let Some(correlation) = frame.get(..4) else {
            break;
        };
        let correlation = i32::from_be_bytes(correlation.try_into().expect("4 bytes"));
        if let Some(tx) = link.waiting.lock().remove(&correlation) {
            let _ = tx.send(frame);
        }
    }
    link.broken.store(true, Ordering::Release);
    link.waiting.lock().clear();
}

async fn read_frame<S: AsyncReadExt + Unpin>(reader: &mut S) -> Result<Bytes, String> {
    let size = reader.read_i32().await.map_err(|e| e.to_string())?;
    let size = usize::try_from(size)
        .ok()
        .filter(|&s| s <= MAX_RESPONSE_BYTES)
        .ok_or_else(|| format!("bad response size {size}"))?;
    let mut buf = vec![0u8; size];
    reader
        .read_exact(&mut buf)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Bytes::from(buf))
}

/// One request and its response on a connection nothing else uses yet (SASL).
async fn roundtrip<R: Request>(
    stream: &mut Stream,
    client_id: &str,
    req: &R,
    version: i16,
) -> Result<R::Response, String> {
    let frame = encode_request(client_id, 0, req, version)?;
    stream
        .write_all(&frame)
        .await
        .map_err(|e| format!("send: {e}"))?;
    decode_response::<R>(read_frame(stream).await?, version)
}

fn encode_request<R: Request>(
    client_id: &str,
    correlation: i32,
    req: &R,
    version: i16,
) -> Result<Bytes, String> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(sb(client_id)));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header
        .encode(&mut buf, R::header_version(version))
        .and_then(|()| req.encode(&mut buf, version))
        .map_err(|e| format!("encode: {e}"))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}

/// A response frame (after its size): the response header, then the response.
fn decode_response<R: Request>(mut frame: Bytes, version: i16) -> Result<R::Response, String> {
    ResponseHeader::decode(&mut frame, R::Response::header_version(version))
        .map_err(|e| format!("decode header: {e}"))?;
    R::Response::decode(&mut frame, version).map_err(|e| format!("decode: {e}"))
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
