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

/// A group coordinator over a group log in `dir` (opened again: a restart).
fn coordinator_on_disk(dir: &std::path::Path) -> crate::group::GroupCoordinator {
    use std::sync::Arc;

    use crate::group::{GroupCoordinator, LogGroupStore};
    use crate::storage::FileGroupLog;

    let store = Arc::new(LogGroupStore::new(Arc::new(
        FileGroupLog::open(dir, false).unwrap(),
    )));
    GroupCoordinator::open(store, no_delay()).unwrap()
}

#[test]
fn a_streams_group_survives_a_coordinator_restart_with_its_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let open = || coordinator_on_disk(dir.path());
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

/// The coordinator's defaults without the initial rebalance delay.
fn no_delay() -> crate::group::state::GroupConfig {
    crate::group::state::GroupConfig {
        streams_initial_rebalance_delay_ms: 0,
        ..crate::group::state::GroupConfig::default()
    }
}

#[test]
fn an_empty_streams_group_stays_until_deleted_or_expired() {
    let dir = tempfile::tempdir().unwrap();
    let open = || coordinator_on_disk(dir.path());
    let params = |id: &str, epoch: i32| HeartbeatParams {
        member_id: id.into(),
        member_epoch: epoch,
        topology: (epoch == 0).then(topology),
        rebalance_timeout_ms: 30_000,
        ..HeartbeatParams::default()
    };
    let listed = |co: &crate::group::GroupCoordinator, id: &str| {
        co.list()
            .into_iter()
            .find(|g| g.0 == id)
            .map(|g| (g.2, g.3))
    };
    {
        let co = open();
        for app in ["app", "other"] {
            co.streams_heartbeat(app, params("m1", 0), &ready).unwrap();
            co.streams_heartbeat(app, params("m1", LEAVE_EPOCH), &ready)
                .unwrap();
        }
        // All members left: the groups stay, Empty, with their topology and epoch.
        assert_eq!(listed(&co, "app"), Some(("Empty", "streams")));
        let (state, epoch, target_epoch, topo) = co
            .with_streams_group("app", |g| {
                (
                    g.state_name(),
                    g.epoch,
                    g.assignment_epoch,
                    g.topology.clone(),
                )
            })
            .unwrap();
        assert_eq!(
            (state, epoch, target_epoch, topo),
            ("Empty", 4, 4, Some(topology()))
        );
        co.delete_group("other").unwrap();
        assert_eq!(listed(&co, "other"), None);
    }
    // A restarted coordinator has the empty group, not the deleted one.
    let co = open();
    assert_eq!(listed(&co, "app"), Some(("Empty", "streams")));
    assert_eq!(listed(&co, "other"), None);
    // A member coming back continues from the stored epoch.
    let out = co
        .streams_heartbeat("app", params("m2", 0), &ready)
        .unwrap();
    assert_eq!(out.epoch, 5);
    co.streams_heartbeat("app", params("m2", LEAVE_EPOCH), &ready)
        .unwrap();
    // Offsets retention's cleanup removes it (it has no offsets), and for good.
    co.expire(crate::now_ms());
    assert_eq!(listed(&co, "app"), None);
    drop(co);
    assert_eq!(listed(&open(), "app"), None);
}

fn delayed_join(g: &mut StreamsGroup, id: &str, now: Instant) -> HeartbeatOut {
    let p = HeartbeatParams {
        member_id: id.into(),
        member_epoch: 0,
        topology: Some(topology()),
        process_id: Some(format!("process-{id}")),
        rebalance_timeout_ms: 60_000,
        owned_active: Some(TaskSet::new()),
        ..HeartbeatParams::default()
    };
    g.heartbeat(p, now, 0, &ready).unwrap()
}

fn delayed_beat(g: &mut StreamsGroup, id: &str, epoch: i32, now: Instant) -> HeartbeatOut {
    let p = HeartbeatParams {
        member_id: id.into(),
        member_epoch: epoch,
        owned_active: None,
        ..HeartbeatParams::default()
    };
    g.heartbeat(p, now, 0, &ready).unwrap()
}

fn delayed(out: &HeartbeatOut) -> bool {
    out.statuses.iter().any(|(code, detail)| {
        *code == topology::ASSIGNMENT_DELAYED
            && detail == "Assignment delayed due to the configured initial rebalance delay."
    })
}

#[test]
fn the_first_assignment_waits_for_the_initial_rebalance_delay() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut g = StreamsGroup {
        initial_delay: ms(3_000),
        ..StreamsGroup::new(0)
    };
    let a = delayed_join(&mut g, "a", t0);
    assert!(delayed(&a), "{:?}", a.statuses);
    assert_eq!((n(&a.tasks.active), a.epoch), (0, g.epoch));
    assert_eq!(g.state_name(), "Assigning");
    // A second member within the delay does not restart it.
    let b = delayed_join(&mut g, "b", t0 + ms(2_000));
    assert!(delayed(&b));
    let a = delayed_beat(&mut g, "a", a.epoch, t0 + ms(2_999));
    assert!(delayed(&a) && n(&a.tasks.active) == 0);
    // Once it ended, one target for both members, no status.
    let a = delayed_beat(&mut g, "a", a.epoch, t0 + ms(3_000));
    assert!(a.statuses.is_empty(), "{:?}", a.statuses);
    assert_eq!((n(&a.tasks.active), a.epoch), (2, g.epoch));
    let b = delayed_beat(&mut g, "b", b.epoch, t0 + ms(3_100));
    assert_eq!(n(&b.tasks.active), 2);
    assert_eq!(g.state_name(), "Stable");
    // A member joining the running group is not delayed.
    let c = delayed_join(&mut g, "c", t0 + ms(4_000));
    assert!(!delayed(&c));
    assert_eq!(g.assignment_epoch, g.epoch);
}

#[test]
fn the_timer_computes_the_delayed_target_and_an_emptied_group_is_delayed_again() {
    let t0 = Instant::now();
    let ms = Duration::from_millis;
    let mut g = StreamsGroup {
        initial_delay: ms(1_000),
        ..StreamsGroup::new(0)
    };
    let a = delayed_join(&mut g, "a", t0);
    assert!(delayed(&a));
    assert!(!g.end_assignment_delay(t0 + ms(999)));
    assert_eq!(g.state_name(), "Assigning");
    // The timer, without a heartbeat: the target is there, the member gets it next time.
    assert!(g.end_assignment_delay(t0 + ms(1_000)));
    assert_eq!(g.assignment_epoch, g.epoch);
    assert!(!g.end_assignment_delay(t0 + ms(1_001)), "only once");
    let a = delayed_beat(&mut g, "a", a.epoch, t0 + ms(1_500));
    assert_eq!(n(&a.tasks.active), 4);
    // Everyone leaves; the next member to come waits again.
    let leave = HeartbeatParams {
        member_id: "a".into(),
        member_epoch: LEAVE_EPOCH,
        ..HeartbeatParams::default()
    };
    g.heartbeat(leave, t0 + ms(2_000), 0, &ready).unwrap();
    assert_eq!(g.state_name(), "Empty");
    let b = delayed_join(&mut g, "b", t0 + ms(3_000));
    assert!(delayed(&b));
    assert_eq!(n(&b.tasks.active), 0);
    let b = delayed_beat(&mut g, "b", b.epoch, t0 + ms(4_000));
    assert_eq!(n(&b.tasks.active), 4);
}

#[test]
fn the_initial_rebalance_delay_comes_from_the_group_config_over_the_broker() {
    use crate::group::GroupCoordinator;

    let co = GroupCoordinator::inactive(Vec::new(), no_delay());
    assert_eq!(
        co.streams_settings("app").initial_rebalance_delay,
        Duration::ZERO
    );
    co.group_configs
        .alter("app", false, |c| {
            c.insert("streams.initial.rebalance.delay.ms".into(), "1500".into());
            Ok(())
        })
        .unwrap();
    let own = co.streams_settings("app");
    assert_eq!(own.initial_rebalance_delay, Duration::from_millis(1_500));
    let broker =
        GroupCoordinator::inactive(Vec::new(), crate::group::state::GroupConfig::default());
    assert_eq!(
        broker.streams_settings("app").initial_rebalance_delay,
        Duration::from_millis(3_000),
        "Kafka's default"
    );
}

fn static_join_as(g: &mut StreamsGroup, id: &str, instance: &str, process: &str) -> HeartbeatOut {
    let p = HeartbeatParams {
        member_id: id.into(),
        member_epoch: 0,
        instance_id: Some(instance.into()),
        process_id: Some(process.into()),
        topology: Some(topology()),
        rebalance_timeout_ms: 60_000,
        owned_active: Some(TaskSet::new()),
        ..HeartbeatParams::default()
    };
    g.heartbeat(p, Instant::now(), 0, &ready).unwrap()
}

fn static_leave(g: &mut StreamsGroup, id: &str, instance: &str) {
    let leave = HeartbeatParams {
        member_id: id.into(),
        member_epoch: STATIC_LEAVE_EPOCH,
        instance_id: Some(instance.into()),
        ..HeartbeatParams::default()
    };
    g.heartbeat(leave, Instant::now(), 0, &ready).unwrap();
}

#[test]
fn a_static_member_back_as_another_process_makes_a_new_group_epoch() {
    let mut g = StreamsGroup::new(0);
    let a = static_join_as(&mut g, "a1", "inst-a", "p1");
    let b = static_join_as(&mut g, "b1", "inst-b", "p2");
    let a = beat(&mut g, "a1", a.epoch, None);
    let a = beat(&mut g, "a1", a.epoch, Some(a.tasks.active.clone()));
    let b = beat(&mut g, "b1", b.epoch, None);
    assert_eq!(g.state_name(), "Stable");
    let epoch = g.epoch;
    // The same process back (same process id, topology, rack, tags): the epoch stays, and the
    // new member id takes the old member's tasks at the assignment epoch.
    static_leave(&mut g, "a1", "inst-a");
    let a2 = static_join_as(&mut g, "a2", "inst-a", "p1");
    assert_eq!((g.epoch, a2.epoch), (epoch, epoch));
    assert_eq!(a2.tasks.active, a.tasks.active);
    // Another process id (e.g. a new state directory): Kafka's epoch-relevant member config
    // changed, so a new group epoch and target; the member is at it once reconciled.
    static_leave(&mut g, "b1", "inst-b");
    let b2 = static_join_as(&mut g, "b2", "inst-b", "p3");
    assert_eq!(g.epoch, epoch + 1);
    assert_eq!(g.assignment_epoch, epoch + 1);
    assert_eq!(b2.epoch, epoch + 1);
    assert_eq!(b2.tasks.active, b.tasks.active, "sticky: the same tasks");
    assert_eq!(g.members["b2"].process_id, "p3");
    // A dynamic member changing its endpoint also bumps the epoch (any metadata change).
    let c = join(&mut g, "c", Instant::now());
    let before = g.epoch;
    let p = HeartbeatParams {
        member_id: "c".into(),
        member_epoch: c.epoch,
        user_endpoint: Some(("h".into(), 1)),
        ..HeartbeatParams::default()
    };
    g.heartbeat(p, Instant::now(), 0, &ready).unwrap();
    assert_eq!(g.epoch, before + 1);
}
