//! The one place where kop's failures become Kafka error codes.
//!
//! Handlers return `KafkaError` values; only `code()` turns them into the numbers the wire carries,
//! so a reader can check every mapping here against Kafka's `Errors.java`.

use std::io;

/// Kafka error codes kop answers with (a subset of Kafka's `Errors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KafkaError {
    #[error("the server experienced an unexpected error")]
    UnknownServerError,
    #[error("topic authorization failed")]
    TopicAuthorizationFailed,
    #[error("group authorization failed")]
    GroupAuthorizationFailed,
    #[error("cluster authorization failed")]
    ClusterAuthorizationFailed,
    #[error("the broker does not support the requested SASL mechanism")]
    UnsupportedSaslMechanism,
    #[error("request is not valid given the current SASL state")]
    IllegalSaslState,
    #[error("transactional id authorization failed")]
    TransactionalIdAuthorizationFailed,
    #[error("security features are disabled")]
    SecurityDisabled,
    #[error("SASL authentication failed")]
    SaslAuthenticationFailed,
    #[error("a request illegally referred to a resource that does not exist")]
    ResourceNotFound,
    #[error("a request illegally referred to the same resource twice")]
    DuplicateResource,
    #[error("requested credential would not meet criteria for acceptability")]
    UnacceptableCredential,
    #[error("the requested offset is out of range")]
    OffsetOutOfRange,
    #[error("the request parameters do not satisfy the configured policy")]
    PolicyViolation,
    #[error("the record batch failed its CRC check or is malformed")]
    CorruptMessage,
    #[error("this server does not host this topic-partition")]
    UnknownTopicOrPartition,
    #[error("the request included a message larger than the max message size")]
    MessageTooLarge,
    #[error("acks must be -1, 0 or 1")]
    InvalidRequiredAcks,
    #[error("the request timed out")]
    RequestTimedOut,
    #[error("messages are rejected since there are fewer in-sync replicas than required")]
    NotEnoughReplicas,
    #[error("this server is not the leader for that topic-partition")]
    NotLeaderOrFollower,
    #[error("the topic name is not valid")]
    InvalidTopic,
    #[error("the record batch is too large for the request")]
    RecordListTooLarge,
    #[error("the version of the API is not supported")]
    UnsupportedVersion,
    #[error("the topic already exists")]
    TopicAlreadyExists,
    #[error("the number of partitions is invalid")]
    InvalidPartitions,
    #[error("the replication factor is invalid")]
    InvalidReplicationFactor,
    #[error("the configuration is invalid")]
    InvalidConfig,
    #[error("the request is invalid")]
    InvalidRequest,
    #[error("the producer attempted to use a producer epoch which is not the current one")]
    InvalidProducerEpoch,
    #[error("the broker received an out of order sequence number")]
    OutOfOrderSequenceNumber,
    #[error("the broker received a duplicate sequence number")]
    DuplicateSequenceNumber,
    #[error("the timestamp of the record is out of the acceptable range")]
    InvalidTimestamp,
    #[error("the record is invalid")]
    InvalidRecord,
    #[error("the requesting client does not support the compression type of given partition")]
    UnsupportedCompressionType,
    #[error("the topic id does not exist on this server")]
    UnknownTopicId,
    #[error("the producer id is not known")]
    UnknownProducerId,
    #[error("the broker is not available")]
    BrokerNotAvailable,
    #[error("the storage failed to complete the operation")]
    KafkaStorageError,
    #[error("the client's controller mutation quota is exceeded")]
    ThrottlingQuotaExceeded,
    #[error("topic deletion is disabled or failed")]
    TopicDeletionDisabled,
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the committed offset metadata is too large")]
    OffsetMetadataTooLarge,
    #[error("this is not the correct coordinator")]
    NotCoordinator,
    #[error("the generation id is not the current one")]
    IllegalGeneration,
    #[error("the group member's protocol type or protocols are not compatible with the group")]
    InconsistentGroupProtocol,
    #[error("the group id is invalid")]
    InvalidGroupId,
    #[error("the member id is not in the current generation")]
    UnknownMemberId,
    #[error("the session timeout is not within the range allowed by the broker")]
    InvalidSessionTimeout,
    #[error("the group is rebalancing, so a rejoin is needed")]
    RebalanceInProgress,
    #[error("the group is not empty")]
    NonEmptyGroup,
    #[error("the group id does not exist")]
    GroupIdNotFound,
    #[error("the group member needs a valid member id before joining the group")]
    MemberIdRequired,
    #[error("the group has reached its maximum size")]
    GroupMaxSizeReached,
    #[error("another member with the same group.instance.id has joined; this one is fenced")]
    FencedInstanceId,
    #[error("the group is actively subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("the member epoch is fenced by the group coordinator")]
    FencedMemberEpoch,
    #[error("the instance id is still used by another member in the consumer group")]
    UnreleasedInstanceId,
    #[error("the assignor or its version range is not supported by the consumer group")]
    UnsupportedAssignor,
    #[error("the member epoch is stale")]
    StaleMemberEpoch,
    #[error("the replica assignment is invalid")]
    InvalidReplicaAssignment,
    #[error("the leader epoch in the request is older than the epoch on the broker")]
    FencedLeaderEpoch,
    #[error("the leader epoch in the request is newer than the epoch on the broker")]
    UnknownLeaderEpoch,
    #[error("leader election not needed for topic partition")]
    ElectionNotNeeded,
    #[error("no partition reassignment is in progress")]
    NoReassignmentInProgress,
    #[error("the fetch session id was not found")]
    FetchSessionIdNotFound,
    #[error("the fetch session epoch is invalid")]
    InvalidFetchSessionEpoch,
    #[error("the producer attempted a transactional operation in an invalid state")]
    InvalidTxnState,
    #[error("the producer attempted to use a producer id which is not currently assigned to its transactional id")]
    InvalidProducerIdMapping,
    #[error("the transaction timeout is larger than the maximum value allowed by the broker")]
    InvalidTransactionTimeout,
    #[error("the producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing")]
    ConcurrentTransactions,
    #[error("a transaction coordinator with a newer epoch exists")]
    TransactionCoordinatorFenced,
    #[error("the request was not attempted because of an error in another part of it")]
    OperationNotAttempted,
    #[error(
        "there is a newer producer with the same transactional id which fences the current one"
    )]
    ProducerFenced,
    #[error("the transactional id could not be found")]
    TransactionalIdNotFound,
    #[error("the server encountered an error with the transaction; the client can abort it and continue")]
    TransactionAbortable,
    #[error("there are unstable offsets that need to be cleared")]
    UnstableOffsetCommit,
    #[error("the regular expression is not valid")]
    InvalidRegularExpression,
    #[error("the record state is invalid; the acknowledgement of delivery could not be completed")]
    InvalidRecordState,
    #[error("the share session was not found")]
    ShareSessionNotFound,
    #[error("the share session epoch is invalid")]
    InvalidShareSessionEpoch,
    #[error("the limit of share sessions has been reached")]
    ShareSessionLimitReached,
    #[error("the supplied topology is invalid")]
    StreamsInvalidTopology,
    #[error("the supplied topology epoch is invalid")]
    StreamsInvalidTopologyEpoch,
    #[error("the supplied topology epoch is outdated")]
    StreamsTopologyFenced,
}

impl KafkaError {
    /// The wire code from Kafka's `org.apache.kafka.common.protocol.Errors`.
    pub const fn code(self) -> i16 {
        match self {
            KafkaError::UnknownServerError => -1,
            KafkaError::TopicAuthorizationFailed => 29,
            KafkaError::GroupAuthorizationFailed => 30,
            KafkaError::ClusterAuthorizationFailed => 31,
            KafkaError::UnsupportedSaslMechanism => 33,
            KafkaError::IllegalSaslState => 34,
            KafkaError::TransactionalIdAuthorizationFailed => 53,
            KafkaError::SecurityDisabled => 54,
            KafkaError::SaslAuthenticationFailed => 58,
            KafkaError::ResourceNotFound => 91,
            KafkaError::DuplicateResource => 92,
            KafkaError::UnacceptableCredential => 93,
            KafkaError::OffsetOutOfRange => 1,
            KafkaError::PolicyViolation => 44,
            KafkaError::CorruptMessage => 2,
            KafkaError::UnknownTopicOrPartition => 3,
            KafkaError::MessageTooLarge => 10,
            KafkaError::RequestTimedOut => 7,
            KafkaError::NotEnoughReplicas => 19,
            KafkaError::NotLeaderOrFollower => 6,
            KafkaError::BrokerNotAvailable => 8,
            KafkaError::CoordinatorNotAvailable => 15,
            KafkaError::InvalidTopic => 17,
            KafkaError::RecordListTooLarge => 18,
            KafkaError::InvalidRequiredAcks => 21,
            KafkaError::InvalidTimestamp => 32,
            KafkaError::UnsupportedVersion => 35,
            KafkaError::TopicAlreadyExists => 36,
            KafkaError::InvalidPartitions => 37,
            KafkaError::InvalidReplicationFactor => 38,
            KafkaError::InvalidConfig => 40,
            KafkaError::InvalidRequest => 42,
            KafkaError::OutOfOrderSequenceNumber => 45,
            KafkaError::DuplicateSequenceNumber => 46,
            KafkaError::InvalidProducerEpoch => 47,
            KafkaError::KafkaStorageError => 56,
            KafkaError::ThrottlingQuotaExceeded => 89,
            KafkaError::UnknownProducerId => 59,
            KafkaError::TopicDeletionDisabled => 73,
            KafkaError::InvalidRecord => 87,
            KafkaError::UnsupportedCompressionType => 76,
            KafkaError::UnknownTopicId => 100,
            KafkaError::OffsetMetadataTooLarge => 12,
            KafkaError::NotCoordinator => 16,
            KafkaError::IllegalGeneration => 22,
            KafkaError::InconsistentGroupProtocol => 23,
            KafkaError::InvalidGroupId => 24,
            KafkaError::UnknownMemberId => 25,
            KafkaError::InvalidSessionTimeout => 26,
            KafkaError::RebalanceInProgress => 27,
            KafkaError::NonEmptyGroup => 68,
            KafkaError::GroupIdNotFound => 69,
            KafkaError::MemberIdRequired => 79,
            KafkaError::GroupMaxSizeReached => 81,
            KafkaError::FencedInstanceId => 82,
            KafkaError::GroupSubscribedToTopic => 86,
            KafkaError::FencedMemberEpoch => 110,
            KafkaError::UnreleasedInstanceId => 111,
            KafkaError::UnsupportedAssignor => 112,
            KafkaError::StaleMemberEpoch => 113,
            KafkaError::InvalidReplicaAssignment => 39,
            KafkaError::FencedLeaderEpoch => 74,
            KafkaError::UnknownLeaderEpoch => 75,
            KafkaError::ElectionNotNeeded => 84,
            KafkaError::NoReassignmentInProgress => 85,
            KafkaError::FetchSessionIdNotFound => 70,
            KafkaError::InvalidFetchSessionEpoch => 71,
            KafkaError::InvalidTxnState => 48,
            KafkaError::InvalidProducerIdMapping => 49,
            KafkaError::InvalidTransactionTimeout => 50,
            KafkaError::ConcurrentTransactions => 51,
            KafkaError::TransactionCoordinatorFenced => 52,
            KafkaError::OperationNotAttempted => 55,
            KafkaError::ProducerFenced => 90,
            KafkaError::TransactionalIdNotFound => 105,
            KafkaError::TransactionAbortable => 120,
            KafkaError::UnstableOffsetCommit => 88,
            KafkaError::InvalidRegularExpression => 128,
            KafkaError::InvalidRecordState => 121,
            KafkaError::ShareSessionNotFound => 122,
            KafkaError::InvalidShareSessionEpoch => 123,
            KafkaError::ShareSessionLimitReached => 133,
            KafkaError::StreamsInvalidTopology => 130,
            KafkaError::StreamsInvalidTopologyEpoch => 131,
            KafkaError::StreamsTopologyFenced => 132,
        }
    }
}

impl KafkaError {
    /// The error a wire code stands for (a peer kop instance's answer, `broker/peers.rs`);
    /// None for 0 (no error); codes kop never answers with are UNKNOWN_SERVER_ERROR.
    pub fn from_code(code: i16) -> Option<KafkaError> {
        Some(match code {
            NONE => return None,
            -1 => KafkaError::UnknownServerError,
            29 => KafkaError::TopicAuthorizationFailed,
            30 => KafkaError::GroupAuthorizationFailed,
            31 => KafkaError::ClusterAuthorizationFailed,
            33 => KafkaError::UnsupportedSaslMechanism,
            34 => KafkaError::IllegalSaslState,
            53 => KafkaError::TransactionalIdAuthorizationFailed,
            54 => KafkaError::SecurityDisabled,
            58 => KafkaError::SaslAuthenticationFailed,
            91 => KafkaError::ResourceNotFound,
            92 => KafkaError::DuplicateResource,
            93 => KafkaError::UnacceptableCredential,
            1 => KafkaError::OffsetOutOfRange,
            2 => KafkaError::CorruptMessage,
            3 => KafkaError::UnknownTopicOrPartition,
            10 => KafkaError::MessageTooLarge,
            7 => KafkaError::RequestTimedOut,
            19 => KafkaError::NotEnoughReplicas,
            6 => KafkaError::NotLeaderOrFollower,
            8 => KafkaError::BrokerNotAvailable,
            15 => KafkaError::CoordinatorNotAvailable,
            17 => KafkaError::InvalidTopic,
            18 => KafkaError::RecordListTooLarge,
            21 => KafkaError::InvalidRequiredAcks,
            32 => KafkaError::InvalidTimestamp,
            35 => KafkaError::UnsupportedVersion,
            36 => KafkaError::TopicAlreadyExists,
            37 => KafkaError::InvalidPartitions,
            38 => KafkaError::InvalidReplicationFactor,
            40 => KafkaError::InvalidConfig,
            42 => KafkaError::InvalidRequest,
            45 => KafkaError::OutOfOrderSequenceNumber,
            46 => KafkaError::DuplicateSequenceNumber,
            47 => KafkaError::InvalidProducerEpoch,
            56 => KafkaError::KafkaStorageError,
            59 => KafkaError::UnknownProducerId,
            73 => KafkaError::TopicDeletionDisabled,
            87 => KafkaError::InvalidRecord,
            76 => KafkaError::UnsupportedCompressionType,
            100 => KafkaError::UnknownTopicId,
            12 => KafkaError::OffsetMetadataTooLarge,
            16 => KafkaError::NotCoordinator,
            22 => KafkaError::IllegalGeneration,
            23 => KafkaError::InconsistentGroupProtocol,
            24 => KafkaError::InvalidGroupId,
            25 => KafkaError::UnknownMemberId,
            26 => KafkaError::InvalidSessionTimeout,
            27 => KafkaError::RebalanceInProgress,
            68 => KafkaError::NonEmptyGroup,
            69 => KafkaError::GroupIdNotFound,
            79 => KafkaError::MemberIdRequired,
            81 => KafkaError::GroupMaxSizeReached,
            82 => KafkaError::FencedInstanceId,
            86 => KafkaError::GroupSubscribedToTopic,
            110 => KafkaError::FencedMemberEpoch,
            111 => KafkaError::UnreleasedInstanceId,
            112 => KafkaError::UnsupportedAssignor,
            113 => KafkaError::StaleMemberEpoch,
            39 => KafkaError::InvalidReplicaAssignment,
            74 => KafkaError::FencedLeaderEpoch,
            75 => KafkaError::UnknownLeaderEpoch,
            84 => KafkaError::ElectionNotNeeded,
            85 => KafkaError::NoReassignmentInProgress,
            70 => KafkaError::FetchSessionIdNotFound,
            71 => KafkaError::InvalidFetchSessionEpoch,
            48 => KafkaError::InvalidTxnState,
            49 => KafkaError::InvalidProducerIdMapping,
            50 => KafkaError::InvalidTransactionTimeout,
            51 => KafkaError::ConcurrentTransactions,
            52 => KafkaError::TransactionCoordinatorFenced,
            55 => KafkaError::OperationNotAttempted,
            90 => KafkaError::ProducerFenced,
            105 => KafkaError::TransactionalIdNotFound,
            120 => KafkaError::TransactionAbortable,
            88 => KafkaError::UnstableOffsetCommit,
            128 => KafkaError::InvalidRegularExpression,
            121 => KafkaError::InvalidRecordState,
            122 => KafkaError::ShareSessionNotFound,
            123 => KafkaError::InvalidShareSessionEpoch,
            133 => KafkaError::ShareSessionLimitReached,
            130 => KafkaError::StreamsInvalidTopology,
            131 => KafkaError::StreamsInvalidTopologyEpoch,
            132 => KafkaError::StreamsTopologyFenced,
            _ => KafkaError::UnknownServerError,
        })
    }
}

impl From<io::Error> for KafkaError {
    fn from(err: io::Error) -> Self {
        tracing::error!(error = %err, "storage I/O error");
        KafkaError::KafkaStorageError
    }
}

/// Error code 0: success.
pub const NONE: i16 = 0;

/// Convenience: the wire code of a result.
pub fn code_of<T>(result: &Result<T, KafkaError>) -> i16 {
    match result {
        Ok(_) => NONE,
        Err(e) => e.code(),
    }
}
