//! Kafka record batches kept as raw bytes.

pub mod batch;
pub mod decode;
