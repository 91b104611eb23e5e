//! Wire framing and request headers. Message bodies come from the `kafka-protocol` crate.

pub mod frame;
pub mod frame_reader;
pub mod memory;
pub mod segments;
