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

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::file::{read_optional, write_atomic_with};
use super::{Durability, StorageError};

const MAGIC: &[u8; 8] = b"WRDNSNAP";
const VERSION: u32 = 1;
pub const NAME: &str = "snapshot";
const HEAD: usize = 8 + 4 + 4 + 8;

/// A snapshot's data as it is produced: each call appends the next piece
/// to the (empty) buffer and returns true, or returns false when there is
/// no more.
pub type Pieces<'a> = &'a mut dyn FnMut(&mut Vec<u8>) -> Result<bool, StorageError>;

/// The data of a snapshot held whole, as one piece.
#[cfg(test)]
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
    let mut data_len = 0;
    write_atomic_with(dir, NAME, durability, |f| {
        data_len = write_to(f, meta, data, &mut failed, durability.sync)?;
        Ok(())
    })
    .map_err(|e| failed.take().unwrap_or(e))?;
    Ok(data_len)
}

/// What a snapshot is written to: synced part by part as it grows
/// ([`write_to`]).
pub trait SnapshotOut: Write + Seek {
    /// Makes what was written so far durable.
    fn sync_part(&self) -> std::io::Result<()>;
}

impl SnapshotOut for std::fs::File {
    fn sync_part(&self) -> std::io::Result<()> {
        self.sync_data()
    }
}

impl SnapshotOut for std::io::Cursor<Vec<u8>> {
    fn sync_part(&self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes of snapshot written between syncs: the log's own fdatasyncs,
/// on the same disk, then wait behind at most this much, rather than
/// behind the whole snapshot at its end.
const SYNC_EVERY: u64 = 1 << 20;

/// Writes a whole snapshot file to `out` (at its start), synced every
/// [`SYNC_EVERY`] bytes when `sync`; returns the data's length. A failing
/// piece is put in `failed`.
pub fn write_to<W: SnapshotOut>(
    out: &mut W,
    meta: &[u8],
    data: Pieces<'_>,
    failed: &mut Option<StorageError>,
    sync: bool,
) -> std::io::Result<u64> {
    let mut rest = crc32fast::Hasher::new();
    let mut data_len = 0u64;
    {
        let mut w = std::io::BufWriter::with_capacity(1 << 20, &mut *out);
        w.write_all(&[0; HEAD])?;
        w.write_all(meta)?;
        rest.update(meta);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match data(&mut buf) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    *failed = Some(e);
                    return Err(std::io::Error::other("the snapshot's data failed"));
                }
            }
            rest.update(&buf);
            w.write_all(&buf)?;
            data_len += buf.len() as u64;
            if sync && data_len / SYNC_EVERY != (data_len - buf.len() as u64) / SYNC_EVERY {
                w.flush()?;
                w.get_ref().sync_part()?;
            }
        }
        w.flush()?;
    }
    let head = head(meta.len(), data_len);
    let mut crc = crc32fast::Hasher::new();
    crc.update(&head);
    crc.combine(&rest);
    out.write_all(&crc.finalize().to_le_bytes())?;
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&head)?;
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
    match read_optional(&path)? {
        Some(bytes) => parse(bytes, &path.display().to_string()).map(Some),
        None => Ok(None),
    }
}

/// Checks a whole snapshot file (`what` names it in errors) and splits it
/// into meta and data.
pub fn parse(bytes: Vec<u8>, what: &str) -> Result<Stored, StorageError> {
    let damaged = |why: String| StorageError::Corrupt(format!("{what}: {why}"));
    let (meta_len, data_len) = check_head(&bytes, what)?;
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
    Ok(Stored { meta, data })
}

/// The meta and data lengths a snapshot file's header gives.
fn check_head(bytes: &[u8], what: &str) -> Result<(usize, usize), StorageError> {
    if bytes.len() < HEAD || &bytes[..8] != MAGIC {
        return Err(StorageError::Format(format!(
            "{what}: not a Warden snapshot file"
        )));
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(StorageError::Format(format!(
            "{what}: snapshot format {version}; this Warden reads format {VERSION}"
        )));
    }
    let meta_len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let data_len = u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes"));
    let data_len = usize::try_from(data_len)
        .map_err(|_| StorageError::Corrupt(format!("{what}: a data length of {data_len}")))?;
    Ok((meta_len, data_len))
}

/// The meta of the snapshot file `f` holds, read from its start without
/// its data (checked when the data is read); `f` is left at its start.
pub fn read_meta(f: &mut std::fs::File, what: &str) -> Result<Vec<u8>, StorageError> {
    let io = |e| StorageError::io("reading", Path::new(what), e);
    let mut head = [0u8; HEAD];
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    f.read_exact(&mut head).map_err(io)?;
    let (meta_len, _) = check_head(&head, what)?;
    let mut meta = vec![0; meta_len];
    f.read_exact(&mut meta).map_err(io)?;
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(meta)
}

/// A snapshot file received from the leader, as the engine checks and
/// keeps it: the file it was written to, or bytes.
pub enum Received {
    File(std::fs::File),
    Memory(Vec<u8>),
}

impl Received {
    /// Everything received.
    pub fn bytes(&mut self) -> std::io::Result<Vec<u8>> {
        match self {
            Received::File(f) => {
                let mut all = Vec::new();
                f.seek(SeekFrom::Start(0))?;
                f.read_to_end(&mut all)?;
                Ok(all)
            }
            Received::Memory(b) => Ok(b.clone()),
        }
    }
}

/// A whole snapshot file as openraft streams it to a member that needs
/// it, and as that member receives it: the stored file itself, read as it
/// goes out (`Left`), or bytes for the in-memory engine (`Right`).
pub type SnapshotData = tokio_util::either::Either<tokio::fs::File, std::io::Cursor<Vec<u8>>>;

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
