//! Jute framing: every message is a 4-byte big-endian length, then that
//! many bytes. The length is checked before anything is buffered for it.

use super::DecodeError;

/// The largest frame accepted by default: ZooKeeper's `jute.maxbuffer`
/// (1 MiB, Warden's data limit) plus room for the path, ACLs and headers.
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024 + 64 * 1024;

/// Reads the length prefix at the start of `buf`, if four bytes are there.
pub fn frame_len(buf: &[u8], max: usize) -> Result<Option<usize>, DecodeError> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let mut a = [0u8; 4];
    a.copy_from_slice(head);
    let len = i32::from_be_bytes(a);
    if len < 0 {
        return Err(DecodeError::NegativeLength {
            what: "frame length",
            len,
        });
    }
    let len = len as usize;
    if len > max {
        return Err(DecodeError::FrameTooLarge { len, max });
    }
    Ok(Some(len))
}

/// Splits one complete frame off the front of `buf`: `(body, bytes used)`,
/// or `None` if more bytes are needed.
pub fn split_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, DecodeError> {
    let Some(len) = frame_len(buf, max)? else {
        return Ok(None);
    };
    Ok(buf.get(4..4 + len).map(|body| (body, 4 + len)))
}

/// Prefixes a body with its length.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(body.len() + 4);
    v.extend_from_slice(&(i32::try_from(body.len()).unwrap_or(i32::MAX)).to_be_bytes());
    v.extend_from_slice(body);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_whole_frames_only() {
        let f = frame(b"abc");
        assert_eq!(split_frame(&f[..3], 100).unwrap(), None);
        assert_eq!(split_frame(&f[..5], 100).unwrap(), None);
        assert_eq!(split_frame(&f, 100).unwrap(), Some((&b"abc"[..], 7)));
    }

    #[test]
    fn refuses_negative_and_oversized_lengths() {
        assert!(matches!(
            split_frame(&[0xff, 0xff, 0xff, 0xff], 100),
            Err(DecodeError::NegativeLength { len: -1, .. })
        ));
        assert!(matches!(
            split_frame(b"GET / HTTP/1.1", DEFAULT_MAX_FRAME),
            Err(DecodeError::FrameTooLarge { .. })
        ));
        assert!(split_frame(&frame(&[0; 101]), 100).is_err());
    }
}
