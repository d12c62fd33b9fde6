//! The data recipes end to end against a real server (100 ms ticks): the
//! distributed queue, the node and tree caches, the persistent ephemeral
//! node and the service registry, with faults injected by dropping a
//! client, cutting connections and stalling them (`warden_tests::proxy::Proxy`)
//! past the session timeout.
//!
//! Each test records what happened, then checks the record. None sleeps
//! to let something happen: each waits for the state it needs with a
//! generous deadline.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};
use warden_client::recipes::{
    DistributedQueue, EphemeralMode, Instance, NodeCache, PersistentEphemeralNode, ServiceRegistry,
    TreeCache, TreeEvent,
};
use warden_client::{Client, ConnectionState, CreateMode, ErrorCode};
use warden_tests::proxy::Proxy;
use warden_tests::{wait_until, within, InProcServer, ServerOpts, PHASE};

use crate::client;

/// The session timeout of the clients whose sessions a test kills.
const SHORT: Duration = Duration::from_secs(1);
/// The session timeout of everyone else.
const LONG: Duration = Duration::from_secs(4);

fn server() -> InProcServer {
    InProcServer::start_with(ServerOpts {
        tick_ms: 100,
        ..Default::default()
    })
}

// ----- queue -------------------------------------------------------------

/// What the consumers did, by payload.
#[derive(Default)]
struct QueueRecord {
    /// Every time a consumer was handed the payload (processing began).
    processed: HashMap<String, Vec<&'static str>>,
    /// Every successful acknowledgement.
    acked: HashMap<String, usize>,
}

/// Takes, processes and acknowledges items until `stop`.
async fn consume(
    name: &'static str,
    queue: DistributedQueue,
    record: Arc<Mutex<QueueRecord>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let item = tokio::select! {
            item = queue.take() => item,
            _ = stop.wait_for(|s| *s) => return,
        };
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                // A fault elsewhere; go on (the deadline guards the test).
                eprintln!("{name}: take failed: {e}");
                continue;
            }
        };
        let payload = String::from_utf8_lossy(item.data()).into_owned();
        record
            .lock()
            .processed
            .entry(payload.clone())
            .or_default()
            .push(name);
        match item.ack().await {
            Ok(()) => *record.lock().acked.entry(payload).or_insert(0) += 1,
            Err(e) => eprintln!("{name}: ack of {payload} failed: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_loses_nothing_when_a_consumer_dies_mid_processing() {
    let server = server();
    let addr = server.addr();
    let proxy = Proxy::start(([127, 0, 0, 1], server.port()).into());
    let path = "/work/queue";
    let record = Arc::new(Mutex::new(QueueRecord::default()));
    let (stop, stop_rx) = watch::channel(false);

    // The doomed consumer, on a short session behind the proxy: it
    // processes a few items normally, then hangs in the middle of one.
    let doomed = client(&proxy.addr().to_string(), SHORT).await;
    let (midway_tx, mut midway) = mpsc::unbounded_channel::<String>();
    let doomed_task = {
        let queue = DistributedQueue::new(&doomed, path);
        let record = record.clone();
        tokio::spawn(async move {
            let mut done = 0;
            loop {
                let Ok(item) = queue.take().await else {
                    continue;
                };
                let payload = String::from_utf8_lossy(item.data()).into_owned();
                record
                    .lock()
                    .processed
                    .entry(payload.clone())
                    .or_default()
                    .push("doomed");
                if done == 3 {
                    let _ = midway_tx.send(payload.clone());
                    // Never finishes: the process "dies" here.
                    futures::future::pending::<()>().await;
                }
                if item.ack().await.is_ok() {
                    *record.lock().acked.entry(payload).or_insert(0) += 1;
                }
                done += 1;
            }
        })
    };

    // Three producers, 50 items each, all at once.
    let mut producers = Vec::new();
    for p in 0..3 {
        let c = client(&addr, LONG).await;
        producers.push(tokio::spawn(async move {
            let queue = DistributedQueue::new(&c, path);
            for n in 0..50 {
                queue.put(format!("p{p}-{n:02}")).await.expect("put");
            }
            c.close().await.expect("close a producer");
        }));
    }

    // The doomed consumer is midway through an item: it dies. Its client is
    // dropped without closing, behind a stalled line, so its session (and
    // the claim on that item) must expire on the server.
    let stuck = within(PHASE, "the doomed consumer to get midway", midway.recv())
        .await
        .expect("a payload");
    proxy.mute();
    doomed_task.abort();
    let _ = doomed_task.await;
    drop(doomed);

    // Two healthy consumers, started only now, so the doomed one surely got
    // its four items (with them running it could lose every race for one).
    let mut consumers = Vec::new();
    let mut clients = Vec::new();
    for name in ["c1", "c2"] {
        let c = client(&addr, LONG).await;
        consumers.push(tokio::spawn(consume(
            name,
            DistributedQueue::new(&c, path),
            record.clone(),
            stop_rx.clone(),
        )));
        clients.push(c);
    }

    for p in producers {
        within(PHASE, "a producer to finish", p)
            .await
            .expect("producer");
    }
    let all: Vec<String> = (0..3)
        .flat_map(|p| (0..50).map(move |n| format!("p{p}-{n:02}")))
        .collect();
    let observer = client(&addr, LONG).await;
    let queue = DistributedQueue::new(&observer, path);
    wait_until("every item to be acknowledged", PHASE, || async {
        record.lock().acked.len() == all.len()
    })
    .await;
    wait_until("the queue to be empty", PHASE, || async {
        queue.is_empty().await.unwrap_or(false)
    })
    .await;
    stop.send_replace(true);
    for c in consumers {
        within(PHASE, "a consumer to stop", c)
            .await
            .expect("consumer");
    }

    let record = std::mem::take(&mut *record.lock());
    for payload in &all {
        let seen = record.processed.get(payload).map(Vec::len).unwrap_or(0);
        assert!(seen >= 1, "{payload} was never processed");
        assert_eq!(
            record.acked.get(payload).copied(),
            Some(1),
            "{payload} must be removed exactly once"
        );
    }
    assert_eq!(record.acked.len(), all.len(), "no stray items");
    let redelivered = &record.processed[&stuck];
    assert!(
        redelivered.len() >= 2 && redelivered[0] == "doomed",
        "the item the dead consumer held is processed again by another: {redelivered:?}"
    );
    // No claim is left behind (a consumer stopped midway hands its claim
    // back in the background).
    wait_until("every claim to be gone", PHASE, || async {
        match observer.get_children(&format!("{path}/claims")).await {
            Ok(claims) => claims.is_empty(),
            Err(e) => e.code() == ErrorCode::NoNode,
        }
    })
    .await;
    for c in clients.iter().chain([&observer]) {
        c.close().await.expect("close");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_hands_out_items_in_order_and_takes_back_released_ones() {
    let server = server();
    let c = client(&server.addr(), LONG).await;
    let queue = DistributedQueue::new(&c, "/q/ordered");
    assert!(queue.try_take().await.expect("try_take").is_none());
    assert!(queue
        .take_timeout(Duration::from_millis(50))
        .await
        .expect("take_timeout")
        .is_none());
    for n in 0..5 {
        queue.put(format!("{n}")).await.expect("put");
    }
    // Held items are skipped; released ones come back first.
    let first = queue.take().await.expect("take");
    let second = queue.take().await.expect("take");
    assert_eq!((first.data(), second.data()), (&b"0"[..], &b"1"[..]));
    assert!(first.sequence() < second.sequence());
    first.release().await.expect("release");
    let again = queue.take().await.expect("take");
    assert_eq!(again.data(), b"0");
    again.ack().await.expect("ack");
    second.ack().await.expect("ack");
    // A dropped item is handed back too.
    drop(queue.take().await.expect("take"));
    let mut rest = Vec::new();
    while rest.len() < 3 {
        let out = within(
            PHASE,
            "take_with",
            queue.take_with(|data| async move { String::from_utf8(data).unwrap() }),
        )
        .await
        .expect("take_with");
        rest.push(out);
    }
    assert_eq!(rest, vec!["2", "3", "4"]);
    assert!(queue.is_empty().await.expect("is_empty"));
    // A waiting consumer wakes for a new item.
    let waiter = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.take().await.map(|i| i.data().to_vec()) })
    };
    queue.put("late").await.expect("put");
    let got = within(PHASE, "the waiter", waiter).await.expect("join");
    assert_eq!(got.expect("take"), b"late");
    c.close().await.expect("close");
}

// ----- node cache --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cache_follows_every_set_in_order_and_misses_no_last_update() {
    let server = server();
    let writer = client(&server.addr(), LONG).await;
    let reader = client(&server.addr(), LONG).await;
    writer
        .create("/cfg", "init", CreateMode::Persistent)
        .await
        .expect("create");
    let reader_states = Arc::new(Mutex::new(Vec::new()));
    {
        let mut changes = reader.state_changes();
        let sink = reader_states.clone();
        tokio::spawn(async move {
            while let Some(s) = changes.next().await {
                sink.lock().push(s);
            }
        });
    }
    let cache = NodeCache::start(&reader, "/cfg").await.expect("cache");
    assert_eq!(cache.current().expect("cached").data, b"init");

    // Record every value the cache publishes.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = {
        let mut changes = cache.changes();
        let seen = seen.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let node = changes.borrow_and_update().clone();
                seen.lock().push(node);
            }
        })
    };

    const SETS: i32 = 200;
    for n in 0..SETS {
        writer
            .set_data("/cfg", format!("{n}"), None)
            .await
            .expect("set");
    }
    let deadline = std::time::Instant::now() + PHASE;
    while cache.current().map(|n| n.data) != Some(format!("{}", SETS - 1).into_bytes()) {
        if std::time::Instant::now() > deadline {
            let actual = writer.get_data("/cfg").await.expect("read");
            panic!(
                "the cache holds {:?} (v{:?}); the store has v{}; reader states {:?}; reader zxid {}",
                cache.current().map(|n| String::from_utf8_lossy(&n.data).into_owned()),
                cache.current().map(|n| n.stat.version),
                actual.1.version,
                reader_states.lock(),
                reader.last_zxid(),
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A subscriber sees the last update too.
    wait_until("the recorder to see the last value", PHASE, || async {
        let seen = seen.lock();
        matches!(seen.last(), Some(Some(n)) if n.stat.version == SETS)
    })
    .await;

    // Gone, then back.
    writer.delete("/cfg", None).await.expect("delete");
    wait_until("the cache to see the delete", PHASE, || async {
        cache.current().is_none()
    })
    .await;
    writer
        .create("/cfg", "reborn", CreateMode::Persistent)
        .await
        .expect("re-create");
    wait_until("the cache to see the re-creation", PHASE, || async {
        cache.current().map(|n| n.data) == Some(b"reborn".to_vec())
    })
    .await;
    drop(cache);
    let _ = recorder.await;

    // Check the record: in order, each value matching its version.
    let seen = std::mem::take(&mut *seen.lock());
    let sets: Vec<_> = seen.iter().take_while(|n| n.is_some()).flatten().collect();
    assert!(!sets.is_empty());
    for pair in sets.windows(2) {
        assert!(
            pair[0].stat.version < pair[1].stat.version,
            "out of order: v{} then v{}",
            pair[0].stat.version,
            pair[1].stat.version
        );
    }
    for node in &sets {
        let expected = format!("{}", node.stat.version - 1);
        assert_eq!(
            String::from_utf8_lossy(&node.data),
            expected,
            "value and version agree"
        );
    }
    assert_eq!(sets.last().expect("a set").stat.version, SETS);
    let tail: Vec<Option<Vec<u8>>> = seen[sets.len()..]
        .iter()
        .map(|n| n.as_ref().map(|n| n.data.clone()))
        .collect();
    // The delete may be coalesced with the re-creation by a slow recorder,
    // but the last state is never missed.
    assert_eq!(tail.last(), Some(&Some(b"reborn".to_vec())), "{tail:?}");
    assert!(
        tail.iter()
            .all(|t| t.is_none() || t.as_deref() == Some(&b"reborn"[..])),
        "{tail:?}"
    );
    for c in [&writer, &reader] {
        c.close().await.expect("close");
    }
}

// ----- tree cache --------------------------------------------------------

/// The subtree at `root` as the store has it: path → data.
async fn store_tree(c: &Client, root: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_string()];
    while let Some(path) = todo.pop() {
        let Ok((data, _)) = c.get_data(&path).await else {
            continue;
        };
        out.insert(path.clone(), data);
        for child in c.get_children(&path).await.unwrap_or_default() {
            todo.push(format!("{path}/{child}"));
        }
    }
    out
}

fn cached_tree(cache: &TreeCache) -> BTreeMap<String, Vec<u8>> {
    cache
        .snapshot()
        .into_iter()
        .map(|(path, node)| (path, node.data))
        .collect()
}

async fn wait_mirrored(what: &str, cache: &TreeCache, writer: &Client, root: &str) {
    wait_until(what, PHASE, || async {
        cached_tree(cache) == store_tree(writer, root).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_cache_mirrors_a_subtree_through_changes_and_a_cut() {
    let server = server();
    let proxy = Proxy::start(([127, 0, 0, 1], server.port()).into());
    let writer = client(&server.addr(), LONG).await;
    let reader = client(&proxy.addr().to_string(), LONG).await;
    for (path, data) in [
        ("/tree", ""),
        ("/tree/a", "a0"),
        ("/tree/a/x", "x0"),
        ("/tree/b", "b0"),
        ("/elsewhere", "not cached"),
    ] {
        writer
            .create(path, data, CreateMode::Persistent)
            .await
            .expect("create");
    }
    let cache = TreeCache::start(&reader, "/tree").await.expect("cache");
    assert_eq!(cached_tree(&cache), store_tree(&writer, "/tree").await);
    assert_eq!(
        cache.children("/tree"),
        Some(vec!["a".to_string(), "b".to_string()])
    );
    assert_eq!(cache.get("/tree/a/x").expect("x").data, b"x0");
    assert!(cache.get("/elsewhere").is_none());
    let mut events = cache.events();

    // Creates, sets, deletes — a whole subtree included.
    writer
        .create("/tree/c", "c0", CreateMode::Persistent)
        .await
        .expect("create");
    writer
        .create("/tree/c/deep", "d0", CreateMode::Persistent)
        .await
        .expect("create");
    writer.set_data("/tree/a", "a1", None).await.expect("set");
    writer.delete("/tree/a/x", None).await.expect("delete");
    writer.delete("/tree/b", None).await.expect("delete");
    writer
        .create("/tree/b", "b-again", CreateMode::Persistent)
        .await
        .expect("create");
    wait_mirrored("the cache to follow the changes", &cache, &writer, "/tree").await;
    assert_eq!(cache.get("/tree/b").expect("b").data, b"b-again");

    // Collect the events so far: each change is reported.
    let mut log = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        log.push(e);
    }
    let has = |f: &dyn Fn(&TreeEvent) -> bool| log.iter().any(f);
    assert!(has(
        &|e| matches!(e, TreeEvent::Added(n) if n.path == "/tree/c/deep")
    ));
    assert!(has(
        &|e| matches!(e, TreeEvent::Updated(n) if n.path == "/tree/a" && n.data == b"a1")
    ));
    assert!(has(
        &|e| matches!(e, TreeEvent::Removed(n) if n.path == "/tree/a/x")
    ));

    // The reader's connection is cut and held down while the tree changes:
    // those changes are not replayed to a persistent watch, so the cache
    // must re-read on reconnecting.
    let session = reader.session_id();
    proxy.mute();
    proxy.cut();
    wait_until("the reader to notice the cut", PHASE, || async {
        reader.state() == ConnectionState::Suspended
    })
    .await;
    writer.delete("/tree/c/deep", None).await.expect("delete");
    writer.delete("/tree/c", None).await.expect("delete");
    writer
        .set_data("/tree/b", "b-cut", None)
        .await
        .expect("set");
    writer
        .create("/tree/d", "d-cut", CreateMode::Persistent)
        .await
        .expect("create");
    proxy.unmute();
    wait_until("the reader to reconnect", PHASE, || async {
        reader.state() == ConnectionState::Reconnected
    })
    .await;
    assert_eq!(reader.session_id(), session, "the same session");
    wait_mirrored(
        "the cache to catch up after the cut",
        &cache,
        &writer,
        "/tree",
    )
    .await;
    let mut after = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        after.push(e);
    }
    assert!(
        after
            .iter()
            .any(|e| matches!(e, TreeEvent::Removed(n) if n.path == "/tree/c")),
        "{after:?}"
    );
    assert!(
        after
            .iter()
            .any(|e| matches!(e, TreeEvent::Added(n) if n.path == "/tree/d")),
        "{after:?}"
    );

    // And it still follows live changes afterwards.
    writer
        .set_data("/tree/d", "d-live", None)
        .await
        .expect("set");
    wait_mirrored("the cache to follow again", &cache, &writer, "/tree").await;
    for c in [&writer, &reader] {
        c.close().await.expect("close");
    }
}

// ----- persistent ephemeral node -----------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_ephemeral_node_comes_back_after_deletion_and_expiry() {
    let server = server();
    let proxy = Proxy::start(([127, 0, 0, 1], server.port()).into());
    let other = client(&server.addr(), LONG).await;
    let owner = client(&proxy.addr().to_string(), SHORT).await;
    let owner_states = Arc::new(Mutex::new(Vec::new()));
    {
        let mut changes = owner.state_changes();
        let sink = owner_states.clone();
        tokio::spawn(async move {
            while let Some(s) = changes.next().await {
                sink.lock().push(s);
            }
        });
    }
    let node = PersistentEphemeralNode::new(
        &owner,
        "/services/web/node-1",
        "10.0.0.1:80",
        EphemeralMode::Ephemeral,
    )
    .expect("start");
    let path = within(
        PHASE,
        "the first create",
        node.wait_for_initial_create(PHASE),
    )
    .await
    .expect("created");
    assert_eq!(path, "/services/web/node-1");
    let first = other.exists(&path).await.expect("exists").expect("there");
    assert_eq!(first.ephemeral_owner, owner.session_id());

    // Someone deletes it: it is back at once, same data.
    other.delete(&path, None).await.expect("delete");
    let deadline = std::time::Instant::now() + PHASE;
    loop {
        let now = other.exists(&path).await;
        if matches!(now, Ok(Some(s)) if s.czxid > first.czxid) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the node was not re-created: store {now:?}, node.path {:?}, owner session {:#x} \
             (first {:#x}), owner states {:?}",
            node.path(),
            owner.session_id(),
            first.ephemeral_owner,
            owner_states.lock()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (data, _) = other.get_data(&path).await.expect("read");
    assert_eq!(data, b"10.0.0.1:80");

    // New data sticks, and is used by later re-creations.
    node.set_data("10.0.0.1:81").await.expect("set_data");
    assert_eq!(other.get_data(&path).await.expect("read").0, b"10.0.0.1:81");

    // The owner's line stalls past its session timeout: the server expires
    // the session (the node goes), the client declares it lost.
    let old_session = owner.session_id();
    proxy.mute();
    wait_until("the server to expire the session", PHASE, || async {
        other
            .exists(&path)
            .await
            .map(|s| s.is_none())
            .unwrap_or(false)
    })
    .await;
    wait_until("the owner to see its session lost", PHASE, || async {
        owner.state() == ConnectionState::Lost
    })
    .await;
    wait_until("the node to report that it is gone", PHASE, || async {
        node.path().is_none()
    })
    .await;
    proxy.unmute();
    wait_until(
        "the node to be re-created on a new session",
        PHASE,
        || async {
            matches!(
                other.exists(&path).await,
                Ok(Some(s)) if s.ephemeral_owner == owner.session_id()
            )
        },
    )
    .await;
    assert_ne!(owner.session_id(), old_session, "a new session");
    assert_eq!(other.get_data(&path).await.expect("read").0, b"10.0.0.1:81");
    wait_until("the node to report its path again", PHASE, || async {
        node.path().as_deref() == Some("/services/web/node-1")
    })
    .await;

    // Closing deletes it for good.
    node.close().await.expect("close");
    assert!(other.exists(&path).await.expect("exists").is_none());

    // A protected sequential node gets a new name when re-created.
    let seq = PersistentEphemeralNode::new(
        &owner,
        "/services/web/member-",
        "m",
        EphemeralMode::ProtectedEphemeralSequential,
    )
    .expect("start");
    let first_path = seq.wait_for_initial_create(PHASE).await.expect("created");
    assert!(first_path.contains("_c_") && first_path.contains("member-"));
    other.delete(&first_path, None).await.expect("delete");
    wait_until("a new sequential node", PHASE, || async {
        match seq.path() {
            Some(p) if p != first_path => other.exists(&p).await.ok().flatten().is_some(),
            _ => false,
        }
    })
    .await;
    seq.close().await.expect("close");
    assert!(other
        .get_children("/services/web")
        .await
        .map(|c| c.is_empty())
        .unwrap_or(true));
    for c in [&other, &owner] {
        c.close().await.expect("close");
    }
}

// ----- service registry --------------------------------------------------

fn instance(id: &str, payload: &str) -> Instance {
    Instance {
        id: id.to_string(),
        payload: payload.as_bytes().to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_lists_instances_and_a_watcher_sees_one_vanish() {
    let server = server();
    let addr = server.addr();
    let a = client(&addr, LONG).await;
    let b = client(&addr, LONG).await;
    let observer = client(&addr, LONG).await;
    let registry = ServiceRegistry::new(&observer, "/services");
    assert!(registry
        .instances("billing")
        .await
        .expect("list")
        .is_empty());

    let reg_a = ServiceRegistry::new(&a, "/services")
        .register("billing", "host-a", "10.0.0.1:9000")
        .await
        .expect("register a");
    let _reg_b = ServiceRegistry::new(&b, "/services")
        .register("billing", "host-b", "10.0.0.2:9000")
        .await
        .expect("register b");
    assert_eq!(reg_a.path(), "/services/billing/host-a");
    assert_eq!(
        registry.instances("billing").await.expect("list"),
        vec![
            instance("host-a", "10.0.0.1:9000"),
            instance("host-b", "10.0.0.2:9000")
        ]
    );
    assert_eq!(
        registry.services().await.expect("services"),
        vec!["billing"]
    );

    // Record every list the watcher sees.
    let mut live = registry.watch("billing").await.expect("watch");
    assert_eq!(live.borrow().len(), 2);
    let seen = Arc::new(Mutex::new(vec![live.borrow().clone()]));
    let recorder = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while live.changed().await.is_ok() {
                let list = live.borrow_and_update().clone();
                seen.lock().push(list);
            }
        })
    };

    // b's client closes: b vanishes from the list.
    b.close().await.expect("close b");
    wait_until("the watcher to see b vanish", PHASE, || async {
        seen.lock().last() == Some(&vec![instance("host-a", "10.0.0.1:9000")])
    })
    .await;
    // a changes its payload, then unregisters.
    reg_a.update("10.0.0.1:9001").await.expect("update");
    wait_until("the watcher to see the new payload", PHASE, || async {
        seen.lock().last() == Some(&vec![instance("host-a", "10.0.0.1:9001")])
    })
    .await;
    reg_a.unregister().await.expect("unregister");
    wait_until("the watcher to see an empty list", PHASE, || async {
        seen.lock().last().map(Vec::is_empty).unwrap_or(false)
    })
    .await;
    assert!(registry
        .instances("billing")
        .await
        .expect("list")
        .is_empty());
    recorder.abort();

    // Bad names are refused before anything is sent.
    let e = registry.register("bill/ing", "x", "").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadArguments);
    for c in [&a, &observer] {
        c.close().await.expect("close");
    }
}
