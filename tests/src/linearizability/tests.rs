use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

/// Records an operation with explicit times.
fn op(h: &History, client: ClientId, key: &str, t: (u64, u64), op: Op, outcome: Outcome) -> OpId {
    let id = h.invoke_at(t.0, client, key, op);
    h.complete_at(id, t.1, outcome);
    id
}

fn accepted(h: &History) {
    if let Err(e) = check(h) {
        panic!("expected the history to be accepted, got:\n{e}");
    }
}

fn violation(h: &History) -> Violation {
    match check(h) {
        Err(CheckError::Violation(v)) => *v,
        Err(CheckError::Undecided(u)) => panic!("expected a violation, got: {u}"),
        Ok(()) => panic!("expected a violation, the history was accepted"),
    }
}

fn created(h: &History, key: &str, value: &str) {
    op(h, 0, key, (0, 1), Op::create(value), Outcome::done());
}

#[test]
fn empty_history_is_accepted() {
    accepted(&History::new());
}

#[test]
fn sequential_history_is_accepted() {
    let h = History::new();
    let k = "/k";
    let mut t = 0;
    let mut next = |o: Op, out: Outcome| {
        t += 10;
        op(&h, 1, k, (t, t + 5), o, out);
    };
    next(Op::Read, Outcome::read_none());
    next(Op::write("x"), Outcome::Failed(Failure::NoNode));
    next(Op::cas(0, "x"), Outcome::Failed(Failure::NoNode));
    next(Op::delete(), Outcome::Failed(Failure::NoNode));
    next(Op::create("a"), Outcome::version(0));
    next(Op::create("z"), Outcome::Failed(Failure::NodeExists));
    next(Op::Read, Outcome::read("a", 0));
    next(Op::write("b"), Outcome::version(1));
    next(Op::Read, Outcome::read("b", 1));
    next(Op::cas(1, "c"), Outcome::version(2));
    next(Op::cas(1, "d"), Outcome::Failed(Failure::BadVersion));
    next(Op::Read, Outcome::read("c", 2));
    next(Op::write("e"), Outcome::done());
    next(
        Op::Delete {
            expected_version: Some(2),
        },
        Outcome::Failed(Failure::BadVersion),
    );
    next(
        Op::Delete {
            expected_version: Some(3),
        },
        Outcome::done(),
    );
    next(Op::Read, Outcome::Failed(Failure::NoNode));
    next(Op::create("f"), Outcome::done());
    next(Op::Read, Outcome::read("f", 0));
    next(Op::cas(0, "g"), Outcome::version(1));
    accepted(&h);
}

#[test]
fn a_sequential_history_with_a_wrong_result_is_rejected() {
    // The same shape as above, but the CAS that should fail succeeds.
    let h = History::new();
    created(&h, "/k", "a");
    op(&h, 1, "/k", (10, 20), Op::cas(0, "b"), Outcome::version(1));
    let bad = op(&h, 1, "/k", (30, 40), Op::cas(0, "c"), Outcome::done());
    assert_eq!(violation(&h).op.id, bad);
}

#[test]
fn overlapping_writes_may_take_effect_in_either_order() {
    for (first_version, second_version, seen) in [(1, 2, "c"), (2, 1, "b")] {
        let h = History::new();
        created(&h, "/k", "a");
        // b is invoked first, but the two overlap: either order is fine.
        op(
            &h,
            1,
            "/k",
            (10, 50),
            Op::write("b"),
            Outcome::version(first_version),
        );
        op(
            &h,
            2,
            "/k",
            (20, 40),
            Op::write("c"),
            Outcome::version(second_version),
        );
        op(&h, 3, "/k", (60, 70), Op::Read, Outcome::read(seen, 2));
        accepted(&h);
    }
}

#[test]
fn reads_concurrent_with_a_write_may_see_either_value() {
    let h = History::new();
    created(&h, "/k", "a");
    op(&h, 1, "/k", (10, 100), Op::write("b"), Outcome::version(1));
    // Both reads overlap the write; the first sees the new value, the
    // second (which overlaps the first) still the old one.
    op(&h, 2, "/k", (20, 40), Op::Read, Outcome::read("a", 0));
    op(&h, 3, "/k", (15, 30), Op::Read, Outcome::read("b", 1));
    op(&h, 2, "/k", (50, 60), Op::Read, Outcome::read("b", 1));
    op(&h, 3, "/k", (110, 120), Op::Read, Outcome::read("b", 1));
    accepted(&h);
}

#[test]
fn a_new_then_old_read_inversion_is_rejected() {
    // While a write runs, one read sees the new value and a later read (it
    // starts after the first completes) the old one.
    let h = History::new();
    created(&h, "/k", "a");
    op(&h, 1, "/k", (10, 100), Op::write("b"), Outcome::version(1));
    op(&h, 2, "/k", (20, 30), Op::Read, Outcome::read("b", 1));
    let old = op(&h, 3, "/k", (40, 50), Op::Read, Outcome::read("a", 0));
    let v = violation(&h);
    assert_eq!(v.op.id, old);
}

#[test]
fn a_stale_read_is_rejected() {
    let h = History::new();
    created(&h, "/k", "a");
    op(&h, 1, "/k", (10, 20), Op::write("b"), Outcome::version(1));
    op(&h, 2, "/k", (25, 26), Op::Read, Outcome::read("b", 1));
    let stale = op(&h, 2, "/k", (30, 40), Op::Read, Outcome::read("a", 0));
    op(&h, 1, "/k", (50, 60), Op::write("c"), Outcome::version(2));
    let v = violation(&h);
    assert_eq!(v.key, "/k");
    assert_eq!(v.op.id, stale, "{v}");
    // The smallest unlinearizable prefix ends at the stale read.
    assert_eq!(v.prefix_ops, 4);
    let text = v.to_string();
    assert!(
        text.contains("\"/k\"") && text.contains(&format!("#{}", stale.0)),
        "{text}"
    );
}

#[test]
fn a_lost_write_is_rejected() {
    let h = History::new();
    created(&h, "/k", "a");
    // Acknowledged, then never visible.
    op(&h, 1, "/k", (10, 20), Op::write("b"), Outcome::version(1));
    let first = op(&h, 2, "/k", (30, 40), Op::Read, Outcome::read("a", 0));
    op(&h, 2, "/k", (50, 60), Op::Read, Outcome::read("a", 0));
    assert_eq!(violation(&h).op.id, first);

    // Lost as seen through versions: the next write starts from version 0.
    let h = History::new();
    created(&h, "/k", "a");
    op(&h, 1, "/k", (10, 20), Op::write("b"), Outcome::version(1));
    let next = op(&h, 2, "/k", (30, 40), Op::write("c"), Outcome::version(1));
    op(&h, 2, "/k", (50, 60), Op::Read, Outcome::read("c", 1));
    assert_eq!(violation(&h).op.id, next);
}

#[test]
fn two_cas_on_the_same_version_cannot_both_succeed() {
    for outputs in [
        (Outcome::version(1), Outcome::version(1)),
        (Outcome::done(), Outcome::done()),
    ] {
        let h = History::new();
        created(&h, "/k", "a");
        let late = op(&h, 1, "/k", (10, 100), Op::cas(0, "b"), outputs.0);
        op(&h, 2, "/k", (20, 90), Op::cas(0, "c"), outputs.1);
        let v = violation(&h);
        // Until the second completion the first could still be the one
        // that failed.
        assert_eq!(v.op.id, late, "{v}");
    }
    // One succeeding and one failing is fine, in either order.
    let h = History::new();
    created(&h, "/k", "a");
    op(
        &h,
        1,
        "/k",
        (10, 100),
        Op::cas(0, "b"),
        Outcome::Failed(Failure::BadVersion),
    );
    op(&h, 2, "/k", (20, 90), Op::cas(0, "c"), Outcome::version(1));
    op(&h, 2, "/k", (110, 120), Op::Read, Outcome::read("c", 1));
    accepted(&h);
}

#[test]
fn a_cas_result_with_the_wrong_version_is_rejected() {
    let h = History::new();
    created(&h, "/k", "a");
    op(&h, 1, "/k", (10, 20), Op::cas(0, "b"), Outcome::version(5));
    let v = violation(&h);
    assert!(
        v.hint
            .as_deref()
            .unwrap_or("")
            .contains("must leave version 1"),
        "{v}"
    );
}

#[test]
fn a_read_of_a_value_never_written_is_rejected() {
    let h = History::new();
    created(&h, "/k", "a");
    op(&h, 1, "/k", (10, 20), Op::write("b"), Outcome::version(1));
    let r = op(&h, 2, "/k", (5, 30), Op::Read, Outcome::read("zz", 1));
    let v = violation(&h);
    assert_eq!(v.op.id, r);
    assert!(
        v.hint.as_deref().unwrap_or("").contains("never written"),
        "{v}"
    );

    // A value only a failed CAS tried to write was never written either.
    let h = History::new();
    created(&h, "/k", "a");
    op(
        &h,
        1,
        "/k",
        (10, 20),
        Op::cas(7, "q"),
        Outcome::Failed(Failure::BadVersion),
    );
    op(&h, 2, "/k", (30, 40), Op::Read, Outcome::read("q", 1));
    let v = violation(&h);
    assert!(
        v.hint.as_deref().unwrap_or("").contains("never written"),
        "{v}"
    );
}

#[test]
fn versions_going_backwards_are_rejected() {
    let h = History::new();
    created(&h, "/k", "a");
    op(&h, 1, "/k", (10, 20), Op::write("b"), Outcome::version(1));
    op(&h, 1, "/k", (30, 40), Op::write("c"), Outcome::version(2));
    op(&h, 2, "/k", (50, 60), Op::Read, Outcome::read("c", 2));
    let back = op(&h, 2, "/k", (70, 80), Op::Read, Outcome::read("b", 1));
    assert_eq!(violation(&h).op.id, back);

    // Through write results alone.
    let h = History::new();
    created(&h, "/k", "a");
    op(&h, 1, "/k", (10, 20), Op::write("b"), Outcome::version(1));
    op(&h, 1, "/k", (30, 40), Op::write("c"), Outcome::version(2));
    let back = op(&h, 2, "/k", (50, 60), Op::write("d"), Outcome::version(2));
    assert_eq!(violation(&h).op.id, back);

    // The same value read at an older version after a newer one.
    let h = History::new();
    created(&h, "/k", "a");
    op(&h, 1, "/k", (10, 20), Op::write("a"), Outcome::version(1));
    op(&h, 2, "/k", (30, 40), Op::Read, Outcome::read("a", 1));
    let back = op(&h, 2, "/k", (50, 60), Op::Read, Outcome::read("a", 0));
    assert_eq!(violation(&h).op.id, back);
}

#[test]
fn an_indeterminate_write_that_took_effect_is_accepted() {
    let h = History::new();
    created(&h, "/k", "a");
    op(
        &h,
        1,
        "/k",
        (10, 20),
        Op::write("b"),
        Outcome::Indeterminate,
    );
    // Not visible yet, then visible: it took effect late.
    op(&h, 2, "/k", (30, 40), Op::Read, Outcome::read("a", 0));
    op(&h, 2, "/k", (50, 60), Op::Read, Outcome::read("b", 1));
    op(&h, 2, "/k", (70, 80), Op::write("c"), Outcome::version(2));
    accepted(&h);
}

#[test]
fn an_indeterminate_write_never_seen_is_accepted() {
    let h = History::new();
    created(&h, "/k", "a");
    op(
        &h,
        1,
        "/k",
        (10, 20),
        Op::write("b"),
        Outcome::Indeterminate,
    );
    op(&h, 2, "/k", (30, 40), Op::Read, Outcome::read("a", 0));
    op(&h, 2, "/k", (50, 60), Op::write("c"), Outcome::version(1));
    op(&h, 2, "/k", (70, 80), Op::Read, Outcome::read("c", 1));
    accepted(&h);
}

#[test]
fn an_operation_never_completed_counts_as_indeterminate() {
    let h = History::new();
    created(&h, "/k", "a");
    h.invoke_at(10, 1, "/k", Op::write("b"));
    h.invoke_at(11, 3, "/k", Op::Read);
    op(&h, 2, "/k", (30, 40), Op::Read, Outcome::read("b", 1));
    accepted(&h);
}

#[test]
fn an_indeterminate_write_cannot_take_effect_before_its_invocation() {
    let h = History::new();
    created(&h, "/k", "a");
    let early = op(&h, 2, "/k", (5, 9), Op::Read, Outcome::read("b", 1));
    op(
        &h,
        1,
        "/k",
        (10, 20),
        Op::write("b"),
        Outcome::Indeterminate,
    );
    assert_eq!(violation(&h).op.id, early);
}

#[test]
fn an_indeterminate_write_takes_effect_at_most_once() {
    let h = History::new();
    created(&h, "/k", "a");
    op(
        &h,
        1,
        "/k",
        (10, 20),
        Op::write("b"),
        Outcome::Indeterminate,
    );
    op(&h, 2, "/k", (30, 40), Op::Read, Outcome::read("b", 1));
    op(&h, 2, "/k", (50, 60), Op::write("c"), Outcome::version(2));
    let again = op(&h, 2, "/k", (70, 80), Op::Read, Outcome::read("b", 3));
    assert_eq!(violation(&h).op.id, again);
}

#[test]
fn an_indeterminate_cas_is_still_a_cas() {
    // If the CAS on version 0 took effect, it did so before the write,
    // which would then have left version 2.
    let h = History::new();
    created(&h, "/k", "a");
    op(
        &h,
        1,
        "/k",
        (10, 20),
        Op::cas(0, "b"),
        Outcome::Indeterminate,
    );
    op(&h, 2, "/k", (30, 40), Op::write("c"), Outcome::version(1));
    op(&h, 2, "/k", (50, 60), Op::Read, Outcome::read("c", 1));
    accepted(&h);
    let bad = op(&h, 3, "/k", (70, 80), Op::Read, Outcome::read("b", 2));
    assert_eq!(violation(&h).op.id, bad);
}

#[test]
fn not_applied_operations_are_ignored() {
    let h = History::new();
    created(&h, "/k", "a");
    op(&h, 1, "/k", (10, 20), Op::write("b"), Outcome::NotApplied);
    op(&h, 1, "/k", (30, 40), Op::Read, Outcome::NotApplied);
    op(&h, 2, "/k", (50, 60), Op::Read, Outcome::read("a", 0));
    accepted(&h);
}

#[test]
fn initial_state_is_respected() {
    let h = History::new();
    h.set_initial("/k", Some((b"init".to_vec(), 4)));
    op(&h, 1, "/k", (10, 20), Op::Read, Outcome::read("init", 4));
    op(&h, 1, "/k", (30, 40), Op::cas(4, "x"), Outcome::version(5));
    accepted(&h);
    op(&h, 1, "/k", (50, 60), Op::create("y"), Outcome::done());
    violation(&h);
}

#[test]
fn keys_are_checked_independently_and_the_violation_names_its_key() {
    let h = History::new();
    created(&h, "/x", "a");
    created(&h, "/y", "a");
    // Per key these are fine, although "/x" and "/y" interleave.
    op(&h, 1, "/x", (10, 20), Op::write("b"), Outcome::version(1));
    op(&h, 2, "/y", (15, 25), Op::write("b"), Outcome::version(1));
    op(&h, 1, "/x", (30, 40), Op::Read, Outcome::read("b", 1));
    op(&h, 2, "/y", (30, 40), Op::Read, Outcome::read("b", 1));
    accepted(&h);
    let stale = op(&h, 3, "/y", (50, 60), Op::Read, Outcome::read("a", 0));
    let v = violation(&h);
    assert_eq!((v.key.as_str(), v.op.id), ("/y", stale));
    assert!(v.related.iter().all(|r| r.key == "/y"));
}

#[test]
fn an_exhausted_budget_is_undecided_not_a_violation() {
    let h = History::new();
    created(&h, "/k", "a");
    // Many overlapping blind writes with no version information.
    for c in 0..12 {
        op(
            &h,
            c,
            "/k",
            (10 + c as u64, 100),
            Op::write(format!("w{c}")),
            Outcome::done(),
        );
    }
    op(&h, 20, "/k", (110, 120), Op::Read, Outcome::read("w3", 12));
    let tight = Options {
        max_steps: 20,
        ..Options::default()
    };
    match check_with(&h, &tight) {
        Err(CheckError::Undecided(u)) => {
            assert_eq!(u.key, "/k");
            assert!(u.to_string().contains("undecided"), "{u}");
        }
        other => panic!("expected undecided, got {other:?}"),
    }
    accepted(&h);
}

#[test]
#[should_panic(expected = "cannot end in")]
fn an_outcome_the_op_cannot_have_is_refused() {
    let h = History::new();
    let id = h.invoke(1, "/k", Op::Read);
    h.complete(id, Outcome::version(3));
}

/// Clients on threads against a model behind a lock, recorded with the
/// real clock.
#[test]
fn histories_recorded_from_threads_are_accepted() {
    let h = Arc::new(History::new());
    let model: Arc<Mutex<HashMap<String, (Value, Version)>>> = Arc::default();
    let threads: Vec<_> = (0..4)
        .map(|c| {
            let (h, model) = (h.clone(), model.clone());
            std::thread::spawn(move || {
                let mut rng = StdRng::seed_from_u64(c as u64);
                for i in 0..200 {
                    let key = format!("/k{}", rng.random_range(0..2));
                    let o = match rng.random_range(0..4) {
                        0 => Op::Read,
                        1 => Op::write(format!("{c}.{i}")),
                        2 => Op::cas(rng.random_range(0..3) + i / 8, format!("{c}.{i}")),
                        _ => Op::create(format!("{c}.{i}")),
                    };
                    let id = h.invoke(c, key.clone(), o.clone());
                    let outcome = apply(&mut model.lock(), &key, &o);
                    h.complete(id, outcome);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    accepted(&h);
}

/// The sequential specification, to generate histories.
fn apply(model: &mut HashMap<String, (Value, Version)>, key: &str, op: &Op) -> Outcome {
    let cur = model.get(key).cloned();
    match (op, cur) {
        (Op::Read, Some((v, ver))) => Outcome::read(v, ver),
        (Op::Read, None) => Outcome::read_none(),
        (Op::Write(_) | Op::Cas { .. } | Op::Delete { .. }, None) => {
            Outcome::Failed(Failure::NoNode)
        }
        (Op::Write(v), Some((_, ver))) => {
            model.insert(key.to_string(), (v.clone(), ver + 1));
            Outcome::version(ver + 1)
        }
        (
            Op::Cas {
                expected_version,
                value,
            },
            Some((_, ver)),
        ) => {
            if *expected_version == ver {
                model.insert(key.to_string(), (value.clone(), ver + 1));
                Outcome::version(ver + 1)
            } else {
                Outcome::Failed(Failure::BadVersion)
            }
        }
        (Op::Create(v), None) => {
            model.insert(key.to_string(), (v.clone(), 0));
            Outcome::done()
        }
        (Op::Create(_), Some(_)) => Outcome::Failed(Failure::NodeExists),
        (Op::Delete { expected_version }, Some((_, ver))) => {
            if expected_version.is_none_or(|e| e == ver) {
                model.remove(key);
                Outcome::done()
            } else {
                Outcome::Failed(Failure::BadVersion)
            }
        }
    }
}

/// How a generated operation ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fate {
    /// Takes effect; its result is recorded.
    Normal,
    /// Takes effect; recorded as indeterminate.
    Hidden,
    /// Takes effect; never completed.
    Pending,
    /// Never takes effect; recorded as indeterminate.
    Lost,
}

#[derive(Clone, Debug)]
struct Spec {
    key: u8,
    kind: u8,
    arg: u8,
    /// How long before its linearization point it is invoked.
    pre: u64,
    /// How long after its linearization point it completes.
    post: u64,
    fate: Fate,
}

fn spec() -> impl Strategy<Value = Spec> {
    let fate = prop_oneof![
        12 => Just(Fate::Normal),
        1 => Just(Fate::Hidden),
        1 => Just(Fate::Pending),
        1 => Just(Fate::Lost),
    ];
    (0..3u8, 0..7u8, 0..4u8, 0..40u64, 0..40u64, fate).prop_map(
        |(key, kind, arg, pre, post, fate)| Spec {
            key,
            kind,
            arg,
            pre,
            post,
            fate,
        },
    )
}

/// Runs `specs` in order against the model, operation i taking effect at
/// time 100 + 10 i, inside its invocation/completion interval; the
/// intervals overlap at random but the order run is always a valid
/// linearization. Returns the history and the ids of the reads with a
/// recorded result.
fn generate(specs: &[Spec]) -> (Vec<Record>, Vec<OpId>) {
    let h = History::new();
    let mut model = HashMap::new();
    let mut reads = Vec::new();
    for (i, s) in specs.iter().enumerate() {
        let key = format!("/k{}", s.key);
        let value = format!("v{}", s.arg);
        let version = model.get(&key).map(|(_, v): &(Value, Version)| *v);
        let o = match s.kind {
            0 | 1 => Op::Read,
            2 => Op::write(value),
            // A CAS that succeeds if the node exists.
            3 => Op::cas(version.unwrap_or(0), value),
            // A CAS on some small version, likely to fail.
            4 => Op::cas(s.arg as Version, value),
            5 => Op::create(value),
            _ if s.arg % 2 == 0 => Op::delete(),
            _ => Op::Delete {
                expected_version: Some(s.arg as Version / 2),
            },
        };
        let at = 100 + 10 * i as u64;
        let id = h.invoke_at(at - s.pre, i % 4, key.clone(), o.clone());
        let outcome = if s.fate == Fate::Lost {
            Outcome::Indeterminate
        } else {
            apply(&mut model, &key, &o)
        };
        match s.fate {
            Fate::Normal | Fate::Lost => h.complete_at(id, at + s.post, outcome),
            Fate::Hidden => h.complete_at(id, at + s.post, Outcome::Indeterminate),
            Fate::Pending => {}
        }
        if o == Op::Read && s.fate == Fate::Normal {
            reads.push(id);
        }
    }
    (h.records(), reads)
}

fn check_records_default(records: &[Record]) -> Result<(), CheckError> {
    check_records(records, &BTreeMap::new(), &Options::default())
}

/// A reference decision by brute force over every order consistent with
/// real time, on the sequential specification [`apply`] (not the checker's
/// compiled model), with all keys together: feasible for a handful of ops.
fn brute_force_linearizable(records: &[Record]) -> bool {
    struct Item<'a> {
        rec: &'a Record,
        /// `None`: indeterminate (may be left out).
        expect: Option<&'a Outcome>,
        completed: Option<u64>,
    }
    let items: Vec<Item> = records
        .iter()
        .filter(|r| r.outcome != Some(Outcome::NotApplied))
        .map(|r| match &r.outcome {
            Some(Outcome::Indeterminate) | None => Item {
                rec: r,
                expect: None,
                completed: None,
            },
            Some(o) => Item {
                rec: r,
                expect: Some(o),
                completed: r.completed,
            },
        })
        .collect();
    fn agrees(op: &Op, spec: &Outcome, recorded: &Outcome) -> bool {
        let normal = |o: &Outcome| match (op, o) {
            (Op::Read, Outcome::Failed(Failure::NoNode)) => Outcome::read_none(),
            (Op::Create(_), Outcome::Ok(Output::Version(0))) => Outcome::done(),
            _ => o.clone(),
        };
        match (normal(spec), normal(recorded)) {
            (Outcome::Ok(Output::Version(_)), Outcome::Ok(Output::Done)) => true,
            (a, b) => a == b,
        }
    }
    fn dfs(items: &[Item], done: &mut [bool], model: &HashMap<String, (Value, Version)>) -> bool {
        if items
            .iter()
            .zip(done.iter())
            .all(|(it, d)| *d || it.expect.is_none())
        {
            return true;
        }
        for i in 0..items.len() {
            if done[i] {
                continue;
            }
            let must_precede =
                |j: usize| !done[j] && items[j].completed.is_some_and(|c| c < items[i].rec.invoked);
            if (0..items.len()).any(must_precede) {
                continue;
            }
            let mut m = model.clone();
            let out = apply(&mut m, &items[i].rec.key, &items[i].rec.op);
            if let Some(expect) = items[i].expect {
                if !agrees(&items[i].rec.op, &out, expect) {
                    continue;
                }
            }
            done[i] = true;
            if dfs(items, done, &m) {
                return true;
            }
            done[i] = false;
        }
        false
    }
    dfs(&items, &mut vec![false; items.len()], &HashMap::new())
}

/// A plausible but arbitrary outcome for `op`.
fn arbitrary_outcome(op: &Op, choice: u8, n: u64) -> Outcome {
    let n = (n % 4) as Version;
    match (op, choice % 4) {
        (Op::Read, 0) => Outcome::read_none(),
        (Op::Read, c) => Outcome::read(format!("v{c}"), n),
        (Op::Write(_), 0) | (Op::Cas { .. }, 0) => Outcome::Failed(Failure::NoNode),
        (Op::Write(_), 1) | (Op::Cas { .. }, 1) => Outcome::done(),
        (Op::Cas { .. }, 2) => Outcome::Failed(Failure::BadVersion),
        (Op::Write(_), _) | (Op::Cas { .. }, _) => Outcome::version(n),
        (Op::Create(_), c) if c % 2 == 0 => Outcome::done(),
        (Op::Create(_), _) => Outcome::Failed(Failure::NodeExists),
        (Op::Delete { .. }, 0) => Outcome::Failed(Failure::NoNode),
        (
            Op::Delete {
                expected_version: Some(_),
            },
            1,
        ) => Outcome::Failed(Failure::BadVersion),
        (Op::Delete { .. }, _) => Outcome::done(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random histories, most not linearizable: the checker agrees with
    /// brute force both ways.
    #[test]
    fn the_checker_agrees_with_brute_force(
        specs in prop::collection::vec(spec(), 1..8),
        noise in prop::collection::vec((0..5u8, 0..4u8, 0..300u64, 0..100u64), 8),
    ) {
        let (mut records, _) = generate(&specs);
        for (r, &(what, choice, a, b)) in records.iter_mut().zip(&noise) {
            match what {
                0 if r.outcome.is_some() => r.outcome = Some(arbitrary_outcome(&r.op, choice, a)),
                1 => {
                    r.invoked = a;
                    r.completed = r.completed.map(|_| a + b);
                }
                _ => {}
            }
        }
        let expected = brute_force_linearizable(&records);
        match check_records_default(&records) {
            Ok(()) => prop_assert!(expected, "accepted, brute force rejects: {:#?}", records),
            Err(CheckError::Violation(v)) => {
                prop_assert!(!expected, "rejected, brute force accepts:\n{}\n{:#?}", v, records)
            }
            Err(CheckError::Undecided(u)) => panic!("{u}"),
        }
    }

    #[test]
    fn generated_linearizable_histories_are_accepted(
        specs in prop::collection::vec(spec(), 1..60),
    ) {
        let (records, _) = generate(&specs);
        if let Err(e) = check_records_default(&records) {
            panic!("rejected a linearizable history:\n{e}\n{records:#?}");
        }
    }

    #[test]
    fn a_read_of_a_never_written_value_is_always_rejected(
        specs in prop::collection::vec(spec(), 1..60),
        pick in any::<prop::sample::Index>(),
    ) {
        let (mut records, reads) = generate(&specs);
        prop_assume!(!reads.is_empty());
        let target = reads[pick.index(reads.len())];
        let r = &mut records[target.0];
        let version = match &r.outcome {
            Some(Outcome::Ok(Output::Read(Some((_, v))))) => *v,
            _ => 0,
        };
        r.outcome = Some(Outcome::read("never written", version));
        match check_records_default(&records) {
            Err(CheckError::Violation(v)) => {
                prop_assert_eq!(v.op.id, target, "{}", v);
                prop_assert!(v.hint.as_deref().unwrap_or("").contains("never written"));
            }
            other => panic!("expected a violation at {target:?}, got {other:?}"),
        }
    }
}

/// A long concurrent history: `clients` clients, each running operations
/// one after another on `keys` keys, each operation taking effect at a
/// random point inside its interval.
fn simulate(seed: u64, n: usize, keys: usize, clients: usize, unknown_pct: u32) -> Vec<Record> {
    let mut rng = StdRng::seed_from_u64(seed);
    // (invoked, linearization point, completed, client, key, op, fate)
    let mut planned = Vec::with_capacity(n);
    let mut clocks = vec![0u64; clients];
    for _ in 0..n {
        let c = rng.random_range(0..clients);
        let invoked = clocks[c] + rng.random_range(0..20_000);
        let completed = invoked + rng.random_range(1_000..100_000);
        let at = rng.random_range(invoked..=completed);
        clocks[c] = completed;
        let key = format!("/k{}", rng.random_range(0..keys));
        let value = format!("{c}.{}", planned.len());
        let o = match rng.random_range(0..100) {
            0..40 => Op::Read,
            40..65 => Op::write(value),
            65..90 => Op::cas(-1, value), // expected version filled in below
            90..95 => Op::create(value),
            _ => Op::delete(),
        };
        let fate = match rng.random_range(0..200) {
            f if f < unknown_pct => Fate::Hidden,
            f if f < 2 * unknown_pct => Fate::Lost,
            _ => Fate::Normal,
        };
        planned.push((invoked, at, completed, c, key, o, fate));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| planned[i].1);
    let mut model = HashMap::new();
    let mut outcomes = vec![None; n];
    for i in order {
        let (_, _, _, _, key, o, fate) = &mut planned[i];
        if let Op::Cas {
            expected_version, ..
        } = o
        {
            let cur = model
                .get(key.as_str())
                .map_or(0, |(_, v): &(Value, Version)| *v);
            *expected_version = if rng.random_bool(0.7) { cur } else { cur - 1 };
        }
        outcomes[i] = Some(match fate {
            Fate::Lost => Outcome::Indeterminate,
            Fate::Hidden => {
                apply(&mut model, key, o);
                Outcome::Indeterminate
            }
            _ => apply(&mut model, key, o),
        });
    }
    let h = History::new();
    for (i, (invoked, _, completed, c, key, o, _)) in planned.into_iter().enumerate() {
        let id = h.invoke_at(invoked, c, key, o);
        h.complete_at(id, completed, outcomes[i].take().unwrap());
    }
    h.records()
}

#[test]
fn ten_thousand_operations_are_checked_quickly() {
    let records = simulate(7, 10_000, 5, 5, 2);
    let start = Instant::now();
    check_records_default(&records).unwrap_or_else(|e| panic!("{e}"));
    let accept = start.elapsed();

    // One read in the middle made stale-proof wrong: always rejected, and
    // the report finds it.
    let mut bad = records.clone();
    let target = bad
        .iter()
        .skip(5_000)
        .find(|r| matches!(r.outcome, Some(Outcome::Ok(Output::Read(Some(_))))))
        .unwrap()
        .id;
    bad[target.0].outcome = Some(Outcome::read("never written", 1));
    let start = Instant::now();
    match check_records_default(&bad) {
        Err(CheckError::Violation(v)) => assert_eq!(v.op.id, target, "{v}"),
        other => panic!("expected a violation, got {other:?}"),
    }
    let reject = start.elapsed();
    eprintln!("10 000 ops: accepted in {accept:?}, rejected and explained in {reject:?}");
}

#[test]
fn the_report_shows_the_culprit_and_where_the_orders_end() {
    let h = History::new();
    created(&h, "/k", "a");
    op(
        &h,
        1,
        "/k",
        (10_000, 20_000),
        Op::write("b"),
        Outcome::version(1),
    );
    op(
        &h,
        3,
        "/k",
        (12_000, 90_000),
        Op::write("c"),
        Outcome::Indeterminate,
    );
    op(
        &h,
        2,
        "/k",
        (25_000, 26_000),
        Op::Read,
        Outcome::read("b", 1),
    );
    let stale = op(
        &h,
        2,
        "/k",
        (30_000, 40_000),
        Op::Read,
        Outcome::read("a", 0),
    );
    op(
        &h,
        1,
        "/k",
        (50_000, 60_000),
        Op::write("c"),
        Outcome::version(2),
    );
    let v = violation(&h);
    assert_eq!(v.op.id, stale);
    assert_eq!(v.prefix_ops, 5);
    let mut ends = v.end_states.clone();
    ends.sort();
    // "c" is never read, so its data is not told apart.
    assert_eq!(ends, vec!["\"b\" v1", "(unread) v2"]);
    let ids: Vec<usize> = v.related.iter().map(|r| r.id.0).collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    let text = v.to_string();
    for want in [
        "key \"/k\"",
        "=> #4 client 2 [30.000µs, 40.000µs] Read -> \"a\" v0",
        "\"b\" v1",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}
