//! One client connection: read a frame, handle it, write the answer, in order.
//!
//! Requests on a connection are handled one at a time, as Kafka does (it mutes a channel while
//! a request is in flight); that keeps appends from one producer in order. Clients still
//! pipeline: the next frames wait in the socket buffer.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use crate::codec::frame::{decode_header, read_frame, FrameError};
use crate::handlers::{dispatch, max_served, Outcome, RequestContext};

pub async fn serve(stream: TcpStream, ctx: RequestContext) {
    let peer = ctx.peer;
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let max_request = ctx.broker.config.max_request_bytes;
    let idle = Duration::from_millis(ctx.broker.config.connections_max_idle_ms as u64);
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let frame = tokio::select! {
            f = tokio::time::timeout(idle, read_frame(&mut rd, max_request, &ctx.request_memory)) => f,
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
        let request = match decode_header(frame, max_served) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection: bad request header");
                break;
            }
        };
        let outcome = match AssertUnwindSafe(dispatch(&ctx, request))
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
        };
        match outcome {
            Outcome::Respond(bytes) => {
                let written = async {
                    wr.write_all(&bytes).await?;
                    wr.flush().await
                };
                if let Err(e) = written.await {
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
