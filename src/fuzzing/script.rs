//! [`Script`]: how a target reads structure out of the fuzzer's bytes, and
//! [`ScriptWriter`], how the seed corpus writes it.
//!
//! Integers are little-endian; a byte string has its length (u16) before
//! it. Input that runs out reads as zeros and empty strings, so every byte
//! sequence is a valid script and the fuzzer wastes nothing on framing.
//! A format of our own, rather than `arbitrary`'s, because the seeds are
//! written by our code, and `arbitrary` reads lengths from the input's end.

/// See the module documentation.
pub struct Script<'a> {
    rest: &'a [u8],
}

impl<'a> Script<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { rest: data }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    /// A length-prefixed byte string, cut short where the input ends.
    pub fn bytes(&mut self) -> &'a [u8] {
        let len = usize::from(self.u16()).min(self.rest.len());
        let (bytes, rest) = self.rest.split_at(len);
        self.rest = rest;
        bytes
    }

    /// Exactly `len` bytes, or `None` (and nothing read) when fewer are left.
    pub fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.rest.split_at_checked(len)?;
        self.rest = rest;
        Some(taken)
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.rest
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let n = N.min(self.rest.len());
        out[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        out
    }
}

/// Writes what [`Script`] reads, for the seed corpus.
#[cfg(test)]
#[derive(Default)]
pub struct ScriptWriter(pub Vec<u8>);

#[cfg(test)]
impl ScriptWriter {
    pub fn u8(mut self, value: u8) -> Self {
        self.0.push(value);
        self
    }

    pub fn u16(mut self, value: u16) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn u32(mut self, value: u32) -> Self {
        self.0.extend_from_slice(&value.to_le_bytes());
        self
    }

    pub fn bytes(self, bytes: &[u8]) -> Self {
        let len = u16::try_from(bytes.len()).expect("a seed string under 64 KiB");
        let mut this = self.u16(len);
        this.0.extend_from_slice(bytes);
        this
    }

    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_the_writer_wrote_and_zeros_past_the_end() {
        let written = ScriptWriter::default()
            .u8(7)
            .u16(0x1234)
            .u32(0xdead_beef)
            .bytes(b"abc")
            .raw(b"tail");
        let mut script = Script::new(&written.0);
        assert_eq!(script.u8(), 7);
        assert_eq!(script.u16(), 0x1234);
        assert_eq!(script.u32(), 0xdead_beef);
        assert_eq!(script.bytes(), b"abc");
        assert_eq!(script.take(5), None);
        assert_eq!(script.take(2), Some(&b"ta"[..]));
        assert_eq!(script.rest(), b"il");

        let mut short = Script::new(&[1, 9, 0, 2]);
        assert_eq!(short.u16(), 0x0901);
        assert_eq!(
            short.bytes(),
            &[] as &[u8],
            "a length with nothing after it"
        );
        assert!(short.is_empty());
        assert_eq!(short.u32(), 0);
    }
}
