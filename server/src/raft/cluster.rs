//! Which ensemble a member belongs to: an id every member of one ensemble
//! shares, checked on every peer call so a member of another ensemble (a
//! stale process, a copied data folder, a wrong `--peers`) is refused.
//!
//! The id is derived from the founding membership (ids and peer addresses),
//! so members bootstrapped on empty folders with the same `--peers` agree
//! on it without talking first; it is stored in the data folder at
//! bootstrap and never changes afterwards.

use std::collections::BTreeMap;

use crate::storage::engine::{self, Engine, Record};
use crate::storage::StorageError;

/// The ensemble's id for a founding membership: FNV-1a 64 of the sorted
/// `id=address` list, in hex (stable across versions and platforms).
pub fn ensemble_id(members: &BTreeMap<u64, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, addr) in members {
        for b in format!("{id}={addr};").bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The id stored in the data folder, if any.
pub fn stored(e: &dyn Engine) -> Result<Option<String>, StorageError> {
    engine::read_record(e, Record::Cluster)
}

/// Stores the id (at bootstrap, or for a folder from before ids).
pub fn store(e: &dyn Engine, id: &str) -> Result<(), StorageError> {
    engine::write_record(e, Record::Cluster, &id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_founding_members_same_id_else_another() {
        let m = |list: &[(u64, &str)]| -> BTreeMap<u64, String> {
            list.iter().map(|(i, a)| (*i, a.to_string())).collect()
        };
        let a = ensemble_id(&m(&[(1, "h1:7182"), (2, "h2:7182"), (3, "h3:7182")]));
        let b = ensemble_id(&m(&[(3, "h3:7182"), (2, "h2:7182"), (1, "h1:7182")]));
        assert_eq!(a, b);
        assert_ne!(a, ensemble_id(&m(&[(1, "h1:7182"), (2, "h2:7182")])));
        assert_ne!(
            a,
            ensemble_id(&m(&[(1, "h1:7182"), (2, "h2:7182"), (3, "h4:7182")]))
        );
        assert_eq!(a.len(), 16);
    }
}
