//! A linearizability checker for recorded histories of znode operations.
//!
//! The ensemble tests record what their clients did — which operation, on
//! which key, when it was invoked, when it completed and what it returned —
//! into a [`History`], and [`check`] decides whether some sequential order of
//! those operations, consistent with real time (an operation that completed
//! before another was invoked comes first), explains every result.
//!
//! # Model
//!
//! Each key is an independent znode: absent, or present with data and a
//! version (`Stat.version`: 0 after create, +1 per setData, back to absent
//! after delete). Linearizability is compositional (P-compositional in the
//! literature): a history is linearizable if and only if its restriction to
//! each key is, so each key is checked on its own.
//!
//! Operations ([`Op`]) and the outcomes they may be completed with
//! ([`Outcome`]):
//!
//! | op                      | `Ok(..)`                       | `Failed(..)`                      |
//! |-------------------------|--------------------------------|-----------------------------------|
//! | `Read`                  | `Read(Some((data, version)))`, `Read(None)` | `NoNode` (same as `Read(None)`) |
//! | `Write(data)`           | `Version(new)` or `Done`       | `NoNode`                          |
//! | `Cas { expected_version, value }` | `Version(new)` or `Done` | `BadVersion`, `NoNode`        |
//! | `Create(data)`          | `Done` or `Version(0)`         | `NodeExists`                      |
//! | `Delete { expected_version }` | `Done`                   | `NoNode`, `BadVersion`            |
//!
//! A definite failure did not take effect but still says something about the
//! state (`BadVersion`: the node existed with another version).
//! [`Outcome::Indeterminate`] (a timeout, ConnectionLoss) may or may not have
//! taken effect, at any time after its invocation: it is treated as completing
//! at +infinity, and the checker tries both. An operation never completed is
//! indeterminate too. [`Outcome::NotApplied`] is an error that proves the
//! operation never reached the state (refused before it was sent): the
//! operation is ignored.
//!
//! # Algorithm
//!
//! Wing & Gong's search with Lowe's memoization (the algorithm of Porcupine
//! and Knossos' "linear" checker). A key's invocations and completions are
//! sorted by time into a doubly linked list; the search repeatedly takes a
//! pending invocation from the front of the list (one that no completion
//! precedes), applies it to the model and, if the model agrees with its
//! result and the pair (set of operations linearized so far, model state) was
//! not seen before, removes it from the list and goes on; reaching a
//! completion whose operation is not yet linearized means the current order
//! cannot be extended, so it backtracks. The history is linearizable once
//! every operation with a known result is linearized (indeterminate ones
//! have no completion in the list, so they are either linearized somewhere
//! along the way — took effect — or never — did not).
//!
//! One reduction on top: an operation that does not change the state (a
//! read, a definite failure) and agrees with the current state is taken
//! without trying alternatives to it — every operation that must precede it
//! already has, so any valid order from there can be rewritten to take it
//! first. Concurrent reads therefore never multiply the search.
//!
//! Limits: the search is exponential in the worst case (many concurrent
//! writes whose results do not pin down their order: `Output::Done` rather
//! than a version, or indeterminate ones); it is bounded by
//! [`Options::max_steps`] per key and by [`Options::max_memo_bytes`], and
//! reports [`CheckError::Undecided`] rather than a verdict when either runs
//! out. Memory per remembered configuration is one bit per operation on the
//! key, so very long histories of one key cost memory as the search widens.
//! Indeterminate operations stay candidates until the end of the history,
//! so many of them on one key widen the search.
//!
//! # Reports
//!
//! On a violation the checker reports the first completion no order gets
//! past (the longest partial linearizations explain every result that came
//! before it, none explains it), the states those partial linearizations end
//! in, and the operations around it.
//!
//! ```
//! use warden_tests::linearizability::{check, History, Op, Outcome, Output};
//!
//! let h = History::new();
//! let a = h.invoke(1, "/k", Op::create("x"));
//! h.complete(a, Outcome::Ok(Output::Done));
//! let w = h.invoke(1, "/k", Op::write("y"));
//! h.complete(w, Outcome::Ok(Output::Version(1)));
//! let r = h.invoke(2, "/k", Op::Read);
//! h.complete(r, Outcome::read("y", 1));
//! check(&h).unwrap();
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use parking_lot::Mutex;

/// Who issued an operation (only used in reports).
pub type ClientId = usize;
/// A znode's data version (`Stat.version`).
pub type Version = i32;
/// A znode's data.
pub type Value = Vec<u8>;

/// An operation's index in its [`History`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub usize);

/// An operation on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// getData.
    Read,
    /// setData with no expected version.
    Write(Value),
    /// setData with an expected version.
    Cas {
        expected_version: Version,
        value: Value,
    },
    /// create (the parent is assumed to exist).
    Create(Value),
    /// delete, with or without an expected version.
    Delete { expected_version: Option<Version> },
}

impl Op {
    /// `Write(value)`.
    pub fn write(value: impl Into<Value>) -> Op {
        Op::Write(value.into())
    }

    /// `Cas { expected_version, value }`.
    pub fn cas(expected_version: Version, value: impl Into<Value>) -> Op {
        Op::Cas {
            expected_version,
            value: value.into(),
        }
    }

    /// `Create(value)`.
    pub fn create(value: impl Into<Value>) -> Op {
        Op::Create(value.into())
    }

    /// `Delete` of any version.
    pub fn delete() -> Op {
        Op::Delete {
            expected_version: None,
        }
    }
}

/// What a successful operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// A read's data and version; `None`: the node does not exist.
    Read(Option<(Value, Version)>),
    /// The version a write, CAS or create left the node at.
    Version(Version),
    /// Success with nothing further to check.
    Done,
}

/// A definite failure: the operation did not take effect, for this reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    NoNode,
    NodeExists,
    BadVersion,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It took effect and returned this.
    Ok(Output),
    /// It did not take effect, for a reason the model checks.
    Failed(Failure),
    /// Unknown: it may or may not take effect, at any time after its
    /// invocation (timeout, ConnectionLoss).
    Indeterminate,
    /// It certainly never reached the state (refused before it was sent);
    /// the checker ignores it.
    NotApplied,
}

impl Outcome {
    /// A read that found `value` at `version`.
    pub fn read(value: impl Into<Value>, version: Version) -> Outcome {
        Outcome::Ok(Output::Read(Some((value.into(), version))))
    }

    /// A read that found no node.
    pub fn read_none() -> Outcome {
        Outcome::Ok(Output::Read(None))
    }

    /// A write or CAS that left the node at `version`.
    pub fn version(version: Version) -> Outcome {
        Outcome::Ok(Output::Version(version))
    }

    /// Success with nothing to check (create, delete).
    pub fn done() -> Outcome {
        Outcome::Ok(Output::Done)
    }
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub id: OpId,
    pub client: ClientId,
    pub key: String,
    pub op: Op,
    /// Nanoseconds since the history's origin.
    pub invoked: u64,
    /// Nanoseconds since the history's origin; `None`: never completed.
    pub completed: Option<u64>,
    /// `None`: never completed (treated as indeterminate).
    pub outcome: Option<Outcome>,
}

/// A history of operations, recorded concurrently: the methods take `&self`,
/// so share it between clients with an `Arc`.
///
/// Take the invocation time before sending a request and the completion time
/// after its reply arrives ([`History::invoke`] and [`History::complete`] do,
/// if called at those points): intervals that are too wide only make the
/// check more permissive, never wrong.
pub struct History {
    origin: Instant,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    ops: Vec<Record>,
    initial: BTreeMap<String, Option<(Value, Version)>>,
}

impl Default for History {
    fn default() -> Self {
        History::new()
    }
}

impl History {
    /// An empty history whose clock starts now. Keys start absent unless
    /// [`History::set_initial`] says otherwise.
    pub fn new() -> History {
        History {
            origin: Instant::now(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Nanoseconds since this history's origin.
    pub fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// The state `key` is in before the first recorded operation
    /// (`None`: absent, the default).
    pub fn set_initial(&self, key: impl Into<String>, state: Option<(Value, Version)>) {
        self.inner.lock().initial.insert(key.into(), state);
    }

    /// Records that `client` invokes `op` on `key` now.
    pub fn invoke(&self, client: ClientId, key: impl Into<String>, op: Op) -> OpId {
        let at = self.now();
        self.invoke_at(at, client, key, op)
    }

    /// Records that `client` invoked `op` on `key` at `at` (nanoseconds since
    /// the origin).
    pub fn invoke_at(&self, at: u64, client: ClientId, key: impl Into<String>, op: Op) -> OpId {
        let mut inner = self.inner.lock();
        let id = OpId(inner.ops.len());
        inner.ops.push(Record {
            id,
            client,
            key: key.into(),
            op,
            invoked: at,
            completed: None,
            outcome: None,
        });
        id
    }

    /// Records that operation `id` completes now with `outcome`.
    pub fn complete(&self, id: OpId, outcome: Outcome) {
        let at = self.now();
        self.complete_at(id, at, outcome)
    }

    /// Records that operation `id` completed at `at` with `outcome`.
    ///
    /// Panics if it was already completed, if `at` precedes its invocation,
    /// or if the outcome cannot belong to the operation (a read completed
    /// with `Version`, a create with `BadVersion`, ...).
    pub fn complete_at(&self, id: OpId, at: u64, outcome: Outcome) {
        let mut inner = self.inner.lock();
        let rec = inner
            .ops
            .get_mut(id.0)
            .unwrap_or_else(|| panic!("no operation {id:?} in this history"));
        assert!(rec.outcome.is_none(), "{id:?} completed twice");
        assert!(
            at >= rec.invoked,
            "{id:?} completed at {at} ns, before its invocation at {} ns",
            rec.invoked
        );
        if let Err(why) = validate(&rec.op, &outcome) {
            panic!(
                "{id:?}: {} cannot end in {outcome:?}: {why}",
                show_op(&rec.op)
            );
        }
        rec.completed = Some(at);
        rec.outcome = Some(outcome);
    }

    /// A copy of the operations recorded so far, in invocation order of
    /// recording.
    pub fn records(&self) -> Vec<Record> {
        self.inner.lock().ops.clone()
    }

    /// How many operations were recorded.
    pub fn len(&self) -> usize {
        self.inner.lock().ops.len()
    }

    /// Whether no operation was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Panics with a readable report unless [`check`] accepts the history.
    pub fn assert_linearizable(&self) {
        if let Err(e) = check(self) {
            panic!("{e}");
        }
    }
}

fn validate(op: &Op, outcome: &Outcome) -> Result<(), &'static str> {
    use Failure::*;
    let ok = matches!(
        (op, outcome),
        (_, Outcome::Indeterminate | Outcome::NotApplied)
            | (
                Op::Read,
                Outcome::Ok(Output::Read(_)) | Outcome::Failed(NoNode)
            )
            | (Op::Write(_), Outcome::Ok(Output::Version(_) | Output::Done))
            | (Op::Write(_), Outcome::Failed(NoNode))
            | (
                Op::Cas { .. },
                Outcome::Ok(Output::Version(_) | Output::Done)
            )
            | (Op::Cas { .. }, Outcome::Failed(NoNode | BadVersion))
            | (
                Op::Create(_),
                Outcome::Ok(Output::Version(_) | Output::Done)
            )
            | (Op::Create(_), Outcome::Failed(NodeExists))
            | (
                Op::Delete { .. },
                Outcome::Ok(Output::Done) | Outcome::Failed(NoNode)
            )
            | (
                Op::Delete {
                    expected_version: Some(_),
                },
                Outcome::Failed(BadVersion),
            )
    );
    if ok {
        Ok(())
    } else {
        Err("not an outcome this operation can have in the model")
    }
}

/// Bounds on the search.
#[derive(Clone, Debug)]
pub struct Options {
    /// Search steps allowed per key (one step: one candidate tried or one
    /// completion reached).
    pub max_steps: u64,
    /// Memory allowed per key for the configurations already explored.
    pub max_memo_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_steps: 20_000_000,
            max_memo_bytes: 1 << 30,
        }
    }
}

/// Why [`check`] did not accept a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// The history is not linearizable.
    Violation(Box<Violation>),
    /// The search ran out of its allowance before deciding.
    Undecided(Undecided),
}

/// A proof that one key's history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub key: String,
    /// The operation whose completion no order gets past: every order of
    /// the key's operations consistent with real time and with their results
    /// (those of operations still running then included) fails to explain
    /// all results up to this operation's, while some order explains every
    /// result that came before it.
    pub op: Record,
    /// How many operations on the key were invoked before its completion.
    pub prefix_ops: usize,
    /// The states in which the orders that get furthest end, readable
    /// (`absent`, `"data" v3`; data no read observed shows as `(unread)`):
    /// they explain everything that completed before the operation, but not
    /// it (at most 8).
    pub end_states: Vec<String>,
    /// The operations around it: those that completed last before it was
    /// invoked, those concurrent with it, and indeterminate writes still
    /// pending when it was invoked. In invocation order.
    pub related: Vec<Record>,
    /// A more specific reason, when one is evident.
    pub hint: Option<String>,
}

/// The search for one key gave up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Undecided {
    pub key: String,
    /// Operations on the key.
    pub ops: usize,
    /// Steps taken.
    pub steps: u64,
    /// Configurations remembered when it gave up.
    pub memo_entries: usize,
}

impl std::error::Error for CheckError {}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Violation(v) => v.fmt(f),
            CheckError::Undecided(u) => u.fmt(f),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "history of key {:?} is not linearizable:", self.key)?;
        writeln!(
            f,
            "  no order of the {} operations invoked before it completed explains the result of",
            self.prefix_ops
        )?;
        writeln!(f, "     {}", show_record(&self.op))?;
        if let Some(h) = &self.hint {
            writeln!(f, "  hint: {h}")?;
        }
        if !self.end_states.is_empty() {
            writeln!(
                f,
                "  the orders explaining everything completed before it leave the key: {}",
                self.end_states.join(" | ")
            )?;
        }
        writeln!(f, "  operations around it:")?;
        for r in &self.related {
            let mark = if r.id == self.op.id { "=>" } else { "  " };
            writeln!(f, "  {mark} {}", show_record(r))?;
        }
        Ok(())
    }
}

impl fmt::Display for Undecided {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "linearizability of key {:?} undecided: the search gave up after {} steps and {} \
             remembered configurations ({} operations); raise Options::max_steps / \
             max_memo_bytes or record a shorter or less concurrent history",
            self.key, self.steps, self.memo_entries, self.ops
        )
    }
}

/// Checks `h` with the default [`Options`].
pub fn check(h: &History) -> Result<(), CheckError> {
    check_with(h, &Options::default())
}

/// Checks `h`: `Ok` if every key's history is linearizable; otherwise the
/// first violation found, or, if no key is a violation but some could not be
/// decided, the first undecided key.
pub fn check_with(h: &History, opts: &Options) -> Result<(), CheckError> {
    let (records, initial) = {
        let inner = h.inner.lock();
        (inner.ops.clone(), inner.initial.clone())
    };
    check_records(&records, &initial, opts)
}

fn check_records(
    records: &[Record],
    initial: &BTreeMap<String, Option<(Value, Version)>>,
    opts: &Options,
) -> Result<(), CheckError> {
    let mut by_key: BTreeMap<&str, Vec<&Record>> = BTreeMap::new();
    for r in records {
        by_key.entry(&r.key).or_default().push(r);
    }
    let mut undecided = None;
    for (key, recs) in by_key {
        let init = initial.get(key).cloned().flatten();
        let compiled = KeyHistory::compile(&recs, init.as_ref());
        match search(&compiled.ops, compiled.initial, opts) {
            Search::Linearizable => {}
            Search::Undecided {
                steps,
                memo_entries,
            } => {
                if undecided.is_none() {
                    undecided = Some(Undecided {
                        key: key.to_string(),
                        ops: recs.len(),
                        steps,
                        memo_entries,
                    });
                }
            }
            Search::Violation {
                culprit,
                end_states,
            } => {
                return Err(CheckError::Violation(Box::new(explain(
                    key,
                    &recs,
                    &compiled,
                    init.as_ref(),
                    culprit,
                    &end_states,
                ))));
            }
        }
    }
    match undecided {
        Some(u) => Err(CheckError::Undecided(u)),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// The model, compiled: values interned to small integers per key.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Node {
    value: u32,
    version: Version,
}

/// A key's state: `None` when absent.
type State = Option<Node>;

/// What an operation requires of the state and what it makes of it, given
/// its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Effect {
    /// A read that observed this state.
    Read(State),
    Write {
        value: u32,
        version: Option<Version>,
    },
    Cas {
        expected: Version,
        value: u32,
        version: Option<Version>,
    },
    Create {
        value: u32,
        version: Option<Version>,
    },
    Delete {
        expected: Option<Version>,
    },
    /// Failed with NoNode.
    Absent,
    /// Failed with NodeExists.
    Present,
    /// Failed with BadVersion.
    BadVersion {
        expected: Version,
    },
}

/// The value of every state no read observes: such states differ in nothing
/// any remaining operation can see, so they are merged.
const UNREAD: u32 = u32::MAX;

impl Effect {
    /// The effect with its written value replaced by `f(value)`.
    fn map_written(self, f: impl Fn(u32) -> u32) -> Effect {
        match self {
            Effect::Write { value, version } => Effect::Write {
                value: f(value),
                version,
            },
            Effect::Cas {
                expected,
                value,
                version,
            } => Effect::Cas {
                expected,
                value: f(value),
                version,
            },
            Effect::Create { value, version } => Effect::Create {
                value: f(value),
                version,
            },
            e => e,
        }
    }

    /// Whether applying it never changes the state.
    fn read_only(self) -> bool {
        matches!(
            self,
            Effect::Read(_) | Effect::Absent | Effect::Present | Effect::BadVersion { .. }
        )
    }

    /// The state after applying this effect to `s`, or `None` if the effect
    /// is impossible in `s`.
    #[inline]
    fn apply(self, s: State) -> Option<State> {
        match self {
            Effect::Read(observed) => (s == observed).then_some(s),
            Effect::Write { value, version } => match s {
                Some(n) if version.is_none_or(|v| v == n.version + 1) => Some(Some(Node {
                    value,
                    version: n.version + 1,
                })),
                _ => None,
            },
            Effect::Cas {
                expected,
                value,
                version,
            } => match s {
                Some(n) if n.version == expected && version.is_none_or(|v| v == expected + 1) => {
                    Some(Some(Node {
                        value,
                        version: expected + 1,
                    }))
                }
                _ => None,
            },
            Effect::Create { value, version } => (s.is_none() && version.is_none_or(|v| v == 0))
                .then_some(Some(Node { value, version: 0 })),
            Effect::Delete { expected } => match s {
                Some(n) if expected.is_none_or(|e| e == n.version) => Some(None),
                _ => None,
            },
            Effect::Absent => s.is_none().then_some(s),
            Effect::Present => s.is_some().then_some(s),
            Effect::BadVersion { expected } => match s {
                Some(n) if n.version != expected => Some(s),
                _ => None,
            },
        }
    }
}

/// One operation of a key's history, compiled.
#[derive(Clone, Copy, Debug)]
struct KeyOp {
    /// Index into the key's records.
    rec: usize,
    invoked: u64,
    /// `None`: indeterminate.
    completed: Option<u64>,
    effect: Effect,
}

struct KeyHistory {
    initial: State,
    ops: Vec<KeyOp>,
    /// Interned values that some operation tried to write, or the initial one.
    written: HashSet<u32>,
    /// The values, by interned id.
    values: Vec<Value>,
}

impl KeyHistory {
    fn compile<'a>(recs: &[&'a Record], initial: Option<&'a (Value, Version)>) -> KeyHistory {
        let mut values: HashMap<&'a [u8], u32> = HashMap::new();
        let mut intern = |v: &'a [u8]| -> u32 {
            let n = values.len() as u32;
            *values.entry(v).or_insert(n)
        };
        let mut written = HashSet::new();
        let initial = initial.map(|(v, ver)| {
            let value = intern(v);
            written.insert(value);
            Node {
                value,
                version: *ver,
            }
        });
        let mut ops = Vec::with_capacity(recs.len());
        for (i, &r) in recs.iter().enumerate() {
            let outcome = r.outcome.as_ref().unwrap_or(&Outcome::Indeterminate);
            let if_indeterminate = match &r.op {
                Op::Read => None,
                Op::Write(v) => Some(Effect::Write {
                    value: intern(v),
                    version: None,
                }),
                Op::Cas {
                    expected_version,
                    value,
                } => Some(Effect::Cas {
                    expected: *expected_version,
                    value: intern(value),
                    version: None,
                }),
                Op::Create(v) => Some(Effect::Create {
                    value: intern(v),
                    version: None,
                }),
                Op::Delete { expected_version } => Some(Effect::Delete {
                    expected: *expected_version,
                }),
            };
            let effect = match (outcome, &r.op) {
                (Outcome::NotApplied, _) => continue,
                (Outcome::Indeterminate, _) => match if_indeterminate {
                    Some(e) => e,
                    None => continue,
                },
                (Outcome::Ok(Output::Read(obs)), _) => {
                    Effect::Read(obs.as_ref().map(|(v, ver)| Node {
                        value: intern(v),
                        version: *ver,
                    }))
                }
                (Outcome::Failed(Failure::NoNode), Op::Read) => Effect::Read(None),
                (Outcome::Failed(Failure::NoNode), _) => Effect::Absent,
                (Outcome::Failed(Failure::NodeExists), _) => Effect::Present,
                (
                    Outcome::Failed(Failure::BadVersion),
                    Op::Cas {
                        expected_version, ..
                    },
                ) => Effect::BadVersion {
                    expected: *expected_version,
                },
                (
                    Outcome::Failed(Failure::BadVersion),
                    Op::Delete {
                        expected_version: Some(e),
                    },
                ) => Effect::BadVersion { expected: *e },
                (Outcome::Ok(out), _) => {
                    let version = match out {
                        Output::Version(v) => Some(*v),
                        _ => None,
                    };
                    match if_indeterminate.expect("a read's outcome is a Read") {
                        Effect::Write { value, .. } => Effect::Write { value, version },
                        Effect::Cas {
                            expected, value, ..
                        } => Effect::Cas {
                            expected,
                            value,
                            version,
                        },
                        Effect::Create { value, .. } => Effect::Create { value, version },
                        e => e,
                    }
                }
                (Outcome::Failed(_), _) => unreachable!("rejected by validate"),
            };
            let applied = !matches!(
                outcome,
                Outcome::Failed(_) | Outcome::NotApplied | Outcome::Ok(Output::Read(_))
            );
            if applied {
                match if_indeterminate {
                    Some(Effect::Write { value, .. })
                    | Some(Effect::Cas { value, .. })
                    | Some(Effect::Create { value, .. }) => {
                        written.insert(value);
                    }
                    _ => {}
                }
            }
            let completed = match outcome {
                Outcome::Indeterminate => None,
                _ => r.completed,
            };
            ops.push(KeyOp {
                rec: i,
                invoked: r.invoked,
                completed,
                effect,
            });
        }
        // Values no read observed are merged into one.
        let read: HashSet<u32> = ops
            .iter()
            .filter_map(|o| match o.effect {
                Effect::Read(Some(n)) => Some(n.value),
                _ => None,
            })
            .collect();
        let canon = |v: u32| if read.contains(&v) { v } else { UNREAD };
        for o in &mut ops {
            o.effect = o.effect.map_written(canon);
        }
        let initial = initial.map(|n| Node {
            value: canon(n.value),
            ..n
        });
        let mut by_id = vec![Vec::new(); values.len()];
        for (v, id) in values {
            by_id[id as usize] = v.to_vec();
        }
        KeyHistory {
            initial,
            ops,
            written,
            values: by_id,
        }
    }
}

// ---------------------------------------------------------------------------
// The search.

enum Search {
    Linearizable,
    /// Not linearizable: no order gets past the completion of `culprit`;
    /// the orders that get furthest end in `end_states`.
    Violation {
        culprit: usize,
        end_states: Vec<State>,
    },
    Undecided {
        steps: u64,
        memo_entries: usize,
    },
}

const NIL: u32 = u32::MAX;

/// Splitmix64: the per-operation random keys of the incremental bitset hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn state_hash(s: State) -> u64 {
    match s {
        None => mix(u64::MAX),
        Some(n) => mix(((n.value as u64) << 32) | (n.version as u32 as u64)),
    }
}

/// Hashes a `u64` key to itself (the keys are already mixed).
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The configurations already entered: (operations with a known result
/// linearized, state) → the sets of indeterminate operations used with them.
/// A configuration is pruned if an entered one has the same first two and
/// used a subset of its indeterminate operations: that one can do all it
/// can. Chained buckets over arenas of bitsets, so a lookup allocates
/// nothing.
struct Memo {
    definite_words: usize,
    indeterminate_words: usize,
    heads: HashMap<u64, u32, BuildHasherDefault<IdentityHasher>>,
    definite: Vec<u64>,
    indeterminate: Vec<u64>,
    states: Vec<State>,
    next: Vec<u32>,
}

impl Memo {
    fn new(definite_words: usize, indeterminate_words: usize) -> Memo {
        Memo {
            definite_words,
            indeterminate_words,
            heads: HashMap::default(),
            definite: Vec::new(),
            indeterminate: Vec::new(),
            states: Vec::new(),
            next: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.states.len()
    }

    fn bytes(&self) -> usize {
        self.len()
            * ((self.definite_words + self.indeterminate_words) * 8
                + std::mem::size_of::<State>()
                + 4
                + 16)
    }

    /// Enters the configuration; false if it is pruned.
    fn enter(&mut self, hash: u64, definite: &[u64], indeterminate: &[u64], state: State) -> bool {
        let (dw, iw) = (self.definite_words, self.indeterminate_words);
        let head = self.heads.get(&hash).copied().unwrap_or(NIL);
        let mut i = head;
        while i != NIL {
            let at = i as usize;
            if self.states[at] == state
                && self.definite[at * dw..(at + 1) * dw] == *definite
                && self.indeterminate[at * iw..(at + 1) * iw]
                    .iter()
                    .zip(indeterminate)
                    .all(|(seen, now)| seen & !now == 0)
            {
                return false;
            }
            i = self.next[at];
        }
        let at = self.states.len() as u32;
        self.definite.extend_from_slice(definite);
        self.indeterminate.extend_from_slice(indeterminate);
        self.states.push(state);
        self.next.push(head);
        self.heads.insert(hash, at);
        true
    }
}

/// A set of operations as a bitset.
fn set_bit(bits: &mut [u64], i: u32, on: bool) {
    let (w, b) = (i as usize / 64, i % 64);
    if on {
        bits[w] |= 1 << b;
    } else {
        bits[w] &= !(1 << b);
    }
}

fn has_bit(bits: &[u64], i: u32) -> bool {
    bits[i as usize / 64] & (1 << (i % 64)) != 0
}

/// Wing–Gong–Lowe over one key's operations.
fn search(ops: &[KeyOp], initial: State, opts: &Options) -> Search {
    let n = ops.len();
    // Events: invocations of every operation, completions of those with a
    // known result; by time, invocations first on a tie (touching intervals
    // count as concurrent, the permissive reading).
    let mut events: Vec<(u64, bool, u32)> = Vec::with_capacity(2 * n);
    // Each operation's index among the definite or the indeterminate ones.
    let mut rank = vec![0u32; n];
    let (mut definite, mut indeterminate) = (0u32, 0u32);
    for (i, op) in ops.iter().enumerate() {
        events.push((op.invoked, false, i as u32));
        if let Some(c) = op.completed {
            events.push((c, true, i as u32));
            rank[i] = definite;
            definite += 1;
        } else {
            rank[i] = indeterminate;
            indeterminate += 1;
        }
    }
    events.sort_unstable();

    // A doubly linked list over the events: node 0 is the head, node m + 1
    // the tail, node k + 1 the event k.
    let m = events.len();
    let tail = m + 1;
    let mut next: Vec<u32> = (1..=tail as u32 + 1).collect();
    let mut prev: Vec<u32> = Vec::with_capacity(m + 2);
    prev.push(NIL);
    prev.extend(0..=m as u32);
    next[tail] = NIL;
    let mut call_node = vec![NIL; n];
    let mut ret_node = vec![NIL; n];
    for (k, &(_, is_ret, op)) in events.iter().enumerate() {
        if is_ret {
            ret_node[op as usize] = k as u32 + 1;
        } else {
            call_node[op as usize] = k as u32 + 1;
        }
    }
    let node_event = |node: u32| events[node as usize - 1];

    fn unlink(next: &mut [u32], prev: &mut [u32], x: u32) {
        let (p, nx) = (prev[x as usize], next[x as usize]);
        next[p as usize] = nx;
        prev[nx as usize] = p;
    }
    fn relink(next: &mut [u32], prev: &mut [u32], x: u32) {
        let (p, nx) = (prev[x as usize], next[x as usize]);
        next[p as usize] = x;
        prev[nx as usize] = x;
    }

    // Indeterminate operations with the same effect are interchangeable
    // (none has a completion to respect): any order using one of them can
    // use the one invoked first instead. So each may only be linearized once
    // the previous one with its effect is.
    let mut prev_same = vec![NIL; n];
    let mut last_with: HashMap<Effect, u32> = HashMap::new();
    for &(_, is_ret, op) in &events {
        if !is_ret && ops[op as usize].completed.is_none() {
            if let Some(p) = last_with.insert(ops[op as usize].effect, op) {
                prev_same[op as usize] = p;
            }
        }
    }

    let mut dbits = vec![0u64; (definite as usize).div_ceil(64)];
    let mut ibits = vec![0u64; (indeterminate as usize).div_ceil(64)];
    let mut dhash = 0u64;
    let keys: Vec<u64> = (0..n as u64)
        .map(|i| mix(i ^ 0x5157_4f52_4445_4e21))
        .collect();
    let mut memo = Memo::new(dbits.len(), ibits.len());
    // The choices made: the operation linearized, the state before it, and
    // whether it was forced (see below).
    let mut stack: Vec<(u32, State, bool)> = Vec::new();
    let mut state = initial;
    let mut linearized_definite = 0u32;
    let mut steps = 0u64;
    // The furthest completion the search was stopped at, and the states it
    // was stopped in there.
    let mut frontier = 0u32;
    let mut frontier_states: Vec<State> = Vec::new();

    // Candidates are the invocations before the first completion left in the
    // list. Those with a known result are tried first, then (second pass)
    // the indeterminate ones, so that configurations reached without
    // indeterminate operations are entered first and prune those that reach
    // the same point with some.
    let mut second_pass = false;
    let mut entry = next[0];
    loop {
        if linearized_definite == definite {
            return Search::Linearizable;
        }
        steps += 1;
        if steps > opts.max_steps || memo.bytes() > opts.max_memo_bytes {
            return Search::Undecided {
                steps,
                memo_entries: memo.len(),
            };
        }
        debug_assert!(entry as usize != tail, "a definite op is always ahead");
        let (_, is_ret, op) = node_event(entry);
        let o = op as usize;
        let mut backtrack = false;
        if is_ret {
            if !second_pass {
                second_pass = true;
                entry = next[0];
                continue;
            }
            // The completion of an operation not yet linearized: this order
            // cannot be extended.
            if entry > frontier {
                frontier = entry;
                frontier_states.clear();
            }
            if entry == frontier && frontier_states.len() < 8 && !frontier_states.contains(&state) {
                frontier_states.push(state);
            }
            backtrack = true;
        } else if ops[o].completed.is_none() != second_pass
            || (prev_same[o] != NIL && !has_bit(&ibits, rank[prev_same[o] as usize]))
        {
            // Not in this pass, or an interchangeable operation invoked
            // earlier is still unused.
        } else if let Some(new_state) = ops[o].effect.apply(state) {
            // A candidate that does not change the state (a read, a definite
            // failure) and agrees with it now can be linearized now without
            // loss: any valid order from here can be rewritten to take it
            // first, since every operation that must precede it already has.
            // So it is forced: no alternative to it is tried.
            let forced = ops[o].effect.read_only();
            let is_definite = ops[o].completed.is_some();
            let bits = if is_definite { &mut dbits } else { &mut ibits };
            set_bit(bits, rank[o], true);
            if is_definite {
                dhash ^= keys[o];
            }
            if memo.enter(dhash ^ state_hash(new_state), &dbits, &ibits, new_state) {
                stack.push((op, state, forced));
                state = new_state;
                unlink(&mut next, &mut prev, call_node[o]);
                if is_definite {
                    unlink(&mut next, &mut prev, ret_node[o]);
                    linearized_definite += 1;
                }
                second_pass = false;
                entry = next[0];
                continue;
            }
            let bits = if is_definite { &mut dbits } else { &mut ibits };
            set_bit(bits, rank[o], false);
            if is_definite {
                dhash ^= keys[o];
            }
            // Taking a forced candidate leads where the search has been (and
            // failed, or is failing), so this configuration fails too.
            backtrack = forced;
        }
        if !backtrack {
            entry = next[entry as usize];
            continue;
        }
        // Undo the last choice and try the candidate after it (in the pass it
        // was taken in); undo a forced choice and the one before it, since it
        // had no alternative.
        loop {
            let Some((op, before, forced)) = stack.pop() else {
                let (_, _, culprit) = node_event(frontier);
                return Search::Violation {
                    culprit: culprit as usize,
                    end_states: frontier_states,
                };
            };
            let o = op as usize;
            state = before;
            let is_definite = ops[o].completed.is_some();
            if is_definite {
                set_bit(&mut dbits, rank[o], false);
                dhash ^= keys[o];
                relink(&mut next, &mut prev, ret_node[o]);
                linearized_definite -= 1;
            } else {
                set_bit(&mut ibits, rank[o], false);
            }
            relink(&mut next, &mut prev, call_node[o]);
            entry = next[call_node[o] as usize];
            second_pass = !is_definite;
            if !forced {
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Explaining a violation.

fn explain(
    key: &str,
    recs: &[&Record],
    compiled: &KeyHistory,
    initial: Option<&(Value, Version)>,
    culprit: usize,
    end_states: &[State],
) -> Violation {
    let ops = &compiled.ops;
    let culprit = ops[culprit];
    let rec = recs[culprit.rec];
    let c_done = culprit.completed.unwrap_or(u64::MAX);
    let prefix_ops = ops.iter().filter(|o| o.invoked <= c_done).count();

    // Related operations: the last few completed before it was invoked,
    // those concurrent with it, the pending indeterminate writes.
    let c_inv = culprit.invoked;
    let mut before: Vec<&KeyOp> = ops
        .iter()
        .filter(|o| o.completed.is_some_and(|c| c < c_inv))
        .collect();
    before.sort_by_key(|o| o.completed);
    let before = &before[before.len().saturating_sub(4)..];
    let concurrent = ops.iter().filter(|o| {
        o.rec != culprit.rec
            && o.invoked <= c_done
            && o.completed.is_none_or(|c| c >= c_inv)
            && !(o.completed.is_none() && o.invoked < c_inv)
    });
    let pending = ops
        .iter()
        .filter(|o| o.completed.is_none() && o.invoked < c_inv);
    let mut related: Vec<&KeyOp> = before.to_vec();
    related.push(&culprit);
    let mut others: Vec<&KeyOp> = concurrent.collect();
    others.sort_by_key(|o| (o.invoked, o.rec));
    let mut pend: Vec<&KeyOp> = pending.collect();
    pend.sort_by_key(|o| std::cmp::Reverse(o.invoked));
    pend.truncate(4);
    others.truncate(12);
    related.extend(others);
    related.extend(pend);
    related.sort_by_key(|o| (o.invoked, o.rec));
    related.dedup_by_key(|o| o.rec);

    let hint = hint(rec, &culprit, compiled, initial);
    Violation {
        key: key.to_string(),
        op: rec.clone(),
        prefix_ops,
        related: related.into_iter().map(|o| recs[o.rec].clone()).collect(),
        end_states: end_states
            .iter()
            .map(|s| match s {
                None => "absent".to_string(),
                Some(n) if n.value == UNREAD => format!("(unread) v{}", n.version),
                Some(n) => format!(
                    "{} v{}",
                    show_value(&compiled.values[n.value as usize]),
                    n.version
                ),
            })
            .collect(),
        hint,
    }
}

fn hint(
    rec: &Record,
    culprit: &KeyOp,
    compiled: &KeyHistory,
    initial: Option<&(Value, Version)>,
) -> Option<String> {
    match (culprit.effect, &rec.op) {
        (Effect::Read(Some(n)), _) if !compiled.written.contains(&n.value) => Some(format!(
            "the value read was never written to this key (no create, write or CAS of it{})",
            if initial.is_some() {
                ", and it is not the initial value"
            } else {
                ""
            }
        )),
        (
            Effect::Cas {
                expected,
                version: Some(v),
                ..
            },
            _,
        ) if v != expected + 1 => Some(format!(
            "a successful CAS on version {expected} must leave version {}, not {v}",
            expected + 1
        )),
        (
            Effect::Create {
                version: Some(v), ..
            },
            _,
        ) if v != 0 => Some(format!("a create leaves version 0, not {v}")),
        (Effect::Read(Some(n)), _) if n.version < 0 => {
            Some(format!("version {} is impossible", n.version))
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Display.

fn show_value(v: &[u8]) -> String {
    const MAX: usize = 40;
    match std::str::from_utf8(v) {
        Ok(s) if !s.chars().any(char::is_control) => {
            if s.chars().count() > MAX {
                let cut: String = s.chars().take(MAX).collect();
                format!("{cut:?}…")
            } else {
                format!("{s:?}")
            }
        }
        _ => {
            let hex: String = v.iter().take(MAX / 2).map(|b| format!("{b:02x}")).collect();
            let more = if v.len() > MAX / 2 { "…" } else { "" };
            format!("0x{hex}{more}")
        }
    }
}

fn show_op(op: &Op) -> String {
    match op {
        Op::Read => "Read".to_string(),
        Op::Write(v) => format!("Write({})", show_value(v)),
        Op::Cas {
            expected_version,
            value,
        } => format!("Cas(v{expected_version} -> {})", show_value(value)),
        Op::Create(v) => format!("Create({})", show_value(v)),
        Op::Delete {
            expected_version: None,
        } => "Delete".to_string(),
        Op::Delete {
            expected_version: Some(v),
        } => format!("Delete(v{v})"),
    }
}

fn show_outcome(o: Option<&Outcome>) -> String {
    match o {
        None => "never completed".to_string(),
        Some(Outcome::Ok(Output::Read(Some((v, ver))))) => format!("{} v{ver}", show_value(v)),
        Some(Outcome::Ok(Output::Read(None))) => "NoNode".to_string(),
        Some(Outcome::Ok(Output::Version(v))) => format!("ok, v{v}"),
        Some(Outcome::Ok(Output::Done)) => "ok".to_string(),
        Some(Outcome::Failed(f)) => format!("{f:?}"),
        Some(Outcome::Indeterminate) => "indeterminate".to_string(),
        Some(Outcome::NotApplied) => "not applied".to_string(),
    }
}

fn show_time(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..1_000_000 => format!("{:.3}µs", ns as f64 / 1e3),
        _ => format!("{:.3}ms", ns as f64 / 1e6),
    }
}

fn show_record(r: &Record) -> String {
    let end = match (&r.outcome, r.completed) {
        (Some(Outcome::Indeterminate) | None, _) | (_, None) => "∞".to_string(),
        (_, Some(c)) => show_time(c),
    };
    format!(
        "#{} client {} [{}, {}] {} -> {}",
        r.id.0,
        r.client,
        show_time(r.invoked),
        end,
        show_op(&r.op),
        show_outcome(r.outcome.as_ref())
    )
}

#[cfg(test)]
mod tests;
