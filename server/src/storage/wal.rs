//! The write-ahead log: Raft entries appended to segment files and made
//! durable with `fdatasync`, as ZooKeeper's and etcd's logs are.
//!
//! A segment is a file `log/<first index, 20 digits>.wal` holding records
//! back to back:
//!
//! ```text
//! [len: u32 LE][crc32 of index ‖ payload: u32 LE][index: u64 LE][payload: len bytes]
//! ```
//!
//! Appends go to the last segment with `pwrite` (page cache only); a new
//! segment is started once the last one passes its size limit. Segments
//! are extended ahead of the appends ([`PREALLOC`] at a time, zeros, with
//! `fallocate`) as ZooKeeper pads its logs: an append that grows the file
//! makes its `fdatasync` write the inode too, and on this project's disks
//! that made each barrier about 1.7 times as long. Zeros after the last
//! record are the unused end of a segment, not damage. Nothing is
//! durable until a [`SyncJob`] taken after the append has run: it
//! fdatasyncs every segment written since the previous job (many appends,
//! one barrier per file) and, when a segment was created or removed, the
//! `log/` directory.
//!
//! Opening scans every segment. Bytes after the last barrier may be missing
//! or half written after a power cut: a bad record (short, or failing its
//! checksum) with no good record anywhere after it is a *torn tail*,
//! reported by [`Wal::open`] and cut off by [`Wal::finish_recovery`] once
//! the caller has checked that nothing acknowledged lies beyond it. A bad
//! record followed by good ones, or a good record out of sequence, is
//! damage and refuses the folder.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::file::sync_dir;
use super::{Durability, StorageError};

const HEADER: usize = 16;
/// No record is larger: a longer length field is damage, not a record.
const MAX_RECORD: u32 = 256 << 20;
const SUFFIX: &str = ".wal";
/// How far a segment is extended ahead of its appends.
pub const PREALLOC: u64 = 4 << 20;

/// Where one record sits.
#[derive(Clone, Copy, Debug)]
struct Pos {
    segment: u64,
    offset: u64,
    len: u32,
}

/// One segment file.
struct Segment {
    file: Arc<File>,
    path: PathBuf,
    /// Where its records end.
    len: u64,
    /// The file's length: `len` plus zeros allocated ahead.
    alloc: u64,
    /// The index of its last record (purged or not).
    last: Option<u64>,
}

/// The torn end of the log found at open: cut off by
/// [`Wal::finish_recovery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The segment holding the first bad record.
    pub segment: PathBuf,
    /// Where the good records of that segment end.
    pub offset: u64,
    /// Bytes dropped from that segment and every later one.
    pub dropped_bytes: u64,
    /// Why the record at `offset` is bad.
    pub reason: String,
    /// Later segments that hold no good record and are removed.
    pub later_segments: Vec<PathBuf>,
}

/// The Raft log on disk: segment files plus an in-memory index of where
/// each entry is, so reads are one `pread`.
pub struct Wal {
    dir: PathBuf,
    durability: Durability,
    segment_bytes: u64,
    segments: BTreeMap<u64, Segment>,
    /// `positions[i]` is entry `first + i`.
    positions: VecDeque<Pos>,
    first: u64,
    /// Segments written since the last [`SyncJob`] was taken.
    dirty: BTreeSet<u64>,
    dir_dirty: bool,
    torn: Option<TornTail>,
    /// Segments whose entries are all purged, removed by `finish_recovery`.
    purged_segments: Vec<u64>,
    /// Extend segments ahead with `fallocate` (off once it fails: the
    /// filesystem does not support it).
    prealloc: bool,
    /// Nothing was ever appended or purged: the first append sets where the
    /// log starts (openraft starts at 0; its storage test suite at 1). The
    /// start is checked against the snapshot at the next open.
    fresh: bool,
}

/// The files to fdatasync (and whether to fsync the directory) to make
/// everything appended before [`Wal::take_sync_job`] durable. Run outside
/// the log's lock, so appends go on while the barrier runs.
pub struct SyncJob {
    files: Vec<(Arc<File>, PathBuf)>,
    dir: Option<PathBuf>,
    durability: Durability,
}

impl SyncJob {
    /// Runs the barrier.
    pub fn run(self) -> Result<(), StorageError> {
        if !self.durability.sync {
            return Ok(());
        }
        for (f, path) in &self.files {
            f.sync_data()
                .map_err(|e| StorageError::io("syncing", path, e))?;
        }
        if let Some(dir) = &self.dir {
            sync_dir(dir, self.durability)?;
        }
        Ok(())
    }
}

/// Extends `file` from `from` to `to` bytes with zeros, allocated on disk
/// (not a hole, which a later write would have to allocate).
fn allocate(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (
        libc::off_t::try_from(from),
        libc::off_t::try_from(to - from),
    ) else {
        return Err(std::io::Error::other("a segment offset out of range"));
    };
    // SAFETY: a plain syscall on an open descriptor this function borrows.
    match unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

fn segment_name(first: u64) -> String {
    format!("{first:020}{SUFFIX}")
}

fn record(index: u64, payload: &[u8], out: &mut Vec<u8>) -> Result<u32, StorageError> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l <= MAX_RECORD && *l > 0)
        .ok_or_else(|| {
            StorageError::Encode(format!(
                "log entry {index} is {} bytes; a record holds 1 to {MAX_RECORD}",
                payload.len()
            ))
        })?;
    let mut h = crc32fast::Hasher::new();
    h.update(&index.to_le_bytes());
    h.update(payload);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(len)
}

/// Parses the record at the start of `buf`: `Ok((index, len))`, or why it
/// is not a good record.
fn parse(buf: &[u8]) -> Result<(u64, u32), String> {
    if buf.len() < HEADER {
        return Err(format!(
            "a record header is cut short ({} bytes)",
            buf.len()
        ));
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let index = u64::from_le_bytes(buf[8..16].try_into().expect("8 bytes"));
    if len == 0 || len > MAX_RECORD {
        return Err(format!("a record claims {len} bytes"));
    }
    let end = HEADER + len as usize;
    if buf.len() < end {
        return Err(format!(
            "a record of {len} bytes is cut short at {} bytes",
            buf.len() - HEADER
        ));
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&buf[8..end]);
    if h.finalize() != crc {
        return Err(format!("the record of entry {index} fails its checksum"));
    }
    Ok((index, len))
}

/// The good records of one segment file, and where (and why) they stop.
struct Scan {
    records: Vec<(u64, u64, u32)>,
    bad: Option<(u64, String)>,
    /// Where the records end (the zeros allocated ahead excluded).
    len: u64,
    /// The file's length.
    size: u64,
}

fn scan(bytes: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut off = 0usize;
    let mut bad = None;
    while off < bytes.len() {
        // Only zeros from here: the end of the records, allocated ahead.
        if bytes[off..].iter().all(|b| *b == 0) {
            return Scan {
                records,
                bad,
                len: off as u64,
                size: bytes.len() as u64,
            };
        }
        match parse(&bytes[off..]) {
            Ok((index, len)) => {
                records.push((index, off as u64, len));
                off += HEADER + len as usize;
            }
            Err(why) => {
                bad = Some((off as u64, why));
                break;
            }
        }
    }
    // After a bad record: up to the last byte written (zeros allocated
    // ahead are not counted as lost).
    let len = bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
    Scan {
        records,
        bad,
        len: len.max(off) as u64,
        size: bytes.len() as u64,
    }
}

impl Wal {
    /// Opens (or creates) the log in `dir`. Entries at or below `purged`
    /// are skipped (a purge interrupted by a crash is finished by
    /// [`Wal::finish_recovery`]).
    pub fn open(
        dir: &Path,
        purged: Option<u64>,
        durability: Durability,
        segment_bytes: u64,
    ) -> Result<Wal, StorageError> {
        let fresh = !dir.exists();
        std::fs::create_dir_all(dir).map_err(|e| StorageError::io("creating", dir, e))?;
        if fresh {
            if let Some(parent) = dir.parent() {
                sync_dir(parent, durability)?;
            }
        }
        let mut names = Vec::new();
        for e in std::fs::read_dir(dir).map_err(|e| StorageError::io("listing", dir, e))? {
            let e = e.map_err(|e| StorageError::io("listing", dir, e))?;
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(first) = name
                .strip_suffix(SUFFIX)
                .and_then(|n| n.parse::<u64>().ok())
            {
                names.push((first, e.path()));
            }
        }
        names.sort();

        let mut wal = Wal {
            dir: dir.to_path_buf(),
            durability,
            segment_bytes,
            segments: BTreeMap::new(),
            positions: VecDeque::new(),
            first: purged.map(|p| p + 1).unwrap_or(0),
            dirty: BTreeSet::new(),
            dir_dirty: false,
            torn: None,
            purged_segments: Vec::new(),
            prealloc: true,
            fresh: names.is_empty() && purged.is_none(),
        };
        let mut next: Option<u64> = None;
        let mut torn_at: Option<(usize, u64, String)> = None;
        let mut scans = Vec::new();
        for (i, (first, path)) in names.iter().enumerate() {
            let bytes = std::fs::read(path).map_err(|e| StorageError::io("reading", path, e))?;
            let s = scan(&bytes);
            if let Some((seg, off, why)) = &torn_at {
                if let Some((index, _, _)) = s.records.first() {
                    return Err(StorageError::Corrupt(format!(
                        "{} is damaged at byte {off} ({why}) but {} holds entry {index} after it",
                        names[*seg].1.display(),
                        path.display()
                    )));
                }
                scans.push(s);
                continue;
            }
            let mut expect = *first;
            for &(index, off, _) in &s.records {
                if index != expect {
                    return Err(StorageError::Corrupt(format!(
                        "{} holds entry {index} at byte {off} where entry {expect} belongs",
                        path.display()
                    )));
                }
                expect += 1;
            }
            // A gap is damage unless a snapshot covers it (a follower's log
            // restarts after an installed snapshot).
            if let (Some(n), Some(_)) = (next, s.records.first()) {
                if *first != n && purged.is_none_or(|p| *first > p + 1) {
                    return Err(StorageError::Gap(format!(
                        "the log jumps from entry {} to entry {first} at {}",
                        n - 1,
                        path.display()
                    )));
                }
            }
            if !s.records.is_empty() {
                next = Some(expect);
            }
            if let Some((off, why)) = &s.bad {
                torn_at = Some((i, *off, why.clone()));
            }
            scans.push(s);
        }

        // Index the good records; everything from the first bad one on is
        // the torn tail.
        let mut dropped = 0;
        let mut later = Vec::new();
        for (i, ((first, path), s)) in names.iter().zip(&scans).enumerate() {
            let keep_len = match &torn_at {
                Some((t, off, _)) if i == *t => *off,
                Some((t, _, _)) if i > *t => 0,
                _ => s.len,
            };
            if let Some((t, _, _)) = &torn_at {
                if i >= *t {
                    dropped += s.len - keep_len;
                }
                if i > *t {
                    later.push(path.clone());
                    continue;
                }
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(path)
                .map_err(|e| StorageError::io("opening", path, e))?;
            let mut kept = 0;
            let mut last = None;
            for &(index, offset, len) in &s.records {
                if offset >= keep_len {
                    break;
                }
                last = Some(index);
                if purged.is_some_and(|p| index <= p) {
                    continue;
                }
                if wal.positions.is_empty() {
                    wal.first = index;
                }
                wal.positions.push_back(Pos {
                    segment: *first,
                    offset,
                    len,
                });
                kept += 1;
            }
            let fully_purged = kept == 0
                && !s.records.is_empty()
                && torn_at.as_ref().is_none_or(|(t, _, _)| i < *t);
            if fully_purged && i + 1 < names.len() {
                wal.purged_segments.push(*first);
            }
            wal.segments.insert(
                *first,
                Segment {
                    file: Arc::new(file),
                    path: path.clone(),
                    len: keep_len,
                    alloc: s.size,
                    last,
                },
            );
        }
        if let Some((t, off, reason)) = torn_at {
            wal.torn = Some(TornTail {
                segment: names[t].1.clone(),
                offset: off,
                dropped_bytes: dropped,
                reason,
                later_segments: later,
            });
        }
        Ok(wal)
    }

    /// The torn tail found at open, if any (not yet cut off).
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.torn.as_ref()
    }

    /// Cuts off the torn tail and removes segments that an interrupted
    /// purge left behind, making both durable. Call once the caller has
    /// checked that the log still holds everything acknowledged.
    pub fn finish_recovery(&mut self) -> Result<Option<TornTail>, StorageError> {
        let torn = self.torn.take();
        if let Some(t) = &torn {
            let first = self
                .segments
                .iter()
                .find(|(_, s)| s.path == t.segment)
                .map(|(f, _)| *f);
            if let Some(first) = first {
                let seg = self.segments.get_mut(&first).expect("found");
                seg.file
                    .set_len(t.offset)
                    .map_err(|e| StorageError::io("cutting the torn tail of", &seg.path, e))?;
                seg.alloc = t.offset;
                if self.durability.sync {
                    seg.file
                        .sync_data()
                        .map_err(|e| StorageError::io("syncing", &seg.path, e))?;
                }
            }
            for p in &t.later_segments {
                std::fs::remove_file(p).map_err(|e| StorageError::io("removing", p, e))?;
            }
        }
        let purged = std::mem::take(&mut self.purged_segments);
        for first in &purged {
            if let Some(seg) = self.segments.remove(first) {
                std::fs::remove_file(&seg.path)
                    .map_err(|e| StorageError::io("removing", &seg.path, e))?;
            }
        }
        if torn.as_ref().is_some_and(|t| !t.later_segments.is_empty()) || !purged.is_empty() {
            sync_dir(&self.dir, self.durability)?;
        }
        Ok(torn)
    }

    /// The index of the first entry held (or of the next one, when empty).
    pub fn first_index(&self) -> u64 {
        self.first
    }

    /// The index the next append must have.
    pub fn next_index(&self) -> u64 {
        self.first + self.positions.len() as u64
    }

    /// The last entry's index, if the log holds any.
    pub fn last_index(&self) -> Option<u64> {
        (!self.positions.is_empty()).then(|| self.next_index() - 1)
    }

    /// Appends entries (each `(index, payload)`, indexes consecutive from
    /// [`Wal::next_index`], or from an index the log holds, which replaces
    /// that entry and all after it). They are in the page cache only:
    /// durable after the next [`SyncJob`].
    pub fn append(
        &mut self,
        entries: impl IntoIterator<Item = (u64, Vec<u8>)>,
    ) -> Result<(), StorageError> {
        let mut buf = Vec::new();
        let mut pending: Vec<Pos> = Vec::new();
        let mut entries = entries.into_iter().peekable();
        match entries.peek() {
            Some((index, _)) if self.fresh => self.first = *index,
            // Raft's rule: an entry written at an index the log holds
            // replaces it and everything after it.
            Some((index, _)) if *index >= self.first && *index < self.next_index() => {
                self.truncate(*index)?
            }
            _ => {}
        }
        self.fresh = false;
        for (index, payload) in entries {
            let want = self.next_index() + pending.len() as u64;
            if index != want {
                return Err(StorageError::Sequence { index, want });
            }
            // A new segment when the last is full, or when the entry does not
            // follow its last record (the log restarts after a snapshot).
            let needs_new = match self.segments.last_key_value() {
                None => true,
                Some((f, s)) => {
                    let follows = !pending.is_empty() || s.last.map_or(*f, |l| l + 1) == index;
                    s.len + buf.len() as u64 >= self.segment_bytes || !follows
                }
            };
            if needs_new {
                self.write_pending(&mut buf, &mut pending)?;
                self.start_segment(index)?;
            }
            let (&seg_first, seg) = self.segments.last_key_value().expect("a segment");
            let offset = seg.len + buf.len() as u64;
            let len = record(index, &payload, &mut buf)?;
            pending.push(Pos {
                segment: seg_first,
                offset,
                len,
            });
        }
        self.write_pending(&mut buf, &mut pending)
    }

    fn write_pending(
        &mut self,
        buf: &mut Vec<u8>,
        pending: &mut Vec<Pos>,
    ) -> Result<(), StorageError> {
        if buf.is_empty() {
            return Ok(());
        }
        let prealloc = self.prealloc;
        let (&first, seg) = self.segments.last_key_value().expect("a segment");
        let written = buf.len() as u64;
        let end = seg.len + written;
        if end > seg.alloc && prealloc {
            let to = end + PREALLOC.min(self.segment_bytes);
            match allocate(&seg.file, seg.alloc, to) {
                Ok(()) => self.segments.get_mut(&first).expect("the segment").alloc = to,
                Err(e) => {
                    tracing::debug!(error = %e, path = %seg.path.display(), "cannot allocate log space ahead; appends extend the file");
                    self.prealloc = false;
                }
            }
        }
        let seg = &self.segments[&first];
        seg.file
            .write_all_at(buf, seg.len)
            .map_err(|e| StorageError::io("writing", &seg.path, e))?;
        let last = self.next_index() + pending.len() as u64 - 1;
        let seg = self.segments.get_mut(&first).expect("the segment");
        seg.len += written;
        seg.alloc = seg.alloc.max(seg.len);
        seg.last = Some(last);
        self.dirty.insert(first);
        self.positions.extend(pending.drain(..));
        buf.clear();
        Ok(())
    }

    fn start_segment(&mut self, first: u64) -> Result<(), StorageError> {
        let path = self.dir.join(segment_name(first));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| StorageError::io("creating", &path, e))?;
        self.segments.insert(
            first,
            Segment {
                file: Arc::new(file),
                path,
                len: 0,
                alloc: 0,
                last: None,
            },
        );
        self.dir_dirty = true;
        Ok(())
    }

    /// Takes what must be synced to make every append so far durable.
    pub fn take_sync_job(&mut self) -> SyncJob {
        let files = std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|f| self.segments.get(&f))
            .map(|s| (s.file.clone(), s.path.clone()))
            .collect();
        let dir = std::mem::take(&mut self.dir_dirty).then(|| self.dir.clone());
        SyncJob {
            files,
            dir,
            durability: self.durability,
        }
    }

    /// Reads entry `index`'s payload, checking its checksum.
    pub fn read(&self, index: u64) -> Result<Vec<u8>, StorageError> {
        let pos = index
            .checked_sub(self.first)
            .and_then(|i| self.positions.get(i as usize))
            .ok_or(StorageError::Missing(index))?;
        let seg = &self.segments[&pos.segment];
        let mut buf = vec![0u8; HEADER + pos.len as usize];
        seg.file
            .read_exact_at(&mut buf, pos.offset)
            .map_err(|e| StorageError::io("reading", &seg.path, e))?;
        match parse(&buf) {
            Ok((i, _)) if i == index => {
                buf.drain(..HEADER);
                Ok(buf)
            }
            Ok((i, _)) => Err(StorageError::Corrupt(format!(
                "{} holds entry {i} where entry {index} was written",
                seg.path.display()
            ))),
            Err(why) => Err(StorageError::Corrupt(format!(
                "{} at byte {}: {why}",
                seg.path.display(),
                pos.offset
            ))),
        }
    }

    /// Removes entries from `index` on, durably (Raft truncates a
    /// follower's uncommitted conflicting entries).
    pub fn truncate(&mut self, index: u64) -> Result<(), StorageError> {
        if index >= self.next_index() {
            return Ok(());
        }
        let keep = index.saturating_sub(self.first) as usize;
        let cut = self.positions.get(keep).copied();
        self.positions.truncate(keep);
        let Some(cut) = cut else { return Ok(()) };
        let later: Vec<u64> = self
            .segments
            .range(cut.segment + 1..)
            .map(|(f, _)| *f)
            .collect();
        let mut removed = !later.is_empty();
        for f in later {
            let seg = self.segments.remove(&f).expect("listed");
            self.dirty.remove(&f);
            std::fs::remove_file(&seg.path)
                .map_err(|e| StorageError::io("removing", &seg.path, e))?;
        }
        if cut.offset == 0 {
            let seg = self.segments.remove(&cut.segment).expect("the segment");
            self.dirty.remove(&cut.segment);
            std::fs::remove_file(&seg.path)
                .map_err(|e| StorageError::io("removing", &seg.path, e))?;
            removed = true;
        } else {
            let seg = self.segments.get_mut(&cut.segment).expect("the segment");
            seg.file
                .set_len(cut.offset)
                .map_err(|e| StorageError::io("truncating", &seg.path, e))?;
            seg.len = cut.offset;
            seg.alloc = cut.offset;
            seg.last = index.checked_sub(1);
            if self.durability.sync {
                seg.file
                    .sync_data()
                    .map_err(|e| StorageError::io("syncing", &seg.path, e))?;
            }
        }
        if removed {
            sync_dir(&self.dir, self.durability)?;
        }
        Ok(())
    }

    /// Forgets entries up to and including `upto` (they are in a snapshot)
    /// and removes the segments that hold nothing else. The caller records
    /// `upto` durably first, so a crash midway only leaves extra entries.
    pub fn purge(&mut self, upto: u64) -> Result<(), StorageError> {
        self.fresh = false;
        if upto < self.first {
            return Ok(());
        }
        let n = ((upto - self.first + 1) as usize).min(self.positions.len());
        self.positions.drain(..n);
        self.first = upto + 1;
        // A segment can go when the next one starts at or below upto + 1;
        // the last one when all its entries are purged.
        let firsts: Vec<u64> = self.segments.keys().copied().collect();
        let mut removed = false;
        for (i, f) in firsts.iter().enumerate() {
            let all_purged = match firsts.get(i + 1) {
                Some(next) => *next <= upto + 1,
                None => self.positions.is_empty(),
            };
            if !all_purged {
                break;
            }
            let seg = self.segments.remove(f).expect("listed");
            self.dirty.remove(f);
            std::fs::remove_file(&seg.path)
                .map_err(|e| StorageError::io("removing", &seg.path, e))?;
            removed = true;
        }
        if removed {
            self.dir_dirty = true;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
