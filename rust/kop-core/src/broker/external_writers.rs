//! Partitions whose log other writers append to: a Pulsar topic that ordinary Pulsar producers
//! write, served to Kafka consumers read-only (docs/pulsar-native-records.md). The storage
//! reports the log's growing end (`storage::ExternalEnd`); here it becomes the high watermark,
//! which wakes long-polling fetches as kop's own appends do. Kafka produces are refused with
//! INVALID_TOPIC_EXCEPTION (`Partition::append`), as Kafka refuses produces to its internal
//! topics: a non-retriable error, so producers fail at once instead of retrying until
//! `delivery.timeout.ms`.

use std::sync::Arc;

use super::partition::Partition;
use crate::error::KafkaError;
use crate::records::validate::RecordError;

impl Partition {
    /// After a log was installed (opened or taken over again): if others append to it, its
    /// end drives the high watermark under the generation it was installed in (a release,
    /// step-down or takeover moves the generation, and the old log's reports are ignored).
    pub(super) fn follow_external_end(self: &Arc<Self>) {
        let Some(end) = self.inner.read().log.external_end() else {
            return;
        };
        let generation = self.mark.borrow().generation;
        let partition = Arc::downgrade(self);
        end.listen(Box::new(move |next_offset| {
            if let Some(p) = partition.upgrade() {
                p.mark.send_if_modified(|m| {
                    let advance = m.generation == generation && next_offset > m.high_watermark;
                    if advance {
                        m.high_watermark = next_offset;
                    }
                    advance
                });
            }
        }));
    }
}

/// The refusal of a Kafka produce to a log others write (logged once per opened log).
pub(super) fn refused_produce(topic: &str, partition: i32, first: bool) -> RecordError {
    let why = "this partition is written by Pulsar producers (a Pulsar-format topic): \
               Kafka clients may read it but not produce to it";
    if first {
        tracing::warn!(topic, partition, "Kafka produce refused: {why}");
    } else {
        tracing::debug!(topic, partition, "Kafka produce refused: {why}");
    }
    RecordError {
        error_message: Some(why.to_string()),
        ..RecordError::batch(KafkaError::InvalidTopic, why)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::{Bytes, BytesMut};

    use crate::broker::partition::{Isolation, Partition, Produced};
    use crate::broker::producer_state::ProducerStates;
    use crate::error::KafkaError;
    use crate::records::batch::tests::sample_batch;
    use crate::records::batch::BatchHeader;
    use crate::storage::{ExternalEnd, LogSettings, PartitionLog, Receipt};

    /// A read-only log whose end moves when the test says so.
    struct Followed(Arc<ExternalEnd>);

    impl PartitionLog for Followed {
        fn log_start_offset(&self) -> i64 {
            0
        }
        fn next_offset(&self) -> i64 {
            self.0.get()
        }
        fn size_bytes(&self) -> u64 {
            0
        }
        fn append(
            &mut self,
            _: &BatchHeader,
            _: Bytes,
            _: i64,
        ) -> std::io::Result<Option<Receipt>> {
            panic!("a followed log is never appended to")
        }
        fn read(&self, _: i64, _: usize, _: i64) -> std::io::Result<Option<Bytes>> {
            Ok(Some(Bytes::new()))
        }
        fn external_end(&self) -> Option<Arc<ExternalEnd>> {
            Some(self.0.clone())
        }
        fn batch_at_timestamp(&self, _: i64) -> std::io::Result<Option<Bytes>> {
            Ok(None)
        }
        fn batch_with_max_timestamp(&self) -> std::io::Result<Option<Bytes>> {
            Ok(None)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
        fn set_settings(&mut self, _: LogSettings) {}
        fn enforce_retention(&mut self, _: i64) -> std::io::Result<usize> {
            Ok(0)
        }
    }

    #[tokio::test]
    async fn the_external_end_is_the_high_watermark_and_produces_are_refused() {
        let end = Arc::new(ExternalEnd::new(5));
        let p = Arc::new(Partition::new(
            0,
            Box::new(Followed(end.clone())),
            ProducerStates::default(),
            crate::broker::topic_config::effective(
                &Default::default(),
                &crate::config::ServerConfig::default(),
            ),
            None,
        ));
        p.follow_external_end();
        assert_eq!(p.high_watermark(), 5);
        let mut marks = p.subscribe();
        marks.borrow_and_update();
        // A waiting fetch wakes when the storage reports growth.
        let waiter = tokio::spawn(async move { marks.changed().await.is_ok() });
        end.advance(8);
        assert!(waiter.await.unwrap());
        assert_eq!(p.high_watermark(), 8);
        assert_eq!(
            p.read(8, 1000, Isolation::ReadUncommitted)
                .unwrap()
                .high_watermark,
            8
        );
        // Never backwards.
        end.advance(7);
        assert_eq!(p.high_watermark(), 8);
        // A Kafka produce: INVALID_TOPIC_EXCEPTION with a message, nothing assigned.
        let batch = BytesMut::from(&sample_batch(1, 1_000, b"v", (-1, -1, -1))[..]);
        let produced = Produced {
            topic: "t",
            now_ms: 1_000,
            sync: false,
            zstd_allowed: true,
            txn_verified: None,
        };
        let Err(err) = p.append(batch, &produced) else {
            panic!("a produce to a log others write was accepted");
        };
        assert_eq!(err.error, KafkaError::InvalidTopic);
        assert!(err.error_message.unwrap().contains("Pulsar producers"));
        assert_eq!(p.high_watermark(), 8);
    }
}
