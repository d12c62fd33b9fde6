//! The queue of ephemeral-sequential members under one parent that the lock
//! and election recipes share.

use crate::{Client, CreateMode, Error, ErrorCode, Stat};

/// The sequence number a member's name ends with (ZooKeeper's 10 digits).
/// Names from other clients (Curator's `_c_<uuid>-lock-`, kazoo's
/// `<uuid>__lock__`) sort the same way, by their numeric suffix.
pub(crate) fn sequence_of(name: &str) -> Option<i64> {
    let digits = name.len() - name.bytes().rev().take_while(u8::is_ascii_digit).count();
    let tail = &name[digits..];
    if tail.len() < 10 {
        return None;
    }
    tail.parse().ok()
}

/// Creates every missing ancestor of `path` and `path` itself as containers
/// (Curator's `creatingParentContainersIfNeeded`).
pub(crate) async fn ensure_containers(client: &Client, path: &str) -> Result<(), Error> {
    let mut at = String::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        at.push('/');
        at.push_str(segment);
        if client.exists(&at).await?.is_some() {
            continue;
        }
        match client.create(&at, Vec::new(), CreateMode::Container).await {
            Ok(_) => {}
            Err(e) if e.code() == ErrorCode::NodeExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Joins the queue under `dir`: a protected ephemeral-sequential node named
/// `<marker><seq>`. Returns its full path and stat.
pub(crate) async fn join(
    client: &Client,
    dir: &str,
    marker: &str,
    data: &[u8],
) -> Result<(String, Stat), Error> {
    let prefix = format!("{dir}/{marker}");
    for _ in 0..10 {
        match client
            .create_protected(&prefix, data.to_vec(), CreateMode::EphemeralSequential)
            .await
        {
            Ok(path) => match client.exists(&path).await? {
                Some(stat) => return Ok((path, stat)),
                None => continue,
            },
            // The parent is missing (never made, or reaped as an empty
            // container — possibly again while we make it): make it, retry.
            Err(e) if e.code() == ErrorCode::NoNode => match ensure_containers(client, dir).await {
                Ok(()) => {}
                Err(e) if e.code() == ErrorCode::NoNode => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        }
    }
    Err(Error::new(
        ErrorCode::SystemError,
        format!("{dir}: could not join the queue (its parent kept disappearing)"),
    ))
}

/// Where a member stands in its queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Position {
    /// First in line.
    First,
    /// Behind this member (full path): the only one to watch.
    Behind(String),
    /// Our node is gone (deleted, or its session expired).
    Gone,
}

/// The members under `dir` whose names contain `marker`, in queue order.
pub(crate) async fn members(
    client: &Client,
    dir: &str,
    marker: &str,
) -> Result<Vec<String>, Error> {
    members_any(client, dir, &[marker]).await
}

/// The members under `dir` whose names contain any of `markers` (so one
/// queue can hold contenders of several client libraries), in queue order.
pub(crate) async fn members_any(
    client: &Client,
    dir: &str,
    markers: &[&str],
) -> Result<Vec<String>, Error> {
    let mut names: Vec<(i64, String)> = match client.get_children(dir).await {
        Ok(c) => c,
        Err(e) if e.code() == ErrorCode::NoNode => Vec::new(),
        Err(e) => return Err(e),
    }
    .into_iter()
    .filter(|n| markers.iter().any(|m| n.contains(m)))
    .filter_map(|n| sequence_of(&n).map(|s| (s, n)))
    .collect();
    names.sort();
    Ok(names.into_iter().map(|(_, n)| n).collect())
}

/// Finds `our` (a full path) among the queue's members.
pub(crate) async fn position(
    client: &Client,
    dir: &str,
    marker: &str,
    our: &str,
) -> Result<Position, Error> {
    position_among(client, dir, &[marker], our).await
}

/// [`position`] in a queue whose members carry any of `markers`.
pub(crate) async fn position_among(
    client: &Client,
    dir: &str,
    markers: &[&str],
    our: &str,
) -> Result<Position, Error> {
    let name = our.rsplit('/').next().unwrap_or(our);
    let members = members_any(client, dir, markers).await?;
    Ok(match members.iter().position(|m| m == name) {
        None => Position::Gone,
        Some(0) => Position::First,
        Some(i) => Position::Behind(format!("{dir}/{}", members[i - 1])),
    })
}

/// Deletes a member node in the background, retrying a few times: used when
/// an acquire is cancelled or a guard dropped, where no one can await.
pub(crate) fn delete_in_background(client: &Client, path: String) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let client = client.clone();
    handle.spawn(async move {
        for attempt in 0..5u32 {
            match client.delete(&path, None).await {
                Ok(()) => return,
                Err(e) if e.code() == ErrorCode::NoNode || e.is_session_expired() => return,
                Err(e) => {
                    tracing::debug!(%path, error = %e, attempt, "retrying the delete of a queue node");
                    tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
                }
            }
        }
    });
}

/// The last segment of a path (the node's name).
pub(crate) fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Waits until the client is connected (`Connected`/`Reconnected`); false
/// once it is closed or its session task has stopped. `states` must have
/// been subscribed before the caller last looked at the state, so no change
/// slips between the check and the wait.
pub(crate) async fn wait_connected(client: &Client, states: &mut crate::StateStream) -> bool {
    use futures::StreamExt;
    loop {
        match client.state() {
            s if s.is_connected() => return true,
            crate::ConnectionState::Closed => return false,
            _ => {}
        }
        if states.next().await.is_none() {
            return false;
        }
    }
}

/// True for errors a recipe's background task should ride out (wait for
/// the connection, then try again) rather than give up on.
pub(crate) fn is_transient(e: &Error) -> bool {
    e.is_connection_loss()
        || e.is_session_expired()
        || matches!(
            e.code(),
            ErrorCode::OperationTimeout | ErrorCode::SessionMoved | ErrorCode::Throttled
        )
}

/// Deletes a node this client created and no longer wants (a contender that
/// gave up, a lease handed back): now if the server answers, else in the
/// background. A node already gone (or a session already over) is fine.
pub(crate) async fn delete_now(client: &Client, path: &str) {
    match client.delete(path, None).await {
        Ok(()) => {}
        Err(e) if e.code() == ErrorCode::NoNode || e.is_session_expired() => {}
        Err(_) => delete_in_background(client, path.to_string()),
    }
}

/// [`join`], made cancel-safe: the create runs in a task of its own, so
/// if the caller's future is dropped before the node is handed over (while
/// the create or its check is in flight), the node is deleted as soon as
/// the create completes instead of being left in line for the session's
/// lifetime. Wrap the returned path in a drop guard straight away (no
/// `.await` in between).
pub(crate) async fn join_detached(
    client: &Client,
    dir: &str,
    marker: &str,
    data: &[u8],
) -> Result<(String, Stat), Error> {
    /// Deletes what the detached create made, unless the result was taken.
    struct Joining {
        client: Client,
        task: Option<tokio::task::JoinHandle<Result<(String, Stat), Error>>>,
    }

    impl Drop for Joining {
        fn drop(&mut self) {
            let Some(task) = self.task.take() else {
                return;
            };
            let Ok(handle) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let client = self.client.clone();
            handle.spawn(async move {
                if let Ok(Ok((path, _))) = task.await {
                    delete_now(&client, &path).await;
                }
            });
        }
    }

    let task = {
        let (client, dir, marker, data) = (
            client.clone(),
            dir.to_string(),
            marker.to_string(),
            data.to_vec(),
        );
        tokio::spawn(async move { join(&client, &dir, &marker, &data).await })
    };
    let mut joining = Joining {
        client: client.clone(),
        task: Some(task),
    };
    let result = match joining.task.as_mut() {
        Some(task) => task.await,
        None => return Err(Error::new(ErrorCode::SystemError, "no join task")),
    };
    joining.task = None;
    result.unwrap_or_else(|e| {
        Err(Error::new(
            ErrorCode::SystemError,
            format!("{dir}: joining the queue failed: {e}"),
        ))
    })
}

/// A queue node that belongs to no guard yet: deleted unless the step that
/// made it completes (cancelled, timed out, not granted, or failed). This is
/// what makes acquiring, entering and leaving cancel-safe.
pub(crate) struct Pending {
    client: Client,
    path: Option<String>,
}

impl Pending {
    pub(crate) fn new(client: &Client, path: String) -> Pending {
        Pending {
            client: client.clone(),
            path: Some(path),
        }
    }

    /// The step succeeded: the node is handed to its new owner.
    pub(crate) fn keep(&mut self) -> Option<String> {
        self.path.take()
    }

    /// True while the node is still ours to delete.
    pub(crate) fn is_armed(&self) -> bool {
        self.path.is_some()
    }

    /// Gives the node up now, waiting for the delete.
    pub(crate) async fn abandon(&mut self) {
        if let Some(p) = self.path.take() {
            delete_now(&self.client, &p).await;
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            delete_in_background(&self.client, p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sequence_of;

    #[test]
    fn sequence_numbers_of_every_naming_scheme() {
        assert_eq!(sequence_of("lock-0000000007"), Some(7));
        assert_eq!(
            sequence_of("_c_0f1e2d3c4b5a69788796a5b4c3d2e1f0-lock-0000000012"),
            Some(12)
        );
        assert_eq!(sequence_of("9a1b2c__lock__0000000003"), Some(3));
        assert_eq!(sequence_of("lock-12"), None);
        assert_eq!(sequence_of("config"), None);
    }
}
