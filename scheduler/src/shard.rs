//! Shard strategies: which live member runs which items of a sharded fire.
//!
//! Pure functions of (items, members, the previous assignment). The leader
//! calls [`assign`] once per fire, at fire time, and stores the result with
//! the fire; a fire's split never changes after it is decided (resharding
//! happens between fires only).
//!
//! *Sticky*: `average` and `round-robin` first compute how many items each
//! member should hold, then let every member keep as many of its previous
//! items as that allows, and hand out only the rest. So 10 items on 3
//! members are 4/3/3; when one dies its 3 items are spread over the other
//! two (5/5) and nothing else moves; when members join, only the surplus of
//! the existing members moves to them. `hash` (rendezvous hashing) needs no
//! memory: an item moves only when its member leaves or a new member
//! out-hashes it.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::ShardStrategy;

/// member id → the items it runs in one fire.
pub type Assignment = BTreeMap<String, Vec<String>>;

/// Splits `items` over `members` by `strategy`, keeping what `previous`
/// allows. Members with no item are left out of the result; no members →
/// empty assignment. `job` seeds the round-robin rotation and the hash.
pub fn assign(
    strategy: ShardStrategy,
    job: &str,
    items: &[String],
    members: &[String],
    previous: &Assignment,
) -> Assignment {
    let mut order: Vec<String> = members
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .cloned()
        .collect();
    if order.is_empty() || items.is_empty() {
        return Assignment::new();
    }
    match strategy {
        ShardStrategy::Average => sticky_even(items, &order, previous),
        ShardStrategy::RoundRobin => {
            let start = (stable_hash(&[job]) % order.len() as u64) as usize;
            order.rotate_left(start);
            sticky_even(items, &order, previous)
        }
        ShardStrategy::Hash => rendezvous(job, items, &order),
    }
}

/// An even split where the first `n % m` members of `order` (or those
/// already holding the most) take one more, keeping previous items.
fn sticky_even(items: &[String], order: &[String], previous: &Assignment) -> Assignment {
    let n = items.len();
    let m = order.len();
    let valid: BTreeSet<&String> = items.iter().collect();
    // What each member still holds from last time (each item once).
    let mut taken: BTreeSet<&String> = BTreeSet::new();
    let mut held: Vec<Vec<String>> = Vec::with_capacity(m);
    for member in order {
        let mut mine = Vec::new();
        if let Some(prev) = previous.get(member) {
            for item in prev {
                if let Some(v) = valid.get(item) {
                    if taken.insert(v) {
                        mine.push(item.clone());
                    }
                }
            }
        }
        held.push(mine);
    }
    // Targets: base each; the `extra` largest holders (ties by order) get +1.
    let (base, extra) = (n / m, n % m);
    let mut rank: Vec<usize> = (0..m).collect();
    rank.sort_by_key(|&i| (std::cmp::Reverse(held[i].len().min(base + 1)), i));
    let mut target = vec![base; m];
    for &i in rank.iter().take(extra) {
        target[i] += 1;
    }
    let mut kept: BTreeSet<String> = BTreeSet::new();
    for (i, mine) in held.iter_mut().enumerate() {
        mine.truncate(target[i]);
        kept.extend(mine.iter().cloned());
    }
    let mut pool = items.iter().filter(|i| !kept.contains(*i));
    for (i, mine) in held.iter_mut().enumerate() {
        while mine.len() < target[i] {
            match pool.next() {
                Some(item) => mine.push(item.clone()),
                None => break,
            }
        }
    }
    let position: BTreeMap<&String, usize> =
        items.iter().enumerate().map(|(i, s)| (s, i)).collect();
    order
        .iter()
        .zip(held)
        .filter(|(_, mine)| !mine.is_empty())
        .map(|(member, mut mine)| {
            mine.sort_by_key(|s| position.get(s).copied().unwrap_or(usize::MAX));
            (member.clone(), mine)
        })
        .collect()
}

/// Highest-random-weight hashing: each item goes to the member with the
/// largest hash(job, item, member).
fn rendezvous(job: &str, items: &[String], order: &[String]) -> Assignment {
    let mut out = Assignment::new();
    for item in items {
        let best = order
            .iter()
            .max_by_key(|m| (stable_hash(&[job, item, m]), std::cmp::Reverse(*m)))
            .expect("members are not empty");
        out.entry(best.clone()).or_default().push(item.clone());
    }
    out
}

/// FNV-1a with a final mix: stable across builds and machines (every
/// leader must compute the same split).
fn stable_hash(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0xff)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<String> {
        (0..n).map(|i| i.to_string()).collect()
    }
    fn names(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }
    fn sizes(a: &Assignment) -> Vec<usize> {
        a.values().map(|v| v.len()).collect()
    }
    fn all_once(a: &Assignment, n: usize) {
        let mut seen: Vec<String> = a.values().flatten().cloned().collect();
        seen.sort_by_key(|s| s.parse::<usize>().unwrap());
        assert_eq!(seen, items(n), "every item exactly once: {a:?}");
    }
    /// Items that changed member between two assignments.
    fn moved(before: &Assignment, after: &Assignment) -> usize {
        let owner = |a: &Assignment, item: &String| {
            a.iter()
                .find(|(_, v)| v.contains(item))
                .map(|(m, _)| m.clone())
        };
        before
            .values()
            .flatten()
            .filter(|i| owner(before, i) != owner(after, i))
            .count()
    }

    #[test]
    fn average_is_sticky_4_3_3_then_5_5_then_2x5() {
        let it = items(10);
        let s = ShardStrategy::Average;
        let a1 = assign(s, "job", &it, &names(&["a", "b", "c"]), &Assignment::new());
        assert_eq!(sizes(&a1), vec![4, 3, 3]);
        all_once(&a1, 10);
        // c dies: only its 3 items move.
        let a2 = assign(s, "job", &it, &names(&["a", "b"]), &a1);
        assert_eq!(sizes(&a2), vec![5, 5]);
        all_once(&a2, 10);
        assert_eq!(moved(&a1, &a2), 3);
        for item in &a1["a"] {
            assert!(a2["a"].contains(item));
        }
        // c comes back and two join: 2 each; a and b keep 2 of theirs.
        let five = names(&["a", "b", "c", "d", "e"]);
        let a3 = assign(s, "job", &it, &five, &a2);
        assert_eq!(sizes(&a3), vec![2, 2, 2, 2, 2]);
        all_once(&a3, 10);
        assert_eq!(moved(&a2, &a3), 6);
        // Nothing changes when nothing changed.
        assert_eq!(assign(s, "job", &it, &five, &a3), a3);
    }

    #[test]
    fn two_join_three_gives_2x5_and_only_surplus_moves() {
        let it = items(10);
        let s = ShardStrategy::Average;
        let a1 = assign(s, "j", &it, &names(&["a", "b", "c"]), &Assignment::new());
        let a2 = assign(s, "j", &it, &names(&["a", "b", "c", "d", "e"]), &a1);
        assert_eq!(sizes(&a2), vec![2, 2, 2, 2, 2]);
        assert_eq!(moved(&a1, &a2), 4);
    }

    #[test]
    fn round_robin_rotates_by_job_and_stays_even() {
        let it = items(10);
        let m = names(&["a", "b", "c"]);
        let mut firsts = BTreeSet::new();
        for job in ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"] {
            let a = assign(ShardStrategy::RoundRobin, job, &it, &m, &Assignment::new());
            all_once(&a, 10);
            let mut s = sizes(&a);
            s.sort();
            assert_eq!(s, vec![3, 3, 4]);
            firsts.extend(
                a.iter()
                    .filter(|(_, v)| v.len() == 4)
                    .map(|(k, _)| k.clone()),
            );
        }
        assert!(
            firsts.len() > 1,
            "the larger share should rotate: {firsts:?}"
        );
    }

    #[test]
    fn hash_moves_only_the_leavers_items() {
        let it = items(50);
        let s = ShardStrategy::Hash;
        let a1 = assign(s, "j", &it, &names(&["a", "b", "c"]), &Assignment::new());
        all_once(&a1, 50);
        let a2 = assign(s, "j", &it, &names(&["a", "b"]), &a1);
        all_once(&a2, 50);
        assert_eq!(moved(&a1, &a2), a1.get("c").map_or(0, |v| v.len()));
    }

    #[test]
    fn edge_cases() {
        let s = ShardStrategy::Average;
        assert!(assign(s, "j", &items(3), &[], &Assignment::new()).is_empty());
        let a = assign(
            s,
            "j",
            &items(2),
            &names(&["a", "b", "c"]),
            &Assignment::new(),
        );
        assert_eq!(sizes(&a), vec![1, 1]);
        // A previous assignment naming unknown items or duplicates is cleaned up.
        let mut prev = Assignment::new();
        prev.insert("a".into(), names(&["0", "0", "zz"]));
        prev.insert("b".into(), names(&["0", "1"]));
        let a = assign(s, "j", &items(2), &names(&["a", "b"]), &prev);
        all_once(&a, 2);
        assert_eq!(a["a"], names(&["0"]));
    }
}
