//! One client connection: read a frame, handle it, write the answer, in order.
//!
//! Requests on a connection are handled one at a time, as Kafka does (it mutes a channel while
//! a request is in flight); that keeps appends from one producer in order. Clients still
//! pipeline: the next frames wait in the socket buffer.
//!
//! The stream is plain TCP or TLS; on SASL listeners every frame first goes through the SASL
//! state machine (`sasl.rs`), which decides the connection's principal.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

use super::sasl::{Action, ConnInfo, Sasl};
use crate::codec::frame::{decode_header, read_frame, FrameError};
use crate::handlers::{dispatch, max_served, Outcome, RequestContext};

/// Kafka's `sasl.server.max.receive.size` default: the largest frame accepted before a SASL
/// connection has authenticated.
const SASL_MAX_RECEIVE: i32 = 524_288;

/// A raw SASL token frame (after SaslHandshake v0): size, then bytes; no Kafka header.
async fn read_raw_token<R: AsyncRead + Unpin>(rd: &mut R) -> Result<Option<Bytes>, FrameError> {
    let mut size = [0u8; 4];
    match rd.read_exact(&mut size).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let size = i32::from_be_bytes(size);
    if !(0..=SASL_MAX_RECEIVE).contains(&size) {
        return Err(FrameError::BadSize(size));
    }
    let mut buf = vec![0u8; size as usize];
    rd.read_exact(&mut buf).await?;
    Ok(Some(buf.into()))
}

pub async fn serve<S>(stream: S, mut ctx: RequestContext)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let peer = ctx.peer;
    let (rd, wr) = tokio::io::split(stream);
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let max_request = ctx.broker.config.max_request_bytes;
    let idle = Duration::from_millis(ctx.broker.config.connections_max_idle_ms as u64);
    let mut shutdown = ctx.shutdown.clone();
    let security = ctx.security.clone();
    let protocol = security.protocol(&ctx.listener.name);
    let mut sasl = protocol.is_sasl().then(|| {
        Sasl::new(ConnInfo {
            listener: ctx.listener.name.clone(),
            protocol: if protocol.is_tls() {
                "SASL_SSL"
            } else {
                "SASL_PLAINTEXT"
            },
            peer,
        })
    });
    loop {
        let authenticated = sasl
            .as_ref()
            .is_none_or(|s| matches!(s.state, super::sasl::State::Authenticated { .. }));
        let limit = if authenticated {
            max_request
        } else {
            max_request.min(SASL_MAX_RECEIVE)
        };
        let raw = sasl.as_ref().is_some_and(|s| s.expects_raw_token());
        let frame = tokio::select! {
            f = tokio::time::timeout(idle, async {
                if raw {
                    read_raw_token(&mut rd).await.map(|t| t.map(|t| (t, None)))
                } else {
                    read_frame(&mut rd, limit, &ctx.request_memory)
                        .await
                        .map(|f| f.map(|(b, p)| (b, Some(p))))
                }
            }) => f,
            _ = shutdown.wait() => break,
        };
        let frame = match frame {
            Err(_) => {
                tracing::info!(%peer, "closing idle connection");
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(frame))) => frame,
            Ok(Err(FrameError::Io(e))) => {
                tracing::debug!(%peer, error = %e, "connection error");
                break;
            }
            Ok(Err(e)) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                break;
            }
        };
        let (frame, _memory) = frame;
        let action = if raw {
            let s = sasl.as_mut().expect("raw tokens only on SASL listeners");
            s.raw_token(&security, &frame).await
        } else {
            let request = match decode_header(frame, max_served) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection: bad request header");
                    break;
                }
            };
            match sasl.as_mut() {
                None => Action::Dispatch(request),
                Some(s) => {
                    let action = s.request(&security, request).await;
                    s.set_reauth_principal(&ctx.principal);
                    action
                }
            }
        };
        let outcome = match action {
            Action::Dispatch(request) => {
                match AssertUnwindSafe(dispatch(&ctx, request))
                    .catch_unwind()
                    .await
                {
                    Ok(outcome) => outcome,
                    Err(panic) => {
                        let what = panic
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_default();
                        tracing::error!(%peer, panic = %what, "request handler panicked; closing this connection only");
                        break;
                    }
                }
            }
            Action::Respond(bytes) => Outcome::Respond(bytes),
            Action::Authenticated(bytes, principal) => {
                tracing::info!(%peer, %principal, listener = %ctx.listener.name, "authenticated");
                ctx.principal = principal;
                Outcome::Respond(bytes)
            }
            Action::Close(reason) => Outcome::Close(reason),
            Action::RespondAndClose(bytes, reason) => {
                let _ = write_all(&mut wr, &bytes).await;
                Outcome::Close(reason)
            }
            Action::FailAndClose(bytes, reason) => {
                tracing::warn!(%peer, %reason, listener = %ctx.listener.name, "authentication failed");
                tokio::select! {
                    _ = tokio::time::sleep(Sasl::failure_delay(&security)) => {}
                    _ = shutdown.wait() => {}
                }
                if !bytes.is_empty() {
                    let _ = write_all(&mut wr, &bytes).await;
                }
                Outcome::Close("authentication failed".into())
            }
        };
        match outcome {
            Outcome::Respond(bytes) => {
                if let Err(e) = write_all(&mut wr, &bytes).await {
                    tracing::debug!(%peer, error = %e, "write failed");
                    break;
                }
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => {
                tracing::warn!(%peer, %reason, "closing connection");
                break;
            }
        }
    }
    let _ = wr.shutdown().await;
}

async fn write_all<W: AsyncWrite + Unpin>(wr: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    wr.write_all(bytes).await?;
    wr.flush().await
}
