//! InitProducerId: a producer id (and epoch) for an idempotent producer, or for a
//! transactional one from the transaction coordinator (`crate::txn`).

use kafka_protocol::messages::*;

use super::{authz, RequestContext};
use crate::error::KafkaError;

pub async fn handle(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default();
    if let Some(transactional_id) = &req.transactional_id {
        let version = header.request_api_version;
        let answer = transactional(ctx, version, transactional_id, &req).await;
        return match answer {
            Ok((id, epoch)) => resp
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(e) => resp
                .with_error_code(fenced_for(version, e).code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
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

/// A transactional producer's id and epoch from the coordinator of its transactional id.
async fn transactional(
    ctx: &RequestContext,
    version: i16,
    transactional_id: &str,
    req: &InitProducerIdRequest,
) -> Result<(i64, i16), KafkaError> {
    if !authz::allowed(
        ctx,
        "InitProducerId",
        authz::Operation::Write,
        authz::ResourceType::TransactionalId,
        transactional_id,
    )
    .await
    {
        return Err(KafkaError::TransactionalIdAuthorizationFailed);
    }
    // v3+: the producer's current id and epoch, both or neither (KIP-360).
    let expected = match (req.producer_id.0, req.producer_epoch) {
        (-1, -1) => None,
        (id, epoch) if id >= 0 && epoch >= 0 => Some((id, epoch)),
        _ => return Err(KafkaError::InvalidRequest),
    };
    let fenced = fenced_for(version, KafkaError::ProducerFenced);
    ctx.broker
        .transactions
        .init_producer(
            &*ctx.broker,
            transactional_id,
            req.transaction_timeout_ms,
            expected,
            fenced,
        )
        .await
}

/// PRODUCER_FENCED is answered from v4 (`txn_version`: the request's version); older clients
/// know it as INVALID_PRODUCER_EPOCH.
pub(super) fn fenced_for(txn_version: i16, e: KafkaError) -> KafkaError {
    match e {
        KafkaError::ProducerFenced if txn_version < 4 => KafkaError::InvalidProducerEpoch,
        e => e,
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transactional_id_keeps_its_producer_id_and_each_init_bumps_the_epoch() {
        let ctx = RequestContext::builder().build();
        let tx = || {
            fresh()
                .with_transactional_id(Some(TransactionalId(sb("tx"))))
                .with_transaction_timeout_ms(60_000)
        };
        let (e1, id1, epoch1) = init(&ctx, tx()).await;
        let (e2, id2, epoch2) = init(&ctx, tx()).await;
        assert_eq!((e1, e2), (0, 0));
        assert_eq!((id2, epoch1, epoch2), (id1, 0, 1));
        // The old producer presenting its id and epoch is fenced (KIP-360).
        let stale = tx()
            .with_producer_id(ProducerId(id1))
            .with_producer_epoch(7);
        assert_eq!(init(&ctx, stale).await.0, KafkaError::ProducerFenced.code());
        let too_long = tx().with_transaction_timeout_ms(900_001);
        assert_eq!(
            init(&ctx, too_long).await.0,
            KafkaError::InvalidTransactionTimeout.code()
        );
        let empty = fresh().with_transactional_id(Some(TransactionalId(sb(""))));
        assert_eq!(init(&ctx, empty).await.0, KafkaError::InvalidRequest.code());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_transactional_id_needs_write_on_it() {
        let ctx = RequestContext::builder()
            .config(r#""authorizer": "acl""#)
            .principal("User:alice")
            .build();
        let req = fresh()
            .with_transactional_id(Some(TransactionalId(sb("tx"))))
            .with_transaction_timeout_ms(1_000);
        let denied = KafkaError::TransactionalIdAuthorizationFailed.code();
        assert_eq!(init(&ctx, req.clone()).await.0, denied);
        ctx.allow(
            "User:alice",
            authz::Operation::Write,
            authz::ResourceType::TransactionalId,
            "tx",
        );
        assert_eq!(init(&ctx, req).await.0, 0);
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
