//! The Streams group member state machine: joins, revocation before reassignment, leaving,
//! fencing and session expiry.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::assignor::TaskSet;
use super::topology::{Configured, Subtopology, Topology, MISSING_SOURCE_TOPICS};
use super::*;

fn topology() -> Topology {
    Topology {
        epoch: 0,
        subtopologies: vec![Subtopology {
            id: "0".into(),
            source_topics: vec!["in".into()],
            ..Subtopology::default()
        }],
    }
}

/// Four tasks of subtopology 0.
fn ready(_: &Topology) -> Configured {
    Configured {
        tasks: BTreeMap::from([("0".to_string(), 4)]),
        ..Configured::default()
    }
}

fn join(g: &mut StreamsGroup, id: &str, now: Instant) -> HeartbeatOut {
    join_with_standbys(g, id, now, 0)
}

fn join_with_standbys(
    g: &mut StreamsGroup,
    id: &str,
    now: Instant,
    standbys: usize,
) -> HeartbeatOut {
    let p = HeartbeatParams {
        member_id: id.into(),
        member_epoch: 0,
        topology: Some(topology()),
        process_id: Some(format!("process-{id}")),
        rebalance_timeout_ms: 60_000,
        owned_active: Some(TaskSet::new()),
        ..HeartbeatParams::default()
    };
    g.heartbeat(p, now, standbys, &ready).unwrap()
}

fn beat(g: &mut StreamsGroup, id: &str, epoch: i32, owned: Option<TaskSet>) -> HeartbeatOut {
    beat_with_standbys(g, id, epoch, owned, 0)
}

fn beat_with_standbys(
    g: &mut StreamsGroup,
    id: &str,
    epoch: i32,
    owned: Option<TaskSet>,
    standbys: usize,
) -> HeartbeatOut {
    let p = HeartbeatParams {
        member_id: id.into(),
        member_epoch: epoch,
        owned_active: owned,
        ..HeartbeatParams::default()
    };
    g.heartbeat(p, Instant::now(), standbys, &ready).unwrap()
}

fn n(t: &TaskSet) -> usize {
    t.values().map(|p| p.len()).sum()
}

#[test]
fn first_member_gets_every_task_at_the_group_epoch() {
    let mut g = StreamsGroup::new(0);
    let out = join(&mut g, "a", Instant::now());
    assert_eq!(n(&out.tasks.active), 4);
    assert_eq!(out.epoch, g.epoch);
    assert_eq!(g.state_name(), "Stable");
}

#[test]
fn a_task_moves_only_after_its_owner_revoked_it() {
    let mut g = StreamsGroup::new(0);
    let a = join(&mut g, "a", Instant::now());
    let b = join(&mut g, "b", Instant::now());
    // b's target has two tasks, all still held by a.
    assert_eq!(n(&b.tasks.active), 0);
    assert_eq!(g.state_name(), "Reconciling");
    // a is told to keep two: the other two are pending revocation, a keeps its epoch.
    let a2 = beat(&mut g, "a", a.epoch, None);
    assert_eq!(n(&a2.tasks.active), 2);
    assert_eq!(a2.epoch, a.epoch);
    // Until a reports them gone, b gets nothing.
    let b2 = beat(&mut g, "b", b.epoch, None);
    assert_eq!(n(&b2.tasks.active), 0);
    let a3 = beat(&mut g, "a", a2.epoch, Some(a2.tasks.active.clone()));
    assert_eq!(a3.epoch, g.assignment_epoch);
    let b3 = beat(&mut g, "b", b2.epoch, None);
    assert_eq!(n(&b3.tasks.active), 2);
    assert_eq!(g.state_name(), "Stable");
    for (s, ps) in &b3.tasks.active {
        for p in ps {
            assert!(!assignor::contains(&a3.tasks.active, s, *p));
        }
    }
}

#[test]
fn with_one_standby_each_active_task_has_a_copy_on_the_other_process() {
    let mut g = StreamsGroup::new(0);
    let a = join_with_standbys(&mut g, "a", Instant::now(), 1);
    assert!(
        a.tasks.standby.is_empty(),
        "one process: nowhere for a standby"
    );
    let b = join_with_standbys(&mut g, "b", Instant::now(), 1);
    let a2 = beat_with_standbys(&mut g, "a", a.epoch, None, 1);
    let owned = Some(a2.tasks.active.clone());
    let a3 = beat_with_standbys(&mut g, "a", a2.epoch, owned, 1);
    let b2 = beat_with_standbys(&mut g, "b", b.epoch, None, 1);
    assert_eq!(g.state_name(), "Stable");
    assert_eq!((n(&a3.tasks.active), n(&b2.tasks.active)), (2, 2));
    // Every task: active on one process, its one standby on the other.
    assert_eq!(a3.tasks.standby, b2.tasks.active);
    assert_eq!(b2.tasks.standby, a3.tasks.active);
    // Back to no standbys: the next heartbeat computes a target without them.
    let a4 = beat_with_standbys(&mut g, "a", a3.epoch, None, 0);
    assert!(a4.tasks.standby.is_empty());
    assert_eq!(a4.tasks.active, a3.tasks.active);
}

#[test]
fn the_group_configs_set_standbys_and_session_over_the_broker_settings() {
    use crate::group::state::GroupConfig;
    use crate::group::GroupCoordinator;

    let config = GroupConfig {
        streams_num_standby_replicas: 2,
        ..GroupConfig::default()
    };
    let co = GroupCoordinator::inactive(Vec::new(), config);
    let broker = co.streams_settings("app");
    assert_eq!(
        broker.num_standby, 2,
        "the broker's group.streams.num.standby.replicas"
    );
    assert_eq!(broker.session_timeout, SESSION_TIMEOUT);
    assert_eq!(broker.heartbeat_interval_ms, HEARTBEAT_INTERVAL_MS);
    co.group_configs
        .alter("app", false, |c| {
            c.insert("streams.num.standby.replicas".into(), "1".into());
            c.insert("streams.session.timeout.ms".into(), "50000".into());
            c.insert("streams.heartbeat.interval.ms".into(), "7000".into());
            Ok(())
        })
        .unwrap();
    let own = co.streams_settings("app");
    assert_eq!(own.num_standby, 1);
    assert_eq!(own.session_timeout, Duration::from_millis(50_000));
    assert_eq!(own.heartbeat_interval_ms, 7_000);
    assert_eq!(co.streams_settings("other"), broker);
}

#[test]
fn tasks_of_a_member_that_leaves_go_to_the_survivor() {
    let mut g = StreamsGroup::new(0);
    let a = join(&mut g, "a", Instant::now());
    let b = join(&mut g, "b", Instant::now());
    let a2 = beat(&mut g, "a", a.epoch, None);
    beat(&mut g, "a", a2.epoch, Some(a2.tasks.active.clone()));
    let b2 = beat(&mut g, "b", b.epoch, None);
    assert_eq!(n(&b2.tasks.active), 2);
    let left = beat(&mut g, "b", LEAVE_EPOCH, None);
    assert_eq!(left.epoch, LEAVE_EPOCH);
    let epoch = g.members["a"].epoch;
    let a4 = beat(&mut g, "a", epoch, None);
    assert_eq!(n(&a4.tasks.active), 4);
}

#[test]
fn a_stale_epoch_is_fenced_and_an_unknown_member_refused() {
    let mut g = StreamsGroup::new(0);
    let a = join(&mut g, "a", Instant::now());
    let p = HeartbeatParams {
        member_id: "a".into(),
        member_epoch: a.epoch + 5,
        ..HeartbeatParams::default()
    };
    let e = g.heartbeat(p, Instant::now(), 0, &ready).unwrap_err();
    assert_eq!(e.0, KafkaError::FencedMemberEpoch);
    let p = HeartbeatParams {
        member_id: "zz".into(),
        member_epoch: 3,
        ..HeartbeatParams::default()
    };
    let e = g.heartbeat(p, Instant::now(), 0, &ready).unwrap_err();
    assert_eq!(e.0, KafkaError::UnknownMemberId);
}

#[test]
fn a_join_without_topology_is_invalid() {
    let mut g = StreamsGroup::new(0);
    let p = HeartbeatParams {
        member_id: "a".into(),
        ..HeartbeatParams::default()
    };
    let e = g.heartbeat(p, Instant::now(), 0, &ready).unwrap_err();
    assert_eq!(e.0, KafkaError::InvalidRequest);
}

#[test]
fn a_silent_member_expires_and_its_tasks_are_reassigned() {
    let mut g = StreamsGroup::new(0);
    let t0 = Instant::now();
    join(&mut g, "a", t0);
    let gone = g.tick(t0 + SESSION_TIMEOUT + Duration::from_millis(1));
    assert_eq!(gone, vec!["a".to_string()]);
    assert!(g.members.is_empty());
    assert_eq!(g.state_name(), "Empty");
}

#[test]
fn without_source_topics_the_group_is_not_ready_and_says_why() {
    let mut g = StreamsGroup::new(0);
    let missing = |_: &Topology| Configured {
        statuses: vec![(
            MISSING_SOURCE_TOPICS,
            "Source topics in are missing.".into(),
        )],
        ..Configured::default()
    };
    let p = HeartbeatParams {
        member_id: "a".into(),
        topology: Some(topology()),
        ..HeartbeatParams::default()
    };
    let out = g.heartbeat(p, Instant::now(), 0, &missing).unwrap();
    assert_eq!(out.statuses[0].0, MISSING_SOURCE_TOPICS);
    assert!(out.tasks.active.is_empty());
    assert_eq!(g.state_name(), "NotReady");
}

#[test]
fn the_group_state_survives_a_snapshot() {
    let mut g = StreamsGroup::new(0);
    join(&mut g, "a", Instant::now());
    let json = serde_json::to_string(&g).unwrap();
    let back: StreamsGroup = serde_json::from_str(&json).unwrap();
    assert_eq!(back.members["a"].assigned, g.members["a"].assigned);
    assert_eq!(back.topology, g.topology);
    assert_eq!(back.epoch, g.epoch);
}

#[test]
fn a_streams_group_survives_a_coordinator_restart_with_its_epochs() {
    use std::sync::Arc;

    use crate::group::state::GroupConfig;
    use crate::group::{GroupCoordinator, LogGroupStore};
    use crate::storage::FileGroupLog;

    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let store = Arc::new(LogGroupStore::new(Arc::new(
            FileGroupLog::open(dir.path(), false).unwrap(),
        )));
        GroupCoordinator::open(store, GroupConfig::default()).unwrap()
    };
    let params = |epoch: i32| HeartbeatParams {
        member_id: "m1".into(),
        member_epoch: epoch,
        topology: (epoch == 0).then(topology),
        process_id: Some("p1".into()),
        rebalance_timeout_ms: 30_000,
        ..HeartbeatParams::default()
    };
    let (epoch, tasks) = {
        let co = open();
        let out = co.streams_heartbeat("app", params(0), &ready).unwrap();
        assert_eq!(n(&out.tasks.active), 4);
        (out.epoch, out.tasks)
    };
    let co = open();
    let out = co.streams_heartbeat("app", params(epoch), &ready).unwrap();
    assert_eq!(out.epoch, epoch, "same epoch after a restart, no rebalance");
    assert_eq!(out.tasks, tasks);
    let state = co.with_streams_group("app", |g| g.state_name()).unwrap();
    assert_eq!(state, "Stable");
}

fn static_join(g: &mut StreamsGroup, id: &str, instance: &str) -> Result<HeartbeatOut, KafkaError> {
    let p = HeartbeatParams {
        member_id: id.into(),
        member_epoch: 0,
        instance_id: Some(instance.into()),
        topology: Some(topology()),
        rebalance_timeout_ms: 60_000,
        owned_active: Some(TaskSet::new()),
        ..HeartbeatParams::default()
    };
    g.heartbeat(p, Instant::now(), 0, &ready).map_err(|e| e.0)
}

#[test]
fn a_static_member_rejoining_after_leaving_gets_its_tasks_back_without_a_rebalance() {
    let mut g = StreamsGroup::new(0);
    let a = static_join(&mut g, "a1", "inst-a").unwrap();
    let b = join(&mut g, "b", Instant::now());
    let a = beat(&mut g, "a1", a.epoch, None);
    let a = beat(&mut g, "a1", a.epoch, Some(a.tasks.active.clone()));
    beat(&mut g, "b", b.epoch, None);
    assert_eq!(g.state_name(), "Stable");
    let held = a.tasks.active.clone();
    let epoch = g.epoch;
    // While a1 holds the instance, another member can't take it.
    assert_eq!(
        static_join(&mut g, "a2", "inst-a").unwrap_err(),
        KafkaError::UnreleasedInstanceId
    );
    // A static leave (-2) keeps the member and its tasks; no new group epoch.
    let leave = HeartbeatParams {
        member_id: "a1".into(),
        member_epoch: STATIC_LEAVE_EPOCH,
        instance_id: Some("inst-a".into()),
        ..HeartbeatParams::default()
    };
    assert_eq!(
        g.heartbeat(leave, Instant::now(), 0, &ready).unwrap().epoch,
        -2
    );
    assert_eq!(g.epoch, epoch);
    // The restarted instance (a new member id) gets the same tasks at once.
    let back = static_join(&mut g, "a2", "inst-a").unwrap();
    assert_eq!(back.tasks.active, held);
    assert_eq!(g.epoch, epoch);
    assert!(!g.members.contains_key("a1"));
    // The old member id is fenced.
    let old = HeartbeatParams {
        member_id: "a1".into(),
        member_epoch: back.epoch,
        instance_id: Some("inst-a".into()),
        ..HeartbeatParams::default()
    };
    let e = g.heartbeat(old, Instant::now(), 0, &ready).unwrap_err();
    assert_eq!(e.0, KafkaError::FencedInstanceId);
}

#[test]
fn members_get_every_endpoint_when_their_endpoint_epoch_is_behind() {
    let mut g = StreamsGroup::new(0);
    let with_endpoint =
        |id: &str, port: u16, epoch: i32, owned: Option<TaskSet>, seen: i32| HeartbeatParams {
            member_id: id.into(),
            member_epoch: epoch,
            topology: (epoch == 0).then(topology),
            process_id: Some(format!("p-{id}")),
            user_endpoint: (epoch == 0).then(|| ("localhost".to_string(), port)),
            owned_active: owned,
            endpoint_epoch: seen,
            ..HeartbeatParams::default()
        };
    let a = g
        .heartbeat(with_endpoint("a", 1, 0, None, 0), Instant::now(), 0, &ready)
        .unwrap();
    assert!(a.endpoint_epoch > 0);
    let eps = a.endpoints.clone().unwrap();
    assert_eq!((eps.len(), n(&eps[0].active)), (1, 4));
    // Up to date: nothing sent.
    let a = g
        .heartbeat(
            with_endpoint("a", 1, a.epoch, None, a.endpoint_epoch),
            Instant::now(),
            0,
            &ready,
        )
        .unwrap();
    assert!(a.endpoints.is_none());
    let b = g
        .heartbeat(with_endpoint("b", 2, 0, None, 0), Instant::now(), 0, &ready)
        .unwrap();
    // a revokes two tasks, then b takes them: each step is a new endpoint epoch.
    let a = g
        .heartbeat(
            with_endpoint("a", 1, a.epoch, None, a.endpoint_epoch),
            Instant::now(),
            0,
            &ready,
        )
        .unwrap();
    let owned = Some(a.tasks.active.clone());
    let a = g
        .heartbeat(
            with_endpoint("a", 1, a.epoch, owned, a.endpoint_epoch),
            Instant::now(),
            0,
            &ready,
        )
        .unwrap();
    let b = g
        .heartbeat(
            with_endpoint("b", 2, b.epoch, None, b.endpoint_epoch),
            Instant::now(),
            0,
            &ready,
        )
        .unwrap();
    let eps = b.endpoints.unwrap();
    let by_port: BTreeMap<u16, usize> = eps.iter().map(|e| (e.port, n(&e.active))).collect();
    assert_eq!(by_port, BTreeMap::from([(1, 2), (2, 2)]));
    assert!(b.endpoint_epoch > a.endpoint_epoch);
}
