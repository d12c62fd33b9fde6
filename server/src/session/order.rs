//! Per-session order: the queue of a session's requests, answered strictly
//! in the order they arrived (invariant 2).
//!
//! Writes are submitted to the log as they arrive, so a session's writes
//! pipeline and share fsyncs — unless one of the session's reads is still
//! queued ahead of the write: then the write is *deferred*, and submitted
//! only when that read reaches the head and is served. A read therefore
//! sees exactly the session's earlier writes and none of its later ones,
//! as in ZooKeeper. A write behind a deferred write is deferred too (writes
//! enter the log in order), and deferred writes are released together, up
//! to the next read, so they still share a flush.
//!
//! [`Queue`] holds no I/O: it is generic over the handle a submission
//! returns and takes the submit function as an argument, so its rules are
//! tested below against a fake proposer.

use std::collections::VecDeque;
use std::time::Instant;

use super::message::{Answer, Read};
use crate::error::ZkError;
use crate::txn::Op;

/// How a write's outcome becomes its reply: whether each create (the op,
/// or each op of a multi) answers with its Stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape(pub Vec<bool>);

/// A validated write, with what its answer needs.
#[derive(Debug)]
pub struct Write {
    pub xid: i64,
    pub name: &'static str,
    pub op: Op,
    pub shape: Shape,
    pub started: Instant,
}

/// A queued request. `H` is what a submission returns (the proposer's
/// receiver in the server, a number in the tests).
#[derive(Debug)]
pub enum Item<H> {
    /// In the log; answered when its result comes.
    Submitted {
        xid: i64,
        name: &'static str,
        handle: H,
        shape: Shape,
        started: Instant,
    },
    /// Waiting for a read ahead of it.
    Deferred(Write),
    Read {
        xid: i64,
        read: Read,
        started: Instant,
    },
    Sync {
        xid: i64,
        path: String,
        started: Instant,
    },
    /// Answered already (refused, or made without the tree).
    Ready(Answer, &'static str),
    Pong,
}

/// A session's unanswered requests, in order.
#[derive(Debug)]
pub struct Queue<H> {
    items: VecDeque<Item<H>>,
    /// Reads queued and not served yet.
    reads: usize,
    /// Writes deferred and not submitted yet.
    deferred: usize,
}

impl<H> Default for Queue<H> {
    fn default() -> Self {
        Queue {
            items: VecDeque::new(),
            reads: 0,
            deferred: 0,
        }
    }
}

impl<H> Queue<H> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues a write, submitting it at once unless a read or a deferred
    /// write is ahead of it.
    pub fn push_write(&mut self, w: Write, submit: impl FnOnce(Op) -> Result<H, ZkError>) {
        if self.reads > 0 || self.deferred > 0 {
            self.deferred += 1;
            self.items.push_back(Item::Deferred(w));
        } else {
            self.items.push_back(submitted(w, submit));
        }
    }

    /// Queues a read, a sync, a pong or a ready answer (writes go through
    /// [`Queue::push_write`]).
    pub fn push(&mut self, item: Item<H>) {
        match &item {
            Item::Read { .. } => self.reads += 1,
            Item::Deferred(_) => self.deferred += 1,
            _ => {}
        }
        self.items.push_back(item);
    }

    /// Takes the head. A deferred write at the head is submitted first,
    /// with the deferred writes right behind it up to the next read.
    pub fn pop(&mut self, mut submit: impl FnMut(Op) -> Result<H, ZkError>) -> Option<Item<H>> {
        if matches!(self.items.front(), Some(Item::Deferred(_))) {
            for slot in self.items.iter_mut() {
                match slot {
                    Item::Read { .. } => break,
                    Item::Deferred(_) => {
                        let Item::Deferred(w) = std::mem::replace(slot, Item::Pong) else {
                            unreachable!("matched as deferred")
                        };
                        self.deferred -= 1;
                        *slot = submitted(w, &mut submit);
                    }
                    _ => {}
                }
            }
        }
        let item = self.items.pop_front()?;
        if matches!(item, Item::Read { .. }) {
            self.reads -= 1;
        }
        Some(item)
    }
}

fn submitted<H>(w: Write, submit: impl FnOnce(Op) -> Result<H, ZkError>) -> Item<H> {
    let Write {
        xid,
        name,
        op,
        shape,
        started,
    } = w;
    match submit(op) {
        Ok(handle) => Item::Submitted {
            xid,
            name,
            handle,
            shape,
            started,
        },
        Err(e) => Item::Ready(Answer::error(xid, 0, e), name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Code;

    /// The fake proposer: the log, in submission order.
    #[derive(Default)]
    struct Log(Vec<i64>);

    impl Log {
        /// Submits a write whose xid is in its path (`/xid`).
        fn submit(&mut self, op: Op) -> Result<i64, ZkError> {
            let Op::SetData { path, .. } = op else {
                panic!("tests submit setData")
            };
            let xid: i64 = path[1..].parse().unwrap();
            self.0.push(xid);
            Ok(xid)
        }
    }

    fn write(xid: i64) -> Write {
        Write {
            xid,
            name: "set_data",
            op: Op::SetData {
                path: format!("/{xid}"),
                data: vec![],
                version: None,
            },
            shape: Shape(vec![]),
            started: Instant::now(),
        }
    }

    fn read(xid: i64) -> Item<i64> {
        Item::Read {
            xid,
            read: Read::Exists {
                path: "/".into(),
                watch: false,
            },
            started: Instant::now(),
        }
    }

    /// What the head is: ("w", xid) submitted, ("r", xid) a read, ...
    fn kind(i: &Item<i64>) -> (&'static str, i64) {
        match i {
            Item::Submitted { xid, .. } => ("w", *xid),
            Item::Deferred(w) => ("d", w.xid),
            Item::Read { xid, .. } => ("r", *xid),
            Item::Sync { xid, .. } => ("s", *xid),
            Item::Ready(a, _) => ("x", a.xid),
            Item::Pong => ("p", 0),
        }
    }

    #[test]
    fn writes_with_no_read_ahead_are_submitted_at_once() {
        let mut log = Log::default();
        let mut q = Queue::default();
        q.push_write(write(1), |op| log.submit(op));
        q.push_write(write(2), |op| log.submit(op));
        assert_eq!(
            log.0,
            vec![1, 2],
            "both in the log before either is answered"
        );
        assert_eq!(q.pop(|op| log.submit(op)).map(|i| kind(&i)), Some(("w", 1)));
        assert_eq!(q.pop(|op| log.submit(op)).map(|i| kind(&i)), Some(("w", 2)));
        assert!(q.pop(|op| log.submit(op)).is_none());
    }

    #[test]
    fn a_write_behind_a_read_waits_until_the_read_is_served() {
        let mut log = Log::default();
        let mut q = Queue::default();
        q.push_write(write(1), |op| log.submit(op));
        q.push(read(2));
        q.push_write(write(3), |op| log.submit(op));
        q.push_write(write(4), |op| log.submit(op));
        q.push(read(5));
        q.push_write(write(6), |op| log.submit(op));
        assert_eq!(
            log.0,
            vec![1],
            "3, 4 and 6 wait for the reads ahead of them"
        );
        assert_eq!(kind(&q.pop(|op| log.submit(op)).unwrap()), ("w", 1));
        assert_eq!(kind(&q.pop(|op| log.submit(op)).unwrap()), ("r", 2));
        assert_eq!(log.0, vec![1], "the read is taken before 3 is submitted");
        // The head is deferred write 3: it and 4 go in together, not 6.
        assert_eq!(kind(&q.pop(|op| log.submit(op)).unwrap()), ("w", 3));
        assert_eq!(log.0, vec![1, 3, 4]);
        assert_eq!(kind(&q.pop(|op| log.submit(op)).unwrap()), ("w", 4));
        assert_eq!(kind(&q.pop(|op| log.submit(op)).unwrap()), ("r", 5));
        assert_eq!(kind(&q.pop(|op| log.submit(op)).unwrap()), ("w", 6));
        assert_eq!(log.0, vec![1, 3, 4, 6]);
        assert!(q.is_empty());
    }

    #[test]
    fn once_a_write_is_deferred_later_writes_queue_behind_it() {
        let mut log = Log::default();
        let mut q = Queue::default();
        q.push(read(1));
        q.push_write(write(2), |op| log.submit(op));
        assert_eq!(kind(&q.pop(|op| log.submit(op)).unwrap()), ("r", 1));
        // No read is queued now, but write 2 is still deferred.
        q.push_write(write(3), |op| log.submit(op));
        assert!(log.0.is_empty(), "3 may not overtake 2");
        assert_eq!(kind(&q.pop(|op| log.submit(op)).unwrap()), ("w", 2));
        assert_eq!(log.0, vec![2, 3]);
        q.push_write(write(4), |op| log.submit(op));
        assert_eq!(log.0, vec![2, 3, 4], "nothing deferred: straight in");
    }

    #[test]
    fn a_refused_submission_becomes_its_answer_in_order() {
        let mut q: Queue<i64> = Queue::default();
        q.push(read(1));
        q.push_write(write(2), |_| unreachable!("deferred"));
        q.push(Item::Pong);
        assert_eq!(kind(&q.pop(|_| unreachable!("a read")).unwrap()), ("r", 1));
        let expired = |_| Err(ZkError::new(Code::SessionExpired, "gone"));
        let head = q.pop(expired).unwrap();
        let Item::Ready(answer, _) = head else {
            panic!("refused: {head:?}")
        };
        assert_eq!(answer.xid, 2);
        assert_eq!(answer.result.unwrap_err().error.code, Code::SessionExpired);
        assert_eq!(kind(&q.pop(expired).unwrap()), ("p", 0));
    }
}
