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
    // As Kafka's controller (`ScramControlManager.alterCredentials`): deletions, then
    // upsertions, in order; a user named a second time (any mechanism) gets
    // DUPLICATE_RESOURCE and none of its changes; once a user has an error, later entries
    // for it are skipped.
    let mut errors: HashMap<String, (KafkaError, String)> = HashMap::new();
    let mut pending: HashMap<String, (ScramAlg, Option<ScramCredential>)> = HashMap::new();
    let entries = req
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), check_deletion(ctx, d, &existing)))
        .chain(
            req.upsertions
                .iter()
                .map(|u| (u.name.to_string(), check_upsertion(ctx, u))),
        );
    for (user, checked) in entries {
        if errors.contains_key(&user) {
            continue;
        }
        if pending.remove(&user).is_some() {
            errors.insert(
                user,
                (
                    KafkaError::DuplicateResource,
                    "A user credential cannot be altered twice in the same request".into(),
                ),
            );
            continue;
        }
        match checked {
            Ok(change) => {
                pending.insert(user, change);
            }
            Err(e) => {
                errors.insert(user, e);
            }
        }
    }
    let changes: Vec<(String, ScramAlg, Option<ScramCredential>)> = users
        .iter()
        .filter_map(|u| pending.remove(u).map(|(alg, cred)| (u.clone(), alg, cred)))
        .collect();
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
                // As Kafka's controller: no message (null) on success.
                None => r.with_error_message(None),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}

/// Kafka's checks of a user name and mechanism (`validateScramUsernameAndMechanism`), then
/// kop's own: a `sasl_users` user is changed in the configuration only.
fn check_user(
    ctx: &RequestContext,
    user: &str,
    mechanism: i8,
) -> Result<ScramAlg, (KafkaError, String)> {
    if user.is_empty() {
        return Err((
            KafkaError::UnacceptableCredential,
            "Username must not be empty".into(),
        ));
    }
    let alg = alg_of(mechanism).ok_or((
        KafkaError::UnsupportedSaslMechanism,
        "Unknown SCRAM mechanism".to_string(),
    ))?;
    if ctx.security.is_configured_user(user) {
        return Err((
            KafkaError::UnacceptableCredential,
            configured_user_message(user),
        ));
    }
    Ok(alg)
}

fn check_deletion(
    ctx: &RequestContext,
    d: &alter_user_scram_credentials_request::ScramCredentialDeletion,
    existing: &HashSet<(String, ScramAlg)>,
) -> Result<(ScramAlg, Option<ScramCredential>), (KafkaError, String)> {
    let alg = check_user(ctx, &d.name, d.mechanism)?;
    if !existing.contains(&(d.name.to_string(), alg)) {
        return Err((
            KafkaError::ResourceNotFound,
            format!(
                "Attempt to delete a user credential that does not exist: {}",
                d.name.as_str()
            ),
        ));
    }
    Ok((alg, None))
}

fn check_upsertion(
    ctx: &RequestContext,
    u: &alter_user_scram_credentials_request::ScramCredentialUpsertion,
) -> Result<(ScramAlg, Option<ScramCredential>), (KafkaError, String)> {
    let alg = check_user(ctx, &u.name, u.mechanism)?;
    let refuse = |why: &str| Err((KafkaError::UnacceptableCredential, why.to_string()));
    if u.iterations < ScramAlg::MIN_ITERATIONS {
        return refuse("Too few iterations");
    }
    if u.iterations > MAX_ITERATIONS {
        return refuse("Too many iterations");
    }
    if u.salt.is_empty() || u.salted_password.is_empty() {
        return refuse("Salt and salted password must not be empty");
    }
    let cred =
        ScramCredential::from_salted_password(alg, &u.salted_password, &u.salt, u.iterations);
    Ok((alg, Some(cred)))
}

/// Why a change to a `sasl_users` user is refused, and what to do instead.
fn configured_user_message(user: &str) -> String {
    format!(
        "User {user} is defined in kop's sasl_users configuration: its password (PLAIN and SCRAM) \
         is changed or removed there and takes effect when kop restarts; \
         AlterUserScramCredentials cannot change it"
    )
}

#[cfg(test)]
#[path = "scram_admin_tests.rs"]
mod tests;
