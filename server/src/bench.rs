//! Hooks for the benchmarks in `server/benches/` (not a public API): they
//! measure the tree's memory and snapshot costs without a running server.

use crate::raft::state_machine::{decode_state, encode_state, SmState};
use crate::tree::DataTree;
use crate::txn::{Acl, CreateMode, Op, Txn};

/// A tree laid out as `zk_bench --populate N` makes it: `/zk-populate/pI/nJ`,
/// 1000 nodes per parent, each `value_size` bytes, open ACL.
pub struct Populated(SmState);

impl Populated {
    pub fn new(n: u64, value_size: usize) -> Populated {
        let mut st = SmState::default();
        let mut zxid = 0;
        let mut apply = |tree: &mut DataTree, path: String, data: Vec<u8>| {
            zxid += 1;
            let txn = Txn {
                session_id: 0,
                time_ms: 1_700_000_000_000 + zxid,
                op: Op::Create {
                    path,
                    data,
                    acl: Acl::open(),
                    mode: CreateMode::Persistent,
                    ttl_ms: 0,
                },
            };
            let r = tree.apply(zxid, &txn, &mut Default::default());
            assert!(r.result.is_ok(), "{:?}", r.result);
        };
        apply(&mut st.tree, "/zk-populate".into(), Vec::new());
        for p in 0..n.div_ceil(1000) {
            apply(&mut st.tree, format!("/zk-populate/p{p}"), Vec::new());
        }
        for i in 0..n {
            let path = format!("/zk-populate/p{}/n{}", i / 1000, i % 1000);
            apply(&mut st.tree, path, vec![b'v'; value_size]);
        }
        Populated(st)
    }

    pub fn node_count(&self) -> usize {
        self.0.tree.node_count()
    }

    pub fn state_hash(&self) -> u64 {
        self.0.tree.state_hash()
    }

    /// The snapshot bytes of this state.
    pub fn encode(&self) -> Vec<u8> {
        encode_state(&self.0).expect("encodes")
    }

    /// A state read back from snapshot bytes, indexes rebuilt (as at start).
    pub fn decode(bytes: &[u8]) -> Populated {
        let mut st = decode_state(bytes).expect("decodes");
        st.tree.rebuild_indexes();
        Populated(st)
    }
}
