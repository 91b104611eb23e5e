//! The error codes in an answer, for `kop_request_errors_total` (Kafka's `ErrorsPerSec` per
//! request and error): every `error_code` field of every response kop serves, top level and
//! per group, topic and partition, as Kafka's `AbstractResponse.errorCounts` counts them. A new
//! served API does not compile until its response is listed here.

use kafka_protocol::messages::*;

use crate::metrics::requests::RequestStats;

pub trait ErrorCodes {
    /// Calls `out` with each error code in the answer, 0 (no error) included.
    fn error_codes(&self, out: &mut dyn FnMut(i16));
}

/// Counts the errors of an answer of `key`.
pub fn count<R: ErrorCodes>(stats: &RequestStats, key: ApiKey, resp: &R) {
    resp.error_codes(&mut |code| stats.error(key as i16, code));
}

macro_rules! error_codes {
    ($($ty:ty => |$r:ident, $out:ident| $body:expr;)*) => {
        $(impl ErrorCodes for $ty {
            fn error_codes(&self, $out: &mut dyn FnMut(i16)) {
                let $r = self;
                $body
            }
        })*
    };
}

error_codes! {
    SaslHandshakeResponse => |r, out| out(r.error_code);
    SaslAuthenticateResponse => |r, out| out(r.error_code);
    DescribeAclsResponse => |r, out| out(r.error_code);
    CreateAclsResponse => |r, out| {
        for a in &r.results {
            out(a.error_code);
        }
    };
    DeleteAclsResponse => |r, out| {
        for a in &r.filter_results {
            out(a.error_code);
            for b in &a.matching_acls {
                out(b.error_code);
            }
        }
    };
    DescribeUserScramCredentialsResponse => |r, out| {
        out(r.error_code);
        for a in &r.results {
            out(a.error_code);
        }
    };
    AlterUserScramCredentialsResponse => |r, out| {
        for a in &r.results {
            out(a.error_code);
        }
    };
    DescribeClientQuotasResponse => |r, out| out(r.error_code);
    AlterClientQuotasResponse => |r, out| {
        for a in &r.entries {
            out(a.error_code);
        }
    };
    FetchResponse => |r, out| {
        out(r.error_code);
        for a in &r.responses {
            for b in &a.partitions {
                out(b.error_code);
            }
        }
    };
    ListOffsetsResponse => |r, out| {
        for a in &r.topics {
            for b in &a.partitions {
                out(b.error_code);
            }
        }
    };
    DeleteRecordsResponse => |r, out| {
        for a in &r.topics {
            for b in &a.partitions {
                out(b.error_code);
            }
        }
    };
    MetadataResponse => |r, out| {
        for a in &r.topics {
            out(a.error_code);
            for b in &a.partitions {
                out(b.error_code);
            }
        }
        out(r.error_code);
    };
    ApiVersionsResponse => |r, out| out(r.error_code);
    CreateTopicsResponse => |r, out| {
        for a in &r.topics {
            out(a.error_code);
        }
    };
    DeleteTopicsResponse => |r, out| {
        for a in &r.responses {
            out(a.error_code);
        }
    };
    InitProducerIdResponse => |r, out| out(r.error_code);
    DescribeConfigsResponse => |r, out| {
        for a in &r.results {
            out(a.error_code);
        }
    };
    IncrementalAlterConfigsResponse => |r, out| {
        for a in &r.responses {
            out(a.error_code);
        }
    };
    AlterConfigsResponse => |r, out| {
        for a in &r.responses {
            out(a.error_code);
        }
    };
    CreatePartitionsResponse => |r, out| {
        for a in &r.results {
            out(a.error_code);
        }
    };
    DescribeClusterResponse => |r, out| out(r.error_code);
    FindCoordinatorResponse => |r, out| {
        out(r.error_code);
        for a in &r.coordinators {
            out(a.error_code);
        }
    };
    JoinGroupResponse => |r, out| out(r.error_code);
    SyncGroupResponse => |r, out| out(r.error_code);
    HeartbeatResponse => |r, out| out(r.error_code);
    LeaveGroupResponse => |r, out| {
        out(r.error_code);
        for a in &r.members {
            out(a.error_code);
        }
    };
    DescribeGroupsResponse => |r, out| {
        for a in &r.groups {
            out(a.error_code);
        }
    };
    ListGroupsResponse => |r, out| out(r.error_code);
    DeleteGroupsResponse => |r, out| {
        for a in &r.results {
            out(a.error_code);
        }
    };
    OffsetCommitResponse => |r, out| {
        for a in &r.topics {
            for b in &a.partitions {
                out(b.error_code);
            }
        }
    };
    OffsetFetchResponse => |r, out| {
        for a in &r.topics {
            for b in &a.partitions {
                out(b.error_code);
            }
        }
        out(r.error_code);
        for a in &r.groups {
            for b in &a.topics {
                for c in &b.partitions {
                    out(c.error_code);
                }
            }
            out(a.error_code);
        }
    };
    OffsetDeleteResponse => |r, out| {
        out(r.error_code);
        for a in &r.topics {
            for b in &a.partitions {
                out(b.error_code);
            }
        }
    };
    TxnOffsetCommitResponse => |r, out| {
        for a in &r.topics {
            for b in &a.partitions {
                out(b.error_code);
            }
        }
    };
    ConsumerGroupHeartbeatResponse => |r, out| out(r.error_code);
    ConsumerGroupDescribeResponse => |r, out| {
        for a in &r.groups {
            out(a.error_code);
        }
    };
    ShareGroupHeartbeatResponse => |r, out| out(r.error_code);
    ShareGroupDescribeResponse => |r, out| {
        for a in &r.groups {
            out(a.error_code);
        }
    };
    ShareFetchResponse => |r, out| {
        out(r.error_code);
        for a in &r.responses {
            for b in &a.partitions {
                out(b.error_code);
                out(b.acknowledge_error_code);
            }
        }
    };
    ShareAcknowledgeResponse => |r, out| {
        out(r.error_code);
        for a in &r.responses {
            for b in &a.partitions {
                out(b.error_code);
            }
        }
    };
    DescribeShareGroupOffsetsResponse => |r, out| {
        for a in &r.groups {
            for b in &a.topics {
                for c in &b.partitions {
                    out(c.error_code);
                }
            }
            out(a.error_code);
        }
    };
    AlterShareGroupOffsetsResponse => |r, out| {
        out(r.error_code);
        for a in &r.responses {
            for b in &a.partitions {
                out(b.error_code);
            }
        }
    };
    DeleteShareGroupOffsetsResponse => |r, out| {
        out(r.error_code);
        for a in &r.responses {
            out(a.error_code);
        }
    };
    DescribeTopicPartitionsResponse => |r, out| {
        for a in &r.topics {
            out(a.error_code);
            for b in &a.partitions {
                out(b.error_code);
            }
        }
    };
    OffsetForLeaderEpochResponse => |r, out| {
        for a in &r.topics {
            for b in &a.partitions {
                out(b.error_code);
            }
        }
    };
    DescribeLogDirsResponse => |r, out| {
        out(r.error_code);
        for a in &r.results {
            out(a.error_code);
        }
    };
    ElectLeadersResponse => |r, out| {
        out(r.error_code);
        for a in &r.replica_election_results {
            for b in &a.partition_result {
                out(b.error_code);
            }
        }
    };
    ListPartitionReassignmentsResponse => |r, out| out(r.error_code);
    AlterPartitionReassignmentsResponse => |r, out| {
        out(r.error_code);
        for a in &r.responses {
            for b in &a.partitions {
                out(b.error_code);
            }
        }
    };
    AddPartitionsToTxnResponse => |r, out| {
        out(r.error_code);
        for a in &r.results_by_transaction {
            for b in &a.topic_results {
                for c in &b.results_by_partition {
                    out(c.partition_error_code);
                }
            }
        }
        for a in &r.results_by_topic_v3_and_below {
            for b in &a.results_by_partition {
                out(b.partition_error_code);
            }
        }
    };
    AddOffsetsToTxnResponse => |r, out| out(r.error_code);
    EndTxnResponse => |r, out| out(r.error_code);
    DescribeTransactionsResponse => |r, out| {
        for a in &r.transaction_states {
            out(a.error_code);
        }
    };
    ListTransactionsResponse => |r, out| out(r.error_code);
    DescribeProducersResponse => |r, out| {
        for a in &r.topics {
            for b in &a.partitions {
                out(b.error_code);
            }
        }
    };
    WriteTxnMarkersResponse => |r, out| {
        for a in &r.markers {
            for b in &a.topics {
                for c in &b.partitions {
                    out(c.error_code);
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes<R: ErrorCodes>(r: &R) -> Vec<i16> {
        let mut seen = Vec::new();
        r.error_codes(&mut |c| seen.push(c));
        seen
    }

    #[test]
    fn nested_error_codes_are_all_reported() {
        let fetch = FetchResponse::default()
            .with_error_code(0)
            .with_responses(vec![fetch_response::FetchableTopicResponse::default()
                .with_partitions(vec![
                    fetch_response::PartitionData::default().with_error_code(6),
                    fetch_response::PartitionData::default().with_error_code(1),
                ])]);
        assert_eq!(codes(&fetch), [0, 6, 1]);
        let txn = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
            add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                .with_results_by_partition(vec![
                    add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                        .with_partition_error_code(53),
                ]),
        ]);
        assert_eq!(codes(&txn), [0, 53]);
    }
}
