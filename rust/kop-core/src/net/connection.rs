//! One client connection: requests are processed in order and answered in order, pipelined.
//!
//! A reader reads a frame and handles it until all that is left is waiting; a writer writes
//! the responses. Between them is a bounded queue of replies (`IN_FLIGHT`), each either ready
//! or `Outcome::Later` (a future the writer awaits). The rules:
//!
//! - Requests are *processed* one at a time in arrival order (Kafka's per-connection promise):
//!   the appends of produce N happen before those of produce N+1.
//! - Only produce (acks=1/all on a remote log, e.g. Pulsar) answers `Later`: its batches are
//!   appended, it only waits for the backend's receipts. The reader reads and appends the next
//!   produce requests meanwhile, so a producer with several requests in flight is no longer
//!   limited to one storage round trip at a time.
//! - Every other request (fetch, metadata, ApiVersions, SASL steps, raw SASL tokens, ...) is
//!   handled only once every `Later` before it has completed: it sees what Kafka would show it
//!   (a fetch after a pipelined produce sees its records; a SASL step has nothing in flight).
//! - Responses are written in request order; acks=0 produce has none; a `Close` ends the
//!   connection after the responses queued before it are written.
//! - When `IN_FLIGHT` replies are queued the reader stops reading: further requests wait in the
//!   socket buffer (backpressure), so a connection's in-flight work stays bounded.
//! - A request that earned a client quota throttle mutes the connection: the reader reads
//!   nothing more for the throttle time (its response is written meanwhile).
//!
//! The frame reader is not cancel-safe: it is only ever raced against events that end the
//! connection (shutdown, the writer gone). The writer flushes when no reply is ready.
//!
//! The stream is plain TCP or TLS; on SASL listeners every frame first goes through the SASL
//! state machine (`sasl.rs`), which decides the connection's principal.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use kafka_protocol::messages::ApiKey;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};

use super::sasl::{Action, ConnInfo, Sasl};
use crate::codec::frame::{decode_header, FrameError};
use crate::codec::frame_reader::FrameReader;
use crate::handlers::{dispatch, max_served, Outcome, RequestContext};
use crate::limits::ConnectionLimits;
use crate::tenants::{Choice, Tenants};
use crate::warn_bad_input;

/// Replies a connection may have queued (handled, response not yet written). Java producers
/// keep up to 5 requests in flight, librdkafka with idempotence 5 as well.
pub const IN_FLIGHT: usize = 16;

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

/// Serves one connection. `unauthenticated_slot`: on SASL listeners, the connection's place
/// among the unauthenticated ones, given back once it has authenticated. `tenants`: with the
/// `tenants` option, where the connection's broker is chosen once its principal is known.
pub async fn serve<S>(
    stream: S,
    mut ctx: RequestContext,
    mut unauthenticated_slot: Option<OwnedSemaphorePermit>,
    tenants: Option<Arc<Tenants>>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let peer = ctx.peer;
    // The instance's own broker and security: authentication, and calls from other instances
    // that name no tenant.
    let (instance_broker, instance_security) = (ctx.broker.clone(), ctx.security.clone());
    // A connection from another kop instance picks the tenant per request (`tenants.rs`).
    let mut instance_calls = false;
    let (rd, wr) = tokio::io::split(stream);
    let mut rd = FrameReader::new(rd);
    let wr = BufWriter::with_capacity(64 * 1024, wr);
    let limits = ctx.limits.clone();
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
            tenants: tenants.clone(),
        })
    });
    // Without SASL the principal is known now (a client certificate's, or ANONYMOUS).
    if let (Some(t), None) = (&tenants, &sasl) {
        match t.resolve(None, &ctx.principal, &ctx.listener.name, false) {
            Ok(Choice::Tenant(tenant)) => {
                ctx.broker = tenant.broker.clone();
                ctx.security = tenant.security.clone();
            }
            Ok(Choice::Instance) => instance_calls = true,
            Err(why) => {
                warn_bad_input!(limits.bad_input_log, peer, %why, listener = %ctx.listener.name, "closing connection: no tenant");
                return;
            }
        }
    }
    let (tx, rx) = mpsc::channel::<Outcome>(IN_FLIGHT);
    // How many replies the writer has finished (written, or dropped when it stopped).
    let (done_tx, mut done_rx) = watch::channel(0u64);
    let writer = write_replies(wr, rx, done_tx, peer, &limits);
    let reader = async {
        // Replies queued so far, and the number of the last `Later` among them.
        let mut queued = 0u64;
        let mut last_later = 0u64;
        loop {
            // Muted while a quota throttle the last request earned lasts (`quotas/`); its
            // response is already on its way (KIP-219).
            let mute_ms = ctx.mute.take();
            if mute_ms > 0 {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_millis(mute_ms)) => {}
                    _ = shutdown.wait() => break,
                    _ = tx.closed() => break,
                }
            }
            let authenticated = sasl
                .as_ref()
                .is_none_or(|s| matches!(s.state, super::sasl::State::Authenticated { .. }));
            // A raw SASL token (after SaslHandshake v0): size, then bytes; no Kafka header.
            let raw = sasl.as_ref().is_some_and(|s| s.expects_raw_token());
            let (rules, pool) = limits.frame(authenticated, raw);
            let frame = tokio::select! {
                f = rd.read_frame(&rules, pool) => f,
                _ = shutdown.wait() => break,
                _ = tx.closed() => break,
            };
            let (frame, _memory) = match frame {
                Ok(None) => break,
                Ok(Some(frame)) => frame,
                Err(FrameError::Idle) => {
                    tracing::info!(%peer, "closing idle connection");
                    break;
                }
                Err(FrameError::Io(e)) => {
                    tracing::debug!(%peer, error = %e, "connection error");
                    break;
                }
                Err(e @ (FrameError::Stalled { .. } | FrameError::NoMemory { .. })) => {
                    warn_bad_input!(limits.bad_input_log, peer, error = %e, "closing connection");
                    break;
                }
                Err(e) => {
                    warn_bad_input!(limits.bad_input_log, peer, error = %e, "closing connection: bad frame");
                    break;
                }
            };
            let request = if raw {
                Err(frame)
            } else {
                match decode_header(frame, max_served) {
                    Ok(r) => Ok(r),
                    Err(e) => {
                        warn_bad_input!(limits.bad_input_log, peer, error = %e, "closing connection: bad request header");
                        break;
                    }
                }
            };
            // Anything but produce waits for the produce replies still in flight (module doc).
            let is_produce = request.as_ref().is_ok_and(|r| r.api_key == ApiKey::Produce);
            if !is_produce && *done_rx.borrow() < last_later {
                tokio::select! {
                    r = done_rx.wait_for(|&done| done >= last_later) => if r.is_err() { break },
                    _ = shutdown.wait() => break,
                }
            }
            let action = match request {
                Err(token) => {
                    let s = sasl.as_mut().expect("raw tokens only on SASL listeners");
                    s.raw_token(&security, &token).await
                }
                Ok(request) => match sasl.as_mut() {
                    None => Action::Dispatch(request),
                    Some(s) => {
                        let action = s.request(&security, request).await;
                        s.set_reauth_principal(&ctx.principal);
                        action
                    }
                },
            };
            let outcome = match action {
                Action::Dispatch(request) => {
                    if let (true, Some(t)) = (instance_calls, &tenants) {
                        let named = request
                            .header
                            .client_id
                            .as_deref()
                            .and_then(|c| t.of_instance_call(c));
                        let (broker, security) = match named {
                            Some(tenant) => (&tenant.broker, &tenant.security),
                            None => (&instance_broker, &instance_security),
                        };
                        ctx.broker = broker.clone();
                        ctx.security = security.clone();
                    }
                    match AssertUnwindSafe(dispatch(&ctx, request))
                        .catch_unwind()
                        .await
                    {
                        Ok(outcome) => outcome,
                        Err(panic) => {
                            let what = panic_message(&*panic);
                            tracing::error!(%peer, panic = %what, "request handler panicked; closing this connection only");
                            break;
                        }
                    }
                }
                Action::Respond(bytes) => Outcome::Respond(bytes),
                Action::Authenticated(bytes, principal, choice) => {
                    match choice {
                        Some(Choice::Tenant(tenant)) => {
                            tracing::info!(%peer, %principal, tenant = %tenant.key, listener = %ctx.listener.name, "authenticated");
                            ctx.broker = tenant.broker.clone();
                            ctx.security = tenant.security.clone();
                        }
                        Some(Choice::Instance) => {
                            tracing::info!(%peer, %principal, listener = %ctx.listener.name, "authenticated (a kop instance)");
                            instance_calls = true;
                        }
                        None => {
                            tracing::info!(%peer, %principal, listener = %ctx.listener.name, "authenticated");
                        }
                    }
                    ctx.principal = principal;
                    unauthenticated_slot = None;
                    Outcome::Respond(bytes)
                }
                Action::Close(reason) => Outcome::Close(reason),
                Action::RespondAndClose(bytes, reason) => {
                    if tx.send(Outcome::Respond(bytes)).await.is_err() {
                        break;
                    }
                    Outcome::Close(reason)
                }
                Action::FailAndClose(bytes, reason) => {
                    warn_bad_input!(limits.bad_input_log, peer, %reason, listener = %ctx.listener.name, "authentication failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Sasl::failure_delay(&security)) => {}
                        _ = shutdown.wait() => {}
                    }
                    if !bytes.is_empty() && tx.send(Outcome::Respond(bytes)).await.is_err() {
                        break;
                    }
                    Outcome::Close("authentication failed".into())
                }
            };
            let (later, close) = match &outcome {
                Outcome::NoResponse => continue,
                Outcome::Later(_) => (true, false),
                Outcome::Close(_) => (false, true),
                Outcome::Respond(_) | Outcome::RespondSegments(_) => (false, false),
            };
            if tx.send(outcome).await.is_err() {
                break;
            }
            queued += 1;
            if later {
                last_later = queued;
            }
            if close {
                break;
            }
        }
        // Dropping the sender lets the writer finish what is queued, then stop.
        drop(tx);
        drop(unauthenticated_slot);
    };
    tokio::join!(reader, writer);
    // Kafka's ConnectionDisconnectListener: the share sessions this connection opened end and
    // their members' acquired records are available again at once.
    let broker = &ctx.broker;
    broker
        .share
        .connection_closed(&broker.groups.group_configs, ctx.connection_id);
}

/// Writes the replies in order, awaiting each `Later` in turn; flushes whenever no further
/// reply is ready. Stops at a `Close` or a write error. On shutdown the reader stops reading,
/// and the replies already queued are still finished (a `Later` is bounded by its request's
/// timeout, and the server's stop timeout bounds the whole connection).
async fn write_replies<W: AsyncWrite + Unpin>(
    mut wr: BufWriter<W>,
    mut rx: mpsc::Receiver<Outcome>,
    done: watch::Sender<u64>,
    peer: std::net::SocketAddr,
    limits: &ConnectionLimits,
) {
    'replies: loop {
        let mut outcome = match rx.try_recv() {
            Ok(o) => o,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                if wr.flush().await.is_err() {
                    break;
                }
                match rx.recv().await {
                    Some(o) => o,
                    None => break,
                }
            }
        };
        while let Outcome::Later(wait) = outcome {
            let mut wait = AssertUnwindSafe(wait).catch_unwind();
            // Flush what is written before waiting, unless the reply is already there.
            outcome = match (&mut wait).now_or_never() {
                Some(r) => r,
                None => {
                    if wr.flush().await.is_err() {
                        break 'replies;
                    }
                    wait.await
                }
            }
            .unwrap_or_else(|panic| {
                let what = panic_message(&*panic);
                tracing::error!(%peer, panic = %what, "request handler panicked; closing this connection only");
                Outcome::Close("handler panicked".into())
            });
        }
        match outcome {
            Outcome::Respond(bytes) => {
                if let Err(e) = wr.write_all(&bytes).await {
                    tracing::debug!(%peer, error = %e, "write failed");
                    break;
                }
            }
            // A segment at least as large as the write buffer goes to the socket directly.
            Outcome::RespondSegments(segments) => {
                for bytes in segments {
                    if let Err(e) = wr.write_all(&bytes).await {
                        tracing::debug!(%peer, error = %e, "write failed");
                        break 'replies;
                    }
                }
            }
            Outcome::NoResponse | Outcome::Later(_) => {}
            Outcome::Close(reason) => {
                warn_bad_input!(limits.bad_input_log, peer, %reason, "closing connection");
                break;
            }
        }
        done.send_modify(|n| *n += 1);
    }
    // Wake a reader waiting for replies that will never be written, and stop it reading.
    rx.close();
    done.send_modify(|n| *n = u64::MAX);
    let _ = wr.shutdown().await;
}
