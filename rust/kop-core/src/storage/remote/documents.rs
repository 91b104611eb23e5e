//! Documents in the remote backend (Pulsar: a compacted topic keyed by name).

use std::io;
use std::sync::Arc;

use super::{blocking, RemoteBackend};
use crate::storage::documents::DocumentStore;

pub struct RemoteDocuments {
    pub(super) backend: Arc<dyn RemoteBackend>,
}

impl DocumentStore for RemoteDocuments {
    fn get(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        blocking(|| self.backend.load_doc(name))
    }

    fn put(&self, name: &str, data: Option<&[u8]>) -> io::Result<()> {
        blocking(|| self.backend.save_doc(name, data))
    }

    fn put_if(&self, name: &str, data: Option<&[u8]>, expected: Option<&[u8]>) -> io::Result<bool> {
        blocking(|| self.backend.save_doc_if(name, data, expected))
    }

    fn names(&self, prefix: &str) -> io::Result<Vec<String>> {
        blocking(|| self.backend.doc_names(prefix))
    }
}
