//! A tar archive sent as it is made: its small files from memory, its
//! large ones (recordings) as streams, each in its own 512-byte blocks, and
//! its length known before the first byte so the response can say it.
//!
//! A body stream that fails, or ends short of the length it was declared
//! with, ends the archive with an error: the reader sees a broken
//! transfer, never a wrong file.

use std::io;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt as _};

const BLOCK: u64 = 512;

/// Why an entry could not be added.
#[derive(Debug, thiserror::Error)]
#[error("archive entry {name:?}: {reason}")]
pub struct EntryError {
    name: String,
    reason: io::Error,
}

/// See the module documentation.
#[derive(Default)]
pub struct TarStream {
    parts: Vec<BoxStream<'static, Result<Bytes, io::Error>>>,
    len: u64,
}

impl TarStream {
    /// Adds a file held in memory.
    pub fn file(&mut self, name: &str, body: Vec<u8>) -> Result<(), EntryError> {
        let len = body.len() as u64;
        let mut entry = entry_header(name, len)?;
        entry.extend_from_slice(&body);
        entry.resize(entry.len() + padding(len), 0);
        self.len += entry.len() as u64;
        self.parts
            .push(stream::once(async { Ok(Bytes::from(entry)) }).boxed());
        Ok(())
    }

    /// Adds a file of `len` bytes that `body` yields when the archive is
    /// read that far.
    pub fn stream(
        &mut self,
        name: &str,
        len: u64,
        body: BoxStream<'static, Result<Bytes, io::Error>>,
    ) -> Result<(), EntryError> {
        let header = Bytes::from(entry_header(name, len)?);
        let padding = Bytes::from(vec![0; padding(len)]);
        self.len += BLOCK + len + padding.len() as u64;
        let body = Exact { body, left: len }.into_stream();
        let entry = stream::once(async { Ok(header) })
            .chain(body)
            .chain(stream::once(async { Ok(padding) }));
        self.parts.push(entry.boxed());
        Ok(())
    }

    /// The archive's length and its bytes, closed by two zero blocks.
    pub fn finish(self) -> (u64, BoxStream<'static, Result<Bytes, io::Error>>) {
        let end = Bytes::from(vec![0; 2 * BLOCK as usize]);
        let body = stream::iter(self.parts)
            .flatten()
            .chain(stream::once(async { Ok(end) }))
            .boxed();
        (self.len + 2 * BLOCK, body)
    }
}

/// A regular file's header: owner-only mode, time zero (nothing about the
/// node or the hour of the export).
fn entry_header(name: &str, len: u64) -> Result<Vec<u8>, EntryError> {
    let mut header = tar::Header::new_gnu();
    header.set_path(name).map_err(|reason| EntryError {
        name: name.to_owned(),
        reason,
    })?;
    header.set_size(len);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    Ok(header.as_bytes().to_vec())
}

fn padding(len: u64) -> usize {
    ((BLOCK - len % BLOCK) % BLOCK) as usize
}

/// A body held to the length its header declared.
struct Exact {
    body: BoxStream<'static, Result<Bytes, io::Error>>,
    left: u64,
}

impl Exact {
    fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, io::Error>> {
        stream::try_unfold(self, |mut at| async move {
            match at.body.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    at.left = (at.left.checked_sub(chunk.len() as u64)).ok_or_else(|| {
                        io::Error::other("an archive entry is longer than declared")
                    })?;
                    Ok(Some((chunk, at)))
                }
                None if at.left == 0 => Ok(None),
                None => Err(io::Error::other("an archive entry ends before its length")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    async fn collect(body: BoxStream<'static, Result<Bytes, io::Error>>) -> io::Result<Vec<u8>> {
        let chunks: Vec<Bytes> = body
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        Ok(chunks.concat())
    }

    fn chunks(parts: &[&'static [u8]]) -> BoxStream<'static, Result<Bytes, io::Error>> {
        let parts: Vec<Result<Bytes, io::Error>> =
            parts.iter().map(|p| Ok(Bytes::from_static(p))).collect();
        stream::iter(parts).boxed()
    }

    #[tokio::test]
    async fn files_and_streams_read_back_as_one_archive_of_the_declared_length() {
        let mut archive = TarStream::default();
        archive.file("call.json", b"{\"a\":1}".to_vec()).unwrap();
        archive
            .stream("recordings/r1.wav", 1000, chunks(&[&[7; 600], &[8; 400]]))
            .unwrap();
        archive.file("empty.json", Vec::new()).unwrap();
        let (len, body) = archive.finish();
        let bytes = collect(body).await.unwrap();
        assert_eq!(bytes.len() as u64, len);
        assert_eq!(len % BLOCK, 0);

        let mut read = tar::Archive::new(bytes.as_slice());
        let mut entries = Vec::new();
        for entry in read.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            assert_eq!(entry.header().mode().unwrap(), 0o600);
            assert_eq!(entry.header().mtime().unwrap(), 0);
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            entries.push((name, body));
        }
        let expected_recording = [vec![7; 600], vec![8; 400]].concat();
        assert_eq!(
            entries,
            vec![
                ("call.json".to_owned(), b"{\"a\":1}".to_vec()),
                ("recordings/r1.wav".to_owned(), expected_recording),
                ("empty.json".to_owned(), Vec::new()),
            ]
        );
    }

    #[tokio::test]
    async fn a_stream_that_fails_or_misses_its_length_breaks_the_archive() {
        let failing = stream::iter([
            Ok(Bytes::from_static(b"abc")),
            Err(io::Error::other("gone")),
        ]);
        for (len, body) in [
            (3, chunks(&[b"ab"])),
            (3, chunks(&[b"abcd"])),
            (6, failing.boxed()),
        ] {
            let mut archive = TarStream::default();
            archive.stream("r.wav", len, body).unwrap();
            assert!(collect(archive.finish().1).await.is_err(), "{len}");
        }
    }
}
