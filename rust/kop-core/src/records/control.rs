//! TEMP stand-in (dropped when txn-partitions merges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    Abort,
    Commit,
}
