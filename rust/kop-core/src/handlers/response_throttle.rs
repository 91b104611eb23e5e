//! The `throttle_time_ms` of every response kop serves, so that a throttle for request time
//! (`request_percentage`) reaches the client in the response, as Kafka's
//! `RequestHandlerHelper.sendResponseMaybeThrottle` puts it there: the larger of it and any
//! throttle the handler set (a mutation quota's). A new served API does not compile until its
//! response is listed here.

use kafka_protocol::messages::*;

pub trait ThrottleTime {
    /// Raises the response's throttle time to at least `ms` (nothing for a response without).
    fn raise_throttle(&mut self, ms: i32);
}

macro_rules! throttle_time {
    (with: [$($ty:ty,)*] without: [$($no:ty,)*]) => {
        $(impl ThrottleTime for $ty {
            fn raise_throttle(&mut self, ms: i32) {
                self.throttle_time_ms = self.throttle_time_ms.max(ms);
            }
        })*
        $(impl ThrottleTime for $no {
            fn raise_throttle(&mut self, _ms: i32) {}
        })*
    };
}

throttle_time! {
    with: [
    DescribeAclsResponse,
    CreateAclsResponse,
    DeleteAclsResponse,
    DescribeUserScramCredentialsResponse,
    AlterUserScramCredentialsResponse,
    DescribeClientQuotasResponse,
    AlterClientQuotasResponse,
    FetchResponse,
    ListOffsetsResponse,
    DeleteRecordsResponse,
    MetadataResponse,
    ApiVersionsResponse,
    CreateTopicsResponse,
    DeleteTopicsResponse,
    InitProducerIdResponse,
    DescribeConfigsResponse,
    IncrementalAlterConfigsResponse,
    AlterConfigsResponse,
    CreatePartitionsResponse,
    DescribeClusterResponse,
    FindCoordinatorResponse,
    JoinGroupResponse,
    SyncGroupResponse,
    HeartbeatResponse,
    LeaveGroupResponse,
    DescribeGroupsResponse,
    ListGroupsResponse,
    DeleteGroupsResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    OffsetDeleteResponse,
    TxnOffsetCommitResponse,
    ConsumerGroupHeartbeatResponse,
    ConsumerGroupDescribeResponse,
    ShareGroupHeartbeatResponse,
    ShareGroupDescribeResponse,
    ShareFetchResponse,
    ShareAcknowledgeResponse,
    DescribeShareGroupOffsetsResponse,
    AlterShareGroupOffsetsResponse,
    DeleteShareGroupOffsetsResponse,
    DescribeTopicPartitionsResponse,
    OffsetForLeaderEpochResponse,
    DescribeLogDirsResponse,
    ElectLeadersResponse,
    ListPartitionReassignmentsResponse,
    AlterPartitionReassignmentsResponse,
    AddPartitionsToTxnResponse,
    AddOffsetsToTxnResponse,
    EndTxnResponse,
    DescribeTransactionsResponse,
    ListTransactionsResponse,
    DescribeProducersResponse,
    ]
    without: [
    // Exempt from request quotas in Kafka too (connecting, authenticating, cluster actions).
    SaslHandshakeResponse,
    SaslAuthenticateResponse,
    WriteTxnMarkersResponse,
    ]
}
