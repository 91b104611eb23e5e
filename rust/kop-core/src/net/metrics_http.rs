//! The metrics listener: a minimal HTTP/1.1 responder for `GET /metrics`, `/health` and
//! `/ready` (one request per connection, then close; Prometheus and probes need no more).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::auth::Security;
use crate::broker::Broker;
use crate::config::parse_host_port;
use crate::metrics::text::CONTENT_TYPE;
use crate::tenants::Tenants;

/// How long a client has to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Request heads larger than this are refused.
const MAX_HEAD: usize = 8 * 1024;

/// What a scrape reads: the instance's broker and security, and the tenants' brokers.
type Scraped = (Arc<Broker>, Arc<Security>, Option<Arc<Tenants>>);

/// What `/ready` and `/metrics` look at; filled in as the server starts.
#[derive(Default)]
pub struct Exposed {
    server: OnceLock<Scraped>,
    listening: AtomicBool,
    stopping: AtomicBool,
}

impl Exposed {
    /// Storage is open.
    pub fn opened(
        &self,
        broker: Arc<Broker>,
        security: Arc<Security>,
        tenants: Option<Arc<Tenants>>,
    ) {
        let _ = self.server.set((broker, security, tenants));
    }

    /// The Kafka listeners accept connections.
    pub fn listening(&self) {
        self.listening.store(true, Ordering::Release);
    }

    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Release);
    }

    /// Ok when the server can serve clients; else why not (one line).
    pub fn ready(&self) -> Result<(), String> {
        if self.stopping.load(Ordering::Acquire) {
            return Err("stopping".into());
        }
        let Some((broker, _, _)) = self.server.get() else {
            return Err("storage is being opened".into());
        };
        if !self.listening.load(Ordering::Acquire) {
            return Err("Kafka listeners are not accepting connections yet".into());
        }
        if let Some(e) = broker.metrics.remote_error.lock().as_ref() {
            return Err(format!("Pulsar is not reachable: {e}"));
        }
        Ok(())
    }

    fn metrics(&self) -> Option<String> {
        let (broker, security, tenants) = self.server.get()?;
        Some(super::metrics_scrape::render(
            broker,
            Some(security),
            tenants.as_deref(),
        ))
    }
}

/// Binds an HTTP listener — the metrics one, the schema registry's — (so a taken port fails
/// the start) and returns it; `what` names it in errors.
pub fn bind(spec: &str, what: &str) -> io::Result<std::net::TcpListener> {
    let (host, port) =
        parse_host_port(spec).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let addrs: Vec<SocketAddr> = (host.as_str(), port).to_socket_addrs()?.collect();
    let listener = std::net::TcpListener::bind(&addrs[..]).map_err(|e| {
        io::Error::new(e.kind(), format!("cannot listen for {what} on {spec}: {e}"))
    })?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Serves the listener until the runtime stops.
pub async fn serve(listener: TcpListener, exposed: Arc<Exposed>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(answer(stream, exposed.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// The path of a `GET` request head, or the status to answer instead.
fn request_path(head: &[u8]) -> Result<&str, (u16, &'static str)> {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| (400, "Bad Request"))?;
    let mut parts = line.trim_end().split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err((400, "Bad Request"));
    }
    if method != "GET" && method != "HEAD" {
        return Err((405, "Method Not Allowed"));
    }
    Ok(target.split('?').next().unwrap_or(target))
}

async fn answer(mut stream: TcpStream, exposed: Arc<Exposed>) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
            let n = stream.read(&mut buf).await?;
            if n == 0 || head.len() + n > MAX_HEAD {
                return Err(io::Error::other("incomplete or oversized request"));
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok(())
    })
    .await;
    if !matches!(read, Ok(Ok(()))) {
        return;
    }
    let is_head = head.starts_with(b"HEAD ");
    let (status, content_type, body) = match request_path(&head) {
        Err((status, reason)) => (status, "text/plain", format!("{reason}\n")),
        Ok("/metrics") => match exposed.metrics() {
            Some(text) => (200, CONTENT_TYPE, text),
            None => (503, "text/plain", "storage is being opened\n".into()),
        },
        Ok("/health") => (200, "text/plain", "ok\n".into()),
        Ok("/ready") => match exposed.ready() {
            Ok(()) => (200, "text/plain", "ready\n".into()),
            Err(why) => (503, "text/plain", format!("{why}\n")),
        },
        Ok(_) => (
            404,
            "text/plain",
            "not found; try /metrics, /health or /ready\n".into(),
        ),
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let mut reply = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !is_head {
        reply.extend_from_slice(body.as_bytes());
    }
    let _ = stream.write_all(&reply).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_parsed() {
        assert_eq!(
            request_path(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok("/metrics")
        );
        assert_eq!(
            request_path(b"GET /ready?x=1 HTTP/1.0\r\n\r\n"),
            Ok("/ready")
        );
        assert_eq!(
            request_path(b"POST /metrics HTTP/1.1\r\n\r\n")
                .unwrap_err()
                .0,
            405
        );
        assert_eq!(request_path(b"garbage\r\n\r\n").unwrap_err().0, 400);
        assert_eq!(parse_host_port("[::1]:9100"), Ok(("::1".into(), 9100)));
        assert!(parse_host_port("localhost").is_err());
    }

    #[test]
    fn not_ready_until_storage_is_open_and_listeners_accept() {
        let e = Exposed::default();
        assert!(e.ready().unwrap_err().contains("storage"));
    }
}
