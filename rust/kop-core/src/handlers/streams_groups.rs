//! KIP-1071: StreamsGroupHeartbeat and StreamsGroupDescribe, decoded and encoded by hand
//! (`streams_wire.rs`); the rules live in `crate::group::streams`. Like Kafka's coordinator,
//! a heartbeat whose topology needs internal topics that are missing creates them (with
//! CREATE on the cluster or the topic) and reports MISSING_INTERNAL_TOPICS meanwhile.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::authz::{self, Operation, ResourceType};
use super::streams_wire::{self as wire, DescribeRequest, HeartbeatRequest, Writer};
use super::{Outcome, RequestContext};
use crate::codec::frame::RequestFrame;
use crate::error::KafkaError;
use crate::group::streams::assignor::{MemberTasks, TaskSet};
use crate::group::streams::topology::{TopicInfo, Topology, MISSING_INTERNAL_TOPICS};
use crate::group::streams::{
    endpoints, HeartbeatOut, HeartbeatParams, StreamsGroup, TaskOffset, HEARTBEAT_INTERVAL_MS,
};

/// (API key, min, max) of what this file serves, for ApiVersions.
pub const SERVED_EXTRA: [(i16, i16, i16); 2] = [
    (wire::HEARTBEAT_KEY, wire::MIN_VERSION, wire::MAX_VERSION),
    (wire::DESCRIBE_KEY, wire::MIN_VERSION, wire::MAX_VERSION),
];

/// AcceptableRecoveryLag and TaskOffsetIntervalMs: Kafka's defaults. Kafka 4.4 assigns no
/// warm-up tasks (its assignment refiner, the step that would, returns the assignment as
/// is), so neither steers an assignment; clients report task offsets at that interval and
/// StreamsGroupDescribe shows them.
const ACCEPTABLE_RECOVERY_LAG: i64 = 10_000;
const TASK_OFFSET_INTERVAL_MS: i32 = 60_000;
/// The assignor Kafka 4.4 names in StreamsGroupDescribe v1 (its default, a sticky one).
const ASSIGNOR_NAME: &str = "sticky";
/// StreamsGroupDescribe v1 TopologyDescriptionStatus: NOT_REQUESTED, NOT_STORED.
const TOPOLOGY_DESCRIPTION_NOT_REQUESTED: i8 = 0;
const TOPOLOGY_DESCRIPTION_NOT_STORED: i8 = 1;

pub async fn dispatch(ctx: &RequestContext, raw_key: i16, frame: RequestFrame) -> Outcome {
    let version = frame.header.request_api_version;
    if !(wire::MIN_VERSION..=wire::MAX_VERSION).contains(&version) {
        return Outcome::Close(format!("API {raw_key} v{version} is not served"));
    }
    let correlation_id = frame.header.correlation_id;
    let client_id = frame.header.client_id.as_deref().unwrap_or("").to_string();
    let body = match raw_key {
        wire::HEARTBEAT_KEY => match HeartbeatRequest::decode(frame.body) {
            Ok(req) => {
                let (code, body) = heartbeat(ctx, client_id, req, version).await;
                ctx.broker.metrics.requests.error(raw_key, code);
                body
            }
            Err(e) => return Outcome::Close(format!("StreamsGroupHeartbeat: {e}")),
        },
        _ => match DescribeRequest::decode(frame.body, version) {
            Ok(req) => describe(ctx, req, version).await,
            Err(e) => return Outcome::Close(format!("StreamsGroupDescribe: {e}")),
        },
    };
    Outcome::Respond(wire::frame(correlation_id, body))
}

/// Every topic a topology names (what its members must be allowed to describe).
fn topology_topics(t: &Topology) -> BTreeSet<&str> {
    let mut all = BTreeSet::new();
    for s in &t.subtopologies {
        all.extend(s.source_topics.iter().map(String::as_str));
        all.extend(s.repartition_sink_topics.iter().map(String::as_str));
        all.extend(s.changelog_topics.iter().map(|t| t.name.as_str()));
        all.extend(s.repartition_source_topics.iter().map(|t| t.name.as_str()));
    }
    all
}

/// A heartbeat's answer: its error code (for the request metrics) and its body.
type Answer = (i16, Writer);

fn error_response(e: KafkaError, msg: String, version: i16) -> Answer {
    let out = HeartbeatOut {
        epoch: 0,
        ..HeartbeatOut::default()
    };
    let code = e.code();
    let head = Head {
        error: code,
        message: Some(&msg),
        heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
        version,
    };
    (code, encode_heartbeat(&head, &out, &[]))
}

async fn heartbeat(
    ctx: &RequestContext,
    client_id: String,
    req: HeartbeatRequest,
    version: i16,
) -> Answer {
    let topics: Vec<&str> = req
        .topology
        .as_ref()
        .map(|t| topology_topics(t).into_iter().collect())
        .unwrap_or_default();
    if let Err((e, msg)) =
        authz::group_heartbeat_allowed(ctx, "StreamsGroupHeartbeat", &req.group_id, topics).await
    {
        return error_response(e, msg, version);
    }
    if ctx.broker.groups.is_share_group(&req.group_id) {
        return error_response(
            KafkaError::GroupIdNotFound,
            format!("Group {} is not a streams group.", req.group_id),
            version,
        );
    }
    if req.member_id.is_empty() {
        return error_response(
            KafkaError::InvalidRequest,
            "MemberId can't be empty.".into(),
            version,
        );
    }
    if req.member_epoch == 0 && req.topology.is_none() {
        return error_response(
            KafkaError::InvalidRequest,
            "Topology must be non-null when joining the group.".into(),
            version,
        );
    }
    let group_id = req.group_id.clone();
    let params = HeartbeatParams {
        member_id: req.member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id,
        rack_id: req.rack_id,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topology: req.topology,
        owned_active: req.active_tasks,
        owned_standby: req.standby_tasks,
        process_id: req.process_id,
        user_endpoint: req.user_endpoint,
        client_tags: req.client_tags,
        shutdown_application: req.shutdown_application,
        client_id,
        client_host: format!("/{}", ctx.peer.ip()),
        endpoint_epoch: req.endpoint_information_epoch,
        task_offsets: req.task_offsets,
        task_end_offsets: req.task_end_offsets,
    };
    let existing: BTreeMap<String, i32> = ctx
        .broker
        .topics()
        .iter()
        .map(|t| (t.name.to_string(), t.partition_count()))
        .collect();
    let names: Vec<String> = existing.keys().cloned().collect();
    let regex_topics = |pattern: &str| -> Vec<String> {
        match crate::group::consumer::compile_regex(pattern) {
            Ok(re) => names.iter().filter(|n| re.is_match(n)).cloned().collect(),
            Err(_) => Vec::new(),
        }
    };
    let to_create: Mutex<Vec<TopicInfo>> = Mutex::new(Vec::new());
    let configure = |t: &Topology| {
        let c = t.configure(&existing, &regex_topics);
        *to_create.lock().expect("not poisoned") = c.to_create.clone();
        c
    };
    // The group's streams.heartbeat.interval.ms (GROUP config, else Kafka's default).
    let interval = ctx
        .broker
        .groups
        .streams_settings(&group_id)
        .heartbeat_interval_ms;
    let out = ctx
        .broker
        .groups
        .streams_heartbeat(&group_id, params, &configure);
    let mut out = match out {
        Ok(out) => out,
        Err((e, msg)) => return error_response(e, msg, version),
    };
    let to_create = to_create.into_inner().expect("not poisoned");
    if !to_create.is_empty() {
        let failures = create_internal_topics(ctx, &to_create).await;
        if !failures.is_empty() {
            for s in out
                .statuses
                .iter_mut()
                .filter(|s| s.0 == MISSING_INTERNAL_TOPICS)
            {
                s.1 = format!("{} Creation failed: {}", s.1, failures.join("; "));
            }
        }
    }
    // IQ: each member's endpoint with the partitions of its tasks, now.
    let endpoints = match &out.endpoints {
        Some(members) => {
            let topology = ctx
                .broker
                .groups
                .with_streams_group(&group_id, |g| g.topology.clone())
                .ok()
                .flatten()
                .unwrap_or_default();
            members
                .iter()
                .map(|e| EndpointPartitions {
                    host: e.host.clone(),
                    port: e.port,
                    active: endpoints::partitions(&e.active, &topology, &existing, &regex_topics),
                    standby: endpoints::partitions(&e.standby, &topology, &existing, &regex_topics),
                })
                .collect()
        }
        None => Vec::new(),
    };
    let head = Head {
        error: 0,
        message: None,
        heartbeat_interval_ms: interval,
        version,
    };
    (0, encode_heartbeat(&head, &out, &endpoints))
}

/// A member's IQ endpoint with its topic partitions (PartitionsByUserEndpoint).
struct EndpointPartitions {
    host: String,
    port: u16,
    active: Vec<(String, Vec<i32>)>,
    standby: Vec<(String, Vec<i32>)>,
}

/// The top of a heartbeat response.
struct Head<'a> {
    error: i16,
    message: Option<&'a str>,
    heartbeat_interval_ms: i32,
    version: i16,
}

/// Creates the missing internal topics as Kafka's coordinator does: each needs CREATE on the
/// cluster or on the topic. The failures, as text for the status detail.
async fn create_internal_topics(ctx: &RequestContext, topics: &[TopicInfo]) -> Vec<String> {
    let mut actions = vec![(
        Operation::Create,
        ResourceType::Cluster,
        authz::CLUSTER_NAME,
    )];
    actions.extend(
        topics
            .iter()
            .map(|t| (Operation::Create, ResourceType::Topic, t.name.as_str())),
    );
    let decisions = authz::authorize(ctx, "StreamsGroupHeartbeat", &actions).await;
    let cluster = decisions.first().copied().unwrap_or(false);
    let mut failures = Vec::new();
    for (t, allowed) in topics.iter().zip(decisions.iter().skip(1)) {
        if !(cluster || *allowed) {
            failures.push(format!("{}: Unauthorized to CREATE the topic", t.name));
            continue;
        }
        let configs: BTreeMap<String, String> = t.configs.iter().cloned().collect();
        match ctx.broker.create_topic(&t.name, t.partitions, configs) {
            Ok(_) | Err((KafkaError::TopicAlreadyExists, _)) => {
                tracing::info!(topic = %t.name, partitions = t.partitions, "created streams internal topic");
            }
            Err((e, msg)) => failures.push(format!("{}: {e} ({msg})", t.name)),
        }
    }
    failures
}

fn encode_heartbeat(
    head: &Head<'_>,
    out: &HeartbeatOut,
    endpoints: &[EndpointPartitions],
) -> Writer {
    let mut w = Writer::default();
    w.i32(0); // throttle
    w.i16(head.error);
    w.nullable_string(head.message);
    w.string(&out.member_id);
    w.i32(out.epoch);
    w.i32(head.heartbeat_interval_ms);
    if head.version == 0 {
        w.i32(ACCEPTABLE_RECOVERY_LAG as i32);
    }
    w.i32(TASK_OFFSET_INTERVAL_MS);
    if head.version >= 1 {
        w.i64(ACCEPTABLE_RECOVERY_LAG);
    }
    if head.error != 0 {
        for _ in 0..4 {
            w.nullable_array::<u8>(None, |_, _| {}); // status, active, standby, warm-up
        }
    } else {
        w.array(&out.statuses, |w, (code, detail)| {
            w.i8(*code);
            w.string(detail);
            w.tagged();
        });
        // The whole assignment every time: the client applies only what differs.
        w.task_ids(&out.tasks.active);
        w.task_ids(&out.tasks.standby);
        w.task_ids(&TaskSet::new());
    }
    if head.version >= 1 {
        w.bool(false); // TopologyDescriptionRequired: no description plugin, as Kafka's default
    }
    w.i32(out.endpoint_epoch);
    let topic_partitions = |w: &mut Writer, tps: &Vec<(String, Vec<i32>)>| {
        w.array(tps, |w, (topic, ps)| {
            w.string(topic);
            w.array(ps, |w, p| w.i32(*p));
            w.tagged();
        });
    };
    match &out.endpoints {
        Some(_) if head.error == 0 => w.array(endpoints, |w, e| {
            w.string(&e.host);
            w.u16(e.port);
            w.tagged();
            topic_partitions(w, &e.active);
            topic_partitions(w, &e.standby);
            w.tagged();
        }),
        _ => w.nullable_array::<u8>(None, |_, _| {}),
    }
    w.tagged();
    w
}

fn encode_assignment(w: &mut Writer, t: &MemberTasks) {
    w.task_ids(&t.active);
    w.task_ids(&t.standby);
    w.task_ids(&TaskSet::new());
    w.tagged();
}

fn encode_task_offsets(w: &mut Writer, offsets: &[TaskOffset]) {
    w.array(offsets, |w, (s, p, o)| {
        w.string(s);
        w.i32(*p);
        w.i64(*o);
        w.tagged();
    });
}

/// StreamsGroupDescribe v1's fields after AuthorizedOperations: no topology description
/// (kop stores none, as Kafka without a description plugin), and the assignor.
fn encode_v1_tail(w: &mut Writer, status: i8, assignor: Option<&str>) {
    w.i8(-1);
    w.i8(status);
    w.nullable_string(assignor);
}

fn encode_group(w: &mut Writer, id: &str, g: &StreamsGroup, operations: i32, v1: Option<i8>) {
    w.i16(0);
    w.nullable_string(None);
    w.string(id);
    w.string(g.state_name());
    w.i32(g.epoch);
    w.i32(g.assignment_epoch);
    match &g.topology {
        None => w.i8(-1),
        Some(t) => {
            w.i8(1);
            w.i32(t.epoch);
            w.array(&t.subtopologies, |w, s| {
                w.string(&s.id);
                w.strings(&s.source_topics);
                w.strings(&s.repartition_sink_topics);
                w.array(&s.changelog_topics, |w, t| w.topic_info(t));
                w.array(&s.repartition_source_topics, |w, t| w.topic_info(t));
                w.tagged();
            });
            w.tagged();
        }
    }
    let members: Vec<_> = g.members.values().collect();
    w.array(&members, |w, m| {
        w.string(&m.id);
        w.i32(m.epoch);
        w.nullable_string(m.instance_id.as_deref());
        w.nullable_string(m.rack_id.as_deref());
        w.string(&m.client_id);
        w.string(&m.client_host);
        w.i32(m.topology_epoch);
        w.string(&m.process_id);
        match &m.user_endpoint {
            None => w.i8(-1),
            Some((host, port)) => {
                w.i8(1);
                w.string(host);
                w.u16(*port);
                w.tagged();
            }
        }
        w.array(&m.client_tags, |w, (k, v)| {
            w.string(k);
            w.string(v);
            w.tagged();
        });
        encode_task_offsets(w, &m.task_offsets);
        encode_task_offsets(w, &m.task_end_offsets);
        encode_assignment(w, &m.assigned);
        encode_assignment(w, &g.target.get(&m.id).cloned().unwrap_or_default());
        w.bool(false);
        w.tagged();
    });
    w.i32(operations);
    if let Some(status) = v1 {
        encode_v1_tail(w, status, Some(ASSIGNOR_NAME));
    }
    w.tagged();
}

fn encode_error(
    ctx: &RequestContext,
    w: &mut Writer,
    (id, version): (&str, i16),
    e: KafkaError,
    msg: &str,
) {
    ctx.broker
        .metrics
        .requests
        .error(wire::DESCRIBE_KEY, e.code());
    w.i16(e.code());
    w.nullable_string(Some(msg));
    w.string(id);
    w.string("Dead");
    w.i32(0);
    w.i32(0);
    w.i8(-1);
    w.array::<u8>(&[], |_, _| {});
    w.i32(i32::MIN);
    if version >= 1 {
        encode_v1_tail(w, TOPOLOGY_DESCRIPTION_NOT_REQUESTED, None);
    }
    w.tagged();
}

async fn describe(ctx: &RequestContext, req: DescribeRequest, version: i16) -> Writer {
    let v1 = (version >= 1).then_some(if req.include_topology_description {
        TOPOLOGY_DESCRIPTION_NOT_STORED
    } else {
        TOPOLOGY_DESCRIPTION_NOT_REQUESTED
    });
    let ids: Vec<&str> = req.group_ids.iter().map(String::as_str).collect();
    let decisions = authz::groups_with_operations(
        ctx,
        "StreamsGroupDescribe",
        Operation::Describe,
        &ids,
        req.include_authorized_operations,
    )
    .await;
    let mut w = Writer::default();
    w.i32(0);
    let groups: Vec<(&str, (bool, i32))> = ids.into_iter().zip(decisions).collect();
    w.array(&groups, |w, (id, (allowed, operations))| {
        if !allowed {
            let e = KafkaError::GroupAuthorizationFailed;
            return encode_error(ctx, w, (id, version), e, &e.to_string());
        }
        let ops = if req.include_authorized_operations {
            *operations
        } else {
            i32::MIN
        };
        let described = ctx.broker.groups.with_streams_group(id, |g| {
            let mut one = Writer::default();
            encode_group(&mut one, id, g, ops, v1);
            one.0
        });
        match described {
            Ok(bytes) => w.0.extend_from_slice(&bytes),
            Err(KafkaError::GroupIdNotFound) => {
                let msg = format!("Group {id} not found.");
                encode_error(ctx, w, (id, version), KafkaError::GroupIdNotFound, &msg)
            }
            Err(e) => encode_error(ctx, w, (id, version), e, &e.to_string()),
        }
    });
    w.tagged();
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handlers::streams_wire::Reader;
    use bytes::Bytes;

    #[test]
    fn an_error_heartbeat_response_has_null_lists() {
        let (code, w) = error_response(KafkaError::FencedMemberEpoch, "fenced".into(), 0);
        assert_eq!(code, KafkaError::FencedMemberEpoch.code());
        let r = &mut Reader::new(Bytes::from(w.0.to_vec()));
        assert_eq!(r.i32().unwrap(), 0);
        assert_eq!(r.i16().unwrap(), KafkaError::FencedMemberEpoch.code());
        assert_eq!(r.nullable_string().unwrap().as_deref(), Some("fenced"));
    }
}
