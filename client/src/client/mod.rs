//! [`Client`]: a session with a Warden ensemble, and every operation on it.
//!
//! `connect` opens one session stream (see `connect`); a background task
//! (see `session`) owns it, and reconnects when it breaks. A `Client` is a
//! cheap handle to that task: clone it freely, every clone shares the
//! session. Retries of idempotent operations and protected creates (see
//! `protected`) happen here, on the caller's side of the task.

mod connect;
mod protected;
mod session;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use warden_proto::v1 as proto;
use warden_proto::v1::request::Op as ReqOp;
use warden_proto::v1::response::Result as Res;

use self::protected::Protected;
use self::session::{Command, SessionTask, Settings, Shared, WatchRequest};
use crate::connect_string::{ConnectString, ServerAddr};
use crate::error::{Error, ErrorCode, MultiError};
use crate::path::{validate_path, Chroot};
use crate::retry::RetryPolicy;
use crate::state::{ConnectionState, StateStream};
use crate::tls::TlsOptions;
use crate::types::{
    required_stat, Acl, AddWatchMode, ClientInfo, CreateMode, CreateOptions, Op, OpResult, Stat,
    WatcherType,
};
use crate::watch::{OneshotKind, OneshotWatch, WatchStream};

/// How to open (or resume) a session.
///
/// A struct with `Default` so callers name only what they change:
/// `ConnectOptions { session_timeout: Duration::from_secs(30), ..Default::default() }`.
#[derive(Clone)]
pub struct ConnectOptions {
    /// The session timeout to ask for; the server clamps it to its limits
    /// (see [`Client::session_timeout`] for the one granted). Default 10 s.
    pub session_timeout: Duration,
    /// How long `connect` may take in total, over all servers. Default 5 s.
    /// When reconnecting, each attempt on one server gets at most this
    /// (and a share of the session timeout).
    pub connect_timeout: Duration,
    /// Resume this session instead of opening a new one (with `password`).
    pub session_id: Option<u64>,
    /// The password of the session to resume.
    pub password: Vec<u8>,
    /// A name for this client in the server's logs and status.
    pub client_name: String,
    /// Back-off between reconnect rounds, and how idempotent operations
    /// that fail with `ConnectionLoss` are retried.
    pub retry: RetryPolicy,
    /// After the session is lost, open a new one (a new id) and carry on
    /// (`Lost`, then `Reconnected`). When false, a lost client stays lost:
    /// every call fails with `SessionExpired`. Default true.
    pub renew_expired_session: bool,
    /// Credentials to authenticate with as soon as connected (scheme and
    /// credentials, e.g. `("digest", "user:password")`), as kazoo's
    /// `auth_data`: `connect` fails with `AuthFailed` if one is refused.
    pub auth: Vec<(String, Vec<u8>)>,
    /// Speak TLS to the servers (which must run with `--tls-cert`).
    /// Default: plain text.
    pub tls: Option<TlsOptions>,
}

/// Parses `SCHEME:CREDENTIALS` (e.g. `digest:alice:secret`) into an entry
/// of [`ConnectOptions::auth`]: what the tools' `--auth` flag takes.
pub fn parse_auth(s: &str) -> Result<(String, Vec<u8>), String> {
    match s.split_once(':') {
        Some((scheme, credentials)) if !scheme.is_empty() => {
            Ok((scheme.to_string(), credentials.as_bytes().to_vec()))
        }
        _ => Err("write SCHEME:CREDENTIALS, e.g. digest:alice:secret".into()),
    }
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            session_id: None,
            password: Vec::new(),
            client_name: format!("warden-client/{}", env!("CARGO_PKG_VERSION")),
            retry: RetryPolicy::default(),
            renew_expired_session: true,
            auth: Vec::new(),
            tls: None,
        }
    }
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("session_timeout", &self.session_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("session_id", &self.session_id.map(|id| format!("{id:#x}")))
            .field("password", &"<redacted>")
            .field("client_name", &self.client_name)
            .field("retry", &self.retry)
            .field("renew_expired_session", &self.renew_expired_session)
            .field(
                "auth",
                &self.auth.iter().map(|(s, _)| s).collect::<Vec<_>>(),
            )
            .field("tls", &self.tls)
            .finish()
    }
}

/// A session with a Warden ensemble.
///
/// This is the handle every operation goes through. It is cheap to clone
/// (an `Arc` inside) and all clones share one session, one stream and one
/// ordered queue, so requests from many tasks are pipelined yet reach the
/// server in call order. Dropping the last clone stops the background task
/// and drops the connection without closing the session (it then expires
/// after its timeout, as in ZooKeeper); call [`Client::close`] to end it at
/// once, ephemerals and all.
///
/// When the connection breaks the client resumes the session on a server of
/// the connect string by itself; [`Client::state_changes`] tells what is
/// happening. Calls made meanwhile wait (up to the session timeout).
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    shared: Arc<Shared>,
    chroot: Chroot,
    servers: Vec<ServerAddr>,
    retry: RetryPolicy,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("session_id", &format!("{:#x}", self.session_id()))
            .field("server", &self.inner.shared.server().to_string())
            .field("state", &self.state())
            .field("chroot", &self.inner.chroot.prefix())
            .finish()
    }
}

impl Client {
    /// Connects to one of `servers` (`host:port[,host:port...][/chroot]`,
    /// tried in random order) and opens — or, with `opts.session_id`,
    /// resumes — a session. Must be called inside a Tokio runtime.
    ///
    /// Fails with `ConnectionLoss` ([`Error::NoServer`]) when no server
    /// accepts within `opts.connect_timeout`, `SessionExpired` when the
    /// session to resume is gone, `BadArguments` for a bad connect string.
    /// Once connected, the client reconnects by itself (see the crate docs).
    pub async fn connect(servers: &str, opts: ConnectOptions) -> Result<Client, Error> {
        let parsed = ConnectString::parse(servers)?;
        if opts.connect_timeout.is_zero() {
            return Err(Error::bad_arguments(
                "connect_timeout must be greater than zero",
            ));
        }
        if opts.session_timeout.is_zero() {
            return Err(Error::bad_arguments(
                "session_timeout must be greater than zero",
            ));
        }
        let timeout_ms = u32::try_from(opts.session_timeout.as_millis()).unwrap_or(u32::MAX);
        let request = proto::Connect {
            session_id: opts.session_id.unwrap_or(0),
            password: if opts.session_id.is_some() {
                opts.password.clone()
            } else {
                Vec::new()
            },
            timeout_ms,
            last_zxid: 0,
            client_name: opts.client_name.clone(),
        };
        let conn = connect::connect_any(
            &parsed.servers,
            &request,
            opts.connect_timeout,
            opts.tls.as_ref(),
        )
        .await?;
        if let Some(wanted) = opts.session_id {
            if conn.connected.session_id != wanted {
                return Err(Error::new(
                    ErrorCode::SessionExpired,
                    format!(
                        "{} did not resume session {wanted:#x} (it offered {:#x})",
                        conn.server, conn.connected.session_id
                    ),
                ));
            }
        }

        let shared = Arc::new(Shared::new(&conn, timeout_ms));
        tracing::debug!(
            session = format_args!("{:#x}", shared.session_id()),
            server = %conn.server,
            timeout_ms = shared.timeout().as_millis() as u64,
            "session established"
        );
        let (commands, rx) = mpsc::unbounded_channel();
        let settings = Settings {
            servers: parsed.servers.clone(),
            requested_timeout_ms: timeout_ms,
            connect_timeout: opts.connect_timeout,
            retry: opts.retry,
            renew_expired_session: opts.renew_expired_session,
            client_name: opts.client_name.clone(),
            tls: opts.tls.clone(),
        };
        let task = SessionTask::new(shared.clone(), parsed.chroot.clone(), rx, conn, settings);
        tokio::spawn(task.run());
        let client = Client {
            inner: Arc::new(Inner {
                commands,
                shared,
                chroot: parsed.chroot,
                servers: parsed.servers,
                retry: opts.retry,
            }),
        };
        for (scheme, credentials) in opts.auth {
            if let Err(e) = client.add_auth(&scheme, credentials).await {
                let _ = client.close().await;
                return Err(e);
            }
        }
        Ok(client)
    }

    /// Authenticates this connection (ZooKeeper's `addauth`): scheme
    /// `digest` with credentials `user:password`. The identity counts for
    /// the nodes' ACLs from now on, and is sent again after every
    /// reconnect before anything else. An unknown scheme fails with
    /// `AuthFailed` (the server then drops the connection; the client
    /// reconnects without it).
    pub async fn add_auth(
        &self,
        scheme: &str,
        credentials: impl Into<Vec<u8>>,
    ) -> Result<(), Error> {
        let credentials = credentials.into();
        let op = ReqOp::AddAuth(proto::AddAuth {
            scheme: scheme.to_string(),
            credentials: credentials.clone(),
        });
        self.call("/", op, None).await?;
        self.inner.shared.remember_auth(scheme, credentials);
        Ok(())
    }

    /// Who this connection is (ZooKeeper's `whoAmI`): each identity's
    /// scheme and user (`ip` and the client's address; `digest` and the
    /// user name; `super`).
    pub async fn who_am_i(&self) -> Result<Vec<ClientInfo>, Error> {
        match self
            .call("/", ReqOp::WhoAmI(proto::WhoAmI {}), None)
            .await?
        {
            Some(Res::WhoAmI(w)) => Ok(w
                .ids
                .into_iter()
                .map(|i| ClientInfo {
                    scheme: i.scheme,
                    user: i.user,
                })
                .collect()),
            other => Err(unexpected("who_am_i", &other)),
        }
    }

    /// The session's id (ZooKeeper's `sessionId`). It changes when a lost
    /// session is replaced by a new one (see
    /// [`ConnectOptions::renew_expired_session`]).
    pub fn session_id(&self) -> u64 {
        self.inner.shared.session_id()
    }

    /// The session's password: with [`Client::session_id`], what resumes it.
    pub fn session_password(&self) -> Vec<u8> {
        self.inner.shared.password()
    }

    /// The session timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        self.inner.shared.timeout()
    }

    /// The highest zxid seen in any response, watch event or ping answer.
    pub fn last_zxid(&self) -> i64 {
        self.inner.shared.last_zxid()
    }

    /// The id of the server this client is connected to.
    pub fn server_id(&self) -> u64 {
        self.inner.shared.server_id()
    }

    /// The address of the server this client is (or was last) connected to.
    pub fn server(&self) -> ServerAddr {
        self.inner.shared.server()
    }

    /// Every server of the connect string.
    pub fn servers(&self) -> &[ServerAddr] {
        &self.inner.servers
    }

    /// The chroot from the connect string, if any.
    pub fn chroot(&self) -> Option<&str> {
        self.inner.chroot.prefix()
    }

    /// The connection state now.
    pub fn state(&self) -> ConnectionState {
        self.inner.shared.state.get()
    }

    /// The connection state changes from now on (not the current state:
    /// read [`Client::state`] for that).
    pub fn state_changes(&self) -> StateStream {
        self.inner.shared.state.subscribe()
    }

    // ----- writes -------------------------------------------------------

    /// Creates a node and returns its path (with the sequence suffix for
    /// sequential modes). For TTL modes use [`Client::create_with`].
    ///
    /// Not retried: after a `ConnectionLoss` the node may or may not exist.
    /// [`Client::create_protected`] settles that question.
    pub async fn create(
        &self,
        path: &str,
        data: impl Into<Vec<u8>>,
        mode: CreateMode,
    ) -> Result<String, Error> {
        let (created, _) = self
            .create_inner(path, Some(data.into()), CreateOptions::new(mode))
            .await?;
        Ok(created)
    }

    /// Creates a node whose data is null, not empty (ZooKeeper's
    /// `create(path, null, ...)`): [`get_data_nullable`](Self::get_data_nullable)
    /// reads it back as `None`. Returns its path and stat.
    pub async fn create_null(
        &self,
        path: &str,
        options: CreateOptions,
    ) -> Result<(String, Stat), Error> {
        let (created, stat) = self.create_inner(path, None, options).await?;
        let stat = required_stat(stat, "create")?;
        Ok((created, stat))
    }

    /// Creates a node with a TTL and/or an ACL; returns its path and stat.
    pub async fn create_with(
        &self,
        path: &str,
        data: impl Into<Vec<u8>>,
        options: CreateOptions,
    ) -> Result<(String, Stat), Error> {
        let (created, stat) = self.create_inner(path, Some(data.into()), options).await?;
        let stat = required_stat(stat, "create")?;
        Ok((created, stat))
    }

    /// Creates a node whose name carries a fresh random id
    /// (`/locks/lock-` becomes `/locks/_c_<32 hex>-lock-<seq>`), so that
    /// after a `ConnectionLoss` the client can tell whether the create
    /// happened: it lists the parent's children and returns our node if
    /// it is there, or creates it again (same id) per the retry policy.
    /// Curator's `withProtection`; any mode works. Returns the full path.
    pub async fn create_protected(
        &self,
        path: &str,
        data: impl Into<Vec<u8>>,
        mode: CreateMode,
    ) -> Result<String, Error> {
        let data = data.into();
        let options = CreateOptions::new(mode);
        options.validate()?;
        let protected = Protected::new(path, mode.is_sequential())?;
        let policy = self.inner.retry;
        let mut retries = 0;
        let mut maybe_created = false;
        loop {
            if maybe_created {
                match self.find_protected(&protected).await {
                    Ok(Some(found)) => {
                        tracing::debug!(path = %found, "a protected create did happen");
                        return Ok(found);
                    }
                    Ok(None) => {}
                    Err(e) if self.should_retry(&e, retries) => {
                        tokio::time::sleep(policy.delay(retries)).await;
                        retries += 1;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            match self
                .create_inner(&protected.path, Some(data.clone()), options.clone())
                .await
            {
                Ok((created, _)) => return Ok(created),
                // Our id is in the name, so an existing node is ours.
                Err(e)
                    if maybe_created
                        && !mode.is_sequential()
                        && e.code() == ErrorCode::NodeExists =>
                {
                    return Ok(protected.path.clone())
                }
                Err(e) if self.should_retry(&e, retries) => {
                    maybe_created = true;
                    let pause = policy.delay(retries);
                    retries += 1;
                    tracing::debug!(
                        path = %protected.path,
                        error = %e,
                        retry = retries,
                        "a protected create lost its answer; checking after reconnecting"
                    );
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Our protected node, if the parent has it. First a write barrier (a
    /// `multi` with one check): writes are applied in the order the server
    /// received them, so a create sent before the connection broke has
    /// landed by the time the barrier is answered.
    async fn find_protected(&self, protected: &Protected) -> Result<Option<String>, Error> {
        match self
            .multi(vec![Op::check(protected.parent.clone(), None)])
            .await
        {
            Err(MultiError::Request(e)) if e.is_connection_loss() || e.is_session_expired() => {
                return Err(e)
            }
            // Any answer, even NoNode, means the barrier passed.
            _ => {}
        }
        match self.get_children(&protected.parent).await {
            Ok(children) => Ok(protected.find_in(&children)),
            Err(e) if e.code() == ErrorCode::NoNode => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn create_inner(
        &self,
        path: &str,
        data: Option<Vec<u8>>,
        options: CreateOptions,
    ) -> Result<(String, Option<proto::Stat>), Error> {
        if options.mode.is_sequential() {
            // As ZooKeeper: "/q/" is a valid prefix for a sequential node.
            validate_path(&format!("{path}0"))?;
        } else {
            validate_path(path)?;
        }
        options.validate()?;
        let op = ReqOp::Create(self.create_proto(path, data, &options));
        match self.call(path, op, None).await? {
            Some(Res::Create(created)) => {
                Ok((self.inner.chroot.to_client(&created.path), created.stat))
            }
            other => Err(unexpected("create", &other)),
        }
    }

    fn create_proto(
        &self,
        path: &str,
        data: Option<Vec<u8>>,
        options: &CreateOptions,
    ) -> proto::Create {
        proto::Create {
            path: self.inner.chroot.to_server(path),
            null_data: data.is_none(),
            data: data.unwrap_or_default(),
            mode: options.mode.to_proto() as i32,
            ttl_ms: options.ttl_ms(),
            acl: options.acl.iter().cloned().map(proto::Acl::from).collect(),
        }
    }

    /// Deletes a node (which must have no children); `version: Some(v)`
    /// deletes only if the node is at version `v` (`BadVersion` otherwise).
    pub async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), Error> {
        validate_path(path)?;
        let op = ReqOp::Delete(proto::Delete {
            path: self.inner.chroot.to_server(path),
            version,
        });
        self.call(path, op, None).await?;
        Ok(())
    }

    /// Replaces a node's data; `version: Some(v)` only if it is at version
    /// `v`. Returns the new stat. Retried after a `ConnectionLoss` (so with
    /// a version, a retry of a write that did land reports `BadVersion`).
    pub async fn set_data(
        &self,
        path: &str,
        data: impl Into<Vec<u8>>,
        version: Option<i32>,
    ) -> Result<Stat, Error> {
        self.set_data_inner(path, Some(data.into()), version).await
    }

    /// Sets a node's data to null, not empty (ZooKeeper's
    /// `setData(path, null, version)`); otherwise as [`set_data`](Self::set_data).
    pub async fn set_data_null(&self, path: &str, version: Option<i32>) -> Result<Stat, Error> {
        self.set_data_inner(path, None, version).await
    }

    async fn set_data_inner(
        &self,
        path: &str,
        data: Option<Vec<u8>>,
        version: Option<i32>,
    ) -> Result<Stat, Error> {
        validate_path(path)?;
        let op = ReqOp::SetData(proto::SetData {
            path: self.inner.chroot.to_server(path),
            null_data: data.is_none(),
            data: data.unwrap_or_default(),
            version,
        });
        match self.call_retrying(path, op).await? {
            Some(Res::Stat(stat)) => Ok(stat.into()),
            other => Err(unexpected("set_data", &other)),
        }
    }

    /// Replaces a node's ACL (needs ADMIN on it). Returns the new stat.
    /// Retried after a `ConnectionLoss`.
    pub async fn set_acl(
        &self,
        path: &str,
        acl: Vec<Acl>,
        version: Option<i32>,
    ) -> Result<Stat, Error> {
        validate_path(path)?;
        let op = ReqOp::SetAcl(proto::SetAcl {
            path: self.inner.chroot.to_server(path),
            acl: acl.iter().cloned().map(proto::Acl::from).collect(),
            version,
        });
        match self.call_retrying(path, op).await? {
            Some(Res::Stat(stat)) => Ok(stat.into()),
            other => Err(unexpected("set_acl", &other)),
        }
    }

    /// Applies all of `ops` atomically, or none of them. On failure the
    /// error names the op that failed and carries every op's code.
    pub async fn multi(
        &self,
        ops: impl IntoIterator<Item = Op>,
    ) -> Result<Vec<OpResult>, MultiError> {
        let ops: Vec<Op> = ops.into_iter().collect();
        let mut wire = Vec::with_capacity(ops.len());
        for (index, op) in ops.iter().enumerate() {
            let checked = validate_path(op.path()).and_then(|()| match op {
                Op::Create { options, .. } => options.validate(),
                _ => Ok(()),
            });
            if let Err(e) = checked {
                return Err(MultiError::OpFailed {
                    index,
                    code: e.code(),
                    message: e.message(),
                    codes: codes_for_failure(ops.len(), index, e.code()),
                });
            }
            wire.push(self.op_proto(op));
        }
        let response = self
            .request(ReqOp::Multi(proto::Multi { ops: wire }), None)
            .await?;
        multi_outcome(&self.inner.chroot, &ops, response)
    }

    fn op_proto(&self, op: &Op) -> proto::Op {
        use proto::op::Op as W;
        let chroot = &self.inner.chroot;
        let op = match op {
            Op::Create {
                path,
                data,
                options,
            } => W::Create(self.create_proto(path, Some(data.clone()), options)),
            Op::Delete { path, version } => W::Delete(proto::Delete {
                path: chroot.to_server(path),
                version: *version,
            }),
            Op::SetData {
                path,
                data,
                version,
            } => W::SetData(proto::SetData {
                path: chroot.to_server(path),
                data: data.clone(),
                version: *version,
                null_data: false,
            }),
            Op::Check { path, version } => W::Check(proto::Check {
                path: chroot.to_server(path),
                version: *version,
            }),
        };
        proto::Op { op: Some(op) }
    }

    // ----- reads --------------------------------------------------------

    /// A node's data and stat.
    pub async fn get_data(&self, path: &str) -> Result<(Vec<u8>, Stat), Error> {
        let (data, stat, ()) = self.get_data_inner(path, || (None, ())).await?;
        Ok((data.unwrap_or_default(), stat))
    }

    /// Like [`Client::get_data`], but null data (written by
    /// [`create_null`](Self::create_null), [`set_data_null`](Self::set_data_null)
    /// or a ZooKeeper client's `null`) reads as `None`, apart from empty.
    pub async fn get_data_nullable(&self, path: &str) -> Result<(Option<Vec<u8>>, Stat), Error> {
        let (data, stat, ()) = self.get_data_inner(path, || (None, ())).await?;
        Ok((data, stat))
    }

    /// Like [`Client::get_data`], and sets a one-shot data watch (fires on
    /// `NodeDataChanged` or `NodeDeleted`). No watch is set if the read fails.
    pub async fn get_data_w(&self, path: &str) -> Result<(Vec<u8>, Stat, OneshotWatch), Error> {
        let (data, stat, watch) = self
            .get_data_inner(path, || oneshot_request(OneshotKind::Data, path))
            .await?;
        Ok((data.unwrap_or_default(), stat, watch))
    }

    async fn get_data_inner<T>(
        &self,
        path: &str,
        mut watch: impl FnMut() -> (Option<WatchRequest>, T),
    ) -> Result<(Option<Vec<u8>>, Stat, T), Error> {
        validate_path(path)?;
        let server_path = self.inner.chroot.to_server(path);
        let (result, handle) = self
            .call_retrying_with(path, || {
                let (watch, handle) = watch();
                let op = ReqOp::GetData(proto::GetData {
                    path: server_path.clone(),
                    watch: watch.is_some(),
                });
                (op, watch, handle)
            })
            .await?;
        match result {
            Some(Res::Data(d)) => {
                let data = (!d.null_data).then_some(d.data);
                Ok((data, required_stat(d.stat, "get_data")?, handle))
            }
            other => Err(unexpected("get_data", &other)),
        }
    }

    /// The node's stat, or `None` if it does not exist.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>, Error> {
        Ok(self.exists_inner(path, || (None, ())).await?.0)
    }

    /// Like [`Client::exists`], and sets a one-shot watch — also when the
    /// node does not exist (it then fires on `NodeCreated`).
    pub async fn exists_w(&self, path: &str) -> Result<(Option<Stat>, OneshotWatch), Error> {
        self.exists_inner(path, || oneshot_request(OneshotKind::Exist, path))
            .await
    }

    async fn exists_inner<T>(
        &self,
        path: &str,
        mut watch: impl FnMut() -> (Option<WatchRequest>, T),
    ) -> Result<(Option<Stat>, T), Error> {
        validate_path(path)?;
        let server_path = self.inner.chroot.to_server(path);
        let mut handle = None;
        let result = self
            .call_retrying_with(path, || {
                let (watch, h) = watch();
                handle = Some(h);
                let op = ReqOp::Exists(proto::Exists {
                    path: server_path.clone(),
                    watch: watch.is_some(),
                });
                (op, watch, ())
            })
            .await;
        // The handle of the last attempt: on `NoNode` its watch is set too.
        let stat = match result.map(|(r, ())| r) {
            Ok(Some(Res::Exists(e))) => e.stat.map(Stat::from),
            Ok(Some(Res::Stat(stat))) => Some(stat.into()),
            Ok(None) => None,
            Ok(other) => return Err(unexpected("exists", &other)),
            Err(e) if e.code() == ErrorCode::NoNode => None,
            Err(e) => return Err(e),
        };
        let handle = handle.ok_or_else(|| Error::connection_loss("no attempt was made"))?;
        Ok((stat, handle))
    }

    /// The names (not paths) of a node's children, in the server's order.
    pub async fn get_children(&self, path: &str) -> Result<Vec<String>, Error> {
        Ok(self.get_children_inner(path, || (None, ())).await?.0)
    }

    /// The names of a node's children and the node's stat.
    pub async fn get_children2(&self, path: &str) -> Result<(Vec<String>, Stat), Error> {
        let (children, stat, ()) = self.get_children_inner(path, || (None, ())).await?;
        Ok((children, required_stat(stat, "get_children")?))
    }

    /// Like [`Client::get_children`], and sets a one-shot child watch (fires
    /// on `NodeChildrenChanged` or `NodeDeleted`).
    pub async fn get_children_w(&self, path: &str) -> Result<(Vec<String>, OneshotWatch), Error> {
        let (children, _, watch) = self
            .get_children_inner(path, || oneshot_request(OneshotKind::Child, path))
            .await?;
        Ok((children, watch))
    }

    /// Like [`Client::get_children2`], and sets a one-shot child watch.
    pub async fn get_children2_w(
        &self,
        path: &str,
    ) -> Result<(Vec<String>, Stat, OneshotWatch), Error> {
        let (children, stat, watch) = self
            .get_children_inner(path, || oneshot_request(OneshotKind::Child, path))
            .await?;
        Ok((children, required_stat(stat, "get_children")?, watch))
    }

    async fn get_children_inner<T>(
        &self,
        path: &str,
        mut watch: impl FnMut() -> (Option<WatchRequest>, T),
    ) -> Result<(Vec<String>, Option<proto::Stat>, T), Error> {
        validate_path(path)?;
        let server_path = self.inner.chroot.to_server(path);
        let (result, handle) = self
            .call_retrying_with(path, || {
                let (watch, handle) = watch();
                let op = ReqOp::GetChildren(proto::GetChildren {
                    path: server_path.clone(),
                    watch: watch.is_some(),
                });
                (op, watch, handle)
            })
            .await?;
        match result {
            Some(Res::Children(c)) => Ok((c.children, c.stat, handle)),
            other => Err(unexpected("get_children", &other)),
        }
    }

    /// A node's ACL and stat.
    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), Error> {
        validate_path(path)?;
        let op = ReqOp::GetAcl(proto::GetAcl {
            path: self.inner.chroot.to_server(path),
        });
        match self.call_retrying(path, op).await? {
            Some(Res::Acl(a)) => Ok((
                a.acl.into_iter().map(Acl::from).collect(),
                required_stat(a.stat, "get_acl")?,
            )),
            other => Err(unexpected("get_acl", &other)),
        }
    }

    /// Waits until the server this client reads from has caught up with the
    /// leader as of now: reads after `sync` see every write committed before.
    pub async fn sync(&self, path: &str) -> Result<(), Error> {
        validate_path(path)?;
        let op = ReqOp::Sync(proto::Sync {
            path: self.inner.chroot.to_server(path),
        });
        self.call_retrying(path, op).await?;
        Ok(())
    }

    /// The paths of this session's ephemeral nodes that start with `prefix`
    /// (`/` for all).
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, Error> {
        validate_path(prefix)?;
        let op = ReqOp::GetEphemerals(proto::GetEphemerals {
            prefix: self.inner.chroot.to_server(prefix),
        });
        let chroot = &self.inner.chroot;
        match self.call_retrying(prefix, op).await? {
            Some(Res::Paths(p)) => Ok(p
                .paths
                .into_iter()
                .filter(|p| chroot.contains(p))
                .map(|p| chroot.to_client(&p))
                .collect()),
            other => Err(unexpected("get_ephemerals", &other)),
        }
    }

    /// The number of descendants of a node (not counting the node).
    pub async fn get_all_children_number(&self, path: &str) -> Result<u64, Error> {
        validate_path(path)?;
        let op = ReqOp::GetAllChildrenNumber(proto::GetAllChildrenNumber {
            path: self.inner.chroot.to_server(path),
        });
        match self.call_retrying(path, op).await? {
            Some(Res::Count(c)) => u64::try_from(c.count)
                .map_err(|_| Error::protocol(format!("server sent a negative count {}", c.count))),
            other => Err(unexpected("get_all_children_number", &other)),
        }
    }

    // ----- watches ------------------------------------------------------

    /// Sets a persistent watch (or, with `PersistentRecursive`, one on the
    /// whole subtree) and returns its events as a stream. The watch stays
    /// until [`Client::remove_watches`] or the end of the session; it is
    /// re-registered by itself after a reconnect.
    pub async fn add_watch(&self, path: &str, mode: AddWatchMode) -> Result<WatchStream, Error> {
        validate_path(path)?;
        let op = ReqOp::AddWatch(proto::AddWatch {
            path: self.inner.chroot.to_server(path),
            mode: mode.to_proto() as i32,
        });
        let (_, stream) = self
            .call_retrying_with(path, || {
                let (tx, stream) = WatchStream::channel();
                let watch = WatchRequest::Stream {
                    mode,
                    path: path.to_string(),
                    tx,
                };
                (op.clone(), Some(watch), stream)
            })
            .await?;
        Ok(stream)
    }

    /// Removes this session's watches of kind `which` on `path`, here and on
    /// the server. Each removed watcher is told with a `*WatchRemoved`
    /// event (persistent streams then end).
    pub async fn remove_watches(&self, path: &str, which: WatcherType) -> Result<(), Error> {
        validate_path(path)?;
        let op = ReqOp::RemoveWatches(proto::RemoveWatches {
            path: self.inner.chroot.to_server(path),
            watcher_type: which.to_proto() as i32,
        });
        self.call_retrying_with(path, || {
            let watch = WatchRequest::Remove {
                path: path.to_string(),
                which,
            };
            (op.clone(), Some(watch), ())
        })
        .await?;
        Ok(())
    }

    // ----- session ------------------------------------------------------

    /// Closes the session: the server deletes its ephemeral nodes at once,
    /// the state becomes `Closed`, and every call after this fails with
    /// `SessionExpired`. Closing an already closed (or lost) client is a
    /// no-op. While disconnected it waits up to `connect_timeout` for a
    /// server; if none comes, the client closes locally and says so with
    /// `ConnectionLoss` (the session then expires on the server).
    pub async fn close(&self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        if self.inner.commands.send(Command::Close { reply }).is_err() {
            return self.after_stop();
        }
        match rx.await {
            Ok(result) => result,
            Err(_) => self.after_stop(),
        }
    }

    /// What `close` does once the session task has stopped (closed, or the
    /// session lost for good): there is nothing to tell the server.
    fn after_stop(&self) -> Result<(), Error> {
        if !self.inner.shared.closed_by_client() {
            self.inner.shared.mark_closed();
        }
        Ok(())
    }

    // ----- plumbing -----------------------------------------------------

    /// Sends one request and waits for the raw response.
    async fn request(
        &self,
        op: ReqOp,
        watch: Option<WatchRequest>,
    ) -> Result<proto::Response, Error> {
        let (reply, rx) = oneshot::channel();
        let command = Command::Request { op, watch, reply };
        if self.inner.commands.send(command).is_err() {
            return Err(self.inner.shared.terminal_error());
        }
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(self.inner.shared.terminal_error()),
        }
    }

    /// [`Client::call`] for an idempotent request without a watch: retried
    /// per the retry policy when it fails with `ConnectionLoss`.
    async fn call_retrying(&self, client_path: &str, op: ReqOp) -> Result<Option<Res>, Error> {
        let (result, ()) = self
            .call_retrying_with(client_path, || (op.clone(), None, ()))
            .await?;
        Ok(result)
    }

    /// Sends an idempotent request made fresh by `attempt` for each try,
    /// retrying after `ConnectionLoss` with the policy's back-off (the
    /// retry waits in the session's queue until it is connected again).
    /// `attempt` also returns a handle (a watch) that belongs to its try;
    /// the successful try's handle is returned with the result.
    async fn call_retrying_with<T>(
        &self,
        client_path: &str,
        mut attempt: impl FnMut() -> (ReqOp, Option<WatchRequest>, T),
    ) -> Result<(Option<Res>, T), Error> {
        let policy = self.inner.retry;
        let mut retries = 0;
        loop {
            let (op, watch, handle) = attempt();
            match self.call(client_path, op, watch).await {
                Ok(result) => return Ok((result, handle)),
                Err(e) if self.should_retry(&e, retries) => {
                    let pause = policy.delay(retries);
                    retries += 1;
                    tracing::debug!(
                        path = client_path,
                        error = %e,
                        retry = retries,
                        pause_ms = pause.as_millis() as u64,
                        "retrying an idempotent call"
                    );
                    tokio::time::sleep(pause).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether a failed call may be tried again: a `ConnectionLoss`, with
    /// retries left, and a session task still running.
    fn should_retry(&self, error: &Error, retries: u32) -> bool {
        error.is_connection_loss()
            && retries < self.inner.retry.max_retries
            && !self.inner.commands.is_closed()
    }

    /// Sends one request about `client_path`; a non-`Ok` code becomes an
    /// `Error`, otherwise the result is returned.
    async fn call(
        &self,
        client_path: &str,
        op: ReqOp,
        watch: Option<WatchRequest>,
    ) -> Result<Option<Res>, Error> {
        let response = self.request(op, watch).await?;
        let code = ErrorCode::from_i32(response.error);
        if !code.is_ok() {
            return Err(self.api_error(code, &response.message, client_path));
        }
        Ok(response.result)
    }

    fn api_error(&self, code: ErrorCode, server_message: &str, client_path: &str) -> Error {
        Error::new(
            code,
            client_message(&self.inner.chroot, server_message, client_path),
        )
    }
}

/// Interprets a multi's response. A failed multi may come back either as
/// a failed response carrying per-op codes, or as an `Ok` one whose op
/// results hold the failure; both are accepted.
fn multi_outcome(
    chroot: &Chroot,
    ops: &[Op],
    response: proto::Response,
) -> Result<Vec<OpResult>, MultiError> {
    let code = ErrorCode::from_i32(response.error);
    let results = match response.result {
        Some(Res::Multi(m)) => Some(m.results),
        _ => None,
    };
    let Some(results) = results else {
        if !code.is_ok() {
            return Err(Error::new(code, client_message(chroot, &response.message, "")).into());
        }
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        return Err(Error::protocol("server sent a multi answer without results").into());
    };
    let codes: Vec<ErrorCode> = results
        .iter()
        .map(|r| ErrorCode::from_i32(r.error))
        .collect();
    let culprit = codes
        .iter()
        .position(|c| !matches!(c, ErrorCode::Ok | ErrorCode::RuntimeInconsistency))
        .or_else(|| codes.iter().position(|c| !c.is_ok()));
    if let Some(index) = culprit {
        let op_path = ops.get(index).map(Op::path).unwrap_or("");
        let message = client_message(chroot, &response.message, op_path);
        return Err(MultiError::OpFailed {
            index,
            code: codes[index],
            message,
            codes,
        });
    }
    if !code.is_ok() {
        return Err(Error::new(code, client_message(chroot, &response.message, "")).into());
    }
    if results.len() != ops.len() {
        return Err(Error::protocol(format!(
            "server answered a multi of {} ops with {} results",
            ops.len(),
            results.len()
        ))
        .into());
    }
    let mut out = Vec::with_capacity(ops.len());
    for (op, result) in ops.iter().zip(results) {
        use proto::op_result::Result as R;
        let mapped = match (op, result.result) {
            (Op::Create { .. }, Some(R::Create(created))) => OpResult::Create {
                path: chroot.to_client(&created.path),
                stat: created.stat.map(Stat::from),
            },
            (Op::Delete { .. }, _) => OpResult::Delete,
            (Op::Check { .. }, _) => OpResult::Check,
            (Op::SetData { .. }, Some(R::Stat(stat))) => OpResult::SetData { stat: stat.into() },
            (op, _) => {
                return Err(Error::protocol(format!(
                    "server sent the wrong kind of result for multi op on {}",
                    op.path()
                ))
                .into())
            }
        };
        out.push(mapped);
    }
    Ok(out)
}

/// The server's message as the client should see it: the path when the
/// server sent none, and any leading path with the chroot stripped.
fn client_message(chroot: &Chroot, server_message: &str, client_path: &str) -> String {
    if server_message.is_empty() {
        return client_path.to_string();
    }
    if chroot.prefix().is_none() || !server_message.starts_with('/') {
        return server_message.to_string();
    }
    let (first, rest) = match server_message.find(char::is_whitespace) {
        Some(i) => server_message.split_at(i),
        None => (server_message, ""),
    };
    format!("{}{rest}", chroot.to_client(first))
}

/// A fresh one-shot watch for one attempt of a watching read: what the
/// session task registers, and the handle the caller gets.
fn oneshot_request(kind: OneshotKind, path: &str) -> (Option<WatchRequest>, OneshotWatch) {
    let (tx, watch) = OneshotWatch::channel();
    let request = WatchRequest::Oneshot {
        kind,
        path: path.to_string(),
        tx,
    };
    (Some(request), watch)
}

/// The codes ZooKeeper reports when op `index` of `len` fails with `code`.
fn codes_for_failure(len: usize, index: usize, code: ErrorCode) -> Vec<ErrorCode> {
    (0..len)
        .map(|i| match i.cmp(&index) {
            std::cmp::Ordering::Less => ErrorCode::Ok,
            std::cmp::Ordering::Equal => code,
            std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
        })
        .collect()
}

/// A result of the wrong kind for the request.
fn unexpected(what: &str, got: &Option<Res>) -> Error {
    let kind = match got {
        None => "no result",
        Some(Res::Create(_)) => "a create result",
        Some(Res::Stat(_)) => "a stat",
        Some(Res::Data(_)) => "a data result",
        Some(Res::Children(_)) => "a children result",
        Some(Res::Multi(_)) => "a multi result",
        Some(Res::Empty(_)) => "an empty result",
        Some(Res::Acl(_)) => "an ACL result",
        Some(Res::Exists(_)) => "an exists result",
        Some(Res::Paths(_)) => "a paths result",
        Some(Res::Count(_)) => "a count result",
        Some(Res::MultiRead(_)) => "a multi-read result",
        Some(Res::WhoAmI(_)) => "a whoAmI result",
    };
    Error::protocol(format!("server answered {what} with {kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(
        error: ErrorCode,
        message: &str,
        results: Option<Vec<proto::OpResult>>,
    ) -> proto::Response {
        proto::Response {
            xid: 1,
            zxid: 9,
            error: error.as_i32(),
            message: message.into(),
            result: results.map(|results| Res::Multi(proto::MultiResult { results })),
        }
    }

    fn op_result(code: ErrorCode, result: Option<proto::op_result::Result>) -> proto::OpResult {
        proto::OpResult {
            error: code.as_i32(),
            result,
        }
    }

    #[test]
    fn messages_lose_the_chroot() {
        let none = Chroot::default();
        let app = Chroot::new("/app").unwrap();
        assert_eq!(client_message(&none, "", "/a"), "/a");
        assert_eq!(client_message(&app, "", "/a"), "/a");
        assert_eq!(client_message(&app, "/app/a", "/a"), "/a");
        assert_eq!(
            client_message(&app, "/app/a (expected version 1, node is at 2)", "/a"),
            "/a (expected version 1, node is at 2)"
        );
        assert_eq!(
            client_message(&app, "data too large", "/a"),
            "data too large"
        );
        assert_eq!(client_message(&none, "/app/a", "/app/a"), "/app/a");
    }

    #[test]
    fn multi_success_maps_each_result() {
        use proto::op_result::Result as R;
        let app = Chroot::new("/app").unwrap();
        let ops = vec![
            Op::create("/x", "d", CreateMode::PersistentSequential),
            Op::set_data("/y", "d", Some(1)),
            Op::delete("/z", None),
            Op::check("/w", None),
        ];
        let stat = proto::Stat {
            version: 2,
            ..Default::default()
        };
        let results = vec![
            op_result(
                ErrorCode::Ok,
                Some(R::Create(proto::CreateResult {
                    path: "/app/x0000000001".into(),
                    stat: None,
                })),
            ),
            op_result(ErrorCode::Ok, Some(R::Stat(stat))),
            op_result(ErrorCode::Ok, Some(R::Empty(proto::Empty {}))),
            op_result(ErrorCode::Ok, None),
        ];
        let got = multi_outcome(&app, &ops, response(ErrorCode::Ok, "", Some(results))).unwrap();
        assert_eq!(
            got,
            vec![
                OpResult::Create {
                    path: "/x0000000001".into(),
                    stat: None
                },
                OpResult::SetData {
                    stat: Stat {
                        version: 2,
                        ..Default::default()
                    }
                },
                OpResult::Delete,
                OpResult::Check,
            ]
        );
    }

    #[test]
    fn multi_failure_names_the_op_either_way() {
        let root = Chroot::default();
        let ops = vec![
            Op::create("/a", "", CreateMode::Persistent),
            Op::delete("/missing", None),
            Op::check("/c", None),
        ];
        let codes = vec![
            ErrorCode::Ok,
            ErrorCode::NoNode,
            ErrorCode::RuntimeInconsistency,
        ];
        let results = || {
            codes
                .iter()
                .map(|c| op_result(*c, None))
                .collect::<Vec<_>>()
        };
        for top in [ErrorCode::NoNode, ErrorCode::Ok] {
            let err = multi_outcome(&root, &ops, response(top, "", Some(results()))).unwrap_err();
            match &err {
                MultiError::OpFailed {
                    index,
                    code,
                    message,
                    codes: got,
                } => {
                    assert_eq!(*index, 1);
                    assert_eq!(*code, ErrorCode::NoNode);
                    assert_eq!(message, "/missing");
                    assert_eq!(got, &codes);
                }
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(err.to_string(), "NoNode: /missing (multi op #1)");
        }
        // A failure of the whole request carries no index.
        let err = multi_outcome(
            &root,
            &ops,
            response(ErrorCode::BadArguments, "nested multi", None),
        )
        .unwrap_err();
        assert_eq!(err.failed_index(), None);
        assert_eq!(err.to_string(), "BadArguments: nested multi");
        // An empty multi may come back without results.
        assert_eq!(
            multi_outcome(&root, &[], response(ErrorCode::Ok, "", None)).unwrap(),
            vec![]
        );
        // A short answer is a protocol error, not a panic.
        let err =
            multi_outcome(&root, &ops, response(ErrorCode::Ok, "", Some(vec![]))).unwrap_err();
        assert_eq!(err.code(), ErrorCode::MarshallingError);
    }

    #[test]
    fn failure_codes_follow_zookeeper() {
        assert_eq!(
            codes_for_failure(3, 1, ErrorCode::NoNode),
            vec![
                ErrorCode::Ok,
                ErrorCode::NoNode,
                ErrorCode::RuntimeInconsistency
            ]
        );
    }

    #[test]
    fn unexpected_names_both_sides() {
        let e = unexpected("get_data", &Some(Res::Empty(proto::Empty {})));
        assert_eq!(
            e.to_string(),
            "MarshallingError: server answered get_data with an empty result"
        );
    }

    #[test]
    fn default_options() {
        let o = ConnectOptions::default();
        assert_eq!(o.session_timeout, Duration::from_secs(10));
        assert_eq!(o.connect_timeout, Duration::from_secs(5));
        assert!(o.session_id.is_none());
        assert!(!format!("{o:?}").contains("password: []"));
    }
}
