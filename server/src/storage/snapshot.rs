//! The snapshot file: `snapshot` in the data folder, replaced atomically
//! (written to `snapshot.tmp`, synced, renamed, directory synced), so a
//! power cut leaves either the previous snapshot or the new one.
//!
//! ```text
//! "WRDNSNAP" | version u32 | meta_len u32 | data_len u64 | meta | data | crc32 of all before
//! ```
//!
//! The data is written as it is produced, piece by piece ([`Pieces`]):
//! the header's length is filled in at the end, and the checksum is
//! combined from the header's and the rest's.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use super::file::{read_optional, write_atomic_with};
use super::{Durability, StorageError};

const MAGIC: &[u8; 8] = b"WRDNSNAP";
const VERSION: u32 = 1;
const NAME: &str = "snapshot";
const HEAD: usize = 8 + 4 + 4 + 8;

/// A snapshot's data as it is produced: each call appends the next piece
/// to the (empty) buffer and returns true, or returns false when there is
/// no more.
pub type Pieces<'a> = &'a mut dyn FnMut(&mut Vec<u8>) -> Result<bool, StorageError>;

/// The data of a snapshot held whole, as one piece.
pub fn whole(data: &[u8]) -> impl FnMut(&mut Vec<u8>) -> Result<bool, StorageError> + '_ {
    let mut given = false;
    move |buf| {
        buf.extend_from_slice(data);
        Ok(!std::mem::replace(&mut given, true))
    }
}

/// Stores a snapshot's meta and data (both opaque bytes) in `dir`; returns
/// the data's length.
pub fn write(
    dir: &Path,
    meta: &[u8],
    data: Pieces<'_>,
    durability: Durability,
) -> Result<u64, StorageError> {
    let mut failed = None;
    let mut data_len = 0u64;
    write_atomic_with(dir, NAME, durability, |f| {
        let mut rest = crc32fast::Hasher::new();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut *f);
        out.write_all(&[0; HEAD])?;
        out.write_all(meta)?;
        rest.update(meta);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match data(&mut buf) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    failed = Some(e);
                    return Err(std::io::Error::other("the snapshot's data failed"));
                }
            }
            rest.update(&buf);
            out.write_all(&buf)?;
            data_len += buf.len() as u64;
        }
        let head = head(meta.len(), data_len);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.combine(&rest);
        out.write_all(&crc.finalize().to_le_bytes())?;
        out.flush()?;
        drop(out);
        f.seek(SeekFrom::Start(0))?;
        f.write_all(&head)
    })
    .map_err(|e| failed.take().unwrap_or(e))?;
    Ok(data_len)
}

fn head(meta_len: usize, data_len: u64) -> Vec<u8> {
    let mut head = Vec::with_capacity(HEAD);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&VERSION.to_le_bytes());
    head.extend_from_slice(&(meta_len as u32).to_le_bytes());
    head.extend_from_slice(&data_len.to_le_bytes());
    head
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
    // The data stays where it was read (a snapshot can be most of the
    // memory a server uses): moved to the front, not copied.
    let mut data = bytes;
    data.copy_within(HEAD + meta_len..body_end, 0);
    data.truncate(data_len);
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
        write(dir.path(), b"m1", &mut whole(b"data one"), d).unwrap();
        let mut pieces = [b"data".as_slice(), b"", b" two"].into_iter();
        let mut next = |buf: &mut Vec<u8>| match pieces.next() {
            Some(p) => {
                buf.extend_from_slice(p);
                Ok(true)
            }
            None => Ok(false),
        };
        assert_eq!(write(dir.path(), b"meta2", &mut next, d).unwrap(), 8);
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

    /// A snapshot whose data fails part-way leaves the one before.
    #[test]
    fn a_failed_write_keeps_the_previous_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let d = Durability::default();
        write(dir.path(), b"m", &mut whole(b"kept"), d).unwrap();
        let mut calls = 0;
        let mut failing = |buf: &mut Vec<u8>| {
            calls += 1;
            match calls {
                1 => {
                    buf.extend_from_slice(b"half");
                    Ok(true)
                }
                _ => Err(StorageError::Encode("gave up".into())),
            }
        };
        let err = write(dir.path(), b"m2", &mut failing, d).unwrap_err();
        assert!(err.to_string().contains("gave up"), "{err}");
        assert_eq!(read(dir.path()).unwrap().unwrap().data, b"kept");
    }
}
