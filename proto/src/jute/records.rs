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

/// Znode metadata, field for field as ZooKeeper's `Stat` (68 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

/// Size of an encoded [`Stat`].
pub const STAT_LEN: usize = 68;

impl Stat {
    pub fn write(&self, w: &mut Writer) {
        w.long(self.czxid)
            .long(self.mzxid)
            .long(self.ctime)
            .long(self.mtime)
            .int(self.version)
            .int(self.cversion)
            .int(self.aversion)
            .long(self.ephemeral_owner)
            .int(self.data_length)
            .int(self.num_children)
            .long(self.pzxid);
    }

    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Stat {
            czxid: r.long("stat.czxid")?,
            mzxid: r.long("stat.mzxid")?,
            ctime: r.long("stat.ctime")?,
            mtime: r.long("stat.mtime")?,
            version: r.int("stat.version")?,
            cversion: r.int("stat.cversion")?,
            aversion: r.int("stat.aversion")?,
            ephemeral_owner: r.long("stat.ephemeralOwner")?,
            data_length: r.int("stat.dataLength")?,
            num_children: r.int("stat.numChildren")?,
            pzxid: r.long("stat.pzxid")?,
        })
    }
}

/// One ACL entry: permissions for an (scheme, id).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

impl Acl {
    fn write(&self, w: &mut Writer) {
        w.int(self.perms).ustring(&self.scheme).ustring(&self.id);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Acl {
            perms: r.int("acl.perms")?,
            scheme: r.ustring("acl.scheme")?,
            id: r.ustring("acl.id")?,
        })
    }
}

fn write_acls(w: &mut Writer, acl: &[Acl]) {
    w.vector(acl, |w, a| a.write(w));
}

fn read_acls(r: &mut Reader<'_>) -> Result<Vec<Acl>, DecodeError> {
    r.vector("acl", 12, Acl::read)
}

/// The first frame of a connection: open a session (id 0) or resume one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectRequest {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// The trailing readOnly byte; absent from old clients' requests.
    pub read_only: Option<bool>,
}

impl ConnectRequest {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.int(self.protocol_version)
            .long(self.last_zxid_seen)
            .int(self.timeout_ms)
            .long(self.session_id)
            .buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
        w.buf
    }

    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let mut c = ConnectRequest {
            protocol_version: r.int("protocolVersion")?,
            last_zxid_seen: r.long("lastZxidSeen")?,
            timeout_ms: r.int("timeOut")?,
            session_id: r.long("sessionId")?,
            passwd: r.buffer("passwd")?,
            read_only: None,
        };
        if r.remaining() > 0 {
            c.read_only = Some(r.bool("readOnly")?);
        }
        r.finish()?;
        Ok(c)
    }
}

/// The answer to a [`ConnectRequest`]; timeout 0 means the session is gone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectResponse {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// Sent only to clients whose request carried the readOnly byte.
    pub read_only: Option<bool>,
}

impl ConnectResponse {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.int(self.protocol_version)
            .int(self.timeout_ms)
            .long(self.session_id)
            .buffer(&self.passwd);
        if let Some(ro) = self.read_only {
            w.bool(ro);
        }
        w.buf
    }

    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let mut c = ConnectResponse {
            protocol_version: r.int("protocolVersion")?,
            timeout_ms: r.int("timeOut")?,
            session_id: r.long("sessionId")?,
            passwd: r.buffer("passwd")?,
            read_only: None,
        };
        if r.remaining() > 0 {
            c.read_only = Some(r.bool("readOnly")?);
        }
        r.finish()?;
        Ok(c)
    }
}

/// Precedes every request: the client's sequence number and the opcode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestHeader {
    pub xid: i32,
    pub opcode: i32,
}

/// Precedes every reply: the request's xid, the server's last zxid, and the
/// error code (0 = ok; on error no body follows).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplyHeader {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
}

impl ReplyHeader {
    pub fn write(&self, w: &mut Writer) {
        w.int(self.xid).long(self.zxid).int(self.err);
    }
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(ReplyHeader {
            xid: r.int("xid")?,
            zxid: r.long("zxid")?,
            err: r.int("err")?,
        })
    }
}

/// A watch notification's body (sent with xid -1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatcherEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
}

impl WatcherEvent {
    pub fn write(&self, w: &mut Writer) {
        w.int(self.event_type).int(self.state).ustring(&self.path);
    }
    pub fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(WatcherEvent {
            event_type: r.int("type")?,
            state: r.int("state")?,
            path: r.ustring("path")?,
        })
    }
}

/// `CreateRequest`, also the body of create2 and createContainer; `ttl` is
/// present only for createTTL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateRequest {
    pub path: String,
    pub data: Vec<u8>,
    pub acl: Vec<Acl>,
    pub flags: i32,
    pub ttl: i64,
}

/// A path and whether to leave a watch (exists, getData, getChildren(2)).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathWatch {
    pub path: String,
    pub watch: bool,
}

/// A path and a version (delete, check); -1 means any version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathVersion {
    pub path: String,
    pub version: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetDataRequest {
    pub path: String,
    pub data: Vec<u8>,
    pub version: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAclRequest {
    pub path: String,
    pub acl: Vec<Acl>,
    pub version: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconfigRequest {
    pub joining_servers: String,
    pub leaving_servers: String,
    pub new_members: String,
    pub cur_config_id: i64,
}

/// checkWatches and removeWatches: a path and a `WatcherType` (1 children,
/// 2 data, 3 any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchesRequest {
    pub path: String,
    pub watcher_type: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthPacket {
    pub auth_type: i32,
    pub scheme: String,
    pub auth: Vec<u8>,
}

/// setWatches (101): watches re-registered after a reconnect.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetWatches {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
}

/// setWatches2 (105): as [`SetWatches`] plus persistent watches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetWatches2 {
    pub relative_zxid: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

/// addWatch: mode 0 persistent, 1 persistent recursive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddWatchRequest {
    pub path: String,
    pub mode: i32,
}

/// Who a connection is authenticated as (whoAmI's answer).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub auth_scheme: String,
    pub user: String,
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
            Request::Create(c) | Request::Create2(c) | Request::CreateContainer(c) => {
                w.ustring(&c.path).buffer(&c.data);
                write_acls(w, &c.acl);
                w.int(c.flags);
            }
            Request::CreateTtl(c) => {
                w.ustring(&c.path).buffer(&c.data);
                write_acls(w, &c.acl);
                w.int(c.flags).long(c.ttl);
            }
            Request::Delete(d) | Request::Check(d) => {
                w.ustring(&d.path).int(d.version);
            }
            Request::Exists(p)
            | Request::GetData(p)
            | Request::GetChildren(p)
            | Request::GetChildren2(p) => {
                w.ustring(&p.path).bool(p.watch);
            }
            Request::SetData(s) => {
                w.ustring(&s.path).buffer(&s.data).int(s.version);
            }
            Request::GetAcl(p)
            | Request::Sync(p)
            | Request::GetEphemerals(p)
            | Request::GetAllChildrenNumber(p) => {
                w.ustring(p);
            }
            Request::SetAcl(s) => {
                w.ustring(&s.path);
                write_acls(w, &s.acl);
                w.int(s.version);
            }
            Request::Ping | Request::WhoAmI | Request::CloseSession => {}
            Request::Multi(ops) | Request::MultiRead(ops) => {
                for o in ops {
                    w.int(o.opcode()).bool(false).int(-1);
                    o.write_body(w);
                }
                w.int(-1).bool(true).int(-1);
            }
            Request::Reconfig(r) => {
                w.ustring(&r.joining_servers)
                    .ustring(&r.leaving_servers)
                    .ustring(&r.new_members)
                    .long(r.cur_config_id);
            }
            Request::CheckWatches(c) | Request::RemoveWatches(c) => {
                w.ustring(&c.path).int(c.watcher_type);
            }
            Request::Auth(a) => {
                w.int(a.auth_type).ustring(&a.scheme).buffer(&a.auth);
            }
            Request::SetWatches(s) => {
                w.long(s.relative_zxid)
                    .strings(&s.data)
                    .strings(&s.exist)
                    .strings(&s.child);
            }
            Request::SetWatches2(s) => {
                w.long(s.relative_zxid)
                    .strings(&s.data)
                    .strings(&s.exist)
                    .strings(&s.child)
                    .strings(&s.persistent)
                    .strings(&s.persistent_recursive);
            }
            Request::Sasl(t) => {
                w.buffer(t);
            }
            Request::AddWatch(a) => {
                w.ustring(&a.path).int(a.mode);
            }
        }
    }

    /// Reads the body of `opcode`.
    pub fn read_body(opcode: i32, xid: i32, r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let create = |r: &mut Reader<'_>, ttl: bool| -> Result<CreateRequest, DecodeError> {
            Ok(CreateRequest {
                path: r.ustring("path")?,
                data: r.buffer("data")?,
                acl: read_acls(r)?,
                flags: r.int("flags")?,
                ttl: if ttl { r.long("ttl")? } else { 0 },
            })
        };
        let path_watch = |r: &mut Reader<'_>| -> Result<PathWatch, DecodeError> {
            Ok(PathWatch {
                path: r.ustring("path")?,
                watch: r.bool("watch")?,
            })
        };
        let path_version = |r: &mut Reader<'_>| -> Result<PathVersion, DecodeError> {
            Ok(PathVersion {
                path: r.ustring("path")?,
                version: r.int("version")?,
            })
        };
        let watches = |r: &mut Reader<'_>| -> Result<WatchesRequest, DecodeError> {
            Ok(WatchesRequest {
                path: r.ustring("path")?,
                watcher_type: r.int("type")?,
            })
        };
        Ok(match opcode {
            op::CREATE => Request::Create(create(r, false)?),
            op::CREATE2 => Request::Create2(create(r, false)?),
            op::CREATE_CONTAINER => Request::CreateContainer(create(r, false)?),
            op::CREATE_TTL => Request::CreateTtl(create(r, true)?),
            op::DELETE => Request::Delete(path_version(r)?),
            op::EXISTS => Request::Exists(path_watch(r)?),
            op::GET_DATA => Request::GetData(path_watch(r)?),
            op::SET_DATA => Request::SetData(SetDataRequest {
                path: r.ustring("path")?,
                data: r.buffer("data")?,
                version: r.int("version")?,
            }),
            op::GET_ACL => Request::GetAcl(r.ustring("path")?),
            op::SET_ACL => Request::SetAcl(SetAclRequest {
                path: r.ustring("path")?,
                acl: read_acls(r)?,
                version: r.int("version")?,
            }),
            op::GET_CHILDREN => Request::GetChildren(path_watch(r)?),
            op::SYNC => Request::Sync(r.ustring("path")?),
            op::PING => Request::Ping,
            op::GET_CHILDREN2 => Request::GetChildren2(path_watch(r)?),
            op::CHECK => Request::Check(path_version(r)?),
            op::MULTI => Request::Multi(read_ops(r, xid, is_multi_op)?),
            op::MULTI_READ => Request::MultiRead(read_ops(r, xid, is_multi_read_op)?),
            op::RECONFIG => Request::Reconfig(ReconfigRequest {
                joining_servers: r.ustring("joiningServers")?,
                leaving_servers: r.ustring("leavingServers")?,
                new_members: r.ustring("newMembers")?,
                cur_config_id: r.long("curConfigId")?,
            }),
            op::CHECK_WATCHES => Request::CheckWatches(watches(r)?),
            op::REMOVE_WATCHES => Request::RemoveWatches(watches(r)?),
            op::AUTH => Request::Auth(AuthPacket {
                auth_type: r.int("type")?,
                scheme: r.ustring("scheme")?,
                auth: r.buffer("auth")?,
            }),
            op::SET_WATCHES => Request::SetWatches(SetWatches {
                relative_zxid: r.long("relativeZxid")?,
                data: r.strings("dataWatches")?,
                exist: r.strings("existWatches")?,
                child: r.strings("childWatches")?,
            }),
            op::SET_WATCHES2 => Request::SetWatches2(SetWatches2 {
                relative_zxid: r.long("relativeZxid")?,
                data: r.strings("dataWatches")?,
                exist: r.strings("existWatches")?,
                child: r.strings("childWatches")?,
                persistent: r.strings("persistentWatches")?,
                persistent_recursive: r.strings("persistentRecursiveWatches")?,
            }),
            op::SASL => Request::Sasl(r.buffer("token")?),
            op::GET_EPHEMERALS => Request::GetEphemerals(r.ustring("prefixPath")?),
            op::GET_ALL_CHILDREN_NUMBER => Request::GetAllChildrenNumber(r.ustring("path")?),
            op::ADD_WATCH => Request::AddWatch(AddWatchRequest {
                path: r.ustring("path")?,
                mode: r.int("mode")?,
            }),
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
        let ty = r.int("multi.type")?;
        let done = r.bool("multi.done")?;
        let _err = r.int("multi.err")?;
        if done {
            return Ok(ops);
        }
        if !allowed(ty) {
            return Err(DecodeError::BadMultiOp { opcode: ty });
        }
        ops.push(Request::read_body(ty, xid, r)?);
    }
}

/// A request frame's body: header and request, with nothing left over.
pub fn decode_request(body: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
    let mut r = Reader::new(body);
    let h = RequestHeader {
        xid: r.int("xid")?,
        opcode: r.int("type")?,
    };
    let req = Request::read_body(h.opcode, h.xid, &mut r)?;
    r.finish()?;
    Ok((h, req))
}

/// Encodes a request body (header included, length prefix not).
pub fn encode_request(xid: i32, req: &Request) -> Vec<u8> {
    let mut w = Writer::new();
    w.int(xid).int(req.opcode());
    req.write_body(&mut w);
    w.buf
}

/// One op's result in a multi or multiRead reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiResult {
    Create(String),
    Create2(String, Stat),
    Delete,
    SetData(Stat),
    Check,
    GetData(Vec<u8>, Stat),
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
    Data(Vec<u8>, Stat),
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
                w.buffer(d);
                s.write(w);
            }
            Response::Acl(a, s) => {
                write_acls(w, a);
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
                    w.int(res.opcode()).bool(false).int(err);
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
                            w.buffer(d);
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
                w.int(-1).bool(true).int(-1);
            }
            Response::Count(n) | Response::ErrorBody(n) => {
                w.int(*n);
            }
            Response::WhoAmI(infos) => {
                w.vector(infos, |w, i| {
                    w.ustring(&i.auth_scheme).ustring(&i.user);
                });
            }
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
            op::GET_DATA => Response::Data(r.buffer("data")?, Stat::read(r)?),
            op::GET_ACL => Response::Acl(read_acls(r)?, Stat::read(r)?),
            op::GET_CHILDREN => Response::Children(r.strings("children")?),
            op::GET_CHILDREN2 => Response::Children2(r.strings("children")?, Stat::read(r)?),
            op::SYNC => Response::Sync(r.ustring("path")?),
            op::MULTI | op::MULTI_READ => {
                let mut results = Vec::new();
                loop {
                    let ty = r.int("multi.type")?;
                    let done = r.bool("multi.done")?;
                    let err = r.int("multi.err")?;
                    if done {
                        break;
                    }
                    results.push(match ty {
                        op::CREATE => MultiResult::Create(r.ustring("path")?),
                        op::CREATE2 => MultiResult::Create2(r.ustring("path")?, Stat::read(r)?),
                        op::DELETE => MultiResult::Delete,
                        op::SET_DATA => MultiResult::SetData(Stat::read(r)?),
                        op::CHECK => MultiResult::Check,
                        op::GET_DATA => MultiResult::GetData(r.buffer("data")?, Stat::read(r)?),
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
            op::WHO_AM_I => Response::WhoAmI(r.vector("clientInfo", 8, |r| {
                Ok(ClientInfo {
                    auth_scheme: r.ustring("authScheme")?,
                    user: r.ustring("user")?,
                })
            })?),
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
    let mut w = Writer::new();
    header.write(&mut w);
    if header.err == 0 {
        body.write(&mut w);
    }
    w.buf
}

/// Encodes a watch notification.
pub fn encode_event(ev: &WatcherEvent) -> Vec<u8> {
    let mut w = Writer::new();
    ReplyHeader {
        xid: xid::NOTIFICATION,
        zxid: -1,
        err: 0,
    }
    .write(&mut w);
    ev.write(&mut w);
    w.buf
}

/// Decodes a reply frame's body. `opcode_of(xid)` tells which request a
/// reply answers (a client keeps that); notifications need none.
pub fn decode_reply(body: &[u8], opcode_of: impl FnOnce(i32) -> i32) -> Result<Reply, DecodeError> {
    let mut r = Reader::new(body);
    let header = ReplyHeader::read(&mut r)?;
    if header.xid == xid::NOTIFICATION {
        let ev = WatcherEvent::read(&mut r)?;
        r.finish()?;
        return Ok(Reply::Event(ev));
    }
    let body = if header.err != 0 {
        None
    } else {
        Some(Response::read(opcode_of(header.xid), &mut r)?)
    };
    r.finish()?;
    Ok(Reply::Reply { header, body })
}
