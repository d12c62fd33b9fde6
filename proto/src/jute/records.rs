//! ZooKeeper's records (`zookeeper.jute`) and the request/response bodies of
//! every client opcode, each with an encoder and a decoder.

use super::wire::{Reader, Writer};
use super::DecodeError;

/// ZooKeeper's opcodes (`ZooDefs.OpCode`).
pub mod op {
    pub const NOTIFICATION: i32 = 0;
    pub const CREATE: i32 = 1;
    pub const DELETE: i32 = 2;
    pub const EXISTS: i32 = 3;
    pub const GET_DATA: i32 = 4;
    pub const SET_DATA: i32 = 5;
    pub const GET_ACL: i32 = 6;
    pub const SET_ACL: i32 = 7;
    pub const GET_CHILDREN: i32 = 8;
    pub const SYNC: i32 = 9;
    pub const PING: i32 = 11;
    pub const GET_CHILDREN2: i32 = 12;
    pub const CHECK: i32 = 13;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const RECONFIG: i32 = 16;
    pub const CHECK_WATCHES: i32 = 17;
    pub const REMOVE_WATCHES: i32 = 18;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const CREATE_TTL: i32 = 21;
    pub const MULTI_READ: i32 = 22;
    pub const AUTH: i32 = 100;
    pub const SET_WATCHES: i32 = 101;
    pub const SASL: i32 = 102;
    pub const GET_EPHEMERALS: i32 = 103;
    pub const GET_ALL_CHILDREN_NUMBER: i32 = 104;
    pub const SET_WATCHES2: i32 = 105;
    pub const ADD_WATCH: i32 = 106;
    pub const WHO_AM_I: i32 = 107;
    pub const CLOSE_SESSION: i32 = -11;
    /// The type of a failed op's result in a multi response.
    pub const ERROR: i32 = -1;

    /// ZooKeeper's name for an opcode (as `cons` and logs show it).
    pub fn name(op: i32) -> &'static str {
        match op {
            NOTIFICATION => "notification",
            CREATE => "create",
            DELETE => "delete",
            EXISTS => "exists",
            GET_DATA => "getData",
            SET_DATA => "setData",
            GET_ACL => "getACL",
            SET_ACL => "setACL",
            GET_CHILDREN => "getChildren",
            SYNC => "sync",
            PING => "ping",
            GET_CHILDREN2 => "getChildren2",
            CHECK => "check",
            MULTI => "multi",
            CREATE2 => "create2",
            RECONFIG => "reconfig",
            CHECK_WATCHES => "checkWatches",
            REMOVE_WATCHES => "removeWatches",
            CREATE_CONTAINER => "createContainer",
            CREATE_TTL => "createTTL",
            MULTI_READ => "multiRead",
            AUTH => "auth",
            SET_WATCHES => "setWatches",
            SASL => "sasl",
            GET_EPHEMERALS => "getEphemerals",
            GET_ALL_CHILDREN_NUMBER => "getAllChildrenNumber",
            SET_WATCHES2 => "setWatches2",
            ADD_WATCH => "addWatch",
            WHO_AM_I => "whoAmI",
            CLOSE_SESSION => "closeSession",
            ERROR => "error",
            _ => "unknown",
        }
    }
}

/// The special xids ZooKeeper reserves.
pub mod xid {
    pub const NOTIFICATION: i32 = -1;
    pub const PING: i32 = -2;
    pub const AUTH: i32 = -4;
    pub const SET_WATCHES: i32 = -8;
}

/// How one field of a record is written and read: jute's primitive for
/// the field's Rust type.
pub(crate) trait Field: Sized {
    /// The fewest bytes the field takes, to refuse a vector count that
    /// cannot fit in what is left before anything is allocated.
    const MIN_LEN: usize;
    fn put(&self, w: &mut Writer);
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self, DecodeError>;
}

macro_rules! primitive_fields {
    ($($ty:ty => $put:ident($($deref:tt)?), $get:ident, $min:expr;)*) => {$(
        impl Field for $ty {
            const MIN_LEN: usize = $min;
            fn put(&self, w: &mut Writer) {
                w.$put($($deref)? self);
            }
            fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self, DecodeError> {
                r.$get(what)
            }
        }
    )*};
}

primitive_fields! {
    i32 => int(*), int, 4;
    i64 => long(*), long, 8;
    bool => bool(*), bool, 1;
    Vec<u8> => buffer(), buffer, 4;
    Option<Vec<u8>> => nullable_buffer(), nullable_buffer, 4;
    String => ustring(), ustring, 4;
    Vec<String> => strings(), strings, 4;
}

/// A trailing byte old peers leave out: written when set, read when bytes
/// are left (so only ever a record's last field).
impl Field for Option<bool> {
    const MIN_LEN: usize = 0;
    fn put(&self, w: &mut Writer) {
        if let Some(b) = self {
            w.bool(*b);
        }
    }
    fn get(r: &mut Reader<'_>, what: &'static str) -> Result<Self, DecodeError> {
        if r.remaining() > 0 {
            Ok(Some(r.bool(what)?))
        } else {
            Ok(None)
        }
    }
}

/// Declares a jute record: the struct, and its `write` and `read` from one
/// list of fields in wire order, each with the name decode errors give it.
/// Fields after a `;` are not part of the record (`read` leaves them at
/// their default). The record is also a [`Field`], alone or in a vector.
macro_rules! jute_record {
    (
        $(#[$meta:meta])*
        $vis:vis struct $t:ident {
            $( $(#[$fmeta:meta])* $fvis:vis $f:ident : $ty:ty = $what:literal, )*
            $( ; $( $(#[$xmeta:meta])* $xvis:vis $x:ident : $xty:ty, )* )?
        }
    ) => {
        $(#[$meta])*
        $vis struct $t {
            $( $(#[$fmeta])* $fvis $f: $ty, )*
            $( $( $(#[$xmeta])* $xvis $x: $xty, )* )?
        }

        impl $t {
            /// Writes the record's fields in wire order.
            pub fn write(&self, w: &mut $crate::jute::wire::Writer) {
                $( $crate::jute::records::Field::put(&self.$f, w); )*
            }

            /// Reads the record's fields in wire order.
            pub fn read(
                r: &mut $crate::jute::wire::Reader<'_>,
            ) -> Result<Self, $crate::jute::DecodeError> {
                Ok($t {
                    $( $f: $crate::jute::records::Field::get(r, $what)?, )*
                    $( $( $x: Default::default(), )* )?
                })
            }
        }

        impl $crate::jute::records::Field for $t {
            const MIN_LEN: usize = 0 $( + <$ty as $crate::jute::records::Field>::MIN_LEN )*;
            fn put(&self, w: &mut $crate::jute::wire::Writer) {
                self.write(w);
            }
            fn get(
                r: &mut $crate::jute::wire::Reader<'_>,
                _what: &'static str,
            ) -> Result<Self, $crate::jute::DecodeError> {
                Self::read(r)
            }
        }

        impl $crate::jute::records::Field for Vec<$t> {
            const MIN_LEN: usize = 4;
            fn put(&self, w: &mut $crate::jute::wire::Writer) {
                w.vector(self, |w, x| x.write(w));
            }
            fn get(
                r: &mut $crate::jute::wire::Reader<'_>,
                what: &'static str,
            ) -> Result<Self, $crate::jute::DecodeError> {
                r.vector(
                    what,
                    <$t as $crate::jute::records::Field>::MIN_LEN,
                    $t::read,
                )
            }
        }
    };
}
pub(crate) use jute_record;

/// ACL entries are the vocabulary's [`Acl`](crate::vocab::Acl), a jute
/// record too.
pub use crate::vocab::Acl;

jute_record! {
    /// Znode metadata, field for field as ZooKeeper's `Stat` (68 bytes), with
    /// `ephemeralOwner` signed as jute has it. The server and client use
    /// [`vocab::Stat`](crate::vocab::Stat), which converts from and to it.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Stat {
        pub czxid: i64 = "stat.czxid",
        pub mzxid: i64 = "stat.mzxid",
        pub ctime: i64 = "stat.ctime",
        pub mtime: i64 = "stat.mtime",
        pub version: i32 = "stat.version",
        pub cversion: i32 = "stat.cversion",
        pub aversion: i32 = "stat.aversion",
        pub ephemeral_owner: i64 = "stat.ephemeralOwner",
        pub data_length: i32 = "stat.dataLength",
        pub num_children: i32 = "stat.numChildren",
        pub pzxid: i64 = "stat.pzxid",
    }
}

/// Size of an encoded [`Stat`].
pub const STAT_LEN: usize = 68;
const _: () = assert!(<Stat as Field>::MIN_LEN == STAT_LEN);

/// A whole body: `write`'s bytes.
fn encode_with(write: impl FnOnce(&mut Writer)) -> Vec<u8> {
    let mut w = Writer::new();
    write(&mut w);
    w.buf
}

/// A whole body: `read` it, with nothing left over.
fn decode_whole<T>(
    body: &[u8],
    read: impl FnOnce(&mut Reader<'_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let mut r = Reader::new(body);
    let v = read(&mut r)?;
    r.finish()?;
    Ok(v)
}

jute_record! {
    /// The first frame of a connection: open a session (id 0) or resume one.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct ConnectRequest {
        pub protocol_version: i32 = "protocolVersion",
        pub last_zxid_seen: i64 = "lastZxidSeen",
        pub timeout_ms: i32 = "timeOut",
        pub session_id: i64 = "sessionId",
        pub passwd: Vec<u8> = "passwd",
        /// The trailing readOnly byte; absent from old clients' requests.
        pub read_only: Option<bool> = "readOnly",
    }
}

impl ConnectRequest {
    pub fn encode(&self) -> Vec<u8> {
        encode_with(|w| self.write(w))
    }

    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        decode_whole(body, Self::read)
    }
}

jute_record! {
    /// The answer to a [`ConnectRequest`]; timeout 0 means the session is gone.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct ConnectResponse {
        pub protocol_version: i32 = "protocolVersion",
        pub timeout_ms: i32 = "timeOut",
        pub session_id: i64 = "sessionId",
        pub passwd: Vec<u8> = "passwd",
        /// Sent only to clients whose request carried the readOnly byte.
        pub read_only: Option<bool> = "readOnly",
    }
}

impl ConnectResponse {
    pub fn encode(&self) -> Vec<u8> {
        encode_with(|w| self.write(w))
    }

    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        decode_whole(body, Self::read)
    }
}

jute_record! {
    /// Precedes every request: the client's sequence number and the opcode.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct RequestHeader {
        pub xid: i32 = "xid",
        pub opcode: i32 = "type",
    }
}

jute_record! {
    /// Precedes every reply: the request's xid, the server's last zxid, and the
    /// error code (0 = ok; on error no body follows).
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct ReplyHeader {
        pub xid: i32 = "xid",
        pub zxid: i64 = "zxid",
        pub err: i32 = "err",
    }
}

jute_record! {
    /// Precedes each op of a multi (request and reply) and ends the list.
    #[derive(Debug, Clone, Copy)]
    struct MultiHeader {
        op: i32 = "multi.type",
        done: bool = "multi.done",
        err: i32 = "multi.err",
    }
}

impl MultiHeader {
    /// The header that ends a multi's list.
    const DONE: MultiHeader = MultiHeader {
        op: -1,
        done: true,
        err: -1,
    };

    fn op(op: i32, err: i32) -> MultiHeader {
        MultiHeader {
            op,
            done: false,
            err,
        }
    }
}

jute_record! {
    /// A watch notification's body (sent with xid -1).
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct WatcherEvent {
        pub event_type: i32 = "type",
        pub state: i32 = "state",
        pub path: String = "path",
    }
}

jute_record! {
    /// `CreateRequest`, also the body of create2 and createContainer; `ttl` is
    /// present only for createTTL.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct CreateRequest {
        pub path: String = "path",
        /// `None`: null data, which ZooKeeper keeps apart from empty.
        pub data: Option<Vec<u8>> = "data",
        pub acl: Vec<Acl> = "acl",
        pub flags: i32 = "flags",
        ;
        /// createTTL's trailing field, which its body adds after the record.
        pub ttl: i64,
    }
}

jute_record! {
    /// A path and whether to leave a watch (exists, getData, getChildren(2)).
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct PathWatch {
        pub path: String = "path",
        pub watch: bool = "watch",
    }
}

jute_record! {
    /// A path and a version (delete, check); -1 means any version.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct PathVersion {
        pub path: String = "path",
        pub version: i32 = "version",
    }
}

jute_record! {
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct SetDataRequest {
        pub path: String = "path",
        pub data: Option<Vec<u8>> = "data",
        pub version: i32 = "version",
    }
}

jute_record! {
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct SetAclRequest {
        pub path: String = "path",
        pub acl: Vec<Acl> = "acl",
        pub version: i32 = "version",
    }
}

jute_record! {
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct ReconfigRequest {
        pub joining_servers: String = "joiningServers",
        pub leaving_servers: String = "leavingServers",
        pub new_members: String = "newMembers",
        pub cur_config_id: i64 = "curConfigId",
    }
}

jute_record! {
    /// checkWatches and removeWatches: a path and a `WatcherType` (1 children,
    /// 2 data, 3 any).
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct WatchesRequest {
        pub path: String = "path",
        pub watcher_type: i32 = "type",
    }
}

jute_record! {
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct AuthPacket {
        pub auth_type: i32 = "type",
        pub scheme: String = "scheme",
        pub auth: Vec<u8> = "auth",
    }
}

jute_record! {
    /// setWatches (101): watches re-registered after a reconnect.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct SetWatches {
        pub relative_zxid: i64 = "relativeZxid",
        pub data: Vec<String> = "dataWatches",
        pub exist: Vec<String> = "existWatches",
        pub child: Vec<String> = "childWatches",
    }
}

jute_record! {
    /// setWatches2 (105): as [`SetWatches`] plus persistent watches.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct SetWatches2 {
        pub relative_zxid: i64 = "relativeZxid",
        pub data: Vec<String> = "dataWatches",
        pub exist: Vec<String> = "existWatches",
        pub child: Vec<String> = "childWatches",
        pub persistent: Vec<String> = "persistentWatches",
        pub persistent_recursive: Vec<String> = "persistentRecursiveWatches",
    }
}

jute_record! {
    /// addWatch: mode 0 persistent, 1 persistent recursive.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct AddWatchRequest {
        pub path: String = "path",
        pub mode: i32 = "mode",
    }
}

jute_record! {
    /// Who a connection is authenticated as (whoAmI's answer).
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct ClientInfo {
        pub auth_scheme: String = "authScheme",
        pub user: String = "user",
    }
}

/// A client request body, one variant per opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(CreateRequest),
    Create2(CreateRequest),
    CreateContainer(CreateRequest),
    CreateTtl(CreateRequest),
    Delete(PathVersion),
    Exists(PathWatch),
    GetData(PathWatch),
    SetData(SetDataRequest),
    GetAcl(String),
    SetAcl(SetAclRequest),
    GetChildren(PathWatch),
    Sync(String),
    Ping,
    GetChildren2(PathWatch),
    Check(PathVersion),
    /// Ops: creates, delete, setData, check.
    Multi(Vec<Request>),
    Reconfig(ReconfigRequest),
    CheckWatches(WatchesRequest),
    RemoveWatches(WatchesRequest),
    /// Ops: getChildren, getData.
    MultiRead(Vec<Request>),
    Auth(AuthPacket),
    SetWatches(SetWatches),
    /// The client's SASL token.
    Sasl(Vec<u8>),
    GetEphemerals(String),
    GetAllChildrenNumber(String),
    SetWatches2(SetWatches2),
    AddWatch(AddWatchRequest),
    WhoAmI,
    CloseSession,
}

fn is_multi_op(op: i32) -> bool {
    matches!(
        op,
        op::CREATE
            | op::CREATE2
            | op::CREATE_CONTAINER
            | op::CREATE_TTL
            | op::DELETE
            | op::SET_DATA
            | op::CHECK
    )
}

fn is_multi_read_op(op: i32) -> bool {
    matches!(op, op::GET_CHILDREN | op::GET_DATA)
}

impl Request {
    /// The opcode this body is sent with.
    pub fn opcode(&self) -> i32 {
        match self {
            Request::Create(_) => op::CREATE,
            Request::Create2(_) => op::CREATE2,
            Request::CreateContainer(_) => op::CREATE_CONTAINER,
            Request::CreateTtl(_) => op::CREATE_TTL,
            Request::Delete(_) => op::DELETE,
            Request::Exists(_) => op::EXISTS,
            Request::GetData(_) => op::GET_DATA,
            Request::SetData(_) => op::SET_DATA,
            Request::GetAcl(_) => op::GET_ACL,
            Request::SetAcl(_) => op::SET_ACL,
            Request::GetChildren(_) => op::GET_CHILDREN,
            Request::Sync(_) => op::SYNC,
            Request::Ping => op::PING,
            Request::GetChildren2(_) => op::GET_CHILDREN2,
            Request::Check(_) => op::CHECK,
            Request::Multi(_) => op::MULTI,
            Request::Reconfig(_) => op::RECONFIG,
            Request::CheckWatches(_) => op::CHECK_WATCHES,
            Request::RemoveWatches(_) => op::REMOVE_WATCHES,
            Request::MultiRead(_) => op::MULTI_READ,
            Request::Auth(_) => op::AUTH,
            Request::SetWatches(_) => op::SET_WATCHES,
            Request::Sasl(_) => op::SASL,
            Request::GetEphemerals(_) => op::GET_EPHEMERALS,
            Request::GetAllChildrenNumber(_) => op::GET_ALL_CHILDREN_NUMBER,
            Request::SetWatches2(_) => op::SET_WATCHES2,
            Request::AddWatch(_) => op::ADD_WATCH,
            Request::WhoAmI => op::WHO_AM_I,
            Request::CloseSession => op::CLOSE_SESSION,
        }
    }

    /// Writes the body (without the header).
    pub fn write_body(&self, w: &mut Writer) {
        match self {
            Request::Create(c) | Request::Create2(c) | Request::CreateContainer(c) => c.write(w),
            Request::CreateTtl(c) => {
                c.write(w);
                w.long(c.ttl);
            }
            Request::Delete(d) | Request::Check(d) => d.write(w),
            Request::Exists(p)
            | Request::GetData(p)
            | Request::GetChildren(p)
            | Request::GetChildren2(p) => p.write(w),
            Request::SetData(s) => s.write(w),
            Request::GetAcl(p)
            | Request::Sync(p)
            | Request::GetEphemerals(p)
            | Request::GetAllChildrenNumber(p) => {
                w.ustring(p);
            }
            Request::SetAcl(s) => s.write(w),
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
            Request::Multi(ops) | Request::MultiRead(ops) => {
                for o in ops {
                    MultiHeader::op(o.opcode(), -1).write(w);
                    o.write_body(w);
                }
                MultiHeader::DONE.write(w);
            }
            Request::Reconfig(r) => r.write(w),
            Request::CheckWatches(c) | Request::RemoveWatches(c) => c.write(w),
            Request::Auth(a) => a.write(w),
            Request::SetWatches(s) => s.write(w),
            Request::SetWatches2(s) => s.write(w),
            Request::Sasl(t) => {
                w.buffer(t);
            }
            Request::AddWatch(a) => a.write(w),
        }
    }

    /// Reads the body of `opcode`.
    pub fn read_body(opcode: i32, xid: i32, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match opcode {
            op::CREATE => Request::Create(CreateRequest::read(r)?),
            op::CREATE2 => Request::Create2(CreateRequest::read(r)?),
            op::CREATE_CONTAINER => Request::CreateContainer(CreateRequest::read(r)?),
            op::CREATE_TTL => {
                let mut c = CreateRequest::read(r)?;
                c.ttl = r.long("ttl")?;
                Request::CreateTtl(c)
            }
            op::DELETE => Request::Delete(PathVersion::read(r)?),
            op::EXISTS => Request::Exists(PathWatch::read(r)?),
            op::GET_DATA => Request::GetData(PathWatch::read(r)?),
            op::SET_DATA => Request::SetData(SetDataRequest::read(r)?),
            op::GET_ACL => Request::GetAcl(r.ustring("path")?),
            op::SET_ACL => Request::SetAcl(SetAclRequest::read(r)?),
            op::GET_CHILDREN => Request::GetChildren(PathWatch::read(r)?),
            op::SYNC => Request::Sync(r.ustring("path")?),
            op::PING => Request::Ping,
            op::GET_CHILDREN2 => Request::GetChildren2(PathWatch::read(r)?),
            op::CHECK => Request::Check(PathVersion::read(r)?),
            op::MULTI => Request::Multi(read_ops(r, xid, is_multi_op)?),
            op::MULTI_READ => Request::MultiRead(read_ops(r, xid, is_multi_read_op)?),
            op::RECONFIG => Request::Reconfig(ReconfigRequest::read(r)?),
            op::CHECK_WATCHES => Request::CheckWatches(WatchesRequest::read(r)?),
            op::REMOVE_WATCHES => Request::RemoveWatches(WatchesRequest::read(r)?),
            op::AUTH => Request::Auth(AuthPacket::read(r)?),
            op::SET_WATCHES => Request::SetWatches(SetWatches::read(r)?),
            op::SET_WATCHES2 => Request::SetWatches2(SetWatches2::read(r)?),
            op::SASL => Request::Sasl(r.buffer("token")?),
            op::GET_EPHEMERALS => Request::GetEphemerals(r.ustring("prefixPath")?),
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber(r.ustring("path")?),
            op::ADD_WATCH => Request::AddWatch(AddWatchRequest::read(r)?),
            op::WHO_AM_I => Request::WhoAmI,
            op::CLOSE_SESSION => Request::CloseSession,
            _ => return Err(DecodeError::UnknownOpcode { xid, opcode }),
        })
    }
}

/// A multi's ops, each after a `MultiHeader{type, done=false, err}`, up to
/// the `done` header.
fn read_ops(
    r: &mut Reader<'_>,
    xid: i32,
    allowed: fn(i32) -> bool,
) -> Result<Vec<Request>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        let h = MultiHeader::read(r)?;
        if h.done {
            return Ok(ops);
        }
        if !allowed(h.op) {
            return Err(DecodeError::BadMultiOp { opcode: h.op });
        }
        ops.push(Request::read_body(h.op, xid, r)?);
    }
}

/// A request frame's body: header and request, with nothing left over.
pub fn decode_request(body: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
    decode_whole(body, |r| {
        let h = RequestHeader::read(r)?;
        Ok((h, Request::read_body(h.opcode, h.xid, r)?))
    })
}

/// Encodes a request body (header included, length prefix not).
pub fn encode_request(xid: i32, req: &Request) -> Vec<u8> {
    encode_with(|w| {
        RequestHeader {
            xid,
            opcode: req.opcode(),
        }
        .write(w);
        req.write_body(w);
    })
}

/// One op's result in a multi or multiRead reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    Create(String),
    Create2(String, Stat),
    Delete,
    SetData(Stat),
    Check,
    GetData(Option<Vec<u8>>, Stat),
    GetChildren(Vec<String>),
    /// A failed op (or, in a failed multi, any op): its error code.
    Error(i32),
}

impl MultiResult {
    fn opcode(&self) -> i32 {
        match self {
            MultiResult::Create(_) => op::CREATE,
            MultiResult::Create2(..) => op::CREATE2,
            MultiResult::Delete => op::DELETE,
            MultiResult::SetData(_) => op::SET_DATA,
            MultiResult::Check => op::CHECK,
            MultiResult::GetData(..) => op::GET_DATA,
            MultiResult::GetChildren(_) => op::GET_CHILDREN,
            MultiResult::Error(_) => op::ERROR,
        }
    }
}

/// A successful reply's body, by the request's opcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// No body: delete, ping, check, setWatches, removeWatches, auth, ...
    Empty,
    Create(String),
    Create2(String, Stat),
    /// exists, setData, setACL.
    Stat(Stat),
    Data(Option<Vec<u8>>, Stat),
    Acl(Vec<Acl>, Stat),
    Children(Vec<String>),
    Children2(Vec<String>, Stat),
    Sync(String),
    Multi(Vec<MultiResult>),
    Ephemerals(Vec<String>),
    Count(i32),
    WhoAmI(Vec<ClientInfo>),
    Sasl(Vec<u8>),
    /// addWatch answers with an `ErrorResponse` body holding 0, as ZooKeeper.
    ErrorBody(i32),
}

impl Response {
    pub fn write(&self, w: &mut Writer) {
        match self {
            Response::Empty => {}
            Response::Create(p) | Response::Sync(p) => {
                w.ustring(p);
            }
            Response::Create2(p, s) => {
                w.ustring(p);
                s.write(w);
            }
            Response::Stat(s) => s.write(w),
            Response::Data(d, s) => {
                w.nullable_buffer(d);
                s.write(w);
            }
            Response::Acl(a, s) => {
                a.put(w);
                s.write(w);
            }
            Response::Children(c) | Response::Ephemerals(c) => {
                w.strings(c);
            }
            Response::Children2(c, s) => {
                w.strings(c);
                s.write(w);
            }
            Response::Multi(results) => {
                for res in results {
                    let err = match res {
                        MultiResult::Error(e) => *e,
                        _ => 0,
                    };
                    MultiHeader::op(res.opcode(), err).write(w);
                    match res {
                        MultiResult::Create(p) => {
                            w.ustring(p);
                        }
                        MultiResult::Create2(p, s) => {
                            w.ustring(p);
                            s.write(w);
                        }
                        MultiResult::SetData(s) => s.write(w),
                        MultiResult::GetData(d, s) => {
                            w.nullable_buffer(d);
                            s.write(w);
                        }
                        MultiResult::GetChildren(c) => {
                            w.strings(c);
                        }
                        MultiResult::Error(e) => {
                            w.int(*e);
                        }
                        MultiResult::Delete | MultiResult::Check => {}
                    }
                }
                MultiHeader::DONE.write(w);
            }
            Response::Count(n) | Response::ErrorBody(n) => {
                w.int(*n);
            }
            Response::WhoAmI(infos) => infos.put(w),
            Response::Sasl(t) => {
                w.buffer(t);
            }
        }
    }

    /// Reads the body of a successful reply to `opcode`.
    pub fn read(opcode: i32, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(match opcode {
            op::CREATE => Response::Create(r.ustring("path")?),
            op::CREATE2 | op::CREATE_CONTAINER | op::CREATE_TTL => {
                Response::Create2(r.ustring("path")?, Stat::read(r)?)
            }
            op::EXISTS | op::SET_DATA | op::SET_ACL => Response::Stat(Stat::read(r)?),
            op::GET_DATA => Response::Data(r.nullable_buffer("data")?, Stat::read(r)?),
            op::GET_ACL => Response::Acl(Field::get(r, "acl")?, Stat::read(r)?),
            op::GET_CHILDREN => Response::Children(r.strings("children")?),
            op::GET_CHILDREN2 => Response::Children2(r.strings("children")?, Stat::read(r)?),
            op::SYNC => Response::Sync(r.ustring("path")?),
            op::MULTI | op::MULTI_READ => {
                let mut results = Vec::new();
                loop {
                    let MultiHeader { op: ty, done, err } = MultiHeader::read(r)?;
                    if done {
                        break;
                    }
                    results.push(match ty {
                        op::CREATE => MultiResult::Create(r.ustring("path")?),
                        op::CREATE2 => MultiResult::Create2(r.ustring("path")?, Stat::read(r)?),
                        op::DELETE => MultiResult::Delete,
                        op::SET_DATA => MultiResult::SetData(Stat::read(r)?),
                        op::CHECK => MultiResult::Check,
                        op::GET_DATA => {
                            MultiResult::GetData(r.nullable_buffer("data")?, Stat::read(r)?)
                        }
                        op::GET_CHILDREN => MultiResult::GetChildren(r.strings("children")?),
                        op::ERROR => {
                            let e = r.int("err")?;
                            if e != err {
                                return Err(DecodeError::Inconsistent("multi error codes differ"));
                            }
                            MultiResult::Error(e)
                        }
                        other => return Err(DecodeError::BadMultiOp { opcode: other }),
                    });
                }
                Response::Multi(results)
            }
            op::GET_EPHEMERALS => Response::Ephemerals(r.strings("ephemerals")?),
            op::GET_ALL_CHILDREN_NUMBER => Response::Count(r.int("totalNumber")?),
            op::WHO_AM_I => Response::WhoAmI(Field::get(r, "clientInfo")?),
            op::SASL => Response::Sasl(r.buffer("token")?),
            op::ADD_WATCH => Response::ErrorBody(r.int("err")?),
            _ => Response::Empty,
        })
    }
}

/// A server-to-client message, decoded (for clients and tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A watch notification (xid -1).
    Event(WatcherEvent),
    /// Any other reply; `body` is `None` when `err != 0`.
    Reply {
        header: ReplyHeader,
        body: Option<Response>,
    },
}

/// Encodes a reply (header, then the body unless it is an error).
pub fn encode_reply(header: &ReplyHeader, body: &Response) -> Vec<u8> {
    encode_with(|w| {
        header.write(w);
        if header.err == 0 {
            body.write(w);
        }
    })
}

/// Encodes a watch notification.
pub fn encode_event(ev: &WatcherEvent) -> Vec<u8> {
    encode_with(|w| {
        ReplyHeader {
            xid: xid::NOTIFICATION,
            zxid: -1,
            err: 0,
        }
        .write(w);
        ev.write(w);
    })
}

/// Decodes a reply frame's body. `opcode_of(xid)` tells which request a
/// reply answers (a client keeps that); notifications need none.
pub fn decode_reply(body: &[u8], opcode_of: impl FnOnce(i32) -> i32) -> Result<Reply, DecodeError> {
    decode_whole(body, |r| {
        let header = ReplyHeader::read(r)?;
        if header.xid == xid::NOTIFICATION {
            return Ok(Reply::Event(WatcherEvent::read(r)?));
        }
        let body = if header.err != 0 {
            None
        } else {
            Some(Response::read(opcode_of(header.xid), r)?)
        };
        Ok(Reply::Reply { header, body })
    })
}
