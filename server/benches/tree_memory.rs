//! The tree's memory and snapshot costs at scale, without a server:
//! heap bytes per znode (a counting allocator), snapshot size, and the
//! time to encode and decode it (most of a restart).
//!
//!     cargo bench -p warden-server --bench tree_memory -- [NODES] [VALUE_BYTES]
//!
//! Defaults: 914 400 nodes of 100 bytes, laid out as `zk_bench --populate`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use warden_server::bench::Populated;

/// Counts the bytes the program holds on the heap.
struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_add(new_size, Ordering::Relaxed);
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes glibc's allocator has handed out, its own overhead included
/// (what the process's RSS pays for the heap).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn malloc_in_use() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2().uordblks }
}

/// Not known outside glibc: reported as 0.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_in_use() -> usize {
    0
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let nodes: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(914_400);
    let value: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100);
    let before = HELD.load(Ordering::Relaxed);
    let malloc_before = malloc_in_use();
    let started = Instant::now();
    let tree = Populated::new(nodes, value);
    let built = started.elapsed();
    let heap = HELD.load(Ordering::Relaxed) - before;
    let malloc = malloc_in_use().saturating_sub(malloc_before);
    let n = tree.node_count();
    println!(
        "tree: {n} znodes of {value} B, built in {:.2} s; heap {:.1} MB = {:.0} B per znode asked for, {:.0} B with the allocator's overhead (data {value} B)",
        built.as_secs_f64(),
        heap as f64 / 1e6,
        heap as f64 / n as f64,
        malloc as f64 / n as f64
    );
    let hash = tree.state_hash();
    let t = Instant::now();
    let bytes = tree.encode();
    let encoded = t.elapsed();
    drop(tree);
    let held = HELD.load(Ordering::Relaxed);
    let malloc_held = malloc_in_use();
    let t = Instant::now();
    let back = Populated::decode(&bytes);
    let decoded = t.elapsed();
    let restarted = HELD.load(Ordering::Relaxed).saturating_sub(held);
    let malloc_restarted = malloc_in_use().saturating_sub(malloc_held);
    assert_eq!(back.state_hash(), hash, "the snapshot reads back the same");
    println!(
        "snapshot: {:.1} MB ({:.0} B per znode), encoded in {:.2} s, decoded (indexes rebuilt) in {:.2} s",
        bytes.len() as f64 / 1e6,
        bytes.len() as f64 / n as f64,
        encoded.as_secs_f64(),
        decoded.as_secs_f64()
    );
    println!(
        "read back from the snapshot (as at a restart): {:.0} B per znode asked for, {:.0} B with the allocator's overhead",
        restarted as f64 / n as f64,
        malloc_restarted as f64 / n as f64
    );
    println!(
        "RESULT heap_bytes_per_znode={:.0} malloc_bytes_per_znode={:.0} snapshot_bytes_per_znode={:.0} encode_s={:.3} decode_s={:.3}",
        heap as f64 / n as f64,
        malloc as f64 / n as f64,
        bytes.len() as f64 / n as f64,
        encoded.as_secs_f64(),
        decoded.as_secs_f64()
    );
}
