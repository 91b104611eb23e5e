//! CreateAcls / DescribeAcls / DeleteAcls (authorizer = acl), stored with the data.
//! Kafka: DESCRIBE on the cluster to describe, ALTER on the cluster to create or delete;
//! SECURITY_DISABLED when ACLs are not the authorizer.

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::{authz, sb, RequestContext};
use crate::auth::acl::{AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType};
use crate::auth::authorizer::AuthorizerKind;
use crate::error::KafkaError;

fn acls_enabled(ctx: &RequestContext) -> bool {
    ctx.security.authorizer.kind == AuthorizerKind::Acl
}

const NO_AUTHORIZER: &str = "No Authorizer is configured (set authorizer = acl)";

/// A filter from the wire fields; Err for codes Kafka rejects.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    resource_name: &Option<StrBytes>,
    pattern_type: i8,
    principal: &Option<StrBytes>,
    host: &Option<StrBytes>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, String> {
    let rt = ResourceType::from_code(resource_type)
        .ok_or_else(|| format!("unknown resource type {resource_type}"))?;
    let pt = PatternType::from_code(pattern_type)
        .ok_or_else(|| format!("unknown pattern type {pattern_type}"))?;
    let op =
        Operation::from_code(operation).ok_or_else(|| format!("unknown operation {operation}"))?;
    let perm = Permission::from_code(permission)
        .ok_or_else(|| format!("unknown permission type {permission}"))?;
    Ok(AclFilter {
        resource_type: (rt != ResourceType::Any).then_some(rt),
        resource_name: resource_name.as_ref().map(|s| s.to_string()),
        pattern_type: (pt != PatternType::Any).then_some(pt),
        principal: principal.as_ref().map(|s| s.to_string()),
        host: host.as_ref().map(|s| s.to_string()),
        operation: (op != Operation::Any).then_some(op),
        permission: (perm != Permission::Any).then_some(perm),
    })
}

pub async fn describe_acls(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let err = |e: KafkaError, msg: String| {
        DescribeAclsResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(sb(msg)))
    };
    if !acls_enabled(ctx) {
        return err(KafkaError::SecurityDisabled, NO_AUTHORIZER.into());
    }
    if !authz::cluster_allowed(ctx, "DescribeAcls", Operation::Describe).await {
        return err(
            KafkaError::ClusterAuthorizationFailed,
            KafkaError::ClusterAuthorizationFailed.to_string(),
        );
    }
    let f = match filter(
        req.resource_type_filter,
        &req.resource_name_filter,
        req.pattern_type_filter,
        &req.principal_filter,
        &req.host_filter,
        req.operation,
        req.permission_type,
    ) {
        Ok(f) => f,
        Err(msg) => return err(KafkaError::InvalidRequest, msg),
    };
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for b in ctx.security.authorizer.describe_acls(&f) {
        let desc = AclDescription::default()
            .with_principal(sb(&b.principal))
            .with_host(sb(&b.host))
            .with_operation(b.operation.code())
            .with_permission_type(b.permission as i8);
        let same = |r: &&mut DescribeAclsResource| {
            r.resource_type == b.resource_type.code()
                && r.resource_name.as_str() == b.resource_name
                && r.pattern_type == b.pattern_type as i8
        };
        match resources.iter_mut().find(|r| same(r)) {
            Some(r) => r.acls.push(desc),
            None => resources.push(
                DescribeAclsResource::default()
                    .with_resource_type(b.resource_type.code())
                    .with_resource_name(sb(&b.resource_name))
                    .with_pattern_type(b.pattern_type as i8)
                    .with_acls(vec![desc]),
            ),
        }
    }
    DescribeAclsResponse::default().with_resources(resources)
}

fn binding(c: &create_acls_request::AclCreation) -> Result<AclBinding, String> {
    let b = AclBinding {
        resource_type: ResourceType::from_code(c.resource_type)
            .ok_or_else(|| format!("unknown resource type {}", c.resource_type))?,
        resource_name: c.resource_name.to_string(),
        pattern_type: PatternType::from_code(c.resource_pattern_type)
            .ok_or_else(|| format!("unknown pattern type {}", c.resource_pattern_type))?,
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: Operation::from_code(c.operation)
            .ok_or_else(|| format!("unknown operation {}", c.operation))?,
        permission: Permission::from_code(c.permission_type)
            .ok_or_else(|| format!("unknown permission type {}", c.permission_type))?,
    };
    b.validate()?;
    Ok(b)
}

pub async fn create_acls(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    let all = |e: KafkaError, msg: &str| {
        CreateAclsResponse::default().with_results(
            req.creations
                .iter()
                .map(|_| {
                    AclCreationResult::default()
                        .with_error_code(e.code())
                        .with_error_message(Some(sb(msg)))
                })
                .collect(),
        )
    };
    if !acls_enabled(ctx) {
        return all(KafkaError::SecurityDisabled, NO_AUTHORIZER);
    }
    if !authz::cluster_allowed(ctx, "CreateAcls", Operation::Alter).await {
        return all(
            KafkaError::ClusterAuthorizationFailed,
            &KafkaError::ClusterAuthorizationFailed.to_string(),
        );
    }
    let parsed: Vec<Result<AclBinding, String>> = req.creations.iter().map(binding).collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|r| r.clone().ok()).collect();
    let stored = ctx.security.add_acls(&valid);
    let results = parsed
        .into_iter()
        .map(|r| match (r, &stored) {
            (Err(msg), _) => AclCreationResult::default()
                .with_error_code(KafkaError::InvalidRequest.code())
                .with_error_message(Some(sb(msg))),
            (Ok(_), Err(e)) => AclCreationResult::default()
                .with_error_code(KafkaError::UnknownServerError.code())
                .with_error_message(Some(sb(format!("cannot store the ACLs: {e}")))),
            (Ok(b), Ok(())) => {
                tracing::info!(principal = %ctx.principal, acl = ?b, "ACL created");
                AclCreationResult::default()
            }
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

pub async fn delete_acls(
    ctx: &RequestContext,
    _header: &RequestHeader,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let all = |e: KafkaError, msg: &str| {
        DeleteAclsResponse::default().with_filter_results(
            req.filters
                .iter()
                .map(|_| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(e.code())
                        .with_error_message(Some(sb(msg)))
                })
                .collect(),
        )
    };
    if !acls_enabled(ctx) {
        return all(KafkaError::SecurityDisabled, NO_AUTHORIZER);
    }
    if !authz::cluster_allowed(ctx, "DeleteAcls", Operation::Alter).await {
        return all(
            KafkaError::ClusterAuthorizationFailed,
            &KafkaError::ClusterAuthorizationFailed.to_string(),
        );
    }
    let parsed: Vec<Result<AclFilter, String>> = req
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                &f.resource_name_filter,
                f.pattern_type_filter,
                &f.principal_filter,
                &f.host_filter,
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|r| r.clone().ok()).collect();
    let removed = ctx.security.delete_acls(&valid);
    let mut removed_iter = match &removed {
        Ok(r) => r.clone().into_iter(),
        Err(_) => Vec::new().into_iter(),
    };
    let results = parsed
        .into_iter()
        .map(|r| match (r, &removed) {
            (Err(msg), _) => DeleteAclsFilterResult::default()
                .with_error_code(KafkaError::InvalidRequest.code())
                .with_error_message(Some(sb(msg))),
            (Ok(_), Err(e)) => DeleteAclsFilterResult::default()
                .with_error_code(KafkaError::UnknownServerError.code())
                .with_error_message(Some(sb(format!("cannot store the ACLs: {e}")))),
            (Ok(_), Ok(_)) => {
                let matching = removed_iter
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type.code())
                            .with_resource_name(sb(&b.resource_name))
                            .with_pattern_type(b.pattern_type as i8)
                            .with_principal(sb(&b.principal))
                            .with_host(sb(&b.host))
                            .with_operation(b.operation.code())
                            .with_permission_type(b.permission as i8)
                    })
                    .collect();
                DeleteAclsFilterResult::default().with_matching_acls(matching)
            }
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::create_acls_request::AclCreation;
    use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;

    use super::*;
    use crate::handlers::test_context::TestContext;

    /// ALLOW `op` on topic `name` for `principal`, from any host.
    fn creation(name: &str, principal: &str, op: Operation) -> AclCreation {
        AclCreation::default()
            .with_resource_type(ResourceType::Topic.code())
            .with_resource_name(sb(name))
            .with_resource_pattern_type(PatternType::Literal as i8)
            .with_principal(sb(principal))
            .with_host(sb("*"))
            .with_operation(op.code())
            .with_permission_type(Permission::Allow as i8)
    }

    fn any_topic_filter() -> DescribeAclsRequest {
        DescribeAclsRequest::default()
            .with_resource_type_filter(ResourceType::Topic.code())
            .with_resource_name_filter(None)
            .with_pattern_type_filter(PatternType::Any as i8)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(Operation::Any.code())
            .with_permission_type(Permission::Any as i8)
    }

    async fn create(ctx: &TestContext, creations: Vec<AclCreation>) -> Vec<i16> {
        let req = CreateAclsRequest::default().with_creations(creations);
        create_acls(ctx, &ctx.header(ApiKey::CreateAcls, 3), req)
            .await
            .results
            .iter()
            .map(|r| r.error_code)
            .collect()
    }

    async fn describe(ctx: &TestContext) -> (i16, Vec<(String, usize)>) {
        let header = ctx.header(ApiKey::DescribeAcls, 3);
        let resp = describe_acls(ctx, &header, any_topic_filter()).await;
        let resources = resp
            .resources
            .iter()
            .map(|r| (r.resource_name.to_string(), r.acls.len()))
            .collect();
        (resp.error_code, resources)
    }

    fn admin() -> TestContext {
        RequestContext::builder()
            .config(r#""authorizer": "acl", "super_users": ["User:admin"]"#)
            .principal("User:admin")
            .build()
    }

    #[tokio::test]
    async fn acls_are_created_described_and_deleted() {
        let ctx = admin();
        let got = create(
            &ctx,
            vec![
                creation("t", "User:alice", Operation::Read),
                creation("t", "User:alice", Operation::Write),
                creation("u", "User:bob", Operation::Read),
            ],
        )
        .await;
        assert_eq!(got, [0, 0, 0]);
        assert_eq!(
            describe(&ctx).await,
            (0, vec![("t".into(), 2), ("u".into(), 1)])
        );
        let delete = DeleteAclsFilter::default()
            .with_resource_type_filter(ResourceType::Topic.code())
            .with_resource_name_filter(Some(sb("t")))
            .with_pattern_type_filter(PatternType::Literal as i8)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(Operation::Any.code())
            .with_permission_type(Permission::Any as i8);
        let req = DeleteAclsRequest::default().with_filters(vec![delete]);
        let resp = delete_acls(&ctx, &ctx.header(ApiKey::DeleteAcls, 3), req).await;
        assert_eq!(resp.filter_results[0].error_code, 0);
        assert_eq!(resp.filter_results[0].matching_acls.len(), 2);
        assert_eq!(describe(&ctx).await, (0, vec![("u".into(), 1)]));
    }

    #[tokio::test]
    async fn bindings_kafka_refuses_are_invalid_requests() {
        let ctx = admin();
        let any_resource = creation("t", "User:alice", Operation::Read)
            .with_resource_type(ResourceType::Any.code());
        let match_pattern = creation("t", "User:alice", Operation::Read)
            .with_resource_pattern_type(PatternType::Match as i8);
        let unknown_operation = creation("t", "User:alice", Operation::Read).with_operation(99);
        let got = create(
            &ctx,
            vec![
                any_resource,
                match_pattern,
                unknown_operation,
                creation("ok", "User:alice", Operation::Read),
            ],
        )
        .await;
        let invalid = KafkaError::InvalidRequest.code();
        assert_eq!(got, [invalid, invalid, invalid, 0]);
        assert_eq!(describe(&ctx).await.1, [("ok".into(), 1)]);
    }

    #[tokio::test]
    async fn managing_acls_needs_the_cluster_and_the_acl_authorizer() {
        let ctx = RequestContext::builder()
            .config(r#""authorizer": "acl""#)
            .principal("User:alice")
            .build();
        let denied = KafkaError::ClusterAuthorizationFailed.code();
        assert_eq!(describe(&ctx).await.0, denied);
        let creations = || vec![creation("t", "User:alice", Operation::Read)];
        assert_eq!(create(&ctx, creations()).await, [denied]);
        ctx.allow(
            "User:alice",
            Operation::Alter,
            ResourceType::Cluster,
            authz::CLUSTER_NAME,
        );
        assert_eq!(create(&ctx, creations()).await, [0]);
        // ALTER implies DESCRIBE.
        assert_eq!(describe(&ctx).await.0, 0);

        let open = RequestContext::builder().build();
        let disabled = KafkaError::SecurityDisabled.code();
        assert_eq!(describe(&open).await.0, disabled);
        assert_eq!(create(&open, creations()).await, [disabled]);
    }
}
