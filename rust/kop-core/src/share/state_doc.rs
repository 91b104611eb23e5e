//! The durable form of a share partition: a document (`storage::Metadata::share_state`) holding
//! the share-partition start offset and the in-flight runs, JSON:
//! `{"start": 120, "batches": [[120, 129, 2, 1], [130, 130, 0, 3]]}` — each run is
//! `[first, last, state, delivery count]` with Kafka's state ids (0 available, 2 acknowledged,
//! 4 archived; acquired runs are stored as available).

use serde::{Deserialize, Serialize};

use super::partition::{RecordState, SharePartition, StateBatch};

#[derive(Serialize, Deserialize)]
struct Stored {
    start: i64,
    batches: Vec<(i64, i64, u8, i16)>,
}

pub fn encode(sp: &SharePartition) -> Vec<u8> {
    let stored = Stored {
        start: sp.start(),
        batches: sp
            .batches()
            .into_iter()
            .map(|b| (b.first, b.last, b.state as u8, b.delivery_count))
            .collect(),
    };
    serde_json::to_vec(&stored).unwrap_or_default()
}

pub fn decode(bytes: &[u8]) -> Result<SharePartition, String> {
    let stored: Stored = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut batches = Vec::with_capacity(stored.batches.len());
    for (first, last, state, delivery_count) in stored.batches {
        let state = RecordState::from_id(state).ok_or(format!("unknown record state {state}"))?;
        if last < first || first < stored.start {
            return Err(format!("bad run {first}..{last} (start {})", stored.start));
        }
        batches.push(StateBatch {
            first,
            last,
            state,
            delivery_count,
        });
    }
    Ok(SharePartition::restore(stored.start, &batches))
}
