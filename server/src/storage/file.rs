//! File-level durability primitives: checksummed records, small files
//! replaced atomically, and directory syncs.
//!
//! A new, renamed or removed directory entry is durable only once its
//! directory has been fsynced; a file's bytes and length only once the file
//! has been fdatasynced. Everything that must survive a power cut goes
//! through these helpers, so the rule is written once.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Durability, StorageError};

/// Encodes a value with bincode behind a crc32, so damage is detected on read.
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StorageError> {
    let body = bincode::serialize(v).map_err(|e| StorageError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes what [`encode`] wrote, failing on a checksum mismatch.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() < 4 {
        return Err("record shorter than its checksum".into());
    }
    let (crc, body) = bytes.split_at(4);
    let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32fast::hash(body) != want {
        return Err("checksum mismatch".into());
    }
    bincode::deserialize(body).map_err(|e| format!("undecodable record: {e}"))
}

/// Makes the entries of directory `dir` durable (fsync of the directory).
pub fn sync_dir(dir: &Path, durability: Durability) -> Result<(), StorageError> {
    if !durability.sync {
        return Ok(());
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io("syncing the directory", dir, e))
}

/// Replaces `dir/name` with the concatenation of `parts` so that after a crash the file holds
/// either its old or its new content, never a mix (see [`write_atomic_with`]).
pub fn write_atomic(
    dir: &Path,
    name: &str,
    parts: &[&[u8]],
    durability: Durability,
) -> Result<(), StorageError> {
    write_atomic_with(dir, name, durability, |f| {
        for p in parts {
            f.write_all(p)?;
        }
        Ok(())
    })
}

/// Replaces `dir/name` with what `fill` writes, so that after a crash the
/// file holds either its old or its new content, never a mix: the bytes
/// go to a temporary file that is synced, renamed over the old one, and
/// the directory is synced.
pub fn write_atomic_with(
    dir: &Path,
    name: &str,
    durability: Durability,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> Result<(), StorageError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let target = dir.join(name);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&tmp)?;
        fill(&mut f)?;
        if durability.sync {
            f.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| StorageError::io("writing", &tmp, e))?;
    std::fs::rename(&tmp, &target).map_err(|e| StorageError::io("renaming", &tmp, e))?;
    sync_dir(dir, durability)
}

/// Reads a file; `None` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("reading", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip_and_damage() {
        let bytes = encode(&(7u64, "seven".to_string())).unwrap();
        assert_eq!(
            decode::<(u64, String)>(&bytes).unwrap(),
            (7, "seven".into())
        );
        let mut bad = bytes.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(
            decode::<(u64, String)>(&bad).unwrap_err(),
            "checksum mismatch"
        );
        assert!(decode::<u64>(&bytes[..3]).is_err());
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = Durability::default();
        write_atomic(dir.path(), "vote", &[b"one"], d).unwrap();
        write_atomic(dir.path(), "vote", &[b"t", b"wo"], d).unwrap();
        assert_eq!(
            read_optional(&dir.path().join("vote")).unwrap().unwrap(),
            b"two"
        );
        assert!(!dir.path().join("vote.tmp").exists());
        assert_eq!(read_optional(&dir.path().join("none")).unwrap(), None);
    }
}
