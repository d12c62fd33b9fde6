//! The tree's snapshot layout 4: nodes in blocks that decode in parallel,
//! each node naming its ACL by number in a table written after them.
//!
//! ```text
//! node count u64
//! blocks, until they hold that many nodes: byte length u64 | bincode Vec<StoredNode>
//! tail: bincode (ACL table Vec<Vec<Acl>>, sessions, last zxid)
//! ```
//!
//! The table comes last because a snapshot is written while it is read
//! from the live tree (`nodes`): an ACL is numbered when a node first
//! uses it. A reader finds the tail by stepping over the blocks' lengths.
//! Against layout 3 this drops the ACL each node repeated and the
//! allocations decoding it took, and a restart decodes blocks on every
//! core.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::node::AclCache;
use super::{DataTree, Node, NodeKind, NodeMap, NodeStat, SessionInfo};
use crate::txn::Acl;

/// A node as a block holds it.
#[derive(Serialize, Deserialize)]
struct StoredNode<'a> {
    path: &'a str,
    data: &'a [u8],
    null: bool,
    /// Its ACL's number in the table.
    acl: u32,
    stat: NodeStat,
    kind: NodeKind,
    seq: i32,
}

/// The ACLs nodes written so far use, numbered in the order met: by the
/// address of the shared copy (the tree interns them), which the `Arc`s
/// kept in `acls` stop from being reused meanwhile.
#[derive(Default)]
pub struct AclTable {
    numbers: HashMap<usize, u32>,
    acls: Vec<Arc<[Acl]>>,
}

impl AclTable {
    fn number(&mut self, acl: &Arc<[Acl]>) -> u32 {
        let next = self.acls.len() as u32;
        *self
            .numbers
            .entry(Arc::as_ptr(acl) as *const Acl as usize)
            .or_insert_with(|| {
                self.acls.push(acl.clone());
                next
            })
    }
}

/// Writes blocks of nodes: [`head`] first, then per block
/// [`Blocks::start`], [`Blocks::push`] per node and [`Blocks::finish`],
/// then [`Blocks::tail`].
#[derive(Default)]
pub struct Blocks {
    table: AclTable,
}

/// The layout's head: how many nodes the blocks will hold.
pub fn head(node_count: usize, out: &mut Vec<u8>) {
    out.extend_from_slice(&(node_count as u64).to_le_bytes());
}

impl Blocks {
    /// Begins a block at the end of `out`; returns where it starts.
    pub fn start(out: &mut Vec<u8>) -> usize {
        let at = out.len();
        out.extend_from_slice(&[0; 16]);
        at
    }

    pub fn push(&mut self, path: &str, n: &Node, out: &mut Vec<u8>) -> Result<(), bincode::Error> {
        let stored = StoredNode {
            path,
            data: &n.data,
            null: n.null,
            acl: self.table.number(&n.acl),
            stat: n.stat,
            kind: n.kind,
            seq: n.seq,
        };
        bincode::serialize_into(out, &stored)
    }

    /// Ends the block begun at `at` holding `count` nodes; an empty block
    /// is taken back.
    pub fn finish(at: usize, count: usize, out: &mut Vec<u8>) {
        if count == 0 {
            out.truncate(at);
            return;
        }
        let len = (out.len() - at - 8) as u64;
        out[at..at + 8].copy_from_slice(&len.to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&(count as u64).to_le_bytes());
    }

    /// The tail: the ACL table, then the sessions and last zxid.
    pub fn tail(
        self,
        sessions: &BTreeMap<u64, SessionInfo>,
        last_zxid: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), bincode::Error> {
        let acls: Vec<&[Acl]> = self.table.acls.iter().map(|a| &a[..]).collect();
        bincode::serialize_into(&mut *out, &acls)?;
        bincode::serialize_into(&mut *out, sessions)?;
        bincode::serialize_into(out, &last_zxid)
    }
}

/// Nodes per block when a whole tree is written at once.
const BLOCK: usize = 2048;

/// A whole tree in this layout (what a frozen read writes, at once).
pub fn encode(t: &DataTree, out: &mut Vec<u8>) -> Result<(), bincode::Error> {
    head(t.nodes.len(), out);
    let mut blocks = Blocks::default();
    let mut nodes = t.nodes.iter().peekable();
    while nodes.peek().is_some() {
        let at = Blocks::start(out);
        let mut count = 0;
        for (path, n) in nodes.by_ref().take(BLOCK) {
            blocks.push(path, n, out)?;
            count += 1;
        }
        Blocks::finish(at, count, out);
    }
    blocks.tail(&t.sessions, t.last_zxid, out)
}

/// Reads a tree in this layout; returns it (indexes built) and the bytes
/// after it.
pub fn decode(bytes: &[u8]) -> Result<(DataTree, &[u8]), String> {
    let short = || "the snapshot ends inside its tree".to_string();
    let u64_at = |at: usize| -> Result<u64, String> {
        let b = bytes.get(at..at + 8).ok_or_else(short)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    let count = u64_at(0)? as usize;
    // Step over the blocks to find them and the tail.
    let (mut at, mut seen, mut blocks) = (8usize, 0usize, Vec::new());
    while seen < count {
        let len = usize::try_from(u64_at(at)?).map_err(|_| short())?;
        let end = (at + 8).checked_add(len).filter(|e| *e <= bytes.len());
        let end = end.ok_or_else(short)?;
        let n = u64_at(at + 8)? as usize;
        if n == 0 {
            return Err("an empty block of nodes".into());
        }
        blocks.push((&bytes[at + 8..end], n));
        seen += n;
        at = end;
    }
    if seen != count {
        return Err(format!("blocks hold {seen} nodes, the head says {count}"));
    }
    // Reading from a slice moves it past what was read.
    let mut rest = &bytes[at..];
    let table: Vec<Vec<Acl>> = bincode::deserialize_from(&mut rest).map_err(|e| e.to_string())?;
    let sessions: BTreeMap<u64, SessionInfo> =
        bincode::deserialize_from(&mut rest).map_err(|e| e.to_string())?;
    let last_zxid: i64 = bincode::deserialize_from(&mut rest).map_err(|e| e.to_string())?;
    let mut cache = AclCache::default();
    let table: Vec<Arc<[Acl]>> = table.iter().map(|a| cache.intern(a)).collect();
    let nodes = decode_blocks(&blocks, &table, count)?;
    let mut t = DataTree {
        nodes,
        sessions,
        last_zxid,
        ephemerals: BTreeMap::new(),
        reapable: Default::default(),
        quotas: Default::default(),
        acls: cache,
    };
    t.rebuild_indexes();
    Ok((t, rest))
}

/// Decodes the blocks, split among the machine's cores, into the path map.
fn decode_blocks(
    blocks: &[(&[u8], usize)],
    table: &[Arc<[Acl]>],
    count: usize,
) -> Result<NodeMap, String> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    // Contiguous runs of blocks of about equal node counts, in order.
    let per = count.div_ceil(threads).max(1);
    let mut runs: Vec<&[(&[u8], usize)]> = Vec::new();
    let (mut from, mut held) = (0, 0);
    for (i, (_, n)) in blocks.iter().enumerate() {
        held += n;
        if held >= per || i + 1 == blocks.len() {
            runs.push(&blocks[from..=i]);
            (from, held) = (i + 1, 0);
        }
    }
    let decoded: Vec<Result<Entries, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = runs
            .iter()
            .map(|run| s.spawn(move || decode_run(run, table)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a decoder panicked".into()))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(count);
    for part in decoded {
        all.append(&mut part?);
    }
    if all.windows(2).any(|w| w[0].0 >= w[1].0) {
        return Err("the snapshot's nodes are out of order".into());
    }
    Ok(all.into_iter().collect())
}

/// Nodes decoded from a run of blocks, in path order.
type Entries = Vec<(CompactString, Box<Node>)>;

fn decode_run(run: &[(&[u8], usize)], table: &[Arc<[Acl]>]) -> Result<Entries, String> {
    let mut out = Vec::with_capacity(run.iter().map(|(_, n)| n).sum());
    for (bytes, n) in run {
        // The block is a Vec: its length, which `n` already gave, then
        // the nodes.
        let stored: Vec<StoredNode> = bincode::deserialize(bytes).map_err(|e| e.to_string())?;
        if stored.len() != *n {
            return Err(format!("a block holds {} nodes, not {n}", stored.len()));
        }
        for s in stored {
            let acl = table
                .get(s.acl as usize)
                .ok_or_else(|| format!("{}: ACL number {} is not in the table", s.path, s.acl))?
                .clone();
            let node = Node {
                data: s.data.into(),
                acl,
                stat: s.stat,
                kind: s.kind,
                seq: s.seq,
                null: s.null,
            };
            out.push((CompactString::from(s.path), Box::new(node)));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Effects;
    use crate::txn::{CreateMode, Op, Txn};

    fn tree(n: usize) -> DataTree {
        let mut t = DataTree::new();
        let mut zxid = 0;
        let mut apply = |t: &mut DataTree, op: Op| {
            zxid += 1;
            let txn = Txn {
                session_id: 9,
                time_ms: zxid,
                op,
            };
            assert!(t.apply(zxid, &txn, &mut Effects::default()).result.is_ok());
        };
        apply(
            &mut t,
            Op::CreateSession {
                session_id: 9,
                password: vec![1; 16],
                timeout_ms: 4000,
            },
        );
        for i in 0..n {
            let acl = match i % 3 {
                0 => Acl::open(),
                _ => vec![Acl {
                    perms: Acl::READ | (i % 5) as i32,
                    scheme: "world".into(),
                    id: "anyone".into(),
                }],
            };
            let mode = match i % 7 {
                0 => CreateMode::Ephemeral,
                1 => CreateMode::Container,
                _ => CreateMode::Persistent,
            };
            apply(
                &mut t,
                Op::Create {
                    path: format!("/n{i:05}"),
                    data: vec![i as u8; i % 50],
                    acl,
                    mode,
                    ttl_ms: 0,
                },
            );
        }
        if n > 2 {
            apply(
                &mut t,
                Op::NullData(Box::new(Op::SetData {
                    path: "/n00002".into(),
                    data: Vec::new(),
                    version: None,
                })),
            );
        }
        t
    }

    #[test]
    fn a_tree_reads_back_with_the_same_hash_indexes_and_shared_acls() {
        for n in [0, 1, BLOCK - 1, BLOCK, 3 * BLOCK + 5] {
            let t = tree(n);
            let mut bytes = b"before".to_vec();
            encode(&t, &mut bytes).unwrap();
            bytes.extend_from_slice(b"after");
            let (back, rest) = decode(&bytes[6..]).unwrap();
            assert_eq!(rest, b"after");
            assert_eq!(back.state_hash(), t.state_hash(), "{n} nodes");
            assert_eq!(back.ephemeral_count(), t.ephemeral_count());
            assert_eq!(back.reap_candidates(i64::MAX), t.reap_candidates(i64::MAX));
            if n > 10 {
                let (a, b) = (back.node("/n00003").unwrap(), back.node("/n00006").unwrap());
                assert!(Arc::ptr_eq(&a.acl, &b.acl), "equal ACLs are one");
            }
        }
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let mut bytes = Vec::new();
        encode(&tree(3 * BLOCK), &mut bytes).unwrap();
        for cut in [0, 7, 8, 20, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = bytes.clone();
        bad[8] ^= 0x40; // the first block's length
        assert!(decode(&bad).is_err());
        let mut bad = bytes.clone();
        bad[16..24].fill(0); // the first block's count
        assert!(decode(&bad).is_err());
    }
}
