//! State-machine tests: time is passed in explicitly, so timers are exercised without sleeping.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::classic::{ClassicGroup, GroupState, JoinOutcome, SyncOutcome};
use super::state::{Group, GroupConfig, Now, Reply, MIN_INITIAL_JOIN_PHASE};
use super::{GroupCoordinator, JoinParams, LogGroupStore, OffsetEntry, SyncParams};
use crate::error::KafkaError;
use crate::storage::FileGroupLog;

/// The classic group a test drives through `Group`.
fn classic(g: &Group) -> &ClassicGroup {
    g.classic().expect("a classic group")
}

fn cfg(delay_ms: u64) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay: Duration::from_millis(delay_ms),
        ..GroupConfig::default()
    }
}

fn params(member_id: &str, instance: Option<&str>, proto: &[u8]) -> JoinParams {
    JoinParams {
        member_id: member_id.into(),
        instance_id: instance.map(Into::into),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), Bytes::copy_from_slice(proto))],
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

fn now_value<T>(r: Reply<T>) -> T {
    match r {
        Reply::Now(v) => v,
        Reply::Wait(_) => panic!("expected an immediate answer"),
    }
}

fn waiting<T>(r: Reply<T>) -> tokio::sync::oneshot::Receiver<T> {
    match r {
        Reply::Wait(rx) => rx,
        Reply::Now(_) => panic!("expected to wait"),
    }
}

/// Joins a new dynamic member through the MEMBER_ID_REQUIRED round trip; returns its waiter.
fn join_new(
    g: &mut Group,
    now: Now,
    c: &GroupConfig,
) -> (String, tokio::sync::oneshot::Receiver<JoinOutcome>) {
    let first = now_value(g.join(params("", None, b"m"), now, c));
    assert_eq!(first.error, Some(KafkaError::MemberIdRequired));
    let id = first.member_id;
    (id.clone(), waiting(g.join(params(&id, None, b"m"), now, c)))
}

/// The coordinator's timer ends the first join phase of a group that was empty.
fn end_first_join_phase(g: &mut Group, now: Now, c: &GroupConfig) {
    g.tick(now + MIN_INITIAL_JOIN_PHASE, c);
}

fn sync(g: &mut Group, id: &str, generation: i32, assign: &[(&str, &[u8])]) -> Reply<SyncOutcome> {
    g.sync(
        SyncParams {
            member_id: id,
            instance_id: None,
            generation,
            protocol_type: None,
            protocol_name: None,
            assignments: assign
                .iter()
                .map(|(m, a)| (m.to_string(), Bytes::copy_from_slice(a)))
                .collect(),
        },
        Now::current(),
        &cfg(0),
    )
}

#[test]
fn two_members_rebalance_and_sync() {
    let c = cfg(0);
    let now = Now::current();
    let mut g = Group::new("g", 0);
    let (a, mut rx_a) = join_new(&mut g, now, &c);
    end_first_join_phase(&mut g, now, &c);
    let ja = rx_a.try_recv().unwrap();
    assert_eq!(
        (ja.error, ja.generation, ja.leader.as_str()),
        (None, 1, a.as_str())
    );
    assert_eq!(ja.members.len(), 1);
    let s = now_value(sync(&mut g, &a, 0, &[])).unwrap_err();
    assert_eq!(s, KafkaError::IllegalGeneration, "wrong generation");
    let mut rx = waiting(sync(&mut g, &a, 1, &[(&a, b"A1")]));
    assert_eq!(rx.try_recv().unwrap().unwrap().2, Bytes::from_static(b"A1"));
    assert_eq!(classic(&g).state, GroupState::Stable);

    let (b, mut rx_b) = join_new(&mut g, now, &c);
    assert_eq!(classic(&g).state, GroupState::PreparingRebalance);
    assert!(rx_b.try_recv().is_err(), "waits for the other member");
    assert_eq!(
        g.heartbeat(&a, None, 1, now),
        Err(KafkaError::RebalanceInProgress)
    );
    assert_eq!(
        g.heartbeat("nobody", None, 1, now),
        Err(KafkaError::UnknownMemberId)
    );
    let mut rx_a = waiting(g.join(params(&a, None, b"m"), now, &c));
    let (ja, jb) = (rx_a.try_recv().unwrap(), rx_b.try_recv().unwrap());
    assert_eq!((ja.generation, jb.generation), (2, 2));
    assert_eq!(
        (ja.members.len(), jb.members.len()),
        (2, 0),
        "only the leader gets members"
    );
    let mut sb = waiting(sync(&mut g, &b, 2, &[]));
    assert!(sb.try_recv().is_err(), "follower waits for the leader");
    let mut sa = waiting(sync(&mut g, &a, 2, &[(&a, b"A2"), (&b, b"B2")]));
    assert_eq!(sa.try_recv().unwrap().unwrap().2, Bytes::from_static(b"A2"));
    assert_eq!(sb.try_recv().unwrap().unwrap().2, Bytes::from_static(b"B2"));
    assert_eq!(g.heartbeat(&b, None, 2, now), Ok(()));

    // B leaves: A must rejoin; the group rebalances to generation 3 with A alone.
    assert_eq!(g.leave(&[(b.clone(), None)], now, &c), vec![Ok(())]);
    assert_eq!(classic(&g).state, GroupState::PreparingRebalance);
    let mut rx_a = waiting(g.join(params(&a, None, b"m"), now, &c));
    assert_eq!(rx_a.try_recv().unwrap().generation, 3);
    assert_eq!(
        g.leave(&[(b, None)], now, &c),
        vec![Err(KafkaError::UnknownMemberId)]
    );
}

#[test]
fn a_full_classic_group_refuses_new_members() {
    let c = GroupConfig {
        max_size: 1,
        ..cfg(0)
    };
    let now = Now::current();
    let mut g = Group::new("g", 0);
    let (a, mut rx_a) = join_new(&mut g, now, &c);
    // While the first rebalance is prepared, the one waiting member fills the group.
    let refused = now_value(g.join(params("", None, b"m"), now, &c));
    assert_eq!(refused.error, Some(KafkaError::GroupMaxSizeReached));
    assert_eq!(refused.member_id, "");
    end_first_join_phase(&mut g, now, &c);
    assert_eq!(rx_a.try_recv().unwrap().error, None);
    let mut synced = waiting(sync(&mut g, &a, 1, &[(&a, b"A1")]));
    assert!(synced.try_recv().unwrap().is_ok());
    assert_eq!(classic(&g).state, GroupState::Stable);
    // Stable and full: a newcomer is refused; the member itself still rejoins (the leader's
    // rejoin is a rebalance of its own, done at once).
    let refused = now_value(g.join(params("", None, b"m"), now, &c));
    assert_eq!(refused.error, Some(KafkaError::GroupMaxSizeReached));
    let mut rejoined = waiting(g.join(params(&a, None, b"m"), now, &c));
    let rejoined = rejoined.try_recv().unwrap();
    assert_eq!((rejoined.error, rejoined.generation), (None, 2));
}

#[test]
fn session_expiry_removes_a_silent_member() {
    let c = cfg(0);
    let t0 = Now::current();
    let mut g = Group::new("g", 0);
    let (a, _rx) = join_new(&mut g, t0, &c);
    end_first_join_phase(&mut g, t0, &c);
    let _ = sync(&mut g, &a, 1, &[(&a, b"x")]);
    let (b, mut rx_b) = join_new(&mut g, t0, &c);
    let mut rx_a = waiting(g.join(params(&a, None, b"m"), t0, &c));
    let _ = (rx_a.try_recv().unwrap(), rx_b.try_recv().unwrap());
    let _ = sync(&mut g, &b, 2, &[]);
    let _ = sync(&mut g, &a, 2, &[(&a, b"a"), (&b, b"b")]);
    assert_eq!(classic(&g).state, GroupState::Stable);
    // A keeps heartbeating, B goes silent past its 10 s session.
    let t1 = t0 + Duration::from_secs(8);
    assert_eq!(g.heartbeat(&a, None, 2, t1), Ok(()));
    g.tick(t0 + Duration::from_secs(11), &c);
    assert!(!classic(&g).members.contains_key(&b));
    assert_eq!(classic(&g).state, GroupState::PreparingRebalance);
    let mut rx_a = waiting(g.join(params(&a, None, b"m"), t1, &c));
    assert_eq!(rx_a.try_recv().unwrap().generation, 3);
}

#[test]
fn initial_delay_holds_the_first_rebalance() {
    let c = cfg(3000);
    let t0 = Now::current();
    let mut g = Group::new("g", 0);
    let (_a, mut rx_a) = join_new(&mut g, t0, &c);
    g.tick(t0 + Duration::from_millis(1000), &c);
    assert!(rx_a.try_recv().is_err());
    let (_b, mut rx_b) = join_new(&mut g, t0 + Duration::from_millis(1000), &c);
    g.tick(t0 + Duration::from_millis(3500), &c);
    assert!(rx_a.try_recv().is_err(), "a new member extends the delay");
    g.tick(t0 + Duration::from_millis(4100), &c);
    assert_eq!(rx_a.try_recv().unwrap().generation, 1);
    assert_eq!(rx_b.try_recv().unwrap().members.len(), 0);
}

#[test]
fn static_member_rejoins_without_rebalance_and_fences_the_old_id() {
    let c = cfg(0);
    let now = Now::current();
    let mut g = Group::new("g", 0);
    let mut rx = waiting(g.join(params("", Some("i1"), b"m"), now, &c));
    end_first_join_phase(&mut g, now, &c);
    let j = rx.try_recv().unwrap();
    let old = j.member_id.clone();
    let _ = sync(&mut g, &old, 1, &[(&old, b"P")]);
    assert_eq!(classic(&g).state, GroupState::Stable);
    // Restarted: same instance id, no member id.
    let j2 = now_value(g.join(params("", Some("i1"), b"m"), now, &c));
    assert_eq!((j2.error, j2.generation), (None, 1), "no new generation");
    assert_ne!(j2.member_id, old);
    assert_eq!(classic(&g).state, GroupState::Stable);
    let got = now_value(sync(&mut g, &j2.member_id, 1, &[])).unwrap();
    assert_eq!(got.2, Bytes::from_static(b"P"), "keeps its assignment");
    assert_eq!(
        g.heartbeat(&old, Some("i1"), 1, now),
        Err(KafkaError::FencedInstanceId)
    );
    assert_eq!(g.heartbeat(&j2.member_id, Some("i1"), 1, now), Ok(()));
    assert_eq!(
        g.leave(&[(old, Some("i1".into()))], now, &c),
        vec![Err(KafkaError::FencedInstanceId)]
    );
}

#[test]
fn inconsistent_protocols_and_commit_checks() {
    let c = cfg(0);
    let now = Now::current();
    let mut g = Group::new("g", 0);
    assert!(
        g.validate_commit("", None, -1).is_ok(),
        "simple commit to an empty group"
    );
    let (a, _rx) = join_new(&mut g, now, &c);
    end_first_join_phase(&mut g, now, &c);
    let mut other = params("", None, b"m");
    other.protocols = vec![("roundrobin".into(), Bytes::new())];
    let j = now_value(g.join(other, now, &c));
    assert_eq!(j.error, Some(KafkaError::InconsistentGroupProtocol));
    assert_eq!(
        g.validate_commit(&a, None, 1),
        Err(KafkaError::RebalanceInProgress)
    );
    let _ = sync(&mut g, &a, 1, &[]);
    assert_eq!(g.validate_commit(&a, None, 1), Ok(()));
    assert_eq!(
        g.validate_commit(&a, None, 7),
        Err(KafkaError::IllegalGeneration)
    );
    assert_eq!(
        g.validate_commit("", None, -1),
        Err(KafkaError::UnknownMemberId)
    );
}

#[test]
fn offsets_expire_only_after_the_group_is_empty_for_the_retention() {
    let mut g = Group::new("g", 0);
    let e = |ms| OffsetEntry {
        offset: 5,
        leader_epoch: -1,
        metadata: String::new(),
        commit_ms: ms,
    };
    g.commit("t", 0, e(1000));
    g.commit("t", 1, e(5000));
    assert_eq!(g.expire_offsets(2000, 2000), 0);
    assert_eq!(
        g.expire_offsets(3000, 2000),
        1,
        "simple group: by commit time"
    );
    assert!(g.committed("t", 1).is_some());
    g.remove_topic("t");
    assert!(g.offsets.is_empty());
}

#[test]
fn an_empty_group_stays_after_its_last_offset_is_deleted_until_expiry() {
    let store = Arc::new(LogGroupStore::new(Arc::new(crate::storage::MemoryGroupLog)));
    let co = GroupCoordinator::open(store, cfg(0)).unwrap();
    let r = co.commit("g", "", None, -1, vec![("t".into(), 0, Ok(entry_at(1)))]);
    assert_eq!(r.unwrap()[0].2, Ok(()));
    let deleted = co.delete_offsets("g", &[("t".into(), vec![0])]).unwrap();
    assert_eq!(deleted, [[Ok(())]]);
    // As Kafka: still there, Empty, and deletable.
    let d = co.describe("g").unwrap().unwrap();
    assert_eq!(d.state, GroupState::Empty);
    assert!(co.fetch("g", None).is_empty());
    co.delete_offsets("g", &[("t".into(), vec![0])]).unwrap();
    co.expire(crate::now_ms());
    assert_eq!(co.describe("g").unwrap().map(|d| d.state), None);
    let r = co.commit("h", "", None, -1, vec![("t".into(), 0, Ok(entry_at(1)))]);
    assert_eq!(r.unwrap()[0].2, Ok(()));
    co.delete_offsets("h", &[("t".into(), vec![0])]).unwrap();
    assert_eq!(co.delete_group("h"), Ok(()));
    assert_eq!(co.delete_group("h"), Err(KafkaError::GroupIdNotFound));
}

fn entry_at(offset: i64) -> OffsetEntry {
    OffsetEntry {
        offset,
        leader_epoch: -1,
        metadata: String::new(),
        commit_ms: crate::now_ms(),
    }
}

#[test]
fn coordinator_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let store = Arc::new(LogGroupStore::new(Arc::new(
            FileGroupLog::open(dir.path(), false).unwrap(),
        )));
        GroupCoordinator::open(store, cfg(0)).unwrap()
    };
    {
        let co = open();
        let entry = OffsetEntry {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_ms: crate::now_ms(),
        };
        let r = co.commit("g", "", None, -1, vec![("t".into(), 0, Ok(entry))]);
        assert_eq!(r.unwrap()[0].2, Ok(()));
        let mut p = params("", Some("i"), b"m");
        p.session_timeout_ms = 10_000;
        let mut rx = waiting(co.join("g2", p));
        std::thread::sleep(MIN_INITIAL_JOIN_PHASE);
        co.tick();
        let j = rx.try_recv().unwrap();
        let mut rx = waiting(co.sync(
            "g2",
            SyncParams {
                member_id: &j.member_id,
                instance_id: Some("i"),
                generation: 1,
                protocol_type: None,
                protocol_name: None,
                assignments: vec![(j.member_id.clone(), Bytes::from_static(b"A"))],
            },
        ));
        assert!(rx.try_recv().unwrap().is_ok());
        assert_eq!(co.delete_group("g2"), Err(KafkaError::NonEmptyGroup));
    }
    let co = open();
    let got = co.fetch("g", None);
    let e = got[0].1[0].1.clone().unwrap();
    assert_eq!(
        (e.offset, e.leader_epoch, e.metadata.as_str()),
        (42, 3, "meta")
    );
    let d = co.describe("g2").unwrap().unwrap();
    assert_eq!(d.state, GroupState::Stable);
    assert_eq!(d.members[0].assignment, Bytes::from_static(b"A"));
    co.remove_topic("t");
    drop(co);
    let co = open();
    assert!(co.fetch("g", None).is_empty());
    assert_eq!(co.delete_group("g"), Err(KafkaError::GroupIdNotFound));
}

#[test]
fn consumer_group_survives_reopen_and_static_member_takes_over() {
    use super::consumer::HeartbeatParams;
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let store = Arc::new(LogGroupStore::new(Arc::new(
            FileGroupLog::open(dir.path(), false).unwrap(),
        )));
        GroupCoordinator::open(store, cfg(0)).unwrap()
    };
    let tid = uuid::Uuid::from_u128(9);
    let topics = |n: &str| (n == "t").then_some((tid, 3));
    let hb = |id: &str, epoch: i32, inst: Option<&str>| HeartbeatParams {
        member_id: id.into(),
        member_epoch: epoch,
        instance_id: inst.map(Into::into),
        rack_id: None,
        rebalance_timeout_ms: 30_000,
        subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
        regex: None,
        regex_matched: None,
        assignor: None,
        owned: None,
        client_id: "c".into(),
        client_host: "/h".into(),
    };
    let epoch = {
        let co = open();
        let out = co
            .consumer_heartbeat("cg", hb("m1", 0, Some("i1")), &topics)
            .unwrap();
        assert_eq!(out.assignment.unwrap()[&tid].len(), 3);
        out.epoch
    };
    let co = open();
    let out = co
        .consumer_heartbeat("cg", hb("m1", epoch, Some("i1")), &topics)
        .unwrap();
    assert_eq!(out.epoch, epoch, "same epoch after a restart, no rebalance");
    // Another process with the same instance id while m1 is active: rejected.
    let err = co
        .consumer_heartbeat("cg", hb("m2", 0, Some("i1")), &topics)
        .err()
        .unwrap();
    assert_eq!(err.0, KafkaError::UnreleasedInstanceId);
    // m1 leaves temporarily (static); m2 takes over its partitions at the same epoch.
    let left = co
        .consumer_heartbeat("cg", hb("m1", -2, Some("i1")), &topics)
        .unwrap();
    assert_eq!(left.epoch, -2);
    let m2 = co
        .consumer_heartbeat("cg", hb("m2", 0, Some("i1")), &topics)
        .unwrap();
    assert_eq!(m2.epoch, epoch);
    assert_eq!(m2.assignment.unwrap()[&tid].len(), 3);
}

#[test]
fn groups_map_to_kafkas_consumer_offsets_partitions() {
    // Expected values printed by Kafka 4.1.1's `Utils.abs(group.hashCode()) % 50`.
    for (group, partition) in [
        ("test-group", 12),
        ("g-moves", 40),
        ("spread-0", 14),
        ("spread-7", 7),
        ("", 0),
        ("ünïcode-组", 23),
        ("polygenelubricants", 0), // hashCode() == i32::MIN
    ] {
        assert_eq!(super::shard_of(group, 50), partition, "{group}");
    }
    assert_eq!(super::shard_of("anything", 1), 0);
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Issue 12, defect 10: with `group.initial.rebalance.delay.ms=0`, two consumers started
/// together (librdkafka: JoinGroup, MEMBER_ID_REQUIRED, JoinGroup again) share generation 1.
/// kop used to answer the first member inside its JoinGroup, so it synced alone and only saw
/// the second member's rebalance at its next heartbeat, seconds later.
#[test]
fn members_joining_together_share_the_first_generation_without_delay() {
    let c = cfg(0);
    let t0 = Now::current();
    let mut g = Group::new("g", 0);
    let (a, mut rx_a) = join_new(&mut g, t0, &c);
    assert!(
        rx_a.try_recv().is_err(),
        "not answered inside the JoinGroup that started the rebalance"
    );
    // The second consumer's first JoinGroup, 2 ms later: it is handed its member id.
    let first_b = now_value(g.join(params("", None, b"m"), t0 + ms(2), &c));
    assert_eq!(first_b.error, Some(KafkaError::MemberIdRequired));
    g.tick(t0 + ms(50), &c);
    assert!(rx_a.try_recv().is_err(), "within the first join phase");
    // The timer ends the phase before B is back with its id: B is waited for.
    g.tick(t0 + MIN_INITIAL_JOIN_PHASE, &c);
    assert_eq!(classic(&g).state, GroupState::PreparingRebalance);
    assert!(
        rx_a.try_recv().is_err(),
        "a member handed its id is waited for"
    );
    let b = first_b.member_id;
    let mut rx_b = waiting(g.join(params(&b, None, b"m"), t0 + ms(101), &c));
    let (ja, jb) = (rx_a.try_recv().unwrap(), rx_b.try_recv().unwrap());
    assert_eq!((ja.error, jb.error), (None, None));
    assert_eq!((ja.generation, jb.generation), (1, 1));
    assert_eq!((ja.leader.as_str(), ja.members.len()), (a.as_str(), 2));
    let mut sb = waiting(sync(&mut g, &b, 1, &[]));
    let mut sa = waiting(sync(&mut g, &a, 1, &[(&a, b"A"), (&b, b"B")]));
    assert_eq!(sa.try_recv().unwrap().unwrap().2, Bytes::from_static(b"A"));
    assert_eq!(sb.try_recv().unwrap().unwrap().2, Bytes::from_static(b"B"));
    // Stable in generation 1: no second rebalance while both heartbeat.
    for t in [1000, 3000, 6000] {
        g.tick(t0 + ms(t), &c);
        assert_eq!(g.heartbeat(&a, None, 1, t0 + ms(t)), Ok(()));
        assert_eq!(g.heartbeat(&b, None, 1, t0 + ms(t)), Ok(()));
    }
    assert_eq!(
        (classic(&g).state, classic(&g).generation),
        (GroupState::Stable, 1)
    );
}

#[test]
fn first_join_phase_ends_from_the_timer_and_a_silent_pending_member_expires() {
    let c = cfg(0);
    let t0 = Now::current();
    let mut g = Group::new("g", 0);
    let (a, mut rx_a) = join_new(&mut g, t0, &c);
    g.tick(t0 + ms(99), &c);
    assert!(rx_a.try_recv().is_err());
    g.tick(t0 + ms(100), &c);
    let ja = rx_a.try_recv().unwrap();
    assert_eq!((ja.generation, ja.members.len()), (1, 1), "a lone member");
    assert_eq!(g.leave(&[(a, None)], t0 + ms(200), &c), vec![Ok(())]);
    assert_eq!(classic(&g).state, GroupState::Empty);

    // Empty again: the next join is a first join phase again. A member that is handed an id
    // and never comes back holds it only until that id expires (its session timeout, 10 s).
    let t1 = t0 + ms(1000);
    let (c1, mut rx_c) = join_new(&mut g, t1, &c);
    let ghost = now_value(g.join(params("", None, b"m"), t1, &c));
    assert_eq!(ghost.error, Some(KafkaError::MemberIdRequired));
    g.tick(t1 + ms(5000), &c);
    assert!(
        rx_c.try_recv().is_err(),
        "waiting for the member handed an id"
    );
    g.tick(t1 + ms(10_001), &c);
    let jc = rx_c.try_recv().unwrap();
    assert_eq!((jc.generation, jc.leader.as_str()), (3, c1.as_str()));
    assert_eq!(jc.members.len(), 1);
    // The ghost's id is no longer accepted as pending.
    let late = now_value(g.join(params(&ghost.member_id, None, b"m"), t1 + ms(10_002), &c));
    assert_eq!(late.error, Some(KafkaError::UnknownMemberId));
}

#[test]
fn share_group_survives_reopen_at_its_epochs() {
    use crate::share::groups::ShareHeartbeat;
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        let store = Arc::new(LogGroupStore::new(Arc::new(
            FileGroupLog::open(dir.path(), false).unwrap(),
        )));
        GroupCoordinator::open(store, cfg(0)).unwrap()
    };
    let tid = uuid::Uuid::from_u128(7);
    let topics = |n: &str| (n == "t").then_some((tid, 2));
    let hb = |id: &str, epoch: i32| ShareHeartbeat {
        member_id: id.into(),
        member_epoch: epoch,
        rack_id: None,
        subscribed: (epoch == 0).then(|| vec!["t".to_string()]),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
    };
    {
        let co = open();
        assert_eq!(
            co.share_heartbeat("s", hb("a", 0), &topics).unwrap().epoch,
            1
        );
        assert_eq!(
            co.share_heartbeat("s", hb("b", 0), &topics).unwrap().epoch,
            2
        );
        // A group id with committed offsets is not a share group.
        let entry = OffsetEntry {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_ms: crate::now_ms(),
        };
        co.commit("c", "", None, -1, vec![("t".into(), 0, Ok(entry))])
            .unwrap();
        let e = co.share_heartbeat("c", hb("x", 0), &topics).unwrap_err();
        assert_eq!(e.0, KafkaError::GroupIdNotFound);
        assert_eq!(
            co.commit("s", "a", None, 1, vec![]),
            Err(KafkaError::GroupIdNotFound)
        );
    }
    let co = open();
    assert_eq!(
        co.with_share_group("s", |s| (s.epoch, s.members.len())),
        Ok((2, 2))
    );
    assert!(co.share_group_has_members("s"));
    // a is not fenced: it catches up to the group epoch with its assignment.
    let a = co.share_heartbeat("s", hb("a", 1), &topics).unwrap();
    assert_eq!((a.epoch, a.assignment.map(|x| x[&tid].len())), (2, Some(1)));
    assert!(co
        .list()
        .contains(&("s".into(), "share".into(), "Stable", "share")));
    co.share_heartbeat("s", hb("a", -1), &topics).unwrap();
    co.share_heartbeat("s", hb("b", -1), &topics).unwrap();
    drop(co);
    let co = open();
    // An empty share group stays, at its epoch, until deleted.
    assert_eq!(
        co.with_share_group("s", |s| (s.epoch, s.state_name())),
        Ok((4, "Empty"))
    );
    co.delete_group("s").unwrap();
    drop(co);
    assert!(!open().is_share_group("s"));
}
