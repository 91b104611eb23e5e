//! FindCoordinator and the classic group APIs: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! DescribeGroups, ListGroups, DeleteGroups. The rules live in `crate::group`.

use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::authz::{self, Operation, ResourceType};
use super::{sb, RequestContext};
use crate::error::KafkaError;
use crate::group::{GroupState, JoinOutcome, JoinParams, Reply, SyncOutcome, SyncParams};

/// Waits for a parked JoinGroup/SyncGroup answer; on shutdown the client is told to find the
/// coordinator again.
async fn wait<T>(ctx: &RequestContext, reply: Reply<T>, on_stop: impl FnOnce() -> T) -> T {
    match reply {
        Reply::Now(v) => v,
        Reply::Wait(rx) => {
            let mut shutdown = ctx.shutdown.clone();
            tokio::select! {
                v = rx => v.unwrap_or_else(|_| on_stop()),
                _ = shutdown.wait() => on_stop(),
            }
        }
    }
}

pub async fn find_coordinator(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let version = header.request_api_version;
    // Key types: 0 = group, 1 = transaction.
    let (rtype, denied_error) = match req.key_type {
        0 => (
            Some(ResourceType::Group),
            KafkaError::GroupAuthorizationFailed,
        ),
        1 => (
            Some(ResourceType::TransactionalId),
            KafkaError::TransactionalIdAuthorizationFailed,
        ),
        _ => (None, KafkaError::InvalidRequest),
    };
    // DESCRIBE on each key's group or transactional id, all keys in one decision.
    let keys: Vec<&str> = if version >= 4 {
        req.coordinator_keys.iter().map(|k| k.as_str()).collect()
    } else {
        vec![req.key.as_str()]
    };
    let allowed = match rtype {
        Some(rt) => {
            let actions: Vec<_> = keys.iter().map(|k| (Operation::Describe, rt, *k)).collect();
            authz::authorize(ctx, "FindCoordinator", &actions).await
        }
        None => vec![false; keys.len()],
    };
    // A group's or transactional id's coordinator is the instance leading its shard (the
    // same shards for both, as Kafka's `__consumer_offsets` and `__transaction_state`).
    let cluster = &ctx.broker.cluster;
    let coordinator_of = |key: &str| -> Result<(BrokerId, StrBytes, i32), KafkaError> {
        if req.key_type == 1 && key.is_empty() {
            return Err(KafkaError::InvalidRequest);
        }
        let shard = if req.key_type == 0 {
            ctx.broker.groups.shard_of(key)
        } else {
            ctx.broker.transactions.shard_of(key)
        };
        let node = cluster.group_coordinator(shard);
        if node == cluster.node_id() {
            let l = &ctx.listener;
            return Ok((BrokerId(node), sb(&l.advertised_host), l.advertised_port));
        }
        let e = cluster
            .endpoint(node, &ctx.listener.name)
            .ok_or(KafkaError::CoordinatorNotAvailable)?;
        Ok((BrokerId(node), sb(&e.host), e.port))
    };
    let answer = |i: usize, key: &str| match allowed.get(i) {
        Some(true) => {
            // Kafka creates its internal topic at the first coordinator lookup.
            let internal = if req.key_type == 0 {
                crate::group::GROUPS_TOPIC
            } else {
                "__transaction_state"
            };
            super::metadata::mark_internal_used(ctx, internal);
            coordinator_of(key)
        }
        _ => Err(denied_error),
    };
    if version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let c = Coordinator::default().with_key(key.clone());
                match answer(i, key) {
                    Ok((node, host, port)) => c.with_node_id(node).with_host(host).with_port(port),
                    Err(e) => c
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)
                        .with_error_code(e.code())
                        .with_error_message(Some(sb(e.to_string()))),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let resp = FindCoordinatorResponse::default();
    match answer(0, &req.key) {
        Ok((node, host, port)) => resp.with_node_id(node).with_host(host).with_port(port),
        Err(e) => {
            let r = resp
                .with_error_code(e.code())
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            if version >= 1 {
                r.with_error_message(Some(sb(e.to_string())))
            } else {
                r
            }
        }
    }
}

fn opt_string(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(|v| v.to_string())
}

pub async fn join_group(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let version = header.request_api_version;
    if !authz::group_allowed(ctx, "JoinGroup", Operation::Read, &req.group_id).await {
        return join_response(
            version,
            JoinOutcome::error(KafkaError::GroupAuthorizationFailed, &req.member_id),
        );
    }
    // A group id has one type: a share group's id is not a classic group's.
    if ctx.broker.groups.is_share_group(&req.group_id) {
        return join_response(
            version,
            JoinOutcome::error(KafkaError::InconsistentGroupProtocol, &req.member_id),
        );
    }
    let params = JoinParams {
        member_id: req.member_id.to_string(),
        instance_id: opt_string(&req.group_instance_id),
        client_id: opt_string(&header.client_id).unwrap_or_default(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            req.rebalance_timeout_ms
        } else {
            req.session_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let member_id = params.member_id.clone();
    let reply = ctx.broker.groups.join(&req.group_id, params);
    let outcome = wait(ctx, reply, || {
        JoinOutcome::error(KafkaError::NotCoordinator, &member_id)
    })
    .await;
    join_response(version, outcome)
}

fn join_response(version: i16, outcome: JoinOutcome) -> JoinGroupResponse {
    let members = outcome
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            let m = JoinGroupResponseMember::default()
                .with_member_id(sb(id))
                .with_metadata(metadata);
            if version >= 5 {
                m.with_group_instance_id(instance.map(sb))
            } else {
                m
            }
        })
        .collect();
    let mut resp = JoinGroupResponse::default()
        .with_error_code(outcome.error.map_or(0, KafkaError::code))
        .with_generation_id(outcome.generation)
        .with_protocol_name(outcome.protocol_name.map(sb))
        .with_leader(sb(outcome.leader))
        .with_member_id(sb(outcome.member_id))
        .with_members(members);
    if version < 7 && resp.protocol_name.is_none() {
        // Before v7 the protocol name is not nullable.
        resp.protocol_name = Some(StrBytes::default());
    }
    if version >= 7 {
        resp.protocol_type = outcome.protocol_type.map(sb);
    }
    if version >= 9 {
        resp.skip_assignment = outcome.skip_assignment;
    }
    resp
}

pub async fn sync_group(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    let version = header.request_api_version;
    if !authz::group_allowed(ctx, "SyncGroup", Operation::Read, &req.group_id).await {
        return SyncGroupResponse::default()
            .with_error_code(KafkaError::GroupAuthorizationFailed.code())
            .with_assignment(Bytes::new());
    }
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let reply = ctx.broker.groups.sync(
        &req.group_id,
        SyncParams {
            member_id: &req.member_id,
            instance_id: req.group_instance_id.as_deref(),
            generation: req.generation_id,
            protocol_type: req.protocol_type.as_deref(),
            protocol_name: req.protocol_name.as_deref(),
            assignments,
        },
    );
    let outcome: SyncOutcome = wait(ctx, reply, || Err(KafkaError::NotCoordinator)).await;
    match outcome {
        Ok((protocol_type, protocol_name, assignment)) => {
            let resp = SyncGroupResponse::default().with_assignment(assignment);
            if version >= 5 {
                resp.with_protocol_type(protocol_type.map(sb))
                    .with_protocol_name(protocol_name.map(sb))
            } else {
                resp
            }
        }
        Err(e) => SyncGroupResponse::default()
            .with_error_code(e.code())
            .with_assignment(Bytes::new()),
    }
}

pub async fn heartbeat(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    if !authz::group_allowed(ctx, "Heartbeat", Operation::Read, &req.group_id).await {
        return HeartbeatResponse::default()
            .with_error_code(KafkaError::GroupAuthorizationFailed.code());
    }
    let result = ctx.broker.groups.heartbeat(
        &req.group_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(crate::error::code_of(&result))
}

pub async fn leave_group(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = header.request_api_version;
    if !authz::group_allowed(ctx, "LeaveGroup", Operation::Read, &req.group_id).await {
        return LeaveGroupResponse::default()
            .with_error_code(KafkaError::GroupAuthorizationFailed.code());
    }
    let leaving: Vec<(String, Option<String>)> = if version >= 3 {
        req.members
            .iter()
            .map(|m| (m.member_id.to_string(), opt_string(&m.group_instance_id)))
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    match ctx.broker.groups.leave(&req.group_id, &leaving) {
        Err(e) => LeaveGroupResponse::default().with_error_code(e.code()),
        Ok(results) if version < 3 => LeaveGroupResponse::default()
            .with_error_code(results.first().map_or(0, crate::error::code_of)),
        Ok(results) => {
            let members = leaving
                .into_iter()
                .zip(results)
                .map(|((id, instance), r)| {
                    MemberResponse::default()
                        .with_member_id(sb(id))
                        .with_group_instance_id(instance.map(sb))
                        .with_error_code(crate::error::code_of(&r))
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        }
    }
}

pub async fn describe_groups(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = header.request_api_version;
    let with_ops = version >= 3 && req.include_authorized_operations;
    let ids: Vec<&str> = req.groups.iter().map(|g| g.as_str()).collect();
    let decisions =
        authz::groups_with_operations(ctx, "DescribeGroups", Operation::Describe, &ids, with_ops)
            .await;
    let groups = req
        .groups
        .into_iter()
        .zip(decisions)
        .map(|(id, (allowed, operations))| {
            let base = DescribedGroup::default().with_group_id(id.clone());
            if !allowed {
                // Kafka's groupError: empty state, protocol and members.
                return base.with_error_code(KafkaError::GroupAuthorizationFailed.code());
            }
            if id.is_empty() {
                return base.with_error_code(KafkaError::InvalidGroupId.code());
            }
            let described = match ctx.broker.groups.describe(&id) {
                Ok(d) => d,
                Err(e) => return base.with_error_code(e.code()),
            };
            let Some(summary) = described else {
                let dead = base.with_group_state(sb(GroupState::Dead.name()));
                // A share group is not described here (Kafka 4.4: GROUP_ID_NOT_FOUND, "not a
                // classic group", from v6; before, a dead group without an error).
                let why = if ctx.broker.share.is_share_group(&ctx.broker.groups, &id) {
                    format!("Group {} is not a classic group.", &*id)
                } else {
                    format!("Group {} not found.", &*id)
                };
                return if version >= 6 {
                    dead.with_error_code(KafkaError::GroupIdNotFound.code())
                        .with_error_message(Some(sb(why)))
                } else {
                    dead
                };
            };
            let members = summary
                .members
                .into_iter()
                .map(|m| {
                    let d = DescribedGroupMember::default()
                        .with_member_id(sb(m.member_id))
                        .with_client_id(sb(m.client_id))
                        .with_client_host(sb(m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment);
                    if version >= 4 {
                        d.with_group_instance_id(m.instance_id.map(sb))
                    } else {
                        d
                    }
                })
                .collect();
            let mut g = base
                .with_group_state(sb(summary.state.name()))
                .with_protocol_type(sb(summary.protocol_type))
                .with_protocol_data(sb(summary.protocol))
                .with_members(members);
            if with_ops {
                g.authorized_operations = operations;
            }
            g
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn list_groups(
    ctx: &RequestContext,
    header: &RequestHeader,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let version = header.request_api_version;
    let states: Vec<String> = req
        .states_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let types: Vec<String> = req
        .types_filter
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect();
    let all = ctx.broker.groups.list();
    let listed: Vec<_> = all
        .into_iter()
        .filter(|(_, _, state, kind)| {
            (states.is_empty() || states.contains(&state.to_ascii_lowercase()))
                && (types.is_empty() || types.iter().any(|t| t == kind))
        })
        .collect();
    // DESCRIBE on the cluster shows every group, else only the groups with DESCRIBE.
    let visible: Vec<bool> = if authz::allow_all(ctx) {
        vec![true; listed.len()]
    } else {
        let mut actions = vec![(
            Operation::Describe,
            ResourceType::Cluster,
            authz::CLUSTER_NAME,
        )];
        actions.extend(
            listed
                .iter()
                .map(|(id, ..)| (Operation::Describe, ResourceType::Group, id.as_str())),
        );
        // A filter, not a refusal: no denial is logged (as Kafka).
        let decisions = authz::decide(ctx, "ListGroups", &actions, |_| false).await;
        let cluster = decisions.first().copied().unwrap_or(false);
        (0..listed.len())
            .map(|i| cluster || decisions.get(i + 1).copied().unwrap_or(false))
            .collect()
    };
    let groups = listed
        .into_iter()
        .zip(visible)
        .filter(|(_, visible)| *visible)
        .map(|(g, _)| g)
        .map(|(id, protocol_type, state, kind)| {
            let g = ListedGroup::default()
                .with_group_id(GroupId(sb(id)))
                .with_protocol_type(sb(protocol_type));
            let g = if version >= 4 {
                g.with_group_state(sb(state))
            } else {
                g
            };
            if version >= 5 {
                g.with_group_type(sb(kind))
            } else {
                g
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let denied = authz::denied(
        ctx,
        "DeleteGroups",
        Operation::Delete,
        ResourceType::Group,
        req.groups_names.iter().map(|g| g.as_str()),
    )
    .await;
    let results = req
        .groups_names
        .into_iter()
        .map(|id| {
            let r = if denied.contains(id.as_str()) {
                Err(KafkaError::GroupAuthorizationFailed)
            } else if ctx.broker.share.is_share_group(&ctx.broker.groups, &id) {
                ctx.broker.share.delete_group(&ctx.broker.groups, &id)
            } else {
                ctx.broker.groups.delete_group(&id)
            };
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(crate::error::code_of(&r))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
