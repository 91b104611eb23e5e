//! The transaction admin APIs (`kafka-transactions`): DescribeTransactions and
//! ListTransactions, answered from the transaction coordinator's state.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_transactions_response::{self, TopicData};
use kafka_protocol::messages::list_transactions_response;
use kafka_protocol::messages::*;

use super::authz::{self, Operation, ResourceType};
use super::{sb, RequestContext};
use crate::error::KafkaError;
use crate::txn::{TxnMeta, TxnStatus};

pub async fn describe(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let actions: Vec<_> = req
        .transactional_ids
        .iter()
        .map(|id| {
            (
                Operation::Describe,
                ResourceType::TransactionalId,
                id.as_str(),
            )
        })
        .collect();
    let allowed = authz::authorize(ctx, "DescribeTransactions", &actions).await;
    let states = req
        .transactional_ids
        .iter()
        .zip(allowed)
        .map(|(id, ok)| {
            let state = describe_transactions_response::TransactionState::default()
                .with_transactional_id(id.clone());
            let found = if ok {
                ctx.broker
                    .transactions
                    .describe(id)
                    .and_then(|m| m.ok_or(KafkaError::TransactionalIdNotFound))
            } else {
                Err(KafkaError::TransactionalIdAuthorizationFailed)
            };
            match found {
                Ok(meta) => described(state, &meta),
                Err(e) => state
                    .with_error_code(e.code())
                    .with_transaction_state(sb(""))
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1),
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

fn described(
    state: describe_transactions_response::TransactionState,
    meta: &TxnMeta,
) -> describe_transactions_response::TransactionState {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &meta.partitions {
        topics.entry(topic).or_default().push(*partition);
    }
    state
        .with_transaction_state(sb(meta.status.name()))
        .with_transaction_timeout_ms(meta.timeout_ms)
        .with_transaction_start_time_ms(meta.start_ms)
        .with_producer_id(ProducerId(meta.producer_id))
        .with_producer_epoch(meta.producer_epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    TopicData::default()
                        .with_topic(TopicName(sb(topic)))
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

pub async fn list(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let resp = ListTransactionsResponse::default();
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for name in &req.state_filters {
        match TxnStatus::from_name(name) {
            Some(s) => states.push(s),
            None => unknown.push(name.clone()),
        }
    }
    // Java's Pattern.matches: the whole id.
    let pattern = match req
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
            Ok(re) => Some(re),
            Err(_) => return resp.with_error_code(KafkaError::InvalidRegularExpression.code()),
        },
        None => None,
    };
    let now = crate::now_ms();
    let matching = ctx.broker.transactions.list(|m| {
        (req.state_filters.is_empty() || states.contains(&m.status))
            && (req.producer_id_filters.is_empty()
                || req.producer_id_filters.iter().any(|p| p.0 == m.producer_id))
            && (req.duration_filter < 0
                || (m.start_ms >= 0 && now - m.start_ms > req.duration_filter))
            && pattern
                .as_ref()
                .is_none_or(|re| re.is_match(&m.transactional_id))
    });
    // Transactional ids the principal may not describe are left out, as Kafka does.
    let actions: Vec<_> = matching
        .iter()
        .map(|m| {
            (
                Operation::Describe,
                ResourceType::TransactionalId,
                m.transactional_id.as_str(),
            )
        })
        .collect();
    let allowed = authz::decide(ctx, "ListTransactions", &actions, |_| false).await;
    let listed = matching
        .iter()
        .zip(allowed)
        .filter(|(_, ok)| *ok)
        .map(|(m, _)| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(sb(m.transactional_id.clone())))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(sb(m.status.name()))
        })
        .collect();
    resp.with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}
