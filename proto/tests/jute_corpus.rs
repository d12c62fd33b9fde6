//! Replays the `jute_frame` fuzz corpus (`fuzz/corpus/jute_frame`) through
//! the decoders as a regular test: nothing panics, whatever decodes
//! round-trips, and the corpus still holds a valid frame of every opcode.

use std::collections::BTreeSet;
use std::path::PathBuf;

use warden_proto::jute::{self, op, ConnectRequest};

fn corpus() -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/jute_frame");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).expect("read corpus file");
            (p, b)
        })
        .collect()
}

#[test]
fn every_corpus_file_decodes_or_fails_cleanly() {
    let files = corpus();
    assert!(!files.is_empty(), "the corpus is empty");
    let mut seen = BTreeSet::new();
    let mut connects = 0;
    for (path, bytes) in &files {
        let mut rest = &bytes[..];
        while let Ok(Some((body, used))) = jute::split_frame(rest, jute::DEFAULT_MAX_FRAME) {
            if let Ok((h, req)) = jute::decode_request(body) {
                let again = jute::encode_request(h.xid, &req);
                assert_eq!(
                    jute::decode_request(&again).as_ref(),
                    Ok(&(h, req.clone())),
                    "{} does not round-trip",
                    path.display()
                );
                seen.insert(h.opcode);
            }
            if let Ok(c) = ConnectRequest::decode(body) {
                assert_eq!(ConnectRequest::decode(&c.encode()), Ok(c));
                connects += 1;
            }
            let _ = jute::decode_reply(body, |_| op::MULTI);
            rest = rest.get(used..).unwrap_or(&[]);
        }
    }
    let all = [
        op::CREATE,
        op::DELETE,
        op::EXISTS,
        op::GET_DATA,
        op::SET_DATA,
        op::GET_ACL,
        op::SET_ACL,
        op::GET_CHILDREN,
        op::SYNC,
        op::PING,
        op::GET_CHILDREN2,
        op::CHECK,
        op::MULTI,
        op::CREATE2,
        op::RECONFIG,
        op::CHECK_WATCHES,
        op::REMOVE_WATCHES,
        op::CREATE_CONTAINER,
        op::CREATE_TTL,
        op::MULTI_READ,
        op::AUTH,
        op::SET_WATCHES,
        op::SASL,
        op::GET_EPHEMERALS,
        op::GET_ALL_CHILDREN_NUMBER,
        op::SET_WATCHES2,
        op::ADD_WATCH,
        op::WHO_AM_I,
        op::CLOSE_SESSION,
    ];
    let missing: Vec<&str> = all
        .iter()
        .filter(|o| !seen.contains(o))
        .map(|o| op::name(*o))
        .collect();
    assert!(
        missing.is_empty(),
        "no valid frame of {missing:?} in the corpus"
    );
    assert!(connects > 0, "no valid connect request in the corpus");
}
