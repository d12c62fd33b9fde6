//! A test-only filesystem that simulates a power cut.
//!
//! [`LossyFs`] mounts an in-memory FUSE filesystem (the `fuser` crate, in
//! this process, on a background thread) at an empty directory. Reads and
//! writes behave as on any filesystem, but every change is only *volatile*
//! until the program makes it durable the way POSIX says it must, and
//! [`LossyFs::cut`] throws away everything volatile, as losing power would.
//! A server whose data folder lives on the mount is killed (SIGKILL, reaped),
//! the filesystem is cut, and the server is started again on what is left.
//!
//! # The durability model
//!
//! * **File contents.** Each regular file has its current content and a
//!   durable view. `fsync` or `fdatasync` of the file (FUSE `fsync`, either
//!   flag) makes its current content and length durable; nothing else does
//!   (`sync_file_range`, `close`, `flush` and `msync` do not); `fallocate`
//!   (mode 0: extend with zeros) is a change like a write. On a cut the
//!   file goes back to its length and bytes at its last fsync, and to empty
//!   if it never had one. Only data is tracked: mode, owner and times are
//!   not reverted.
//! * **Directory entries.** Each directory has its current entries and its
//!   durable entries. A change of entries — create, mknod, mkdir, unlink,
//!   rmdir, rename (also over an existing name, and both sides of a rename
//!   between two directories, each on its own) — becomes durable only when
//!   that directory is fsynced (FUSE `fsyncdir`, i.e. `fsync` of an open
//!   directory). Fsyncing a file does not make its name durable.
//! * **The cut.** Every directory reverts to its durable entries and every
//!   file to its durable content. Whatever is no longer reachable from the
//!   root through durable entries is dropped: a directory never made durable
//!   in its parent disappears with everything under it, even what was
//!   synced inside it. A name unlinked or renamed away without a directory
//!   sync comes back, with its file's content at that file's last fsync.
//!   Rename is not atomic across two directories: with only one of them
//!   synced the file may end up under both names or under neither.
//!
//! The caller guarantees that no process is writing when it cuts (the
//! writer is SIGKILLed and reaped first; the kernel answers a dead process's
//! pending requests before it can be reaped).
//!
//! # Crashing at an exact point
//!
//! Besides killing the writer at a random moment, a test can arm a trip
//! wire ([`LossyFs::kill_on`]): the writer is killed by the filesystem
//! itself right after a given operation on a given name — the first write
//! to `snapshot.tmp`, its fsync, its rename — before the operation returns.
//!
//! # Cost
//!
//! Contents live in the memory of the test process. An fsync does not copy
//! the file: a file keeps its durable length and, for each 4 KiB block below
//! that length changed (written or truncated away) since its last fsync, a
//! copy of the block as it was at that fsync, taken on the first change.
//! Appends past the durable length cost nothing extra, and an fsync only
//! forgets those copies.
//!
//! # Kernel caching
//!
//! Files are opened with `FOPEN_DIRECT_IO` and entry and attribute TTLs are
//! zero, so the kernel keeps neither data nor metadata that a cut could make
//! stale; after a cut the kernel is also told to forget what it knows of
//! every inode and changed name. Symlinks, hard links, extended attributes
//! and special files are not supported, `fallocate` answers `EOPNOTSUPP`,
//! and `flock`/`fcntl` locks are left to the kernel (local to this machine,
//! as on any filesystem).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, Filesystem,
    FopenFlags, Generation, INodeNo, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use parking_lot::{Condvar, Mutex};

/// The unit of copy-on-first-write pre-images.
const BLOCK: u64 = 4096;
/// Entry and attribute TTL: the kernel asks again every time.
const TTL: Duration = Duration::ZERO;
/// The FUSE superblock magic, to check that a mount really happened.
const FUSE_SUPER_MAGIC: i64 = 0x6573_5546;
const NAME_MAX: usize = 255;

/// What one [`LossyFs::cut`] threw away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CutReport {
    /// Files whose content differed from their durable content.
    pub files_reverted: u64,
    /// Bytes past files' durable lengths that were dropped.
    pub bytes_dropped: u64,
    /// 4 KiB blocks below durable lengths put back to their fsynced content.
    pub blocks_restored: u64,
    /// Names not durable in their directory, removed.
    pub entries_dropped: u64,
    /// Durable names removed or renamed away since the directory's last
    /// sync, brought back.
    pub entries_restored: u64,
    /// Files and directories no longer reachable, dropped.
    pub inodes_dropped: u64,
    /// Unsynced bytes kept as a torn write ([`LossyFs::cut_torn`]).
    pub bytes_torn: u64,
}

impl fmt::Display for CutReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} files reverted ({} bytes past their last fsync dropped, {} blocks restored), \
             {} names dropped, {} names restored, {} inodes dropped, {} unsynced bytes kept torn",
            self.files_reverted,
            self.bytes_dropped,
            self.blocks_restored,
            self.entries_dropped,
            self.entries_restored,
            self.inodes_dropped,
            self.bytes_torn
        )
    }
}

/// An operation a trip wire waits for (see [`LossyFs::kill_on`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A file is created (create or mknod) under the name.
    Create,
    /// A file of that name is written to.
    Write,
    /// A file of that name is fsynced (or fdatasynced).
    Fsync,
    /// The name is renamed to another.
    Rename,
    /// The name is unlinked.
    Unlink,
}

/// An armed trip wire: kill `pid` when `op` happens on `name`.
struct Trip {
    op: Op,
    name: OsString,
    pid: i32,
    fired: bool,
}

/// A regular file: its current bytes and what a cut brings back.
#[derive(Default)]
struct FileBody {
    data: Vec<u8>,
    /// The length at the last fsync.
    durable_len: u64,
    /// Block index → the block's bytes below `durable_len` at the last
    /// fsync, for every such block changed since. Invariant: a block below
    /// `durable_len` without a pre-image holds its durable bytes in `data`.
    pre: HashMap<u64, Vec<u8>>,
}

impl FileBody {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    /// Keeps the durable bytes of `block` before they are first changed.
    fn save(&mut self, block: u64) {
        let start = block * BLOCK;
        if start >= self.durable_len || self.pre.contains_key(&block) {
            return;
        }
        let end = (start + BLOCK).min(self.durable_len);
        // By the invariant, `data` covers [start, end) here.
        self.pre
            .insert(block, self.data[start as usize..end as usize].to_vec());
    }

    /// Keeps the durable bytes of every block overlapping `[from, to)`.
    fn save_range(&mut self, from: u64, to: u64) {
        let to = to.min(self.durable_len);
        if from < to {
            for b in from / BLOCK..=(to - 1) / BLOCK {
                self.save(b);
            }
        }
    }

    fn write(&mut self, offset: u64, buf: &[u8]) {
        if buf.is_empty() {
            return;
        }
        let end = offset + buf.len() as u64;
        self.save_range(offset, end);
        if self.len() < end {
            // Blocks in the gap below `durable_len` already have pre-images:
            // the file only got shorter than them by a truncation.
            self.data.resize(end as usize, 0);
        }
        self.data[offset as usize..end as usize].copy_from_slice(buf);
    }

    fn truncate(&mut self, len: u64) {
        if len < self.len() {
            self.save_range(len, self.len());
            self.data.truncate(len as usize);
        } else {
            self.data.resize(len as usize, 0);
        }
    }

    fn sync(&mut self) {
        self.durable_len = self.len();
        self.pre.clear();
    }

    /// Back to the durable content, then the first `keep` of the bytes
    /// written past the durable length put back (a torn write: part of what
    /// was in flight reached the disk). Returns (changed, bytes dropped,
    /// blocks restored).
    fn revert(&mut self, keep: u64) -> (bool, u64, u64) {
        let extra = self.len().saturating_sub(self.durable_len);
        let keep = keep.min(extra);
        let changed = keep < extra || !self.pre.is_empty();
        let d = self.durable_len as usize;
        let tail = self.data[d.min(self.data.len())..][..keep as usize].to_vec();
        let blocks = self.pre.len() as u64;
        self.data.resize(d, 0);
        for (b, bytes) in self.pre.drain() {
            let start = (b * BLOCK) as usize;
            self.data[start..start + bytes.len()].copy_from_slice(&bytes);
        }
        self.data.extend_from_slice(&tail);
        (changed, extra - keep, blocks)
    }
}

/// A directory: its current names and the names at its last sync.
#[derive(Default)]
struct DirBody {
    entries: BTreeMap<OsString, u64>,
    durable: BTreeMap<OsString, u64>,
}

enum Body {
    File(FileBody),
    Dir(DirBody),
}

struct Node {
    body: Body,
    /// The name it was last given (for trip wires on writes and fsyncs).
    name: OsString,
    perm: u16,
    uid: u32,
    gid: u32,
    atime: SystemTime,
    mtime: SystemTime,
    ctime: SystemTime,
}

impl Node {
    fn new(body: Body, name: &OsStr, perm: u16, uid: u32, gid: u32) -> Node {
        let now = SystemTime::now();
        Node {
            body,
            name: name.to_owned(),
            perm,
            uid,
            gid,
            atime: now,
            mtime: now,
            ctime: now,
        }
    }

    fn kind(&self) -> FileType {
        match self.body {
            Body::File(_) => FileType::RegularFile,
            Body::Dir(_) => FileType::Directory,
        }
    }

    fn dir(&self) -> Option<&DirBody> {
        match &self.body {
            Body::Dir(d) => Some(d),
            Body::File(_) => None,
        }
    }
}

/// Everything the filesystem holds, behind one lock.
struct State {
    nodes: HashMap<u64, Node>,
    /// Inode numbers are never reused, so that a kernel inode left over
    /// from before a cut can never stand for another file.
    next_ino: u64,
    /// Open file and directory handles → inode.
    handles: HashMap<u64, u64>,
    next_fh: u64,
    trip: Option<Trip>,
    /// The next fsync of a file whose name ends so fails (see
    /// [`LossyFs::fail_next_fsync`]).
    fail_fsync: Option<String>,
    /// The next write to a file whose name ends so fails with ENOSPC.
    fail_write: Option<String>,
}

type Res<T> = Result<T, Errno>;

impl State {
    fn new() -> State {
        let mut nodes = HashMap::new();
        nodes.insert(
            INodeNo::ROOT.0,
            Node::new(Body::Dir(DirBody::default()), OsStr::new("/"), 0o755, 0, 0),
        );
        State {
            nodes,
            next_ino: INodeNo::ROOT.0 + 1,
            handles: HashMap::new(),
            next_fh: 1,
            trip: None,
            fail_fsync: None,
            fail_write: None,
        }
    }

    fn node(&self, ino: u64) -> Res<&Node> {
        self.nodes.get(&ino).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: u64) -> Res<&mut Node> {
        self.nodes.get_mut(&ino).ok_or(Errno::ENOENT)
    }

    fn file_mut(&mut self, ino: u64) -> Res<&mut FileBody> {
        match &mut self.node_mut(ino)?.body {
            Body::File(f) => Ok(f),
            Body::Dir(_) => Err(Errno::EISDIR),
        }
    }

    fn dir(&self, ino: u64) -> Res<&DirBody> {
        self.node(ino)?.dir().ok_or(Errno::ENOTDIR)
    }

    fn dir_mut(&mut self, ino: u64) -> Res<&mut DirBody> {
        match &mut self.node_mut(ino)?.body {
            Body::Dir(d) => Ok(d),
            Body::File(_) => Err(Errno::ENOTDIR),
        }
    }

    fn attr(&self, ino: u64) -> Res<FileAttr> {
        let n = self.node(ino)?;
        let (size, nlink) = match &n.body {
            Body::File(f) => (f.len(), 1),
            Body::Dir(d) => {
                let subdirs = d
                    .entries
                    .values()
                    .filter(|i| matches!(self.nodes.get(i).map(|n| &n.body), Some(Body::Dir(_))))
                    .count();
                (BLOCK, 2 + subdirs as u32)
            }
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: n.atime,
            mtime: n.mtime,
            ctime: n.ctime,
            crtime: n.ctime,
            kind: n.kind(),
            perm: n.perm,
            nlink,
            uid: n.uid,
            gid: n.gid,
            rdev: 0,
            blksize: BLOCK as u32,
            flags: 0,
        })
    }

    fn lookup(&self, parent: u64, name: &OsStr) -> Res<u64> {
        self.dir(parent)?
            .entries
            .get(name)
            .copied()
            .ok_or(Errno::ENOENT)
    }

    /// Adds a new node under `parent/name`; returns its inode number.
    fn add(&mut self, parent: u64, name: &OsStr, body: Body, perm: u16, req: &Request) -> Res<u64> {
        if name.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let ino = self.next_ino;
        let dir = self.dir_mut(parent)?;
        if dir.entries.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        dir.entries.insert(name.to_owned(), ino);
        self.next_ino += 1;
        self.nodes
            .insert(ino, Node::new(body, name, perm, req.uid(), req.gid()));
        self.touch_dir(parent);
        Ok(ino)
    }

    fn touch_dir(&mut self, ino: u64) {
        if let Some(n) = self.nodes.get_mut(&ino) {
            let now = SystemTime::now();
            n.mtime = now;
            n.ctime = now;
        }
    }

    fn open_handle(&mut self, ino: u64) -> FileHandle {
        let fh = self.next_fh;
        self.next_fh += 1;
        self.handles.insert(fh, ino);
        FileHandle(fh)
    }

    fn remove(&mut self, parent: u64, name: &OsStr, want_dir: bool) -> Res<()> {
        let ino = self.lookup(parent, name)?;
        match (&self.node(ino)?.body, want_dir) {
            (Body::Dir(_), false) => return Err(Errno::EISDIR),
            (Body::File(_), true) => return Err(Errno::ENOTDIR),
            (Body::Dir(d), true) if !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
            _ => {}
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.touch_dir(parent);
        self.gc();
        Ok(())
    }

    fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        newparent: u64,
        newname: &OsStr,
        flags: RenameFlags,
    ) -> Res<()> {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            return Err(Errno::EINVAL);
        }
        if newname.len() > NAME_MAX {
            return Err(Errno::ENAMETOOLONG);
        }
        let ino = self.lookup(parent, name)?;
        let src_is_dir = self.node(ino)?.dir().is_some();
        let target = self.dir(newparent)?.entries.get(newname).copied();
        if let Some(t) = target {
            if t == ino {
                return Ok(());
            }
            if flags.contains(RenameFlags::RENAME_NOREPLACE) {
                return Err(Errno::EEXIST);
            }
            match (src_is_dir, self.node(t)?.dir()) {
                (true, None) => return Err(Errno::ENOTDIR),
                (false, Some(_)) => return Err(Errno::EISDIR),
                (true, Some(d)) if !d.entries.is_empty() => return Err(Errno::ENOTEMPTY),
                _ => {}
            }
        }
        self.dir_mut(parent)?.entries.remove(name);
        self.dir_mut(newparent)?
            .entries
            .insert(newname.to_owned(), ino);
        self.touch_dir(parent);
        self.touch_dir(newparent);
        if let Ok(n) = self.node_mut(ino) {
            n.ctime = SystemTime::now();
            n.name = newname.to_owned();
        }
        if target.is_some() {
            self.gc();
        }
        Ok(())
    }

    /// Fires the trip wire if `op` on `name` is what it waits for: the
    /// armed process is killed before the operation is answered.
    fn trip(&mut self, op: Op, name: &OsStr) -> bool {
        match &mut self.trip {
            Some(t) if !t.fired && t.op == op && t.name == name => {
                // SAFETY: kill(2) has no memory-safety concerns.
                unsafe {
                    libc::kill(t.pid, libc::SIGKILL);
                }
                t.fired = true;
                true
            }
            _ => false,
        }
    }

    /// The name of inode `ino`, for [`trip`](Self::trip).
    fn name_of(&self, ino: u64) -> OsString {
        self.nodes
            .get(&ino)
            .map(|n| n.name.clone())
            .unwrap_or_default()
    }

    /// Inodes reachable from `roots` through current or durable entries.
    fn reachable(&self, roots: impl IntoIterator<Item = u64>, durable_too: bool) -> HashSet<u64> {
        let mut live = HashSet::new();
        let mut stack: Vec<u64> = roots.into_iter().collect();
        while let Some(ino) = stack.pop() {
            if !live.insert(ino) {
                continue;
            }
            if let Some(d) = self.nodes.get(&ino).and_then(Node::dir) {
                stack.extend(d.entries.values());
                if durable_too {
                    stack.extend(d.durable.values());
                }
            }
        }
        live
    }

    /// Drops inodes that neither the current tree, nor a cut, nor an open
    /// handle can reach any more.
    fn gc(&mut self) {
        let roots: Vec<u64> = std::iter::once(INodeNo::ROOT.0)
            .chain(self.handles.values().copied())
            .collect();
        let live = self.reachable(roots, true);
        self.nodes.retain(|ino, _| live.contains(ino));
    }

    fn cut(&mut self, torn: &mut dyn FnMut(u64) -> u64) -> (CutReport, Vec<(u64, OsString)>) {
        let mut r = CutReport::default();
        let mut changed_names = Vec::new();
        for (&ino, node) in self.nodes.iter_mut() {
            let Body::Dir(d) = &mut node.body else {
                continue;
            };
            for (name, i) in &d.entries {
                if d.durable.get(name) != Some(i) {
                    r.entries_dropped += 1;
                    changed_names.push((ino, name.clone()));
                }
            }
            for (name, i) in &d.durable {
                if d.entries.get(name) != Some(i) {
                    r.entries_restored += 1;
                    if !d.entries.contains_key(name) {
                        changed_names.push((ino, name.clone()));
                    }
                }
            }
            d.entries = d.durable.clone();
        }
        // The writer is dead: its handles keep nothing alive.
        let live = self.reachable([INodeNo::ROOT.0], false);
        let before = self.nodes.len();
        self.nodes.retain(|ino, _| live.contains(ino));
        r.inodes_dropped = (before - self.nodes.len()) as u64;
        let nodes = &self.nodes;
        self.handles.retain(|_, ino| nodes.contains_key(ino));
        for node in self.nodes.values_mut() {
            if let Body::File(f) = &mut node.body {
                let extra = f.len().saturating_sub(f.durable_len);
                let keep = if extra > 0 { torn(extra).min(extra) } else { 0 };
                r.bytes_torn += keep;
                let (changed, bytes, blocks) = f.revert(keep);
                r.files_reverted += u64::from(changed);
                r.bytes_dropped += bytes;
                r.blocks_restored += blocks;
            }
        }
        (r, changed_names)
    }
}

#[derive(Default)]
struct Counters {
    fsyncs: AtomicU64,
    fsync_failures: AtomicU64,
    write_failures: AtomicU64,
    dir_fsyncs: AtomicU64,
    bytes_written: AtomicU64,
    cuts: AtomicU64,
}

/// The FUSE side: every request locks the state once.
struct Fs {
    state: Arc<Mutex<State>>,
    counters: Arc<Counters>,
    tripped: Arc<Condvar>,
}

impl Fs {
    /// Forgets an open file or directory handle; what only it kept alive
    /// (an unlinked file) goes.
    fn close_handle(&self, fh: FileHandle) {
        let mut st = self.state.lock();
        if st.handles.remove(&fh.0).is_some() {
            st.gc();
        }
    }

    /// Applies the trip wire after `op` on `name` has been done.
    fn trip(&self, st: &mut State, op: Op, name: &OsStr) {
        if st.trip(op, name) {
            self.tripped.notify_all();
        }
    }
}

fn mode_perm(mode: u32) -> u16 {
    (mode & 0o7777) as u16
}

impl Filesystem for Fs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let st = self.state.lock();
        match st.lookup(parent.0, name).and_then(|i| st.attr(i)) {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state.lock().attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut st = self.state.lock();
        let res = (|| {
            let now = SystemTime::now();
            if let Some(len) = size {
                st.file_mut(ino.0)?.truncate(len);
            }
            let n = st.node_mut(ino.0)?;
            let at = |t: TimeOrNow| match t {
                TimeOrNow::SpecificTime(t) => t,
                TimeOrNow::Now => now,
            };
            if let Some(m) = mode {
                n.perm = mode_perm(m);
            }
            if let Some(u) = uid {
                n.uid = u;
            }
            if let Some(g) = gid {
                n.gid = g;
            }
            if let Some(t) = atime {
                n.atime = at(t);
            }
            if let Some(t) = mtime {
                n.mtime = at(t);
            } else if size.is_some() {
                n.mtime = now;
            }
            n.ctime = ctime.unwrap_or(now);
            st.attr(ino.0)
        })();
        match res {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        let fmt = mode & libc::S_IFMT;
        if fmt != libc::S_IFREG && fmt != 0 {
            // Only regular files: mknod(2) says EPERM for an unsupported type.
            reply.error(Errno::EPERM);
            return;
        }
        let mut st = self.state.lock();
        let res = st
            .add(
                parent.0,
                name,
                Body::File(FileBody::default()),
                mode_perm(mode),
                req,
            )
            .and_then(|i| st.attr(i));
        if res.is_ok() {
            self.trip(&mut st, Op::Create, name);
        }
        match res {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let mut st = self.state.lock();
        let res = st
            .add(
                parent.0,
                name,
                Body::Dir(DirBody::default()),
                mode_perm(mode),
                req,
            )
            .and_then(|i| st.attr(i));
        match res {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let mut st = self.state.lock();
        let res = st.remove(parent.0, name, false);
        if res.is_ok() {
            self.trip(&mut st, Op::Unlink, name);
        }
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        match self.state.lock().remove(parent.0, name, true) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state.lock();
        let res = st.rename(parent.0, name, newparent.0, newname, flags);
        if res.is_ok() {
            self.trip(&mut st, Op::Rename, name);
        }
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.state.lock();
        match st.node(ino.0).map(Node::kind) {
            Ok(FileType::RegularFile) => {
                let fh = st.open_handle(ino.0);
                reply.opened(fh, FopenFlags::FOPEN_DIRECT_IO);
            }
            Ok(_) => reply.error(Errno::EISDIR),
            Err(e) => reply.error(e),
        }
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let mut st = self.state.lock();
        let res = st
            .add(
                parent.0,
                name,
                Body::File(FileBody::default()),
                mode_perm(mode),
                req,
            )
            .and_then(|i| Ok((st.attr(i)?, st.open_handle(i))));
        if res.is_ok() {
            self.trip(&mut st, Op::Create, name);
        }
        match res {
            Ok((attr, fh)) => {
                reply.created(&TTL, &attr, Generation(0), fh, FopenFlags::FOPEN_DIRECT_IO)
            }
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let st = self.state.lock();
        match st.node(ino.0).map(|n| &n.body) {
            Ok(Body::File(f)) => {
                let start = offset.min(f.len()) as usize;
                let end = offset.saturating_add(u64::from(size)).min(f.len()) as usize;
                reply.data(&f.data[start..end]);
            }
            Ok(Body::Dir(_)) => reply.error(Errno::EISDIR),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut st = self.state.lock();
        let name = st.name_of(ino.0);
        if st
            .fail_write
            .as_ref()
            .is_some_and(|suffix| name.to_string_lossy().ends_with(suffix.as_str()))
        {
            // A full disk: nothing is written.
            st.fail_write = None;
            self.counters.write_failures.fetch_add(1, Ordering::Relaxed);
            reply.error(Errno::ENOSPC);
            return;
        }
        match st.file_mut(ino.0) {
            Ok(f) => {
                f.write(offset, data);
                if let Ok(n) = st.node_mut(ino.0) {
                    let now = SystemTime::now();
                    n.mtime = now;
                    n.ctime = now;
                }
                self.counters
                    .bytes_written
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                let name = st.name_of(ino.0);
                self.trip(&mut st, Op::Write, &name);
                reply.written(data.len() as u32);
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.close_handle(fh);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state.lock();
        let name = st.name_of(ino.0);
        let fail = st
            .fail_fsync
            .as_ref()
            .is_some_and(|suffix| name.to_string_lossy().ends_with(suffix.as_str()));
        let res = match st.node_mut(ino.0).map(|n| &mut n.body) {
            Ok(Body::File(f)) if fail => {
                // A failed writeback: the kernel drops the dirty pages, so
                // what was not yet durable is gone, and a later fsync
                // would succeed without it.
                f.revert(0);
                Err(Errno::EIO)
            }
            Ok(Body::File(f)) => {
                f.sync();
                self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                self.trip(&mut st, Op::Fsync, &name);
                Ok(())
            }
            // The kernel sends fsyncdir for directories; just in case.
            Ok(Body::Dir(d)) => {
                d.durable = d.entries.clone();
                self.counters.dir_fsyncs.fetch_add(1, Ordering::Relaxed);
                st.gc();
                Ok(())
            }
            Err(e) => Err(e),
        };
        if fail && res.is_err() {
            st.fail_fsync = None;
            self.counters.fsync_failures.fetch_add(1, Ordering::Relaxed);
        }
        match res {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let mut st = self.state.lock();
        match st.dir(ino.0) {
            Ok(_) => {
                let fh = st.open_handle(ino.0);
                reply.opened(fh, FopenFlags::empty());
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let st = self.state.lock();
        let d = match st.dir(ino.0) {
            Ok(d) => d,
            Err(e) => return reply.error(e),
        };
        let dots = [
            (ino.0, FileType::Directory, OsStr::new(".")),
            (ino.0, FileType::Directory, OsStr::new("..")),
        ];
        let entries = d.entries.iter().map(|(name, &i)| {
            let kind = st.nodes.get(&i).map_or(FileType::RegularFile, Node::kind);
            (i, kind, name.as_os_str())
        });
        for (n, (i, kind, name)) in dots
            .into_iter()
            .chain(entries)
            .enumerate()
            .skip(offset as usize)
        {
            if reply.add(INodeNo(i), n as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.close_handle(fh);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut st = self.state.lock();
        match st.dir_mut(ino.0) {
            Ok(d) => {
                d.durable = d.entries.clone();
                self.counters.dir_fsyncs.fetch_add(1, Ordering::Relaxed);
                st.gc();
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Plenty of room: 64 GiB in 4 KiB blocks, a million inodes.
        let st = self.state.lock();
        let used: u64 = st
            .nodes
            .values()
            .map(|n| match &n.body {
                Body::File(f) => f.len().div_ceil(BLOCK),
                Body::Dir(_) => 1,
            })
            .sum();
        let blocks = 1 << 24;
        let files = 1 << 20;
        let free = blocks - used.min(blocks);
        let ffree = files - (st.nodes.len() as u64).min(files);
        reply.statfs(
            blocks,
            free,
            free,
            files,
            ffree,
            BLOCK as u32,
            NAME_MAX as u32,
            BLOCK as u32,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: AccessFlags, reply: ReplyEmpty) {
        match self.state.lock().node(ino.0) {
            Ok(_) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    /// Mode 0 only (allocate, extending the file with zeros), volatile
    /// like a write; punching holes and the other modes are refused.
    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            reply.error(Errno::EOPNOTSUPP);
            return;
        }
        let mut st = self.state.lock();
        match st.file_mut(ino.0) {
            Ok(f) => {
                let end = offset + length;
                if f.len() < end {
                    f.truncate(end);
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }
}

/// A mounted lossy filesystem; unmounted on drop.
///
/// It exists so that a test can check what a program really makes durable:
/// everything it wrote but did not fsync (or whose name it did not sync in
/// its directory) is gone after [`cut`](LossyFs::cut). See the module
/// documentation for the exact rules.
pub struct LossyFs {
    state: Arc<Mutex<State>>,
    counters: Arc<Counters>,
    tripped: Arc<Condvar>,
    session: Option<BackgroundSession>,
    mountpoint: PathBuf,
}

impl LossyFs {
    /// Mounts an empty lossy filesystem at `mountpoint` (an existing, empty
    /// directory), served by a thread of this process until drop.
    ///
    /// Needs `/dev/fuse` and either root with `CAP_SYS_ADMIN` (the mount is
    /// a direct mount(2)) or, for another user, `fusermount3` from Debian's
    /// `fuse3` package.
    pub fn mount(mountpoint: &Path) -> io::Result<LossyFs> {
        if !Path::new("/dev/fuse").exists() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "lossyfs needs /dev/fuse, which is missing: load the kernel module \
                 (`modprobe fuse`), or in a container pass the device and the capability \
                 (`--device /dev/fuse --cap-add SYS_ADMIN`)",
            ));
        }
        let state = Arc::new(Mutex::new(State::new()));
        let counters = Arc::new(Counters::default());
        let tripped = Arc::new(Condvar::new());
        let fs = Fs {
            state: state.clone(),
            counters: counters.clone(),
            tripped: tripped.clone(),
        };
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName("lossyfs".into()),
            MountOption::Subtype("lossyfs".into()),
            MountOption::RW,
            MountOption::NoAtime,
        ];
        let session = fuser::spawn_mount(fs, mountpoint, &config).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot mount lossyfs at {}: {e}. Mounting FUSE needs /dev/fuse and either \
                     root with CAP_SYS_ADMIN (a container needs `--device /dev/fuse --cap-add \
                     SYS_ADMIN`) or, for another user, `fusermount3` (Debian package `fuse3`, \
                     `apt-get install fuse3`)",
                    mountpoint.display()
                ),
            )
        })?;
        let fs = LossyFs {
            state,
            counters,
            tripped,
            session: Some(session),
            mountpoint: mountpoint.to_path_buf(),
        };
        // Check that the directory now really is our filesystem.
        let magic = statfs_type(mountpoint)?;
        if magic != FUSE_SUPER_MAGIC {
            return Err(io::Error::other(format!(
                "{} is not a FUSE mount after mounting lossyfs (f_type {magic:#x})",
                mountpoint.display()
            )));
        }
        Ok(fs)
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Loses power: every directory goes back to its entries at its last
    /// fsync, every file to its content at its last fsync, and what is no
    /// longer reachable is dropped.
    ///
    /// The caller makes sure nothing writes to the filesystem meanwhile
    /// (kill the writer with SIGKILL and reap it first).
    pub fn cut(&self) -> CutReport {
        self.cut_with(&mut |_| 0)
    }

    /// [`cut`](Self::cut), but of the bytes a file had written past its
    /// durable length, the first `torn(n)` of those `n` survive — some of
    /// the pages in flight reached the disk, the last one perhaps only in
    /// part, as a real disk may leave them. A log must cut such a torn tail
    /// off, not trust it or refuse to start. Entries and directories are
    /// reverted as by `cut`.
    pub fn cut_torn(&self, torn: &mut dyn FnMut(u64) -> u64) -> CutReport {
        self.cut_with(torn)
    }

    fn cut_with(&self, torn: &mut dyn FnMut(u64) -> u64) -> CutReport {
        let (report, names, inodes) = {
            let mut st = self.state.lock();
            let (report, names) = st.cut(torn);
            let inodes: Vec<u64> = st.nodes.keys().copied().collect();
            (report, names, inodes)
        };
        self.counters.cuts.fetch_add(1, Ordering::Relaxed);
        // The TTLs are zero and files are opened for direct I/O, so the kernel
        // should hold nothing stale; tell it to forget anyway. Errors only
        // mean it did not know the inode or name.
        if let Some(s) = &self.session {
            let notifier = s.notifier();
            for (parent, name) in &names {
                let _ = notifier.inval_entry(INodeNo(*parent), name);
            }
            for ino in inodes {
                let _ = notifier.inval_inode(INodeNo(ino), 0, 0);
            }
        }
        report
    }

    /// Arms a trip wire: the next time any process does `op` on a file or
    /// name called `name` (in any directory), process `pid` is sent SIGKILL
    /// right after the operation took effect and before it is answered — a
    /// crash at an exact point, say in the middle of writing a snapshot.
    /// Replaces a wire armed before. [`wait_tripped`](Self::wait_tripped)
    /// waits for it.
    pub fn kill_on(&self, op: Op, name: &str, pid: u32) {
        self.state.lock().trip = Some(Trip {
            op,
            name: name.into(),
            pid: pid as i32,
            fired: false,
        });
    }

    /// Waits up to `timeout` for the armed trip wire to fire; true if it
    /// did. The wire is disarmed either way.
    pub fn wait_tripped(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut st = self.state.lock();
        while st.trip.as_ref().is_some_and(|t| !t.fired) {
            if self.tripped.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
        st.trip.take().is_some_and(|t| t.fired)
    }

    /// Makes the next fsync (or fdatasync) of a file whose name ends with
    /// `suffix` fail with `EIO`, as a disk write error would: the file loses
    /// what it had not made durable, and the fsync after it succeeds.
    pub fn fail_next_fsync(&self, suffix: &str) {
        self.state.lock().fail_fsync = Some(suffix.to_string());
    }

    /// Makes the next write to a file whose name ends with `suffix` fail
    /// with `ENOSPC`, as on a full disk; nothing of it is written.
    pub fn fail_next_write(&self, suffix: &str) {
        self.state.lock().fail_write = Some(suffix.to_string());
    }

    /// Writes failed on purpose so far ([`fail_next_write`](Self::fail_next_write)).
    pub fn write_failures(&self) -> u64 {
        self.counters.write_failures.load(Ordering::Relaxed)
    }

    /// Fsyncs failed on purpose so far ([`fail_next_fsync`](Self::fail_next_fsync)).
    pub fn fsync_failures(&self) -> u64 {
        self.counters.fsync_failures.load(Ordering::Relaxed)
    }

    /// File fsyncs (and fdatasyncs) so far.
    pub fn fsyncs(&self) -> u64 {
        self.counters.fsyncs.load(Ordering::Relaxed)
    }

    /// Directory fsyncs so far.
    pub fn dir_fsyncs(&self) -> u64 {
        self.counters.dir_fsyncs.load(Ordering::Relaxed)
    }

    /// Bytes written to files so far.
    pub fn bytes_written(&self) -> u64 {
        self.counters.bytes_written.load(Ordering::Relaxed)
    }

    /// Cuts so far.
    pub fn cuts(&self) -> u64 {
        self.counters.cuts.load(Ordering::Relaxed)
    }
}

impl Drop for LossyFs {
    fn drop(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if let Err(e) = session.umount_and_join() {
            // Busy (a process still uses it): detach it lazily, so that it
            // goes away once unused, instead of leaving a dead mount behind.
            eprintln!(
                "lossyfs: unmounting {} failed ({e}); detaching it",
                self.mountpoint.display()
            );
            if let Ok(c) = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(
                self.mountpoint.as_os_str(),
            )) {
                // SAFETY: umount2 with a valid NUL-terminated path.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
    }
}

/// `f_type` of the filesystem holding `path`.
fn statfs_type(path: &Path) -> io::Result<i64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statfs writes into the zeroed struct we pass; the path is valid.
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut buf) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok(buf.f_type as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, File, OpenOptions};
    use std::io::{Read, Seek, SeekFrom, Write};

    /// A lossy filesystem on its own temporary directory. Fields drop in
    /// order: unmount first, then remove the directory.
    struct Mounted {
        fs: LossyFs,
        dir: tempfile::TempDir,
    }

    impl Mounted {
        fn new() -> Mounted {
            let dir = tempfile::Builder::new()
                .prefix("lossyfs-")
                .tempdir()
                .expect("temp dir");
            let fs = LossyFs::mount(dir.path()).expect("mount lossyfs");
            Mounted { fs, dir }
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        fn sync_dir(&self, rel: &str) {
            File::open(self.path(rel))
                .and_then(|d| d.sync_all())
                .expect("fsync a directory");
        }

        fn read(&self, rel: &str) -> Option<Vec<u8>> {
            match fs::read(self.path(rel)) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => panic!("read {rel}: {e}"),
            }
        }

        fn names(&self, rel: &str) -> Vec<String> {
            let mut v: Vec<String> = fs::read_dir(self.path(rel))
                .expect("read_dir")
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        }

        /// Creates `rel` with `data`, fsyncs it and its directory (the root).
        fn durable_file(&self, rel: &str, data: &[u8]) {
            let mut f = File::create(self.path(rel)).unwrap();
            f.write_all(data).unwrap();
            f.sync_all().unwrap();
            drop(f);
            self.sync_dir("");
        }
    }

    /// Bytes that differ from block to block and within a block.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u32).wrapping_mul(31).wrapping_add(u32::from(seed)) as u8)
            .collect()
    }

    #[test]
    fn a_write_without_fsync_is_lost() {
        let m = Mounted::new();
        let mut f = File::create(m.path("a")).unwrap();
        m.sync_dir("");
        f.write_all(b"hello").unwrap();
        drop(f);
        assert_eq!(m.read("a").unwrap(), b"hello");
        let r = m.fs.cut();
        assert_eq!(m.read("a").unwrap(), b"", "unsynced bytes survived: {r}");
        assert_eq!(r.files_reverted, 1);
        assert_eq!(r.bytes_dropped, 5);
        assert_eq!(m.fs.dir_fsyncs(), 1);
    }

    /// Allocating extends the file with zeros, volatile like a write until
    /// an fsync (the log's segments are allocated ahead this way).
    #[test]
    fn allocated_space_is_zeros_and_needs_an_fsync() {
        let m = Mounted::new();
        m.durable_file("seg", b"head");
        let f = OpenOptions::new().write(true).open(m.path("seg")).unwrap();
        let alloc = |len: i64| {
            // SAFETY: fallocate on an open descriptor.
            unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 0, len) }
        };
        assert_eq!(alloc(4096), 0, "{}", io::Error::last_os_error());
        let mut want = b"head".to_vec();
        want.resize(4096, 0);
        assert_eq!(m.read("seg").unwrap(), want);
        let r = m.fs.cut();
        assert_eq!(
            m.read("seg").unwrap(),
            b"head",
            "unsynced allocation survived: {r}"
        );
        assert_eq!(alloc(8192), 0, "{}", io::Error::last_os_error());
        f.sync_data().unwrap();
        drop(f);
        m.fs.cut();
        assert_eq!(m.read("seg").unwrap().len(), 8192);
    }

    #[test]
    fn a_synced_file_in_an_unsynced_directory_is_lost() {
        let m = Mounted::new();
        let mut f = File::create(m.path("new")).unwrap();
        f.write_all(b"data").unwrap();
        f.sync_all().unwrap();
        f.sync_data().unwrap();
        drop(f);
        assert_eq!(m.fs.fsyncs(), 2);
        let r = m.fs.cut();
        assert_eq!(
            m.read("new"),
            None,
            "a name not synced in its directory survived"
        );
        assert!(m.names("").is_empty());
        assert_eq!((r.entries_dropped, r.inodes_dropped), (1, 1), "{r}");
    }

    #[test]
    fn a_synced_file_in_a_synced_directory_survives() {
        let m = Mounted::new();
        m.durable_file("kept", b"kept data");
        let r = m.fs.cut();
        assert_eq!(r, CutReport::default());
        assert_eq!(m.read("kept").unwrap(), b"kept data");
        assert_eq!(m.names(""), ["kept"]);
    }

    #[test]
    fn an_append_after_fsync_is_cut_back() {
        let m = Mounted::new();
        let first = pattern(10_000, 1);
        m.durable_file("log", &first);
        let mut f = OpenOptions::new().append(true).open(m.path("log")).unwrap();
        f.write_all(&pattern(7_000, 2)).unwrap();
        assert_eq!(fs::metadata(m.path("log")).unwrap().len(), 17_000);
        drop(f);
        let r = m.fs.cut();
        assert_eq!(m.read("log").unwrap(), first);
        assert_eq!((r.bytes_dropped, r.blocks_restored), (7_000, 0), "{r}");
        // A durable append is kept.
        let mut f = OpenOptions::new().append(true).open(m.path("log")).unwrap();
        f.write_all(b"more").unwrap();
        f.sync_data().unwrap();
        f.write_all(b"lost").unwrap();
        drop(f);
        m.fs.cut();
        let mut want = first.clone();
        want.extend_from_slice(b"more");
        assert_eq!(m.read("log").unwrap(), want);
    }

    #[test]
    fn a_torn_cut_keeps_a_prefix_of_the_unsynced_append() {
        let m = Mounted::new();
        let first = pattern(5_000, 1);
        m.durable_file("log", &first);
        let mut f = OpenOptions::new().append(true).open(m.path("log")).unwrap();
        let second = pattern(3_000, 2);
        f.write_all(&second).unwrap();
        drop(f);
        let mut asked = Vec::new();
        let r = m.fs.cut_torn(&mut |n| {
            asked.push(n);
            1_234
        });
        assert_eq!(asked, vec![3_000]);
        assert_eq!((r.bytes_torn, r.bytes_dropped), (1_234, 1_766), "{r}");
        let mut want = first.clone();
        want.extend_from_slice(&second[..1_234]);
        assert_eq!(m.read("log").unwrap(), want);
    }

    #[test]
    fn an_overwrite_after_fsync_is_reverted() {
        let m = Mounted::new();
        let original = pattern(20_000, 3);
        m.durable_file("f", &original);
        let mut f = OpenOptions::new().write(true).open(m.path("f")).unwrap();
        f.seek(SeekFrom::Start(4_000)).unwrap();
        f.write_all(&[0xAA; 5_000]).unwrap(); // blocks 0, 1 and 2
        f.seek(SeekFrom::Start(19_990)).unwrap();
        f.write_all(&[0xBB; 30]).unwrap(); // block 4 and past the end
        f.seek(SeekFrom::Start(4_000)).unwrap();
        f.write_all(&[0xCC; 10]).unwrap(); // block 0 again: its first image stays
        drop(f);
        assert_ne!(m.read("f").unwrap(), original);
        let r = m.fs.cut();
        assert_eq!(m.read("f").unwrap(), original);
        assert_eq!(r.blocks_restored, 4, "{r}");
        assert_eq!(r.bytes_dropped, 20);
    }

    #[test]
    fn a_truncate_after_fsync_is_restored() {
        let m = Mounted::new();
        let original = pattern(20_000, 4);
        m.durable_file("f", &original);
        let f = OpenOptions::new().write(true).open(m.path("f")).unwrap();
        f.set_len(5_000).unwrap();
        f.set_len(30_000).unwrap(); // the gap reads as zeros
        drop(f);
        let mut f = OpenOptions::new().write(true).open(m.path("f")).unwrap();
        f.seek(SeekFrom::Start(12_000)).unwrap();
        f.write_all(b"in the gap").unwrap();
        drop(f);
        let now = m.read("f").unwrap();
        assert_eq!(now.len(), 30_000);
        assert!(now[5_000..12_000].iter().all(|&b| b == 0));
        m.fs.cut();
        assert_eq!(m.read("f").unwrap(), original);
        // Truncated to nothing through O_TRUNC, too.
        File::create(m.path("f")).unwrap();
        assert_eq!(m.read("f").unwrap(), b"");
        m.fs.cut();
        assert_eq!(m.read("f").unwrap(), original);
    }

    #[test]
    fn a_rename_without_directory_fsync_is_undone() {
        let m = Mounted::new();
        m.durable_file("old", b"content");
        fs::rename(m.path("old"), m.path("new")).unwrap();
        assert_eq!(m.names(""), ["new"]);
        let r = m.fs.cut();
        assert_eq!(m.names(""), ["old"]);
        assert_eq!(m.read("old").unwrap(), b"content");
        assert_eq!((r.entries_dropped, r.entries_restored), (1, 1), "{r}");
    }

    #[test]
    fn a_rename_with_directory_fsync_keeps_the_new_name_and_the_synced_content() {
        let m = Mounted::new();
        m.durable_file("target", b"the old target");
        // Write a temporary file, sync it, rename it over the target.
        let mut f = File::create(m.path("tmp")).unwrap();
        f.write_all(b"v1").unwrap();
        f.sync_all().unwrap();
        fs::rename(m.path("tmp"), m.path("target")).unwrap();
        m.sync_dir("");
        f.write_all(b" and v2").unwrap(); // not synced
        drop(f);
        assert_eq!(m.read("target").unwrap(), b"v1 and v2");
        m.fs.cut();
        assert_eq!(m.names(""), ["target"]);
        assert_eq!(m.read("target").unwrap(), b"v1");
    }

    #[test]
    fn a_rename_over_a_file_without_directory_fsync_brings_both_back() {
        let m = Mounted::new();
        m.durable_file("target", b"old target");
        m.durable_file("tmp", b"new target");
        fs::rename(m.path("tmp"), m.path("target")).unwrap();
        assert_eq!(m.names(""), ["target"]);
        m.fs.cut();
        assert_eq!(m.names(""), ["target", "tmp"]);
        assert_eq!(m.read("target").unwrap(), b"old target");
        assert_eq!(m.read("tmp").unwrap(), b"new target");
    }

    #[test]
    fn an_unlink_without_directory_fsync_comes_back() {
        let m = Mounted::new();
        m.durable_file("f", b"synced");
        let mut f = OpenOptions::new().append(true).open(m.path("f")).unwrap();
        f.write_all(b" and not").unwrap();
        drop(f);
        fs::remove_file(m.path("f")).unwrap();
        assert_eq!(m.read("f"), None);
        let r = m.fs.cut();
        assert_eq!(m.read("f").unwrap(), b"synced", "{r}");
        // Unlinked and synced: gone for good.
        fs::remove_file(m.path("f")).unwrap();
        m.sync_dir("");
        m.fs.cut();
        assert_eq!(m.read("f"), None);
        assert_eq!(
            m.fs.state.lock().nodes.len(),
            1,
            "the unlinked file is kept"
        );
    }

    #[test]
    fn a_directory_not_synced_in_its_parent_is_lost_with_its_files() {
        let m = Mounted::new();
        fs::create_dir(m.path("d")).unwrap();
        fs::create_dir(m.path("d/e")).unwrap();
        let mut f = File::create(m.path("d/e/f")).unwrap();
        f.write_all(b"x").unwrap();
        f.sync_all().unwrap();
        drop(f);
        m.sync_dir("d/e");
        m.sync_dir("d");
        let r = m.fs.cut();
        assert!(m.names("").is_empty(), "{r}");
        assert_eq!(r.inodes_dropped, 3);
        // The same with the root synced too survives.
        fs::create_dir_all(m.path("d/e")).unwrap();
        let mut f = File::create(m.path("d/e/f")).unwrap();
        f.write_all(b"x").unwrap();
        f.sync_all().unwrap();
        drop(f);
        m.sync_dir("d/e");
        m.sync_dir("d");
        m.sync_dir("");
        m.fs.cut();
        assert_eq!(m.read("d/e/f").unwrap(), b"x");
    }

    #[test]
    fn errors_are_the_usual_ones() {
        let m = Mounted::new();
        fs::create_dir(m.path("d")).unwrap();
        File::create(m.path("d/f")).unwrap();
        let code = |r: io::Result<()>| r.unwrap_err().raw_os_error();
        assert_eq!(code(fs::create_dir(m.path("d"))), Some(libc::EEXIST));
        assert_eq!(code(fs::remove_dir(m.path("d"))), Some(libc::ENOTEMPTY));
        assert_eq!(code(fs::remove_dir(m.path("d/f"))), Some(libc::ENOTDIR));
        assert_eq!(code(fs::remove_file(m.path("d"))), Some(libc::EISDIR));
        assert_eq!(code(fs::remove_file(m.path("nope"))), Some(libc::ENOENT));
        File::create(m.path("g")).unwrap();
        assert_eq!(
            code(fs::rename(m.path("g"), m.path("d"))),
            Some(libc::EISDIR)
        );
        assert_eq!(
            code(fs::rename(m.path("d"), m.path("g"))),
            Some(libc::ENOTDIR)
        );
        fs::create_dir(m.path("e")).unwrap();
        assert_eq!(
            code(fs::rename(m.path("e"), m.path("d"))),
            Some(libc::ENOTEMPTY)
        );
        fs::rename(m.path("d"), m.path("e")).unwrap(); // over an empty directory
        assert_eq!(m.names(""), ["e", "g"]);
        assert_eq!(m.names("e"), ["f"]);
        let long = "x".repeat(256);
        assert_eq!(
            code(File::create(m.path(&long)).map(drop)),
            Some(libc::ENAMETOOLONG)
        );
        let f = OpenOptions::new().write(true).open(m.path("g")).unwrap();
        // Punching a hole (any mode but plain allocation) is refused.
        let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
        // SAFETY: fallocate on an open descriptor.
        let rc = unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&f), mode, 0, 4096) };
        assert_eq!(rc, -1);
        assert_eq!(
            io::Error::last_os_error().raw_os_error(),
            Some(libc::EOPNOTSUPP)
        );
        let mut buf = String::new();
        File::open(m.path("e/f"))
            .unwrap()
            .read_to_string(&mut buf)
            .unwrap();
        assert!(buf.is_empty());
    }

    #[test]
    fn a_trip_wire_kills_the_writer_right_after_the_operation() {
        use std::os::unix::process::ExitStatusExt;
        let m = Mounted::new();
        // sh waits for a line on stdin, so the wire is armed before it writes.
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("read go && echo a > f1 && echo b > f2 && echo c > f3")
            .current_dir(m.dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("run sh");
        m.fs.kill_on(Op::Write, "f2", child.id());
        child.stdin.take().unwrap().write_all(b"go\n").unwrap();
        assert!(m.fs.wait_tripped(Duration::from_secs(10)), "never tripped");
        let status = child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
        assert_eq!(m.read("f1").unwrap(), b"a\n");
        assert_eq!(m.read("f2").unwrap(), b"b\n", "the write took effect");
        assert_eq!(m.read("f3"), None, "sh went on after the write");
        // A wire that nothing trips times out.
        m.fs.kill_on(Op::Rename, "nothing", child.id());
        assert!(!m.fs.wait_tripped(Duration::from_millis(50)));
    }

    #[test]
    fn many_small_fsyncs_of_a_growing_file_are_cheap_and_exact() {
        let m = Mounted::new();
        m.durable_file("log", b"");
        let mut f = OpenOptions::new().append(true).open(m.path("log")).unwrap();
        let mut synced = Vec::new();
        let mut written = Vec::new();
        for i in 0..2_000u32 {
            let rec = pattern(100 + (i as usize % 300), i as u8);
            f.write_all(&rec).unwrap();
            written.extend_from_slice(&rec);
            if i % 3 == 0 {
                f.sync_data().unwrap();
                synced = written.clone();
            }
        }
        drop(f);
        assert_eq!(m.read("log").unwrap(), written);
        let r = m.fs.cut();
        assert_eq!(m.read("log").unwrap(), synced);
        assert_eq!(r.blocks_restored, 0, "appends need no pre-images: {r}");
        assert!(m.fs.fsyncs() >= 667);
    }
}
