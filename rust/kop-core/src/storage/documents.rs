//! The document seam: small named documents (opaque bytes), replaced whole.
//!
//! `Metadata` (metadata.rs) is written once on top of it; a backend only stores bytes under a
//! name. Names are kop's own, `/`-separated (`cluster-id`, `topic/orders`). Implemented by
//! `file` (one file per document, replaced atomically), `memory` and `remote` (Pulsar).

use std::io;

pub trait DocumentStore: Send + Sync {
    /// The document's bytes; None if there is no such document.
    fn get(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Stores (or with None deletes) a document unconditionally, durably when it returns.
    fn put(&self, name: &str, data: Option<&[u8]>) -> io::Result<()>;
    /// `put` if the document still holds `expected` (None: absent) — also when another kop
    /// instance sharing the storage wrote it meanwhile; false (nothing stored) if it does not.
    fn put_if(&self, name: &str, data: Option<&[u8]>, expected: Option<&[u8]>) -> io::Result<bool>;
    /// The names of the documents that start with `prefix`.
    fn names(&self, prefix: &str) -> io::Result<Vec<String>>;
}
