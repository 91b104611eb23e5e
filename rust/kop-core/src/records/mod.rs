//! Kafka record batches kept as raw bytes.

pub mod batch;
pub mod compression;
pub mod control;
pub mod decode;
pub mod encode;
pub mod validate;
