//! The wire format of StreamsGroupHeartbeat (API 88) and StreamsGroupDescribe (API 89), v0–v1,
//! by hand: the `kafka-protocol` crate (0.18, its latest) has no Streams messages. Both are
//! flexible versions: compact strings and arrays, tagged fields (read and skipped), a nullable
//! struct is a byte (-1 null, 1 present) before it.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::group::streams::assignor::TaskSet;
use crate::group::streams::topology::{CopartitionGroup, Subtopology, TopicInfo, Topology};
use crate::group::streams::TaskOffset;

pub const HEARTBEAT_KEY: i16 = 88;
pub const DESCRIBE_KEY: i16 = 89;
/// The versions served, Kafka 4.4's. v1 adds KIP-1331's topology description, which kop
/// serves as Kafka does without a topology description plugin: never required, not stored.
pub const MIN_VERSION: i16 = 0;
pub const MAX_VERSION: i16 = 1;

#[derive(Debug, thiserror::Error)]
#[error("malformed {0}")]
pub struct Malformed(pub &'static str);

/// Reads a flexible-version body.
pub struct Reader(Bytes);

impl Reader {
    pub fn new(b: Bytes) -> Reader {
        Reader(b)
    }
    fn need(&self, n: usize, what: &'static str) -> Result<(), Malformed> {
        if self.0.remaining() < n {
            return Err(Malformed(what));
        }
        Ok(())
    }
    pub fn i8(&mut self) -> Result<i8, Malformed> {
        self.need(1, "int8")?;
        Ok(self.0.get_i8())
    }
    pub fn bool(&mut self) -> Result<bool, Malformed> {
        Ok(self.i8()? != 0)
    }
    pub fn i16(&mut self) -> Result<i16, Malformed> {
        self.need(2, "int16")?;
        Ok(self.0.get_i16())
    }
    pub fn u16(&mut self) -> Result<u16, Malformed> {
        self.need(2, "uint16")?;
        Ok(self.0.get_u16())
    }
    pub fn i32(&mut self) -> Result<i32, Malformed> {
        self.need(4, "int32")?;
        Ok(self.0.get_i32())
    }
    pub fn i64(&mut self) -> Result<i64, Malformed> {
        self.need(8, "int64")?;
        Ok(self.0.get_i64())
    }
    fn uvarint(&mut self) -> Result<u32, Malformed> {
        let mut v: u32 = 0;
        for shift in (0..35).step_by(7) {
            let b = self.i8()? as u8;
            v |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Malformed("varint"))
    }
    /// A compact length: None for null.
    fn len(&mut self) -> Result<Option<usize>, Malformed> {
        let n = self.uvarint()?;
        if n == 0 {
            return Ok(None);
        }
        let n = (n - 1) as usize;
        // Every element takes at least one byte: a length beyond the body is malformed.
        self.need(n, "length")?;
        Ok(Some(n))
    }
    pub fn nullable_string(&mut self) -> Result<Option<String>, Malformed> {
        let Some(n) = self.len()? else {
            return Ok(None);
        };
        let b = self.0.split_to(n);
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| Malformed("string"))
    }
    pub fn string(&mut self) -> Result<String, Malformed> {
        self.nullable_string()?.ok_or(Malformed("null string"))
    }
    pub fn nullable_array<T>(
        &mut self,
        mut item: impl FnMut(&mut Reader) -> Result<T, Malformed>,
    ) -> Result<Option<Vec<T>>, Malformed> {
        let Some(n) = self.len()? else {
            return Ok(None);
        };
        (0..n)
            .map(|_| item(self))
            .collect::<Result<_, _>>()
            .map(Some)
    }
    pub fn array<T>(
        &mut self,
        item: impl FnMut(&mut Reader) -> Result<T, Malformed>,
    ) -> Result<Vec<T>, Malformed> {
        self.nullable_array(item)?.ok_or(Malformed("null array"))
    }
    /// Skips a tagged-field section (none of these messages has tagged fields kop reads).
    pub fn tagged(&mut self) -> Result<(), Malformed> {
        let n = self.uvarint()?;
        for _ in 0..n {
            self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.need(size, "tagged field")?;
            self.0.advance(size);
        }
        Ok(())
    }
    /// A nullable struct's marker: whether it is present.
    pub fn present(&mut self) -> Result<bool, Malformed> {
        Ok(self.i8()? >= 0)
    }
}

/// Writes a flexible-version body.
#[derive(Default)]
pub struct Writer(pub BytesMut);

impl Writer {
    pub fn i8(&mut self, v: i8) {
        self.0.put_i8(v);
    }
    pub fn bool(&mut self, v: bool) {
        self.0.put_i8(v as i8);
    }
    pub fn i16(&mut self, v: i16) {
        self.0.put_i16(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.0.put_u16(v);
    }
    pub fn i32(&mut self, v: i32) {
        self.0.put_i32(v);
    }
    pub fn i64(&mut self, v: i64) {
        self.0.put_i64(v);
    }
    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.0.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.put_u8(v as u8);
    }
    fn len(&mut self, n: Option<usize>) {
        self.uvarint(n.map_or(0, |n| n as u32 + 1));
    }
    pub fn nullable_string(&mut self, s: Option<&str>) {
        self.len(s.map(str::len));
        if let Some(s) = s {
            self.0.put_slice(s.as_bytes());
        }
    }
    pub fn string(&mut self, s: &str) {
        self.nullable_string(Some(s));
    }
    pub fn array<T>(&mut self, items: &[T], mut item: impl FnMut(&mut Writer, &T)) {
        self.len(Some(items.len()));
        for i in items {
            item(self, i);
        }
    }
    pub fn nullable_array<T>(&mut self, items: Option<&[T]>, item: impl FnMut(&mut Writer, &T)) {
        match items {
            None => self.len(None),
            Some(items) => self.array(items, item),
        }
    }
    pub fn tagged(&mut self) {
        self.uvarint(0);
    }
    pub fn strings(&mut self, items: &[String]) {
        self.array(items, |w, s| w.string(s));
    }
    /// TaskIds: (subtopology, partitions) entries.
    pub fn task_ids(&mut self, tasks: &TaskSet) {
        let entries: Vec<(&String, Vec<i32>)> = tasks
            .iter()
            .filter(|(_, ps)| !ps.is_empty())
            .map(|(s, ps)| (s, ps.iter().copied().collect()))
            .collect();
        self.array(&entries, |w, (s, ps)| {
            w.string(s);
            w.array(ps, |w, p| w.i32(*p));
            w.tagged();
        });
    }
    pub fn topic_info(&mut self, t: &TopicInfo) {
        self.string(&t.name);
        self.i32(t.partitions);
        self.i16(t.replication_factor);
        self.array(&t.configs, |w, (k, v)| {
            w.string(k);
            w.string(v);
            w.tagged();
        });
        self.tagged();
    }
}

fn key_values(r: &mut Reader) -> Result<Vec<(String, String)>, Malformed> {
    r.array(|r| {
        let kv = (r.string()?, r.string()?);
        r.tagged()?;
        Ok(kv)
    })
}

fn topic_info(r: &mut Reader) -> Result<TopicInfo, Malformed> {
    let t = TopicInfo {
        name: r.string()?,
        partitions: r.i32()?,
        replication_factor: r.i16()?,
        configs: key_values(r)?,
    };
    r.tagged()?;
    Ok(t)
}

fn int16s(r: &mut Reader) -> Result<Vec<i16>, Malformed> {
    r.array(Reader::i16)
}

fn subtopology(r: &mut Reader) -> Result<Subtopology, Malformed> {
    let s = Subtopology {
        id: r.string()?,
        source_topics: r.array(Reader::string)?,
        source_topic_regex: r.array(Reader::string)?,
        changelog_topics: r.array(topic_info)?,
        repartition_sink_topics: r.array(Reader::string)?,
        repartition_source_topics: r.array(topic_info)?,
        // Indexes into the source topics, patterns and repartition source topics above.
        copartition_groups: r.array(|r| {
            let g = CopartitionGroup {
                source_topics: int16s(r)?,
                source_topic_regex: int16s(r)?,
                repartition_source_topics: int16s(r)?,
            };
            r.tagged()?;
            Ok(g)
        })?,
    };
    r.tagged()?;
    Ok(s)
}

fn task_ids(r: &mut Reader) -> Result<Option<TaskSet>, Malformed> {
    let entries = r.nullable_array(|r| {
        let s = r.string()?;
        let ps = r.array(Reader::i32)?;
        r.tagged()?;
        Ok((s, ps))
    })?;
    Ok(entries.map(|es| {
        let mut set = TaskSet::new();
        for (s, ps) in es {
            set.entry(s).or_default().extend(ps);
        }
        set
    }))
}

fn task_offsets(r: &mut Reader) -> Result<Option<Vec<TaskOffset>>, Malformed> {
    r.nullable_array(|r| {
        let o = (r.string()?, r.i32()?, r.i64()?);
        r.tagged()?;
        Ok(o)
    })
}

/// StreamsGroupHeartbeatRequest v0–v1 (the same fields).
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub endpoint_information_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub topology: Option<Topology>,
    pub active_tasks: Option<TaskSet>,
    pub standby_tasks: Option<TaskSet>,
    pub warmup_tasks: Option<TaskSet>,
    pub process_id: Option<String>,
    pub user_endpoint: Option<(String, u16)>,
    pub client_tags: Option<Vec<(String, String)>>,
    pub task_offsets: Option<Vec<TaskOffset>>,
    pub task_end_offsets: Option<Vec<TaskOffset>>,
    pub shutdown_application: bool,
}

impl HeartbeatRequest {
    pub fn decode(body: Bytes) -> Result<HeartbeatRequest, Malformed> {
        let r = &mut Reader::new(body);
        let mut q = HeartbeatRequest {
            group_id: r.string()?,
            member_id: r.string()?,
            member_epoch: r.i32()?,
            endpoint_information_epoch: r.i32()?,
            instance_id: r.nullable_string()?,
            rack_id: r.nullable_string()?,
            rebalance_timeout_ms: r.i32()?,
            ..HeartbeatRequest::default()
        };
        if r.present()? {
            let epoch = r.i32()?;
            let subtopologies = r.array(subtopology)?;
            r.tagged()?;
            q.topology = Some(Topology {
                epoch,
                subtopologies,
            });
        }
        q.active_tasks = task_ids(r)?;
        q.standby_tasks = task_ids(r)?;
        q.warmup_tasks = task_ids(r)?;
        q.process_id = r.nullable_string()?;
        if r.present()? {
            let host = r.string()?;
            let port = r.u16()?;
            r.tagged()?;
            q.user_endpoint = Some((host, port));
        }
        q.client_tags = r.nullable_array(|r| {
            let kv = (r.string()?, r.string()?);
            r.tagged()?;
            Ok(kv)
        })?;
        q.task_offsets = task_offsets(r)?;
        q.task_end_offsets = task_offsets(r)?;
        q.shutdown_application = r.bool()?;
        r.tagged()?;
        Ok(q)
    }
}

/// StreamsGroupDescribeRequest v0–v1.
pub struct DescribeRequest {
    pub group_ids: Vec<String>,
    pub include_authorized_operations: bool,
    /// v1: whether the topology description (KIP-1331) is asked for.
    pub include_topology_description: bool,
}

impl DescribeRequest {
    pub fn decode(body: Bytes, version: i16) -> Result<DescribeRequest, Malformed> {
        let r = &mut Reader::new(body);
        let mut q = DescribeRequest {
            group_ids: r.array(Reader::string)?,
            include_authorized_operations: r.bool()?,
            include_topology_description: false,
        };
        if version >= 1 {
            q.include_topology_description = r.bool()?;
        }
        r.tagged()?;
        Ok(q)
    }
}

/// A response frame: size, correlation id, an empty tagged-field section (response header
/// v1), then the body.
pub fn frame(correlation_id: i32, body: Writer) -> Bytes {
    let mut out = BytesMut::with_capacity(body.0.len() + 9);
    out.put_i32(body.0.len() as i32 + 5);
    out.put_i32(correlation_id);
    out.put_u8(0);
    out.extend_from_slice(&body.0);
    out.freeze()
}

/// Decodes a body of either request at a version, as `dispatch` does, for the fuzz target
/// `streams_wire` (`fuzz/`): Ok or Malformed, never a panic.
#[cfg(feature = "fuzzing")]
pub fn decode_for_fuzzing(key: i16, version: i16, body: Bytes) -> Result<(), Malformed> {
    match key {
        HEARTBEAT_KEY => HeartbeatRequest::decode(body).map(drop),
        _ => DescribeRequest::decode(body, version).map(drop),
    }
}

/// Seeds for the fuzz target: a full heartbeat and a describe of two groups (v1).
#[cfg(feature = "fuzzing")]
pub fn sample_bodies() -> Vec<(i16, i16, Bytes)> {
    let mut describe = Writer::default();
    describe.strings(&["app".into(), "other".into()]);
    describe.bool(true);
    describe.bool(false);
    describe.tagged();
    vec![
        (HEARTBEAT_KEY, MAX_VERSION, sample::heartbeat_body()),
        (DESCRIBE_KEY, MAX_VERSION, describe.0.freeze()),
    ]
}

#[cfg(any(test, feature = "fuzzing"))]
mod sample {
    use super::*;

    /// A heartbeat with a topology, the member's active tasks (subtopology "0", partition 3),
    /// a process id, an IQ endpoint and task offsets.
    pub fn heartbeat_body() -> Bytes {
        let mut w = Writer::default();
        w.string("app");
        w.string("m1");
        w.i32(0);
        w.i32(-1);
        w.nullable_string(None);
        w.nullable_string(Some("rack"));
        w.i32(30_000);
        w.i8(1); // topology present
        w.i32(2);
        w.array(&[0], |w, _| {
            w.string("0");
            w.strings(&["input".into()]);
            w.strings(&[]);
            w.array(
                &[TopicInfo {
                    name: "c".into(),
                    ..TopicInfo::default()
                }],
                |w, t| w.topic_info(t),
            );
            w.strings(&["r".into()]);
            w.array::<TopicInfo>(&[], |w, t| w.topic_info(t));
            w.array(&[0], |w, _| {
                w.array(&[0i16], |w, i| w.i16(*i));
                w.array::<i16>(&[], |w, i| w.i16(*i));
                w.array::<i16>(&[], |w, i| w.i16(*i));
                w.tagged();
            });
            w.tagged();
        });
        w.tagged();
        let mut owned = TaskSet::new();
        owned.entry("0".into()).or_default().insert(3);
        w.task_ids(&owned);
        w.nullable_array::<u8>(None, |_, _| {});
        w.nullable_array::<u8>(None, |_, _| {});
        w.nullable_string(Some("pid"));
        w.i8(1); // the IQ endpoint
        w.string("host-a");
        w.u16(8080);
        w.tagged();
        w.nullable_array::<u8>(None, |_, _| {});
        w.array(&[("0", 3, 42i64)], |w, (s, p, o)| {
            w.string(s);
            w.i32(*p);
            w.i64(*o);
            w.tagged();
        });
        w.nullable_array::<u8>(None, |_, _| {});
        w.bool(false);
        w.tagged();
        w.0.freeze()
    }
}

/// Copies of `body` with one byte changed in each, from a fixed xorshift sequence (the same
/// every run): what the hand-written decoders' never-panic tests feed them.
#[cfg(test)]
pub fn corrupted_copies(body: &Bytes, count: usize) -> impl Iterator<Item = Bytes> + '_ {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..count).map(move |_| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut bytes = body.to_vec();
        let at = (seed % bytes.len() as u64) as usize;
        bytes[at] = (seed >> 32) as u8;
        Bytes::from(bytes)
    })
}

#[cfg(test)]
mod tests {
    use super::sample::heartbeat_body;
    use super::*;

    #[test]
    fn a_heartbeat_with_a_topology_decodes() {
        let mut owned = TaskSet::new();
        owned.entry("0".into()).or_default().insert(3);
        let q = HeartbeatRequest::decode(heartbeat_body()).unwrap();
        assert_eq!(q.group_id, "app");
        assert_eq!(q.rack_id.as_deref(), Some("rack"));
        let t = q.topology.unwrap();
        assert_eq!(t.epoch, 2);
        assert_eq!(t.subtopologies[0].source_topics, vec!["input".to_string()]);
        assert_eq!(t.subtopologies[0].changelog_topics[0].name, "c");
        assert_eq!(q.active_tasks, Some(owned));
        assert_eq!(q.standby_tasks, None);
        assert_eq!(q.process_id.as_deref(), Some("pid"));
        assert_eq!(q.user_endpoint, Some(("host-a".to_string(), 8080)));
        assert_eq!(q.task_offsets, Some(vec![("0".to_string(), 3, 42)]));
        assert_eq!(q.task_end_offsets, None);
    }

    /// Every prefix and many byte-flipped copies of a real heartbeat decode or are refused as
    /// malformed; none panics (a cheap stand-in for a fuzz run of these hand-written decoders).
    #[test]
    fn cut_and_corrupted_bodies_never_panic() {
        let body = heartbeat_body();
        for end in 0..body.len() {
            assert!(
                HeartbeatRequest::decode(body.slice(..end)).is_err(),
                "prefix {end}"
            );
            let _ = DescribeRequest::decode(body.slice(..end), 1);
        }
        for bytes in corrupted_copies(&body, 20_000) {
            let _ = HeartbeatRequest::decode(bytes.clone());
            let _ = DescribeRequest::decode(bytes, 0);
        }
    }

    #[test]
    fn a_truncated_body_is_malformed_not_a_panic() {
        let mut w = Writer::default();
        w.string("app");
        w.0.put_u8(0x7f); // a length far beyond the body
        assert!(HeartbeatRequest::decode(w.0.freeze()).is_err());
        assert!(DescribeRequest::decode(Bytes::from_static(&[0x05]), 0).is_err());
    }
}
