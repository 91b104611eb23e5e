//! SASL/PLAIN (RFC 4616): one message `[authzid] NUL authcid NUL passwd`.

/// The parts of a PLAIN message, or the error text Kafka's `PlainSaslServer` gives.
pub fn parse(token: &[u8]) -> Result<(String, String), String> {
    let text = std::str::from_utf8(token)
        .map_err(|_| "Invalid SASL/PLAIN response: not UTF-8".to_string())?;
    let parts: Vec<&str> = text.split('\u{0}').collect();
    if parts.len() != 3 {
        return Err(format!(
            "Invalid SASL/PLAIN response: expected 3 tokens, got {}",
            parts.len()
        ));
    }
    let (authzid, user, password) = (parts[0], parts[1], parts[2]);
    if user.is_empty() {
        return Err("Authentication failed: username not specified".into());
    }
    if password.is_empty() {
        return Err("Authentication failed: password not specified".into());
    }
    if !authzid.is_empty() && authzid != user {
        return Err(
            "Authentication failed: Client requested an authorization id that is different from username"
                .into(),
        );
    }
    Ok((user.to_string(), password.to_string()))
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_messages() {
        assert_eq!(
            parse(b"\0alice\0secret").unwrap(),
            ("alice".into(), "secret".into())
        );
        assert_eq!(
            parse(b"alice\0alice\0secret").unwrap(),
            ("alice".into(), "secret".into())
        );
        assert!(parse(b"bob\0alice\0secret").is_err());
        assert!(parse(b"\0alice").is_err());
        assert!(parse(b"\0\0pw").is_err());
        assert!(parse(b"\0alice\0").is_err());
        assert!(parse(b"\xff\0a\0b").is_err());
        assert!(constant_time_eq(b"abc", b"abc") && !constant_time_eq(b"abc", b"abd"));
    }
}
