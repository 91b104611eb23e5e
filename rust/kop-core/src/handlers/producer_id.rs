//! InitProducerId for idempotent producers (transactions are not served yet).

use kafka_protocol::messages::*;

use super::{authz, RequestContext};
use crate::error::KafkaError;

pub async fn handle(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default();
    if req.transactional_id.is_some() {
        // No transaction coordinator yet: a clear, fatal error rather than endless retries.
        return resp
            .with_error_code(KafkaError::UnsupportedVersion.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    // Kafka: IDEMPOTENT_WRITE on the cluster, or WRITE on some topic.
    if !authz::allow_all(ctx)
        && !authz::cluster_allowed(ctx, "InitProducerId", authz::Operation::IdempotentWrite).await
        && !ctx.security.authorizer.may_write_some_topic(&ctx.principal)
    {
        return resp
            .with_error_code(KafkaError::ClusterAuthorizationFailed.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
    }
    // KIP-360: a known producer asking again gets its epoch bumped; otherwise a fresh id.
    let (id, epoch) =
        if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
            (Ok(req.producer_id.0), req.producer_epoch + 1)
        } else {
            (ctx.broker.next_producer_id(), 0)
        };
    match id {
        Ok(id) => resp
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(epoch),
        Err(e) => resp
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
