//! Which cleaning rule applies to a batch, with transactions (Kafka's
//! `CleanedTransactionMetadata`):
//! - a transactional data batch inside an aborted transaction (its producer id has an aborted
//!   range `[first_offset, marker]` holding the batch) is aborted: its records are removed and
//!   kept out of the key map;
//! - other data batches, committed transactional ones included, are filtered by key;
//! - a COMMIT/ABORT marker may go once no batch of its transaction is left before it: the
//!   tracker remembers, per producer id, whether a transactional batch was read since that
//!   producer's previous marker. Kafka forgets that at every group of segments; kop cleans
//!   from the log start in one pass and keeps it for the whole pass, so a marker whose
//!   transaction left an (emptied) batch in an earlier group is kept too, and producer state
//!   replayed from the log never sees a transaction without its end.

use std::collections::{HashMap, HashSet};

use super::batch_filter::AbortedTxn;
use crate::error::KafkaError;
use crate::records::batch::BatchHeader;
use crate::records::control::parse_marker;

/// How a batch's records are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Records filtered by key.
    ByKey,
    /// Every record goes (an aborted transaction's data).
    Aborted,
    /// A transaction marker; `discardable` once no batch of its transaction is left before it
    /// (then its delete horizon is set, and it goes after `delete.retention.ms`).
    Marker { discardable: bool },
    /// The batch stays as it is (a control batch that is not a transaction marker).
    KeepWhole,
}

/// The transaction state of one pass over the log, in offset order.
pub struct TxnTracker {
    /// Aborted ranges (first offset, marker offset) per producer id.
    aborted: HashMap<i64, Vec<(i64, i64)>>,
    /// Producers with a transactional batch read since their last marker.
    open: HashSet<i64>,
}

impl TxnTracker {
    pub fn new(aborted: &[AbortedTxn]) -> Self {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for a in aborted {
            by_producer
                .entry(a.producer_id)
                .or_default()
                .push((a.first_offset, a.last_offset));
        }
        TxnTracker {
            aborted: by_producer,
            open: HashSet::new(),
        }
    }

    fn is_aborted(&self, header: &BatchHeader) -> bool {
        self.aborted.get(&header.producer_id).is_some_and(|ranges| {
            ranges
                .iter()
                .any(|&(first, marker)| first <= header.base_offset && header.base_offset < marker)
        })
    }

    /// The rule for the next batch of the pass (batches must come in offset order).
    pub fn rule(&mut self, header: &BatchHeader, bytes: &[u8]) -> Result<Rule, KafkaError> {
        if header.is_control() {
            if header.records_count == 0 {
                // Emptied by a cleaner already: nothing of its transaction can be left.
                return Ok(Rule::Marker { discardable: true });
            }
            return Ok(match parse_marker(bytes)? {
                Some(_) => Rule::Marker {
                    discardable: !self.open.remove(&header.producer_id),
                },
                None => Rule::KeepWhole,
            });
        }
        if !header.is_transactional() {
            return Ok(Rule::ByKey);
        }
        self.open.insert(header.producer_id);
        Ok(if self.is_aborted(header) {
            Rule::Aborted
        } else {
            Rule::ByKey
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::batch::tests::sample_batch;
    use crate::records::batch::{patch_offset_and_epoch, TRANSACTIONAL};
    use crate::records::control::{encode_marker, ControlKind, MarkerSpec};

    fn data(pid: i64, base: i64, transactional: bool) -> Vec<u8> {
        let mut b = sample_batch(2, 0, b"v", (pid, 0, 0));
        if transactional {
            let attrs = i16::from_be_bytes([b[21], b[22]]) | TRANSACTIONAL;
            b[21..23].copy_from_slice(&attrs.to_be_bytes());
        }
        patch_offset_and_epoch(&mut b, base, 0);
        b
    }

    fn marker(pid: i64, kind: ControlKind, base: i64) -> Vec<u8> {
        let spec = MarkerSpec {
            producer_id: pid,
            producer_epoch: 0,
            kind,
            coordinator_epoch: 0,
            timestamp: 0,
        };
        encode_marker(&spec, base, 0)
    }

    fn rule(t: &mut TxnTracker, b: &[u8]) -> Rule {
        t.rule(&BatchHeader::parse(b).unwrap(), b).unwrap()
    }

    #[test]
    fn aborted_data_goes_and_markers_go_once_their_transaction_is_gone() {
        let aborted = [AbortedTxn {
            producer_id: 1,
            first_offset: 0,
            last_offset: 4,
        }];
        let mut t = TxnTracker::new(&aborted);
        assert_eq!(rule(&mut t, &data(1, 0, true)), Rule::Aborted);
        assert_eq!(rule(&mut t, &data(2, 2, true)), Rule::ByKey);
        assert_eq!(
            rule(&mut t, &marker(1, ControlKind::Abort, 4)),
            Rule::Marker { discardable: false }
        );
        assert_eq!(
            rule(&mut t, &marker(2, ControlKind::Commit, 5)),
            Rule::Marker { discardable: false }
        );
        // A second marker of producer 2 with no data of its own: discardable.
        assert_eq!(
            rule(&mut t, &marker(2, ControlKind::Abort, 6)),
            Rule::Marker { discardable: true }
        );
        // Producer 1 after its aborted range: not aborted; plain batches by key.
        assert_eq!(rule(&mut t, &data(1, 7, true)), Rule::ByKey);
        assert_eq!(rule(&mut t, &data(3, 9, false)), Rule::ByKey);
    }
}
