//! A shared 64-bit counter (Curator's `SharedCount` and
//! `DistributedAtomicLong`).
//!
//! The value lives in one persistent node as 8 big-endian bytes (Curator's
//! `DistributedAtomicLong` format; the 4-byte `SharedCount` format and an
//! empty node, read as 0, are understood too). The node is created with the
//! counter's initial value on first use. Changes are optimistic: read the
//! value and its version, write the new value only if the version is
//! unchanged, and on a conflict back off (per a [`RetryPolicy`]) and try
//! again.
//!
//! Conditional writes go out as a one-op `multi`, which the client never
//! retries by itself: after a `ConnectionLoss` the write may or may not have
//! happened, and the counter says so with a `ConnectionLoss` error instead of
//! guessing (a blind retry could count twice).
//!
//! ```no_run
//! # async fn demo(client: warden_client::Client) -> Result<(), warden_client::Error> {
//! use warden_client::recipes::SharedCounter;
//! let hits = SharedCounter::new(&client, "/counters/hits", 0);
//! let now = hits.increment().await?;
//! println!("hit number {now}");
//! let mut changes = hits.watch().await?;
//! changes.changed().await.ok();
//! println!("now {}", changes.borrow().value);
//! # Ok(()) }
//! ```

use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use super::sequence;
use crate::{
    Client, ConnectionState, CreateMode, Error, ErrorCode, MultiError, Op, OpResult, RetryPolicy,
};

/// A counter shared by every client that names the same path.
///
/// It exists for small shared numbers that many processes change at once —
/// sequence numbers, quotas, generation counters — where a lock around a
/// read and a write would be heavier than an optimistic compare-and-set.
#[derive(Clone)]
pub struct SharedCounter {
    client: Client,
    path: String,
    initial: i64,
    retry: RetryPolicy,
}

/// A value together with the node version it was read at: what
/// [`SharedCounter::try_set`] compares against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionedValue {
    /// The counter's value.
    pub value: i64,
    /// The node's data version (`-1` while the node does not exist; the
    /// value is then the counter's initial value).
    pub version: i32,
}

impl SharedCounter {
    /// A counter at `path` whose node is created with `initial` when first
    /// used (its parents as containers). Conflicting updates back off per
    /// [`RetryPolicy::default`]; see [`SharedCounter::with_retry`].
    pub fn new(client: &Client, path: &str, initial: i64) -> SharedCounter {
        SharedCounter {
            client: client.clone(),
            path: path.trim_end_matches('/').to_string(),
            initial,
            retry: RetryPolicy::default(),
        }
    }

    /// How conflicting updates back off, and how many retries they get
    /// before failing with `BadVersion`.
    pub fn with_retry(mut self, retry: RetryPolicy) -> SharedCounter {
        self.retry = retry;
        self
    }

    /// The counter's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The current value.
    pub async fn get(&self) -> Result<i64, Error> {
        Ok(self.get_versioned().await?.value)
    }

    /// The current value and the node version it was read at.
    pub async fn get_versioned(&self) -> Result<VersionedValue, Error> {
        for _ in 0..10 {
            match self.client.get_data(&self.path).await {
                Ok((data, stat)) => {
                    return Ok(VersionedValue {
                        value: decode(&self.path, &data)?,
                        version: stat.version,
                    })
                }
                Err(e) if e.code() == ErrorCode::NoNode => self.create_initial().await?,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorCode::SystemError,
            format!("{}: the counter node kept disappearing", self.path),
        ))
    }

    /// Sets the value unconditionally.
    pub async fn set(&self, value: i64) -> Result<(), Error> {
        for _ in 0..10 {
            match self.client.set_data(&self.path, encode(value), None).await {
                Ok(_) => return Ok(()),
                Err(e) if e.code() == ErrorCode::NoNode => self.create_initial().await?,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorCode::SystemError,
            format!("{}: the counter node kept disappearing", self.path),
        ))
    }

    /// Sets `value` only if the node is still at `previous.version`
    /// (Curator's `trySetCount`): `false` if anyone changed it since.
    pub async fn try_set(&self, previous: VersionedValue, value: i64) -> Result<bool, Error> {
        Ok(self.write_if(previous.version, value).await?.is_some())
    }

    /// Sets `new` only if the value is `expected` now (Curator's
    /// `DistributedAtomicLong.compareAndSet`): `false` if it is not.
    /// Concurrent writes that leave the value at `expected` are retried.
    pub async fn compare_and_set(&self, expected: i64, new: i64) -> Result<bool, Error> {
        self.update(|current| (current == expected).then_some(new))
            .await
            .map(|r| r.is_some())
    }

    /// Adds `delta` and returns the new value. Fails with `BadArguments` on
    /// overflow, `BadVersion` if the retries run out under contention.
    pub async fn add(&self, delta: i64) -> Result<i64, Error> {
        let mut overflow = false;
        let result = self
            .update(|current| {
                let next = current.checked_add(delta);
                overflow = next.is_none();
                next
            })
            .await?;
        match result {
            Some(value) => Ok(value),
            None if overflow => Err(Error::bad_arguments(format!(
                "{}: adding {delta} overflows the counter",
                self.path
            ))),
            None => Err(Error::new(
                ErrorCode::SystemError,
                format!("{}: the update was refused", self.path),
            )),
        }
    }

    /// Adds one and returns the new value.
    pub async fn increment(&self) -> Result<i64, Error> {
        self.add(1).await
    }

    /// Subtracts one and returns the new value.
    pub async fn decrement(&self) -> Result<i64, Error> {
        self.add(-1).await
    }

    /// The value now and every change from now on (Curator's
    /// `SharedCountListener`). A watch channel: a slow reader sees the
    /// latest value, not every intermediate one. Follows the counter across
    /// reconnects and new sessions; stops when every receiver is dropped or
    /// the client is closed.
    pub async fn watch(&self) -> Result<watch::Receiver<VersionedValue>, Error> {
        let first = self.get_versioned().await?;
        let (tx, rx) = watch::channel(first);
        tokio::spawn(follow(
            self.client.clone(),
            self.path.clone(),
            self.initial,
            tx,
        ));
        Ok(rx)
    }

    /// The optimistic loop: read, compute (`None`: give up, returning
    /// `None`), write if the version is unchanged; back off and retry on a
    /// conflict.
    async fn update(&self, mut next: impl FnMut(i64) -> Option<i64>) -> Result<Option<i64>, Error> {
        let mut conflicts = 0;
        loop {
            let current = self.get_versioned().await?;
            let Some(value) = next(current.value) else {
                return Ok(None);
            };
            if self.write_if(current.version, value).await?.is_some() {
                return Ok(Some(value));
            }
            if conflicts >= self.retry.max_retries {
                return Err(Error::new(
                    ErrorCode::BadVersion,
                    format!(
                        "{}: gave up after {} conflicting updates",
                        self.path,
                        conflicts + 1
                    ),
                ));
            }
            tokio::time::sleep(self.retry.delay(conflicts)).await;
            conflicts += 1;
        }
    }

    /// Writes `value` if the node is at `version`: the new version, or
    /// `None` if it is not (or the node is gone). A one-op `multi`, so a
    /// lost answer is reported, never retried blindly.
    async fn write_if(&self, version: i32, value: i64) -> Result<Option<i32>, Error> {
        let op = Op::set_data(self.path.clone(), encode(value), Some(version));
        match self.client.multi([op]).await {
            Ok(results) => match results.first() {
                Some(OpResult::SetData { stat }) => Ok(Some(stat.version)),
                _ => Err(Error::protocol(format!(
                    "{}: a set_data multi answered without its stat",
                    self.path
                ))),
            },
            Err(MultiError::OpFailed { code, .. })
                if code == ErrorCode::BadVersion || code == ErrorCode::NoNode =>
            {
                Ok(None)
            }
            Err(MultiError::OpFailed { code, message, .. }) => Err(Error::new(code, message)),
            Err(MultiError::Request(e)) => Err(e),
        }
    }

    /// Creates the node with the initial value; someone else's is fine.
    async fn create_initial(&self) -> Result<(), Error> {
        for _ in 0..5 {
            match self
                .client
                .create(&self.path, encode(self.initial), CreateMode::Persistent)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.code() == ErrorCode::NodeExists => return Ok(()),
                Err(e) if e.code() == ErrorCode::NoNode => {
                    if let Some((parent, _)) = self.path.rsplit_once('/') {
                        if !parent.is_empty() {
                            sequence::ensure_containers(&self.client, parent).await?;
                        }
                    }
                }
                // Unknown outcome: creating again is safe (see NodeExists).
                Err(e) if e.is_connection_loss() => {}
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorCode::SystemError,
            format!("{}: could not create the counter node", self.path),
        ))
    }
}

/// The node's bytes for a value.
fn encode(value: i64) -> Vec<u8> {
    value.to_be_bytes().to_vec()
}

/// A value from the node's bytes: 8 bytes (`DistributedAtomicLong`), 4
/// bytes (`SharedCount`), or none (0).
fn decode(path: &str, data: &[u8]) -> Result<i64, Error> {
    if let Ok(eight) = <[u8; 8]>::try_from(data) {
        return Ok(i64::from_be_bytes(eight));
    }
    if let Ok(four) = <[u8; 4]>::try_from(data) {
        return Ok(i64::from(i32::from_be_bytes(four)));
    }
    if data.is_empty() {
        return Ok(0);
    }
    Err(Error::new(
        ErrorCode::MarshallingError,
        format!(
            "{path}: {} bytes are not a counter value (8 or 4 big-endian bytes)",
            data.len()
        ),
    ))
}

/// Publishes a value if it differs from the last one published.
fn publish(tx: &watch::Sender<VersionedValue>, value: VersionedValue) {
    tx.send_if_modified(|current| {
        if *current == value {
            false
        } else {
            *current = value;
            true
        }
    });
}

/// The task behind [`SharedCounter::watch`]: read with a watch, publish,
/// wait for the watch, again.
async fn follow(client: Client, path: String, initial: i64, tx: watch::Sender<VersionedValue>) {
    let mut states = client.state_changes();
    loop {
        let step = match client.get_data_w(&path).await {
            Ok((data, stat, w)) => {
                match decode(&path, &data) {
                    Ok(value) => publish(
                        &tx,
                        VersionedValue {
                            value,
                            version: stat.version,
                        },
                    ),
                    Err(e) => tracing::debug!(%path, error = %e, "skipping a counter value"),
                }
                Ok(w)
            }
            Err(e) if e.code() == ErrorCode::NoNode => match client.exists_w(&path).await {
                // Created in between: read it.
                Ok((Some(_), _)) => continue,
                Ok((None, w)) => {
                    publish(
                        &tx,
                        VersionedValue {
                            value: initial,
                            version: -1,
                        },
                    );
                    Ok(w)
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let failed = match step {
            Ok(w) => tokio::select! {
                _ = tx.closed() => return,
                fired = w => fired.err(),
            },
            Err(e) => Some(e),
        };
        if let Some(e) = failed {
            tracing::debug!(%path, error = %e, "counter watch interrupted");
            if client.state() == ConnectionState::Closed {
                return;
            }
            // Wait for the connection to change (or a little while) before
            // reading again, so a broken client is not polled in a loop.
            tokio::select! {
                _ = tx.closed() => return,
                s = states.next() => {
                    if matches!(s, None | Some(ConnectionState::Closed)) {
                        return;
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_through_eight_bytes() {
        for v in [0, 1, -1, 42, i64::MAX, i64::MIN] {
            assert_eq!(decode("/c", &encode(v)).ok(), Some(v));
        }
        assert_eq!(encode(1), vec![0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn shared_count_and_empty_nodes_are_understood() {
        assert_eq!(decode("/c", &7i32.to_be_bytes()).ok(), Some(7));
        assert_eq!(decode("/c", &(-3i32).to_be_bytes()).ok(), Some(-3));
        assert_eq!(decode("/c", &[]).ok(), Some(0));
        let e = decode("/c", b"abc").err().map(|e| e.code());
        assert_eq!(e, Some(ErrorCode::MarshallingError));
    }
}
