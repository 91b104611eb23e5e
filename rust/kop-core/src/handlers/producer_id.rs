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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::sb;
    use crate::handlers::test_context::TestContext;

    async fn init(ctx: &TestContext, req: InitProducerIdRequest) -> (i16, i64, i16) {
        let resp = handle(ctx, &ctx.header(ApiKey::InitProducerId, 5), req).await;
        (resp.error_code, resp.producer_id.0, resp.producer_epoch)
    }

    fn fresh() -> InitProducerIdRequest {
        InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    }

    #[tokio::test]
    async fn each_producer_gets_a_new_id_and_a_known_one_a_new_epoch() {
        let ctx = RequestContext::builder().build();
        let (e1, id1, epoch1) = init(&ctx, fresh()).await;
        let (e2, id2, _) = init(&ctx, fresh()).await;
        assert_eq!((e1, e2, epoch1), (0, 0, 0));
        assert_ne!(id1, id2);
        // KIP-360: the same producer asking again keeps its id with the next epoch.
        let again = fresh()
            .with_producer_id(ProducerId(id1))
            .with_producer_epoch(3);
        assert_eq!(init(&ctx, again).await, (0, id1, 4));
        // An epoch about to overflow: a new id instead.
        let exhausted = fresh()
            .with_producer_id(ProducerId(id1))
            .with_producer_epoch(i16::MAX - 1);
        let (_, id3, epoch3) = init(&ctx, exhausted).await;
        assert_ne!(id3, id1);
        assert_eq!(epoch3, 0);
    }

    #[tokio::test]
    async fn transactional_ids_are_refused_until_transactions_are_served() {
        let ctx = RequestContext::builder().build();
        let req = fresh().with_transactional_id(Some(TransactionalId(sb("tx"))));
        assert_eq!(
            init(&ctx, req).await,
            (KafkaError::UnsupportedVersion.code(), -1, -1)
        );
    }

    #[tokio::test]
    async fn idempotent_write_on_the_cluster_or_write_on_a_topic_is_needed() {
        let ctx = RequestContext::builder()
            .config(r#""authorizer": "acl""#)
            .principal("User:alice")
            .build();
        let denied = KafkaError::ClusterAuthorizationFailed.code();
        assert_eq!(init(&ctx, fresh()).await, (denied, -1, -1));
        ctx.allow(
            "User:alice",
            authz::Operation::Write,
            authz::ResourceType::Topic,
            "t",
        );
        assert_eq!(init(&ctx, fresh()).await.0, 0);
        let bob = RequestContext::builder()
            .config(r#""authorizer": "acl""#)
            .principal("User:bob")
            .build();
        bob.allow(
            "User:bob",
            authz::Operation::IdempotentWrite,
            authz::ResourceType::Cluster,
            authz::CLUSTER_NAME,
        );
        assert_eq!(init(&bob, fresh()).await.0, 0);
    }
}
