//! Describe/AlterUserScramCredentials without a socket, checked against Apache Kafka's
//! `ScramControlManager` and `AlterUserScramCredentialsRequestTest`.

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;

use super::*;
use crate::handlers::test_context::TestContext;

const SHA256: i8 = 1;
const SHA512: i8 = 2;

fn upsert(user: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
    ScramCredentialUpsertion::default()
        .with_name(sb(user))
        .with_mechanism(mechanism)
        .with_iterations(iterations)
        .with_salt(Bytes::from_static(b"salt"))
        .with_salted_password(Bytes::from_static(b"0123456789abcdef0123456789abcdef"))
}

fn remove(user: &str, mechanism: i8) -> ScramCredentialDeletion {
    ScramCredentialDeletion::default()
        .with_name(sb(user))
        .with_mechanism(mechanism)
}

/// (user, error code, message) of each result.
async fn alter_creds(
    ctx: &TestContext,
    deletions: Vec<ScramCredentialDeletion>,
    upsertions: Vec<ScramCredentialUpsertion>,
) -> Vec<(String, i16, Option<String>)> {
    let req = AlterUserScramCredentialsRequest::default()
        .with_deletions(deletions)
        .with_upsertions(upsertions);
    alter(ctx, &ctx.header(ApiKey::AlterUserScramCredentials, 0), req)
        .await
        .results
        .into_iter()
        .map(|r| {
            (
                r.user.to_string(),
                r.error_code,
                r.error_message.map(|m| m.to_string()),
            )
        })
        .collect()
}

/// Top-level error, and (user, error code, [(mechanism, iterations)]) of each result.
async fn describe_creds(
    ctx: &TestContext,
    users: Option<&[&str]>,
) -> (i16, Vec<(String, i16, Vec<(i8, i32)>)>) {
    let req = DescribeUserScramCredentialsRequest::default().with_users(users.map(|us| {
        us.iter()
            .map(|u| UserName::default().with_name(sb(*u)))
            .collect()
    }));
    let resp = describe(
        ctx,
        &ctx.header(ApiKey::DescribeUserScramCredentials, 0),
        req,
    )
    .await;
    let results = resp
        .results
        .into_iter()
        .map(|r| {
            let infos = r
                .credential_infos
                .iter()
                .map(|c| (c.mechanism, c.iterations))
                .collect();
            (r.user.to_string(), r.error_code, infos)
        })
        .collect();
    (resp.error_code, results)
}

fn code(e: KafkaError) -> i16 {
    e.code()
}

#[tokio::test]
async fn credentials_are_upserted_described_and_deleted() {
    let ctx = RequestContext::builder().build();
    let got = alter_creds(
        &ctx,
        vec![],
        vec![upsert("carol", SHA256, 4096), upsert("dave", SHA512, 8192)],
    )
    .await;
    assert_eq!(got, [("carol".into(), 0, None), ("dave".into(), 0, None)]);
    let got = alter_creds(&ctx, vec![], vec![upsert("carol", SHA512, 16384)]).await;
    assert_eq!(got[0].1, 0, "another mechanism in another request");
    assert!(ctx
        .security
        .scram_credential(crate::auth::scram::ScramAlg::Sha512, "carol")
        .is_some());
    let (error, all) = describe_creds(&ctx, None).await;
    assert_eq!(error, 0);
    assert_eq!(
        all,
        [
            ("carol".into(), 0, vec![(SHA256, 4096), (SHA512, 16384)]),
            ("dave".into(), 0, vec![(SHA512, 8192)])
        ]
    );
    assert_eq!(
        describe_creds(&ctx, Some(&[])).await.1.len(),
        2,
        "empty = all"
    );
    assert_eq!(
        alter_creds(&ctx, vec![remove("carol", SHA256)], vec![]).await[0].1,
        0
    );
    let (_, one) = describe_creds(&ctx, Some(&["carol"])).await;
    assert_eq!(one, [("carol".into(), 0, vec![(SHA512, 16384)])]);
}

#[tokio::test]
async fn describe_reports_unknown_and_repeated_users() {
    let ctx = RequestContext::builder()
        .config(r#""sasl_users": ["alice:alice-secret"]"#)
        .build();
    alter_creds(&ctx, vec![], vec![upsert("carol", SHA256, 4096)]).await;
    let (_, got) = describe_creds(&ctx, Some(&["carol", "nobody", "carol", "alice"])).await;
    assert_eq!(
        got.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>(),
        [
            ("carol", code(KafkaError::DuplicateResource)),
            ("nobody", code(KafkaError::ResourceNotFound)),
            // Configured users are not listed: their password is in the configuration.
            ("alice", code(KafkaError::ResourceNotFound))
        ]
    );
}

#[tokio::test]
async fn iterations_must_be_within_kafkas_bounds() {
    let ctx = RequestContext::builder().build();
    for (iterations, want) in [
        (4095, Some("Too few iterations")),
        (4096, None),
        (16384, None),
        (16385, Some("Too many iterations")),
        (i32::MAX, Some("Too many iterations")),
        (0, Some("Too few iterations")),
    ] {
        let got = alter_creds(&ctx, vec![], vec![upsert("u", SHA256, iterations)]).await;
        let expected = match want {
            Some(msg) => (
                code(KafkaError::UnacceptableCredential),
                Some(msg.to_string()),
            ),
            None => (0, None),
        };
        assert_eq!(
            (got[0].1, got[0].2.clone()),
            expected,
            "{iterations} iterations"
        );
    }
}

#[tokio::test]
async fn a_user_twice_in_one_request_is_a_duplicate_and_unchanged() {
    let ctx = RequestContext::builder().build();
    alter_creds(
        &ctx,
        vec![],
        vec![upsert("carol", SHA256, 4096), upsert("dave", SHA256, 4096)],
    )
    .await;
    let duplicate = code(KafkaError::DuplicateResource);
    // The same credential twice, and (as Kafka's controller) the same user with two mechanisms.
    let got = alter_creds(
        &ctx,
        vec![remove("carol", SHA256), remove("carol", SHA256)],
        vec![
            upsert("dave", SHA256, 8192),
            upsert("dave", SHA512, 8192),
            upsert("erin", SHA256, 4096),
        ],
    )
    .await;
    assert_eq!(
        got.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>(),
        [("carol", duplicate), ("dave", duplicate), ("erin", 0)]
    );
    let (_, all) = describe_creds(&ctx, None).await;
    assert_eq!(
        all,
        [
            ("carol".into(), 0, vec![(SHA256, 4096)]),
            ("dave".into(), 0, vec![(SHA256, 4096)]),
            ("erin".into(), 0, vec![(SHA256, 4096)])
        ]
    );
}

#[tokio::test]
async fn bad_names_mechanisms_and_deletions_are_refused_as_kafka() {
    let ctx = RequestContext::builder()
        .config(r#""sasl_users": ["alice:alice-secret"]"#)
        .build();
    let got = alter_creds(
        &ctx,
        vec![
            remove("", SHA256),
            remove("bob", SHA256),
            remove("carol", 0),
        ],
        vec![upsert("dave", 10, 4096), upsert("alice", SHA512, 4096)],
    )
    .await;
    assert_eq!(
        got.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>(),
        [
            ("", code(KafkaError::UnacceptableCredential)),
            ("bob", code(KafkaError::ResourceNotFound)),
            ("carol", code(KafkaError::UnsupportedSaslMechanism)),
            ("dave", code(KafkaError::UnsupportedSaslMechanism)),
            ("alice", code(KafkaError::UnacceptableCredential))
        ]
    );
    assert_eq!(got[0].2.as_deref(), Some("Username must not be empty"));
    assert_eq!(got[2].2.as_deref(), Some("Unknown SCRAM mechanism"));
    assert!(got[4].2.as_deref().unwrap().contains("sasl_users"));
    // Kafka's testAlterEmptyUser: an error on a user's first entry is its only answer.
    let got = alter_creds(
        &ctx,
        vec![remove("", SHA256), remove("", SHA256)],
        vec![upsert("", SHA256, 4096)],
    )
    .await;
    assert_eq!(
        got,
        [(
            String::new(),
            code(KafkaError::UnacceptableCredential),
            Some("Username must not be empty".into())
        )]
    );
    assert!(describe_creds(&ctx, None).await.1.is_empty());
}

#[tokio::test]
async fn describe_needs_describe_and_alter_needs_alter_on_the_cluster() {
    let ctx = RequestContext::builder()
        .config(r#""authorizer": "acl""#)
        .principal("User:alice")
        .build();
    let denied = code(KafkaError::ClusterAuthorizationFailed);
    assert_eq!(describe_creds(&ctx, None).await, (denied, vec![]));
    let got = alter_creds(
        &ctx,
        vec![remove("bob", SHA256)],
        vec![upsert("carol", SHA256, 4096)],
    )
    .await;
    assert_eq!(
        got.iter().map(|r| (r.0.as_str(), r.1)).collect::<Vec<_>>(),
        [("bob", denied), ("carol", denied)]
    );
    let cluster = |op| {
        ctx.allow(
            "User:alice",
            op,
            authz::ResourceType::Cluster,
            authz::CLUSTER_NAME,
        )
    };
    cluster(Operation::Alter);
    assert_eq!(
        alter_creds(&ctx, vec![], vec![upsert("carol", SHA256, 4096)]).await[0].1,
        0
    );
    // ALTER implies DESCRIBE in Kafka's ACLs.
    assert_eq!(describe_creds(&ctx, None).await.1.len(), 1);
}
