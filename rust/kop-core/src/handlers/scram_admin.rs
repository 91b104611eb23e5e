//! DescribeUserScramCredentials / AlterUserScramCredentials: SCRAM users managed like on
//! Kafka (`kafka-configs --entity-type users --alter --add-config 'SCRAM-SHA-256=[...]'`).
//! Kafka: DESCRIBE on the cluster to describe, ALTER on the cluster to alter. The credentials
//! are stored with the data; users from `sasl_users` are not listed, and changes to them are
//! refused with UNACCEPTABLE_CREDENTIAL (their password lives in the configuration).

use std::collections::{HashMap, HashSet};

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::*;

use super::{authz, sb, RequestContext};
use crate::auth::acl::Operation;
use crate::auth::scram::{ScramAlg, ScramCredential};
use crate::error::KafkaError;

/// Kafka's `ScramMechanism` wire codes.
fn alg_of(code: i8) -> Option<ScramAlg> {
    match code {
        1 => Some(ScramAlg::Sha256),
        2 => Some(ScramAlg::Sha512),
        _ => None,
    }
}

fn code_of(alg: ScramAlg) -> i8 {
    match alg {
        ScramAlg::Sha256 => 1,
        ScramAlg::Sha512 => 2,
    }
}

/// Kafka's accepted iteration range.
const MAX_ITERATIONS: i32 = 16384;

pub async fn describe(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !authz::cluster_allowed(ctx, "DescribeUserScramCredentials", Operation::Describe).await {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(KafkaError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(sb(KafkaError::ClusterAuthorizationFailed.to_string())));
    }
    let mut by_user: HashMap<String, Vec<CredentialInfo>> = HashMap::new();
    for (user, alg, iterations) in ctx.security.admin_scram_users() {
        by_user.entry(user).or_default().push(
            CredentialInfo::default()
                .with_mechanism(code_of(alg))
                .with_iterations(iterations),
        );
    }
    let wanted: Vec<String> = match &req.users {
        Some(users) if !users.is_empty() => users.iter().map(|u| u.name.to_string()).collect(),
        _ => {
            let mut all: Vec<String> = by_user.keys().cloned().collect();
            all.sort();
            all
        }
    };
    let mut seen = HashMap::new();
    for u in &wanted {
        *seen.entry(u.clone()).or_insert(0) += 1;
    }
    let results = wanted
        .iter()
        .filter({
            let mut done = HashSet::new();
            move |u| done.insert((*u).clone())
        })
        .map(|u| {
            let r = DescribeUserScramCredentialsResult::default().with_user(sb(u));
            if seen[u] > 1 {
                return r
                    .with_error_code(KafkaError::DuplicateResource.code())
                    .with_error_message(Some(sb(format!("Cannot describe SCRAM credentials for the same user twice in a single request: {u}"))));
            }
            match by_user.get(u) {
                Some(infos) => r.with_credential_infos(infos.clone()),
                None => r
                    .with_error_code(KafkaError::ResourceNotFound.code())
                    .with_error_message(Some(sb(format!(
                        "Attempt to describe a user credential that does not exist: {u}"
                    )))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

pub async fn alter(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let users: Vec<String> = {
        let mut v: Vec<String> = req
            .deletions
            .iter()
            .map(|d| d.name.to_string())
            .chain(req.upsertions.iter().map(|u| u.name.to_string()))
            .collect();
        v.dedup();
        let mut seen = HashSet::new();
        v.retain(|u| seen.insert(u.clone()));
        v
    };
    if !authz::cluster_allowed(ctx, "AlterUserScramCredentials", Operation::Alter).await {
        let results = users
            .iter()
            .map(|u| {
                AlterUserScramCredentialsResult::default()
                    .with_user(sb(u))
                    .with_error_code(KafkaError::ClusterAuthorizationFailed.code())
            })
            .collect();
        return AlterUserScramCredentialsResponse::default().with_results(results);
    }
    let existing: HashSet<(String, ScramAlg)> = ctx
        .security
        .admin_scram_users()
        .into_iter()
        .map(|(u, a, _)| (u, a))
        .collect();
    // (user, mechanism) appearing twice in the request → DUPLICATE_RESOURCE for that user.
    let mut count: HashMap<(String, i8), usize> = HashMap::new();
    for (u, m) in req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .chain(
            req.upsertions
                .iter()
                .map(|u| (u.name.to_string(), u.mechanism)),
        )
    {
        *count.entry((u, m)).or_default() += 1;
    }
    let mut errors: HashMap<String, (KafkaError, String)> = HashMap::new();
    let mut changes = Vec::new();
    for ((u, m), n) in &count {
        if *n > 1 {
            errors.entry(u.clone()).or_insert((
                KafkaError::DuplicateResource,
                format!("A user credential cannot be altered twice in the same request: {u}"),
            ));
        }
        let _ = m;
    }
    for u in &users {
        if ctx.security.is_configured_user(u) && !errors.contains_key(u) {
            errors.insert(
                u.clone(),
                (
                    KafkaError::UnacceptableCredential,
                    configured_user_message(u),
                ),
            );
        }
    }
    for d in &req.deletions {
        let user = d.name.to_string();
        if errors.contains_key(&user) {
            continue;
        }
        match alg_of(d.mechanism) {
            None => {
                errors.insert(
                    user,
                    (
                        KafkaError::UnsupportedSaslMechanism,
                        "Unknown SCRAM mechanism".into(),
                    ),
                );
            }
            Some(alg) if !existing.contains(&(user.clone(), alg)) => {
                errors.insert(
                    user.clone(),
                    (
                        KafkaError::ResourceNotFound,
                        format!("Attempt to delete a user credential that does not exist: {user}"),
                    ),
                );
            }
            Some(alg) => changes.push((user, alg, None)),
        }
    }
    for u in &req.upsertions {
        let user = u.name.to_string();
        if errors.contains_key(&user) {
            continue;
        }
        let check = match alg_of(u.mechanism) {
            None => Err((
                KafkaError::UnsupportedSaslMechanism,
                "Unknown SCRAM mechanism".to_string(),
            )),
            Some(_) if user.is_empty() => Err((
                KafkaError::UnacceptableCredential,
                "Username must not be empty".to_string(),
            )),
            Some(_) if !(ScramAlg::MIN_ITERATIONS..=MAX_ITERATIONS).contains(&u.iterations) => {
                Err((
                    KafkaError::UnacceptableCredential,
                    format!(
                        "Iterations must be between {} and {MAX_ITERATIONS}",
                        ScramAlg::MIN_ITERATIONS
                    ),
                ))
            }
            Some(_) if u.salt.is_empty() || u.salted_password.is_empty() => Err((
                KafkaError::UnacceptableCredential,
                "Salt and salted password must not be empty".to_string(),
            )),
            Some(alg) => Ok(alg),
        };
        match check {
            Err(e) => {
                errors.insert(user, e);
            }
            Ok(alg) => {
                let cred = ScramCredential::from_salted_password(
                    alg,
                    &u.salted_password,
                    &u.salt,
                    u.iterations,
                );
                changes.push((user, alg, Some(cred)));
            }
        }
    }
    // A user with any error has none of its changes applied.
    changes.retain(|(u, _, _)| !errors.contains_key(u));
    let changed_users: HashSet<String> = changes.iter().map(|(u, _, _)| u.clone()).collect();
    if !changes.is_empty() {
        if let Err(e) = ctx.security.set_admin_scram(changes) {
            for u in changed_users {
                errors.insert(
                    u,
                    (
                        KafkaError::UnknownServerError,
                        format!("cannot store credentials: {e}"),
                    ),
                );
            }
        } else {
            tracing::info!(principal = %ctx.principal, users = ?changed_users, "SCRAM credentials altered");
        }
    }
    let results = users
        .iter()
        .map(|u| {
            let r = AlterUserScramCredentialsResult::default().with_user(sb(u));
            match errors.get(u) {
                Some((e, msg)) => r
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(msg))),
                None => r,
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Why a change to a `sasl_users` user is refused, and what to do instead.
fn configured_user_message(user: &str) -> String {
    format!(
        "User {user} is defined in kop's sasl_users configuration: its password (PLAIN and SCRAM) \
         is changed or removed there and takes effect when kop restarts; \
         AlterUserScramCredentials cannot change it"
    )
}
