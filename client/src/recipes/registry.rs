//! Service registration and discovery (Curator's `ServiceDiscovery`, with
//! opaque payloads).
//!
//! An instance of a service registers as the ephemeral node
//! `<base>/<service>/<instance id>` whose data is the instance's payload
//! (an address, a JSON document — the registry does not look inside). The
//! node is a [`PersistentEphemeralNode`], so a registration survives
//! reconnects and comes back by itself after the session is lost; it goes
//! away when the instance unregisters, closes its client, or dies (its
//! session expires). Clients find instances by listing the service's
//! children, or follow them live through a [`TreeCache`] on the service.
//!
//! ```no_run
//! # async fn demo(client: warden_client::Client) -> Result<(), warden_client::Error> {
//! use warden_client::recipes::ServiceRegistry;
//! let registry = ServiceRegistry::new(&client, "/services");
//! let me = registry.register("billing", "host-a:9000", "10.0.0.5:9000").await?;
//!
//! for instance in registry.instances("billing").await? {
//!     println!("{} at {}", instance.id, String::from_utf8_lossy(&instance.payload));
//! }
//! let mut live = registry.watch("billing").await?;
//! live.changed().await.ok();
//! println!("now {} instances", live.borrow().len());
//! me.unregister().await?;
//! # Ok(()) }
//! ```

use std::time::Duration;

use tokio::sync::watch;

use super::cache::TreeCache;
use super::persistent_node::{EphemeralMode, PersistentEphemeralNode};
use crate::path::validate_path;
use crate::{Client, Error, ErrorCode};

/// One registered instance of a service.
///
/// It exists as the unit discovery hands out: the id to tell instances
/// apart, and the payload saying how to reach this one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Instance {
    /// The instance's id (its node's name).
    pub id: String,
    /// What the instance registered with (e.g. its address).
    pub payload: Vec<u8>,
}

/// The services registered under one base path.
///
/// It exists so services find each other by name instead of by
/// configuration: instances announce themselves, and callers list or
/// follow the live set. Cheap to clone.
#[derive(Clone)]
pub struct ServiceRegistry {
    client: Client,
    base: String,
}

impl std::fmt::Debug for ServiceRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceRegistry")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A live registration: the instance stays listed while this lives.
///
/// It exists to tie the announcement to the instance's lifetime in the
/// program: dropping it (or [`unregister`](Registration::unregister))
/// removes the instance.
#[derive(Debug)]
pub struct Registration {
    service: String,
    id: String,
    path: String,
    node: PersistentEphemeralNode,
}

impl ServiceRegistry {
    /// A registry under `base` (e.g. `/services`; created as containers).
    pub fn new(client: &Client, base: &str) -> ServiceRegistry {
        let base = match base.trim_end_matches('/') {
            "" => "/".to_string(),
            b => b.to_string(),
        };
        ServiceRegistry {
            client: client.clone(),
            base,
        }
    }

    /// The base path.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The path of a service's directory.
    pub fn service_path(&self, service: &str) -> Result<String, Error> {
        check_name("service", service)?;
        Ok(crate::path::join(&self.base, service))
    }

    /// Registers an instance of `service` as `instance_id` with `payload`,
    /// and waits until it is listed.
    ///
    /// Fails with `NodeExists` when another live session holds the same
    /// instance id (after waiting long enough for a stale node of an expired
    /// session to go), `BadArguments` for names that are not single path
    /// segments.
    pub async fn register(
        &self,
        service: &str,
        instance_id: &str,
        payload: impl Into<Vec<u8>>,
    ) -> Result<Registration, Error> {
        check_name("instance id", instance_id)?;
        let dir = self.service_path(service)?;
        let path = format!("{dir}/{instance_id}");
        let node =
            PersistentEphemeralNode::new(&self.client, &path, payload, EphemeralMode::Ephemeral)?;
        // Long enough for a node of our own expired session to be reaped.
        let patience = (self.client.session_timeout() * 2).max(Duration::from_secs(5));
        match node.wait_for_initial_create(patience).await {
            Ok(_) => Ok(Registration {
                service: service.to_string(),
                id: instance_id.to_string(),
                path,
                node,
            }),
            Err(e) if e.code() == ErrorCode::OperationTimeout => {
                let held = matches!(self.client.exists(&path).await, Ok(Some(_)));
                let _ = node.close().await;
                if held {
                    Err(Error::new(
                        ErrorCode::NodeExists,
                        format!("{path}: the instance id is registered by another session"),
                    ))
                } else {
                    Err(e)
                }
            }
            Err(e) => {
                let _ = node.close().await;
                Err(e)
            }
        }
    }

    /// The names of the services that have (or had) instances.
    pub async fn services(&self) -> Result<Vec<String>, Error> {
        match self.client.get_children(&self.base).await {
            Ok(mut names) => {
                names.sort();
                Ok(names)
            }
            Err(e) if e.code() == ErrorCode::NoNode => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// The instances of `service` registered now, sorted by id.
    pub async fn instances(&self, service: &str) -> Result<Vec<Instance>, Error> {
        let dir = self.service_path(service)?;
        let ids = match self.client.get_children(&dir).await {
            Ok(ids) => ids,
            Err(e) if e.code() == ErrorCode::NoNode => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let reads = ids.into_iter().map(|id| {
            let path = format!("{dir}/{id}");
            async move {
                match self.client.get_data(&path).await {
                    Ok((payload, _)) => Ok(Some(Instance { id, payload })),
                    // Gone between the listing and the read.
                    Err(e) if e.code() == ErrorCode::NoNode => Ok(None),
                    Err(e) => Err(e),
                }
            }
        });
        let mut instances = Vec::new();
        for read in futures::future::join_all(reads).await {
            if let Some(instance) = read? {
                instances.push(instance);
            }
        }
        instances.sort();
        Ok(instances)
    }

    /// The live list of `service`'s instances (sorted by id): a receiver
    /// that is told each time an instance comes, goes or changes its
    /// payload. A [`TreeCache`] on the service runs behind it until every
    /// receiver is dropped.
    pub async fn watch(&self, service: &str) -> Result<watch::Receiver<Vec<Instance>>, Error> {
        let dir = self.service_path(service)?;
        let cache = TreeCache::start(&self.client, &dir).await?;
        let (tx, rx) = watch::channel(instances_in(&cache, &dir));
        tokio::spawn(async move {
            let mut versions = cache.versions();
            loop {
                tokio::select! {
                    changed = versions.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let now = instances_in(&cache, &dir);
                        tx.send_if_modified(|list| {
                            let changed = *list != now;
                            *list = now;
                            changed
                        });
                    }
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(rx)
    }
}

/// The instances a tree cache on a service directory holds.
fn instances_in(cache: &TreeCache, dir: &str) -> Vec<Instance> {
    let mut instances: Vec<Instance> = cache
        .children(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|id| {
            let node = cache.get(&format!("{dir}/{id}"))?;
            Some(Instance {
                id,
                payload: node.data,
            })
        })
        .collect();
    instances.sort();
    instances
}

/// Checks that a service name or instance id is one path segment.
fn check_name(what: &str, name: &str) -> Result<(), Error> {
    if name.contains('/') {
        return Err(Error::bad_arguments(format!(
            "the {what} {name:?} must not contain /"
        )));
    }
    validate_path(&format!("/{name}"))
        .map_err(|e| Error::bad_arguments(format!("the {what} {name:?}: {}", e.message())))?;
    if name.is_empty() {
        return Err(Error::bad_arguments(format!(
            "the {what} must not be empty"
        )));
    }
    Ok(())
}

impl Registration {
    /// The service registered under.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The instance id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The registration's node path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// True while the node exists (as far as this client knows): false
    /// between a loss and its re-creation.
    pub fn is_registered(&self) -> bool {
        self.node.path().is_some()
    }

    /// Replaces the payload (now and for every re-creation).
    pub async fn update(&self, payload: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.node.set_data(payload).await
    }

    /// Removes the instance from the registry.
    pub async fn unregister(self) -> Result<(), Error> {
        self.node.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_single_segments() {
        assert!(check_name("service", "billing").is_ok());
        assert!(check_name("id", "host-a:9000").is_ok());
        for bad in ["", "a/b", ".", "..", "x\u{1}"] {
            let e = check_name("service", bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::BadArguments, "{bad:?}");
        }
    }
}
