//! Names for protected creates (Curator's `withProtection`).
//!
//! A create whose answer is lost to a broken connection may or may not have
//! happened; for a sequential node the client cannot even guess the name.
//! So the node's name carries a fresh random id — `_c_<32 hex>-<name>` —
//! and after a `ConnectionLoss` the client looks for a child of the parent
//! with that prefix before trying again.

use rand::RngCore;

use crate::error::Error;
use crate::path::{join, parent, validate_path};

/// What every protected name starts with (Curator's prefix, so Curator and
/// Warden clients recognise each other's nodes).
pub(crate) const PROTECTED_PREFIX: &str = "_c_";

/// One protected create: the id, and the paths it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Protected {
    /// The parent of the node, as the caller named it.
    pub parent: String,
    /// The full path to create: `<parent>/_c_<id>-<name>`.
    pub path: String,
    /// `_c_<id>-`: a child whose name starts with this is ours.
    pub marker: String,
}

impl Protected {
    /// Protects `path` with a new random id. `path` must be a valid node
    /// path, or — for sequential modes — a prefix ending in `/`.
    pub fn new(path: &str, sequential: bool) -> Result<Protected, Error> {
        Protected::with_id(path, &new_id(), sequential)
    }

    pub fn with_id(path: &str, id: &str, sequential: bool) -> Result<Protected, Error> {
        if sequential {
            validate_path(&format!("{path}0"))?;
        } else {
            validate_path(path)?;
        }
        let Some(slash) = path.rfind('/') else {
            return Err(Error::bad_arguments(path.to_string()));
        };
        let name = &path[slash + 1..];
        let parent = match parent(path) {
            Some(p) => p.to_string(),
            // Only "/" has no parent; it cannot be created.
            None => {
                return Err(Error::bad_arguments(format!(
                    "{path}: cannot protect the root"
                )))
            }
        };
        let marker = format!("{PROTECTED_PREFIX}{id}-");
        let full = format!("{}{marker}{name}", &path[..=slash]);
        if sequential {
            validate_path(&format!("{full}0"))?;
        } else {
            validate_path(&full)?;
        }
        Ok(Protected {
            parent,
            path: full,
            marker,
        })
    }

    /// The full path of our node among `children` (names under the parent),
    /// if it is there.
    pub fn find_in(&self, children: &[String]) -> Option<String> {
        children
            .iter()
            .find(|c| c.starts_with(&self.marker))
            .map(|name| join(&self.parent, name))
    }
}

/// A version 4 UUID as 32 lowercase hex digits, no hyphens.
pub(crate) fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    const ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn ids_are_v4_uuids_in_hex() {
        let a = new_id();
        assert_eq!(a.len(), 32);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(&a[12..13], "4", "version nibble: {a}");
        assert!(matches!(&a[16..17], "8" | "9" | "a" | "b"), "variant: {a}");
        assert_ne!(a, new_id());
    }

    #[test]
    fn names_put_the_marker_before_the_last_segment() {
        let p = Protected::with_id("/locks/lock-", ID, true).unwrap();
        assert_eq!(p.parent, "/locks");
        assert_eq!(p.path, format!("/locks/_c_{ID}-lock-"));
        assert_eq!(p.marker, format!("_c_{ID}-"));

        let p = Protected::with_id("/top", ID, false).unwrap();
        assert_eq!(p.parent, "/");
        assert_eq!(p.path, format!("/_c_{ID}-top"));

        // A sequential prefix ending in "/" protects an empty name.
        let p = Protected::with_id("/q/", ID, true).unwrap();
        assert_eq!(p.path, format!("/q/_c_{ID}-"));
        assert_eq!(p.parent, "/q");
    }

    #[test]
    fn bad_paths_are_refused() {
        for (path, sequential) in [
            ("/", false),
            ("/", true),
            ("rel", false),
            ("/a/", false),
            ("/a//b", true),
        ] {
            let e = Protected::with_id(path, ID, sequential).unwrap_err();
            assert_eq!(e.code(), ErrorCode::BadArguments, "{path}");
        }
    }

    #[test]
    fn finds_only_our_node() {
        let p = Protected::with_id("/locks/lock-", ID, true).unwrap();
        let other = "_c_ffffffffffffffffffffffffffffffff-lock-0000000001".to_string();
        let ours = format!("_c_{ID}-lock-0000000002");
        assert_eq!(p.find_in(std::slice::from_ref(&other)), None);
        assert_eq!(p.find_in(&["lock-0000000000".into()]), None);
        assert_eq!(
            p.find_in(&[other, ours.clone()]),
            Some(format!("/locks/{ours}"))
        );
        let root = Protected::with_id("/n", ID, false).unwrap();
        assert_eq!(
            root.find_in(&[format!("_c_{ID}-n")]),
            Some(format!("/_c_{ID}-n"))
        );
    }
}
