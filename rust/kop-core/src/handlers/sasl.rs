//! SaslHandshake / SaslAuthenticate where no SASL exchange is expected: on PLAINTEXT and SSL
//! listeners, and after authentication. (On SASL listeners the connection's SASL state machine,
//! net/sasl.rs, answers them before dispatch.) Kafka answers ILLEGAL_SASL_STATE.

use kafka_protocol::messages::{
    RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};

use super::{sb, RequestContext};
use crate::error::KafkaError;

pub async fn handshake(
    ctx: &RequestContext,
    _header: &RequestHeader,
    _req: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let sasl = ctx.security.protocol(&ctx.listener.name).is_sasl();
    let mechanisms = if sasl {
        ctx.security
            .mechanisms
            .iter()
            .map(|m| sb(m.clone()))
            .collect()
    } else {
        Vec::new()
    };
    SaslHandshakeResponse::default()
        .with_error_code(KafkaError::IllegalSaslState.code())
        .with_mechanisms(mechanisms)
}

pub async fn authenticate(
    _ctx: &RequestContext,
    _header: &RequestHeader,
    _req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(KafkaError::IllegalSaslState.code())
        .with_error_message(Some(sb(
            "SaslAuthenticate request received after successful authentication",
        )))
}
