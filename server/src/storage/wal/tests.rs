use std::path::Path;

use super::*;

fn payload(i: u64) -> Vec<u8> {
    format!("entry {i} {}", "x".repeat((i % 7) as usize * 10)).into_bytes()
}

fn open(dir: &Path, purged: Option<u64>, seg: u64) -> Wal {
    Wal::open(dir, purged, Durability::default(), seg).expect("open")
}

fn append_range(w: &mut Wal, range: std::ops::Range<u64>) {
    w.append(range.map(|i| (i, payload(i)))).expect("append");
    w.take_sync_job().run().expect("sync");
}

fn assert_holds(w: &Wal, range: std::ops::RangeInclusive<u64>) {
    assert_eq!(w.first_index(), *range.start(), "first index");
    assert_eq!(w.last_index(), Some(*range.end()), "last index");
    for i in range {
        assert_eq!(w.read(i).expect("read"), payload(i), "entry {i}");
    }
}

/// Where a segment's records end: its zeros allocated ahead excluded.
fn written(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1)
}

fn segments(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

#[test]
fn appends_survive_a_reopen_across_segments() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = open(&dir, None, 512);
    append_range(&mut w, 0..40);
    append_range(&mut w, 40..41);
    assert!(segments(&dir).len() > 3, "{:?}", segments(&dir));
    drop(w);
    let w = open(&dir, None, 512);
    assert_eq!(w.torn_tail(), None);
    assert_holds(&w, 0..=40);
    assert_eq!(w.next_index(), 41);
}

#[test]
fn an_append_out_of_sequence_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = open(tmp.path(), None, 1 << 20);
    append_range(&mut w, 0..3);
    let err = w.append([(5, payload(5))]).unwrap_err();
    assert!(
        matches!(err, StorageError::Sequence { index: 5, want: 3 }),
        "{err}"
    );
    assert_holds(&w, 0..=2);
}

#[test]
fn a_torn_tail_is_reported_then_cut_and_the_log_goes_on() {
    for cut in [1u64, 7, 16, 20] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let mut w = open(&dir, None, 1 << 20);
        append_range(&mut w, 0..10);
        drop(w);
        let seg = dir.join(segment_name(0));
        let len = written(&std::fs::read(&seg).unwrap()) as u64;
        // Half of the last record (or its header) never reached the disk.
        let f = OpenOptions::new().write(true).open(&seg).unwrap();
        let last_len = HEADER as u64 + payload(9).len() as u64;
        f.set_len(len - last_len + cut.min(last_len - 1)).unwrap();
        drop(f);

        let mut w = open(&dir, None, 1 << 20);
        let torn = w.torn_tail().cloned().expect("a torn tail");
        assert_eq!(torn.offset, len - last_len, "cut {cut}");
        assert_eq!(w.last_index(), Some(8));
        assert_eq!(w.finish_recovery().unwrap(), Some(torn));
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), len - last_len);
        append_range(&mut w, 9..12);
        drop(w);
        let w = open(&dir, None, 1 << 20);
        assert_eq!(w.torn_tail(), None);
        assert_holds(&w, 0..=11);
    }
}

#[test]
fn zeros_allocated_ahead_end_the_records_and_a_torn_write_into_them_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = open(&dir, None, 1 << 20);
    append_range(&mut w, 0..10);
    drop(w);
    let seg = dir.join(segment_name(0));
    let bytes = std::fs::read(&seg).unwrap();
    let end = written(&bytes);
    assert!(
        bytes.len() > end,
        "the segment was not extended ahead: {} bytes, records end at {end}",
        bytes.len()
    );
    let w = open(&dir, None, 1 << 20);
    assert_eq!(w.torn_tail(), None, "zeros after the records are no damage");
    assert_holds(&w, 0..=9);
    drop(w);

    // Half a record written into the zeros before the power went.
    let mut bytes = bytes;
    let mut rec = Vec::new();
    record(10, &payload(10), &mut rec).unwrap();
    bytes[end..end + rec.len() / 2].copy_from_slice(&rec[..rec.len() / 2]);
    std::fs::write(&seg, &bytes).unwrap();
    let mut w = open(&dir, None, 1 << 20);
    let torn = w.torn_tail().cloned().expect("a torn tail");
    assert_eq!(torn.offset, end as u64);
    assert_eq!(torn.dropped_bytes, (rec.len() / 2) as u64);
    w.finish_recovery().unwrap();
    append_range(&mut w, 10..12);
    drop(w);
    let w = open(&dir, None, 1 << 20);
    assert_eq!(w.torn_tail(), None);
    assert_holds(&w, 0..=11);
}

#[test]
fn a_garbage_tail_and_empty_later_segments_are_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = open(&dir, None, 256);
    append_range(&mut w, 0..20);
    drop(w);
    let names = segments(&dir);
    let last = dir.join(names.last().unwrap());
    let mut bytes = std::fs::read(&last).unwrap();
    let n = written(&bytes);
    bytes[n - 3] ^= 0xff;
    std::fs::write(&last, &bytes).unwrap();
    // A segment created just before the cut, never written.
    std::fs::write(dir.join(segment_name(20)), b"").unwrap();
    std::fs::write(dir.join(segment_name(21)), [0u8; 40]).unwrap();

    let mut w = open(&dir, None, 256);
    let torn = w.torn_tail().cloned().expect("torn");
    assert!(torn.reason.contains("checksum"), "{torn:?}");
    assert_eq!(torn.later_segments.len(), 2);
    assert_eq!(w.last_index(), Some(18));
    w.finish_recovery().unwrap();
    assert_eq!(segments(&dir), names);
    append_range(&mut w, 19..25);
    drop(w);
    assert_holds(&open(&dir, None, 256), 0..=24);
}

#[test]
fn a_bad_record_with_good_records_after_it_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = open(&dir, None, 256);
    append_range(&mut w, 0..20);
    drop(w);
    let first = dir.join(segment_name(0));
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[HEADER + 2] ^= 1;
    std::fs::write(&first, &bytes).unwrap();
    match Wal::open(&dir, None, Durability::default(), 256) {
        Err(StorageError::Corrupt(why)) => assert!(why.contains("after it"), "{why}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a damaged log opened"),
    }
    // Same inside one segment: a bad record, then good ones.
    let tmp = tempfile::tempdir().unwrap();
    let mut w = open(tmp.path(), None, 1 << 20);
    append_range(&mut w, 0..5);
    drop(w);
    let seg = tmp.path().join(segment_name(0));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[HEADER + 2] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    // Within one segment the rest cannot be parsed past a bad length, so it
    // is a torn tail at the bad record; the caller's watermark catches it.
    let w = open(tmp.path(), None, 1 << 20);
    assert_eq!(w.torn_tail().map(|t| t.offset), Some(0));
    assert_eq!(w.last_index(), None);
}

#[test]
fn a_gap_between_segments_is_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = open(&dir, None, 256);
    append_range(&mut w, 0..30);
    drop(w);
    let names = segments(&dir);
    std::fs::remove_file(dir.join(&names[1])).unwrap();
    match Wal::open(&dir, None, Durability::default(), 256) {
        Err(StorageError::Gap(why)) => assert!(why.contains("jumps"), "{why}"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a log with a gap opened"),
    }
}

#[test]
fn read_checks_the_record() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = open(tmp.path(), None, 1 << 20);
    append_range(&mut w, 0..3);
    let seg = tmp.path().join(segment_name(0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = written(&bytes);
    bytes[n - 1] ^= 1;
    std::fs::write(&seg, &bytes).unwrap();
    assert!(matches!(w.read(2), Err(StorageError::Corrupt(_))));
    assert!(matches!(w.read(3), Err(StorageError::Missing(3))));
    assert_eq!(w.read(1).unwrap(), payload(1));
}

#[test]
fn truncate_removes_the_suffix_durably_across_segments() {
    for at in [0u64, 5, 13, 29] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        let mut w = open(&dir, None, 256);
        append_range(&mut w, 0..30);
        w.truncate(at).unwrap();
        assert_eq!(w.next_index(), at);
        append_range(&mut w, at..at + 4);
        drop(w);
        let w = open(&dir, None, 256);
        assert_eq!(w.torn_tail(), None, "truncate at {at}");
        assert_holds(&w, 0..=at + 3);
    }
}

#[test]
fn purge_removes_whole_segments_and_a_restart_finishes_an_interrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = open(&dir, None, 256);
    append_range(&mut w, 0..30);
    let before = segments(&dir);
    w.purge(17).unwrap();
    let after = segments(&dir);
    assert!(after.len() < before.len(), "{before:?} → {after:?}");
    assert!(w.read(17).is_err());
    assert_holds(&w, 18..=29);
    drop(w);
    let w = open(&dir, Some(17), 256);
    assert_holds(&w, 18..=29);

    // A crash after the purge point was recorded, before segments went:
    // the old segments are back, their entries are skipped and removed.
    let tmp2 = tempfile::tempdir().unwrap();
    let dir2 = tmp2.path().join("log");
    let mut w = open(&dir2, None, 256);
    append_range(&mut w, 0..30);
    drop(w);
    let mut w = open(&dir2, Some(17), 256);
    assert_holds(&w, 18..=29);
    w.finish_recovery().unwrap();
    assert_eq!(segments(&dir2), after);
}

#[test]
fn the_log_restarts_after_a_purge_beyond_its_end() {
    // A follower that installs a snapshot ahead of its log.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = open(&dir, None, 1 << 20);
    append_range(&mut w, 0..5);
    w.purge(99).unwrap();
    assert_eq!(w.last_index(), None);
    assert_eq!(w.next_index(), 100);
    append_range(&mut w, 100..103);
    drop(w);
    let w = open(&dir, Some(99), 1 << 20);
    assert_eq!(w.torn_tail(), None);
    assert_holds(&w, 100..=102);
}

#[test]
fn a_sync_job_covers_every_segment_written_since_the_last() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = open(tmp.path(), None, 128);
    w.append((0..10).map(|i| (i, payload(i)))).unwrap();
    let job = w.take_sync_job();
    assert!(job.files.len() > 1, "{} files", job.files.len());
    assert!(job.dir.is_some(), "new segments need a directory sync");
    job.run().unwrap();
    let job = w.take_sync_job();
    assert!(job.files.is_empty() && job.dir.is_none());
}

#[test]
fn a_fresh_log_starts_where_its_first_append_does() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = open(tmp.path(), None, 1 << 20);
    append_range(&mut w, 1..4);
    assert_holds(&w, 1..=3);
    assert!(matches!(
        w.append([(9, payload(9))]),
        Err(StorageError::Sequence { index: 9, want: 4 })
    ));
    drop(w);
    let mut w = open(tmp.path(), None, 1 << 20);
    assert_holds(&w, 1..=3);
    // Only a fresh log: once it holds entries, appends follow them (or
    // replace them).
    assert!(w.append([(0, payload(0))]).is_err());
}

#[test]
fn an_append_at_a_held_index_replaces_the_suffix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let mut w = open(&dir, None, 256);
    append_range(&mut w, 0..30);
    w.append([(12, b"other".to_vec())]).unwrap();
    w.take_sync_job().run().unwrap();
    assert_eq!(w.last_index(), Some(12));
    assert_eq!(w.read(12).unwrap(), b"other");
    drop(w);
    let w = open(&dir, None, 256);
    assert_eq!(w.torn_tail(), None);
    assert_eq!(w.read(12).unwrap(), b"other");
    assert_eq!(w.read(11).unwrap(), payload(11));
}
