//! Znode path rules shared by the server and the client: ZooKeeper's
//! `PathUtils.validatePath`.

/// Why a path is invalid, or `Ok` for a valid one: absolute, no trailing `/`
/// (except the root), no empty, `.` or `..` segments, and no NUL, control or
/// reserved characters.
pub fn check(path: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("invalid path {path:?}: {why}"));
    if path.is_empty() {
        return bad("path must not be empty");
    }
    if !path.starts_with('/') {
        return bad("path must start with /");
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return bad("path must not end with /");
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return bad("empty node name (//)");
        }
        if segment == "." || segment == ".." {
            return bad("relative names . and .. are not allowed");
        }
    }
    for c in path.chars() {
        let u = c as u32;
        if u == 0 {
            return bad("the NUL character is not allowed");
        }
        if (0x01..=0x1f).contains(&u)
            || (0x7f..=0x9f).contains(&u)
            || (0xd800..=0xf8ff).contains(&u)
            || (0xfff0..=0xffff).contains(&u)
        {
            return bad(&format!("character U+{u:04X} is not allowed"));
        }
    }
    Ok(())
}

/// The parent of a valid path (`/` for top-level nodes); `None` for the root.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// `parent` + `/` + `child`, without doubling the root's slash.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// True when `path` is `ancestor` or lies below it.
pub fn is_under(path: &str, ancestor: &str) -> bool {
    ancestor == "/"
        || path == ancestor
        || (path.starts_with(ancestor) && path.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_paths() {
        for p in ["/", "/a", "/a/b", "/a.b", "/a/..b", "/ü", "/a b"] {
            assert!(check(p).is_ok(), "{p}");
        }
        for p in [
            "",
            "a",
            "/a/",
            "//",
            "/a//b",
            "/.",
            "/a/..",
            "/a\0",
            "/a\u{1}",
            "/\u{fff5}",
        ] {
            assert!(check(p).is_err(), "{p}");
        }
    }

    #[test]
    fn parent_join_and_under() {
        assert_eq!(parent("/"), None);
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b/c"), Some("/a/b"));
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert!(is_under("/a/b", "/a"));
        assert!(!is_under("/ab", "/a"));
        assert!(is_under("/x", "/"));
    }
}
