//! Feeds arbitrary bytes to the jute frame splitter and the request,
//! connect and reply decoders; whatever decodes must re-encode to bytes
//! that decode to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warden_proto::jute::{self, ConnectRequest};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((body, used))) = jute::split_frame(rest, jute::DEFAULT_MAX_FRAME) {
        if let Ok((h, req)) = jute::decode_request(body) {
            assert_eq!(h.opcode, req.opcode());
            let again = jute::encode_request(h.xid, &req);
            assert_eq!(jute::decode_request(&again).as_ref(), Ok(&(h, req)));
        }
        if let Ok(c) = ConnectRequest::decode(body) {
            assert_eq!(ConnectRequest::decode(&c.encode()), Ok(c));
        }
        for opcode in [jute::op::MULTI, jute::op::GET_DATA, jute::op::CREATE2] {
            let _ = jute::decode_reply(body, |_| opcode);
        }
        rest = rest.get(used..).unwrap_or(&[]);
    }
});
