//! A raw session stream spoken frame by frame with the generated protocol
//! types, for what the client library will not do (stay silent, send
//! malformed frames or odd xids, drop mid-stream) and for checking the
//! order of frames on the one stream.
//!
//! Requests go out with explicit xids ([`Raw::request`], [`Raw::call_xid`])
//! or numbered automatically from 1 ([`Raw::send`], [`Raw::call`]). Every
//! frame read after the Connect answer is recorded in [`Raw::log`].

use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use warden_proto::v1 as pb;
use warden_proto::v1::server_frame::Frame;
use warden_proto::v1::warden_client::WardenClient;

use crate::{within, STEP};

/// The largest message the raw stream encodes or decodes (above the
/// server's 1 MiB data limit, so the server is the one to refuse).
const MAX_MESSAGE: usize = 16 << 20;

/// A Connect frame.
pub fn connect_frame(timeout_ms: u32, session_id: u64, password: Vec<u8>) -> pb::ClientFrame {
    pb::ClientFrame {
        frame: Some(pb::client_frame::Frame::Connect(pb::Connect {
            session_id,
            password,
            timeout_ms,
            last_zxid: 0,
            client_name: "raw-test".into(),
        })),
    }
}

/// A Create request.
pub fn create_op(path: &str, data: Vec<u8>, mode: i32, ttl_ms: i64) -> pb::request::Op {
    pb::request::Op::Create(pb::Create {
        path: path.into(),
        data,
        mode,
        ttl_ms,
        acl: vec![],
        null_data: false,
    })
}

/// One session stream.
pub struct Raw {
    pub out: mpsc::UnboundedSender<pb::ClientFrame>,
    pub inbound: tonic::Streaming<pb::ServerFrame>,
    /// The session id, once [`Raw::session`] opened one (0 before).
    pub session_id: u64,
    /// Every frame read after the answer to Connect, in order.
    pub log: Vec<Frame>,
    next_xid: i64,
    _grpc: WardenClient<Channel>,
}

impl Raw {
    /// Opens a session stream whose first frames are `first`.
    pub async fn open(addr: &str, first: Vec<pb::ClientFrame>) -> Raw {
        let grpc = within(
            STEP,
            "gRPC connect",
            WardenClient::connect(format!("http://{addr}")),
        )
        .await
        .expect("gRPC connect");
        let mut grpc = grpc
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let (out, rx) = mpsc::unbounded_channel();
        for f in first {
            out.send(f).expect("queue a frame");
        }
        let inbound = within(
            STEP,
            "open the session stream",
            grpc.session(UnboundedReceiverStream::new(rx)),
        )
        .await
        .expect("session stream")
        .into_inner();
        Raw {
            out,
            inbound,
            session_id: 0,
            log: Vec::new(),
            next_xid: 1,
            _grpc: grpc,
        }
    }

    /// Opens a stream with the Connect frame `c` and returns the server's
    /// answer (Connected or ConnectError).
    pub async fn connect(addr: &str, c: pb::ClientFrame) -> (Raw, Frame) {
        let mut raw = Raw::open(addr, vec![c]).await;
        let first = raw
            .next_unlogged()
            .await
            .expect("a frame answering Connect")
            .expect("the stream did not end before answering Connect");
        (raw, first)
    }

    /// Opens a new session; panics unless it is accepted.
    pub async fn session(addr: &str, timeout_ms: u32) -> (Raw, pb::Connected) {
        match Raw::connect(addr, connect_frame(timeout_ms, 0, Vec::new())).await {
            (mut raw, Frame::Connected(c)) => {
                raw.session_id = c.session_id;
                (raw, c)
            }
            (_, other) => panic!("expected Connected, got {other:?}"),
        }
    }

    /// Sends one frame (`None`: a frame without a body).
    pub fn send_frame(&self, frame: Option<pb::client_frame::Frame>) {
        self.out
            .send(pb::ClientFrame { frame })
            .expect("the request stream is open");
    }

    /// Sends a Ping.
    pub fn ping(&self) {
        self.send_frame(Some(pb::client_frame::Frame::Ping(pb::Ping {})));
    }

    /// Sends a Close with this xid.
    pub fn close(&self, xid: i64) {
        self.send_frame(Some(pb::client_frame::Frame::Close(pb::Close { xid })));
    }

    /// Sends a request with an explicit xid (`op` may be absent).
    pub fn request(&self, xid: i64, op: Option<pb::request::Op>) {
        self.send_frame(Some(pb::client_frame::Frame::Request(pb::Request {
            xid,
            op,
        })));
    }

    /// Sends a request with the next automatic xid, without waiting;
    /// returns the xid.
    pub fn send(&mut self, op: pb::request::Op) -> i64 {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.request(xid, Some(op));
        xid
    }

    async fn next_unlogged(&mut self) -> Result<Option<Frame>, tonic::Status> {
        let m = within(STEP, "the next server frame", self.inbound.message()).await?;
        Ok(m.map(|f| f.frame.expect("a server frame always has a body")))
    }

    /// The next frame (`Ok(None)` when the stream ended cleanly), recorded
    /// in the log. Fails the test if none comes within `STEP`.
    pub async fn next(&mut self) -> Result<Option<Frame>, tonic::Status> {
        let f = self.next_unlogged().await?;
        if let Some(f) = &f {
            self.log.push(f.clone());
        }
        Ok(f)
    }

    /// The next frame, which must come: the stream neither fails nor ends.
    pub async fn recv(&mut self) -> Frame {
        self.next()
            .await
            .expect("stream ok")
            .expect("stream not ended")
    }

    /// Receives until `done` holds for a received frame; returns the log
    /// index of that frame.
    pub async fn recv_until(&mut self, mut done: impl FnMut(&Frame) -> bool) -> usize {
        loop {
            let f = self.recv().await;
            if done(&f) {
                return self.log.len() - 1;
            }
        }
    }

    /// Waits for the response to `xid` (whatever comes before it is
    /// recorded); returns its log index.
    pub async fn wait_response(&mut self, xid: i64) -> usize {
        self.recv_until(|f| matches!(f, Frame::Response(r) if r.xid == xid))
            .await
    }

    /// The next response, skipping pongs and watch events; panics on any
    /// other frame or the end of the stream.
    pub async fn response(&mut self) -> pb::Response {
        loop {
            match self.next().await {
                Ok(Some(Frame::Response(r))) => return r,
                Ok(Some(Frame::Pong(_))) | Ok(Some(Frame::WatchEvent(_))) => continue,
                other => panic!("expected a response, got {other:?}"),
            }
        }
    }

    /// Sends one request with an explicit xid and returns the next response.
    pub async fn call_xid(&mut self, xid: i64, op: pb::request::Op) -> pb::Response {
        self.request(xid, Some(op));
        self.response().await
    }

    /// Sends one request with the next automatic xid and returns its
    /// response, which must be the next one (responses come in request
    /// order).
    pub async fn call(&mut self, op: pb::request::Op) -> pb::Response {
        let xid = self.send(op);
        let r = self.response().await;
        assert_eq!(r.xid, xid, "responses come in request order");
        r
    }

    /// Reads until the stream ends (cleanly or not); returns every frame
    /// seen on the way. Fails the test if it does not end within `STEP`.
    pub async fn until_end(&mut self) -> Vec<Frame> {
        let mut seen = Vec::new();
        while let Ok(Some(f)) = self.next().await {
            seen.push(f);
        }
        seen
    }

    /// The recorded response at log index `i`.
    pub fn logged_response(&self, i: usize) -> &pb::Response {
        match &self.log[i] {
            Frame::Response(r) => r,
            other => panic!("frame {i} is not a response: {other:?}"),
        }
    }

    /// (index, event) of every recorded watch event.
    pub fn events(&self) -> Vec<(usize, pb::WatchEvent)> {
        self.log
            .iter()
            .enumerate()
            .filter_map(|(i, f)| match f {
                Frame::WatchEvent(e) => Some((i, e.clone())),
                _ => None,
            })
            .collect()
    }
}
