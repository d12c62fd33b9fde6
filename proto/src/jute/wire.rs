//! Jute's primitive encoding: big-endian `int`/`long`, one-byte `boolean`,
//! length-prefixed `buffer`/`ustring`/`vector` where length -1 means null.
//!
//! [`Reader`] checks every length against the bytes that are actually left,
//! so no input can make it allocate more than the input's own size.

use super::DecodeError;

/// Reads jute primitives from a byte slice without panicking.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Fails with [`DecodeError::TrailingBytes`] unless everything was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated {
                    what,
                    needed: n,
                    left: 0,
                })?;
                self.pos = end;
                Ok(s)
            }
            None => Err(DecodeError::Truncated {
                what,
                needed: n,
                left: self.remaining(),
            }),
        }
    }

    pub fn int(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        let b = self.take(4, what)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        Ok(i32::from_be_bytes(a))
    }

    pub fn long(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        Ok(self.take(1, what)?.first().copied().unwrap_or(0) != 0)
    }

    /// A length prefix: -1 is null (`None`); other negatives and lengths
    /// beyond the bytes left are errors.
    fn len(&mut self, what: &'static str, unit: usize) -> Result<Option<usize>, DecodeError> {
        let n = self.int(what)?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 {
            return Err(DecodeError::NegativeLength { what, len: n });
        }
        let n = n as usize;
        if n.saturating_mul(unit) > self.remaining() {
            return Err(DecodeError::Truncated {
                what,
                needed: n.saturating_mul(unit),
                left: self.remaining(),
            });
        }
        Ok(Some(n))
    }

    /// A `buffer`; null reads as empty.
    pub fn buffer(&mut self, what: &'static str) -> Result<Vec<u8>, DecodeError> {
        match self.len(what, 1)? {
            None => Ok(Vec::new()),
            Some(n) => Ok(self.take(n, what)?.to_vec()),
        }
    }

    /// A `buffer` that may be null (znode data: ZooKeeper keeps null
    /// apart from empty).
    pub fn nullable_buffer(&mut self, what: &'static str) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.len(what, 1)? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(n, what)?.to_vec())),
        }
    }

    /// A `ustring`; null reads as empty.
    pub fn ustring(&mut self, what: &'static str) -> Result<String, DecodeError> {
        match self.len(what, 1)? {
            None => Ok(String::new()),
            Some(n) => {
                let b = self.take(n, what)?;
                String::from_utf8(b.to_vec()).map_err(|_| DecodeError::BadUtf8 { what })
            }
        }
    }

    /// A `vector`; null reads as empty. `min_size` is the smallest encoded
    /// element, so a count that cannot fit in what is left is refused before
    /// anything is allocated.
    pub fn vector<T>(
        &mut self,
        what: &'static str,
        min_size: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let n = match self.int(what)? {
            -1 => return Ok(Vec::new()),
            n if n < 0 => return Err(DecodeError::BadVectorLength { what, len: n }),
            n => n as usize,
        };
        if n.saturating_mul(min_size.max(1)) > self.remaining() {
            return Err(DecodeError::BadVectorLength {
                what,
                len: n as i32,
            });
        }
        let mut v = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            v.push(item(self)?);
        }
        Ok(v)
    }

    pub fn strings(&mut self, what: &'static str) -> Result<Vec<String>, DecodeError> {
        self.vector(what, 4, |r| r.ustring(what))
    }
}

/// Appends jute primitives to a buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn int(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn long(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(v as u8);
        self
    }

    fn len(&mut self, n: usize) -> &mut Self {
        self.int(i32::try_from(n).unwrap_or(i32::MAX))
    }

    pub fn buffer(&mut self, v: &[u8]) -> &mut Self {
        self.len(v.len());
        self.buf.extend_from_slice(v);
        self
    }

    /// A `buffer`, or null (length -1) for `None`.
    pub fn nullable_buffer(&mut self, v: &Option<Vec<u8>>) -> &mut Self {
        match v {
            Some(b) => self.buffer(b),
            None => self.int(-1),
        }
    }

    pub fn ustring(&mut self, v: &str) -> &mut Self {
        self.buffer(v.as_bytes())
    }

    pub fn vector<T>(&mut self, v: &[T], mut item: impl FnMut(&mut Self, &T)) -> &mut Self {
        self.len(v.len());
        for x in v {
            item(self, x);
        }
        self
    }

    pub fn strings(&mut self, v: &[String]) -> &mut Self {
        self.vector(v, |w, s| {
            w.ustring(s);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_round_trip_big_endian() {
        let mut w = Writer::new();
        w.int(-2).long(0x0102030405060708).bool(true).ustring("/a");
        w.buffer(b"xy").strings(&["p".into(), "q".into()]);
        assert_eq!(&w.buf[..4], &[0xff, 0xff, 0xff, 0xfe]);
        assert_eq!(&w.buf[4..12], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.int("i").unwrap(), -2);
        assert_eq!(r.long("l").unwrap(), 0x0102030405060708);
        assert!(r.bool("b").unwrap());
        assert_eq!(r.ustring("s").unwrap(), "/a");
        assert_eq!(r.buffer("b").unwrap(), b"xy");
        assert_eq!(r.strings("v").unwrap(), vec!["p", "q"]);
        r.finish().unwrap();
    }

    #[test]
    fn null_lengths_read_as_empty() {
        let mut w = Writer::new();
        w.int(-1).int(-1).int(-1);
        let mut r = Reader::new(&w.buf);
        assert_eq!(r.buffer("b").unwrap(), Vec::<u8>::new());
        assert_eq!(r.ustring("s").unwrap(), "");
        assert!(r.strings("v").unwrap().is_empty());
    }

    #[test]
    fn bad_lengths_are_typed_errors() {
        let mut w = Writer::new();
        w.int(-5);
        assert!(matches!(
            Reader::new(&w.buf).buffer("data"),
            Err(DecodeError::NegativeLength { len: -5, .. })
        ));
        let mut w = Writer::new();
        w.int(i32::MAX).int(1);
        assert!(matches!(
            Reader::new(&w.buf).buffer("data"),
            Err(DecodeError::Truncated { .. })
        ));
        assert!(matches!(
            Reader::new(&w.buf).strings("children"),
            Err(DecodeError::BadVectorLength { .. })
        ));
        let mut w = Writer::new();
        w.buffer(&[0xff, 0xfe]);
        assert!(matches!(
            Reader::new(&w.buf).ustring("path"),
            Err(DecodeError::BadUtf8 { .. })
        ));
        assert!(matches!(
            Reader::new(&[0, 0]).int("xid"),
            Err(DecodeError::Truncated { .. })
        ));
        let r = Reader::new(&[1]);
        assert!(matches!(r.finish(), Err(DecodeError::TrailingBytes(1))));
    }
}
