//! How kop's `tracing` records are named and levelled in Python's `logging`: the target
//! `kop_core::net::conn` is the logger `kop.net`, `Level::WARN` is Python's 30. The bridge that
//! carries the records into Python is kop-py's `log_bridge.rs`; the mapping lives here so that
//! it is tested with the rest of kop-core.

use tracing::Level;

/// Python's level numbers; TRACE is below DEBUG (kop.logs names it "TRACE").
pub const PY_ERROR: u8 = 40;
pub const PY_WARNING: u8 = 30;
pub const PY_INFO: u8 = 20;
pub const PY_DEBUG: u8 = 10;
pub const PY_TRACE: u8 = 5;

pub fn py_level(level: &Level) -> u8 {
    match *level {
        Level::ERROR => PY_ERROR,
        Level::WARN => PY_WARNING,
        Level::INFO => PY_INFO,
        Level::DEBUG => PY_DEBUG,
        Level::TRACE => PY_TRACE,
    }
}

/// Records of kop's own crates (the others are dependencies').
pub fn is_kop_target(target: &str) -> bool {
    target.starts_with("kop_core") || target.starts_with("kop_py")
}

/// `kop_core::net::conn` -> `kop.net`, `kop_py::pulsar` -> `kop.pulsar`, `kop_core` -> `kop`,
/// another crate's `rustls::conn` -> `kop.deps.rustls`.
pub fn logger_name(target: &str) -> String {
    let mut parts = target.split("::");
    let krate = parts.next().unwrap_or_default();
    if !is_kop_target(krate) {
        return format!("kop.deps.{krate}");
    }
    match parts.next() {
        Some(module) => format!("kop.{module}"),
        None => "kop".to_string(),
    }
}

/// A level name as `log_level` takes it (`warn` or `warning`, any case) -> Python's number.
pub fn parse_level(level: &str) -> Result<u8, String> {
    Ok(match level.to_ascii_lowercase().as_str() {
        "error" => PY_ERROR,
        "warn" | "warning" => PY_WARNING,
        "info" => PY_INFO,
        "debug" => PY_DEBUG,
        "trace" => PY_TRACE,
        other => return Err(format!("log_level: unknown level {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logger_names_follow_the_module() {
        assert_eq!(logger_name("kop_core::net::conn"), "kop.net");
        assert_eq!(logger_name("kop_core::storage"), "kop.storage");
        assert_eq!(logger_name("kop_py::pulsar"), "kop.pulsar");
        assert_eq!(logger_name("kop_core"), "kop");
        assert_eq!(logger_name("rustls::conn"), "kop.deps.rustls");
    }

    #[test]
    fn levels_map_to_python_numbers() {
        assert_eq!(py_level(&Level::WARN), 30);
        assert_eq!(py_level(&Level::TRACE), 5);
        assert_eq!(parse_level("WARNING"), Ok(30));
        assert!(parse_level("loud").is_err());
    }
}
