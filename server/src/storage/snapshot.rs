//! The snapshot file: `snapshot` in the data folder, replaced atomically
//! (written to `snapshot.tmp`, synced, renamed, directory synced), so a
//! power cut leaves either the previous snapshot or the new one.
//!
//! ```text
//! "WRDNSNAP" | version u32 | meta_len u32 | data_len u64 | meta | data | crc32 of all before
//! ```

use std::path::Path;

use super::file::{read_optional, write_atomic};
use super::{Durability, StorageError};

const MAGIC: &[u8; 8] = b"WRDNSNAP";
const VERSION: u32 = 1;
const NAME: &str = "snapshot";
const HEAD: usize = 8 + 4 + 4 + 8;

/// Stores a snapshot's meta and data (both opaque bytes) in `dir`.
pub fn write(
    dir: &Path,
    meta: &[u8],
    data: &[u8],
    durability: Durability,
) -> Result<(), StorageError> {
    let mut head = Vec::with_capacity(HEAD);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&VERSION.to_le_bytes());
    head.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    head.extend_from_slice(&(data.len() as u64).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&head);
    h.update(meta);
    h.update(data);
    let crc = h.finalize().to_le_bytes();
    write_atomic(dir, NAME, &[&head, meta, data, &crc], durability)
}

/// A stored snapshot: its meta and its data, as opaque bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Stored {
    pub meta: Vec<u8>,
    pub data: Vec<u8>,
}

/// The stored snapshot, if there is one.
pub fn read(dir: &Path) -> Result<Option<Stored>, StorageError> {
    let path = dir.join(NAME);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    let damaged = |why: String| StorageError::Corrupt(format!("{}: {why}", path.display()));
    if bytes.len() < HEAD + 4 || &bytes[..8] != MAGIC {
        return Err(StorageError::Format(format!(
            "{}: not a Warden snapshot file",
            path.display()
        )));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(StorageError::Format(format!(
            "{}: snapshot format {version}; this Warden reads format {VERSION}",
            path.display()
        )));
    }
    let meta_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let data_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")) as usize;
    let body_end = HEAD
        .checked_add(meta_len)
        .and_then(|n| n.checked_add(data_len))
        .filter(|n| n.checked_add(4) == Some(bytes.len()))
        .ok_or_else(|| {
            damaged(format!(
                "{} bytes where the header promises more or less",
                bytes.len()
            ))
        })?;
    let crc = u32::from_le_bytes(bytes[body_end..].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[..body_end]) != crc {
        return Err(damaged("checksum mismatch".into()));
    }
    let meta = bytes[HEAD..HEAD + meta_len].to_vec();
    let data = bytes[HEAD + meta_len..body_end].to_vec();
    Ok(Some(Stored { meta, data }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_replace_and_damage() {
        let dir = tempfile::tempdir().unwrap();
        let d = Durability::default();
        assert_eq!(read(dir.path()).unwrap(), None);
        write(dir.path(), b"m1", b"data one", d).unwrap();
        write(dir.path(), b"meta2", b"data two", d).unwrap();
        assert_eq!(
            read(dir.path()).unwrap(),
            Some(Stored {
                meta: b"meta2".to_vec(),
                data: b"data two".to_vec()
            })
        );
        let path = dir.path().join(NAME);
        let good = std::fs::read(&path).unwrap();
        for (what, bytes) in [
            ("flipped bit", {
                let mut b = good.clone();
                b[HEAD + 2] ^= 4;
                b
            }),
            ("cut short", good[..good.len() - 3].to_vec()),
            ("empty", Vec::new()),
            ("trailing bytes", [good.clone(), vec![0]].concat()),
        ] {
            std::fs::write(&path, &bytes).unwrap();
            let err = read(dir.path()).unwrap_err();
            assert!(err.is_damage(), "{what}: {err}");
        }
    }
}
