//! `controller_mutation_rate` (KIP-599) for CreateTopics, CreatePartitions and DeleteTopics:
//! every partition created or deleted is one mutation. From the versions that know
//! THROTTLING_QUOTA_EXCEEDED (CreateTopics v6, CreatePartitions v3, DeleteTopics v5) Kafka is
//! strict: a topic is refused with that error once the client's quota is exceeded, and the
//! mutation that exceeds it is still accepted. Older versions are accepted and throttled after.

use kafka_protocol::messages::RequestHeader;

use super::RequestContext;
use crate::error::KafkaError;

pub struct MutationQuota<'a> {
    ctx: &'a RequestContext,
    header: &'a RequestHeader,
    strict: bool,
}

impl<'a> MutationQuota<'a> {
    pub fn new(
        ctx: &'a RequestContext,
        header: &'a RequestHeader,
        strict_since: i16,
    ) -> MutationQuota<'a> {
        MutationQuota {
            ctx,
            header,
            strict: header.request_api_version >= strict_since,
        }
    }

    fn throttle(&self) -> u64 {
        let client = self.ctx.quota_client(self.header);
        let now = crate::now_ms() as u64;
        self.ctx.broker.quotas.mutation_throttle_ms(&client, now)
    }

    /// Before one topic's mutations: refused (strict versions) when the quota is exceeded.
    pub fn check(&self) -> Result<(), (KafkaError, String)> {
        if self.strict && self.throttle() > 0 {
            return Err((
                KafkaError::ThrottlingQuotaExceeded,
                "The throttling quota has been exceeded.".into(),
            ));
        }
        Ok(())
    }

    /// Counts `partitions` created or deleted.
    pub fn record(&self, partitions: i32) {
        let client = self.ctx.quota_client(self.header);
        let now = crate::now_ms() as u64;
        let n = partitions.max(0) as u32;
        self.ctx.broker.quotas.record_mutations(&client, n, now);
    }

    /// The response's throttle_time_ms; the connection is muted for as long.
    pub fn finish(&self) -> i32 {
        let ms = self.throttle();
        self.ctx
            .throttle(crate::metrics::throttles::Quota::ControllerMutation, ms);
        ms.min(i32::MAX as u64) as i32
    }
}
