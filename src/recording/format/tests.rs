//! The format against what an attacker or a crash can do to a file: every
//! change is refused with an error that names it.

use super::*;

fn header() -> RecordingHeader {
    RecordingHeader {
        key_id: "k1".into(),
        recording_id: "rec-1".into(),
        nonce_prefix: [7; NONCE_PREFIX_LEN],
        consent_hash: [9; 32],
        audio: AudioFormat::two_channel_8k(),
    }
}

/// Audio that is not all one byte, `len` bytes long.
fn audio(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Encrypts `plain` pushed in uneven pieces, as frames arrive.
fn encrypt(key: &DataKey, plain: &[u8]) -> Vec<u8> {
    let (mut encryptor, mut file) = SegmentEncryptor::new(key, &header());
    for piece in plain.chunks(1000) {
        encryptor.push(piece, &mut file).unwrap();
    }
    encryptor.finish(&mut file).unwrap();
    file
}

/// Empty, one byte, and either side of every segment boundary.
const INTERESTING_LENGTHS: [usize; 6] = [
    0,
    1,
    SEGMENT_SIZE - 1,
    SEGMENT_SIZE,
    SEGMENT_SIZE + 1,
    3 * SEGMENT_SIZE,
];

fn segment_start(index: usize) -> usize {
    header().encode().len() + TAG_LEN + index * (SEGMENT_SIZE + TAG_LEN)
}

#[test]
fn round_trip_at_every_interesting_length() {
    let key = DataKey::generate();
    for len in INTERESTING_LENGTHS {
        let plain = audio(len);
        let file = encrypt(&key, &plain);
        let out = decrypt(&key, &file, Completeness::Complete).unwrap();
        assert_eq!(out.audio, plain, "length {len}");
        assert!(out.complete);
        assert_eq!(out.header, header());
        assert_eq!(read_header(&file).unwrap(), header());
    }
}

#[test]
fn no_plaintext_is_visible_in_the_file() {
    let key = DataKey::generate();
    let plain = vec![0x41u8; 2 * SEGMENT_SIZE];
    let file = encrypt(&key, &plain);
    let body = &file[segment_start(0)..];
    assert!(!body.windows(32).any(|w| w.iter().all(|&b| b == 0x41)));
    assert!(!file.windows(4).any(|w| w == b"RIFF"));
}

#[test]
fn a_flipped_byte_names_its_segment() {
    let key = DataKey::generate();
    let mut file = encrypt(&key, &audio(3 * SEGMENT_SIZE + 100));
    file[segment_start(1) + 500] ^= 1;
    assert_eq!(
        decrypt(&key, &file, Completeness::Complete).unwrap_err(),
        FormatError::SegmentTampered { index: 1 }
    );
}

#[test]
fn an_edited_header_is_refused() {
    let key = DataKey::generate();
    let file = encrypt(&key, &audio(1000));
    // The recording id's last byte: "rec-1" becomes "rec-2".
    let at = file.windows(5).position(|w| w == b"rec-1").unwrap() + 4;
    let mut edited = file.clone();
    edited[at] = b'2';
    assert_eq!(
        decrypt(&key, &edited, Completeness::Complete).unwrap_err(),
        FormatError::HeaderTampered
    );
    let mut bad_magic = file.clone();
    bad_magic[0] = b'X';
    assert_eq!(
        decrypt(&key, &bad_magic, Completeness::Complete).unwrap_err(),
        FormatError::NotARecording
    );
    let mut future = file;
    future[MAGIC.len()] = 9;
    assert_eq!(
        decrypt(&key, &future, Completeness::Complete).unwrap_err(),
        FormatError::UnsupportedVersion(9)
    );
}

#[test]
fn the_wrong_data_key_fails_at_the_header() {
    let file = encrypt(&DataKey::generate(), &audio(1000));
    assert_eq!(
        decrypt(&DataKey::generate(), &file, Completeness::Complete).unwrap_err(),
        FormatError::HeaderTampered
    );
}

#[test]
fn swapped_segments_are_named_as_reordered() {
    let key = DataKey::generate();
    let mut file = encrypt(&key, &audio(3 * SEGMENT_SIZE + 100));
    let (a, b) = (segment_start(0), segment_start(1));
    let first = file[a..b].to_vec();
    let second = file[b..segment_start(2)].to_vec();
    file[a..b].copy_from_slice(&second);
    file[b..segment_start(2)].copy_from_slice(&first);
    assert_eq!(
        decrypt(&key, &file, Completeness::Complete).unwrap_err(),
        FormatError::SegmentsReordered {
            index: 0,
            original: 1
        }
    );
}

#[test]
fn truncation_is_named_whether_mid_segment_or_at_a_boundary() {
    let key = DataKey::generate();
    let file = encrypt(&key, &audio(2 * SEGMENT_SIZE + 100));
    let cut_mid_last = &file[..file.len() - 10];
    assert_eq!(
        decrypt(&key, cut_mid_last, Completeness::Complete).unwrap_err(),
        FormatError::LastSegmentDamaged { index: 2 }
    );
    let cut_at_boundary = &file[..segment_start(2)];
    assert_eq!(
        decrypt(&key, cut_at_boundary, Completeness::Complete).unwrap_err(),
        FormatError::Truncated
    );
    let header_only = &file[..segment_start(0)];
    assert_eq!(
        decrypt(&key, header_only, Completeness::Complete).unwrap_err(),
        FormatError::Truncated
    );
}

#[test]
fn data_after_the_last_segment_is_refused() {
    let key = DataKey::generate();
    let file = encrypt(&key, &audio(100));
    let mut appended = file.clone();
    appended.extend_from_slice(&file[segment_start(0)..]);
    assert!(decrypt(&key, &appended, Completeness::Complete).is_err());
}

#[test]
fn an_interrupted_recording_reads_up_to_its_last_whole_segment() {
    let key = DataKey::generate();
    let plain = audio(3 * SEGMENT_SIZE);
    let (mut encryptor, mut file) = SegmentEncryptor::new(&key, &header());
    encryptor.push(&plain, &mut file).unwrap();
    // The node died here: two segments sealed, the third still pending,
    // and a half-written fourth on disk.
    drop(encryptor);
    file.extend_from_slice(&[0xAB; 700]);
    assert_eq!(
        decrypt(&key, &file, Completeness::Complete).unwrap_err(),
        FormatError::LastSegmentDamaged { index: 2 }
    );
    let out = decrypt(&key, &file, Completeness::Interrupted).unwrap();
    assert!(!out.complete);
    assert_eq!(out.audio, plain[..2 * SEGMENT_SIZE]);
}

#[test]
fn garbage_headers_are_errors_not_panics() {
    let key = DataKey::generate();
    for len in 0..64 {
        let mut bytes = MAGIC.to_vec();
        bytes.push(FORMAT_VERSION);
        bytes.extend_from_slice(&(len as u16).to_be_bytes());
        bytes.extend(std::iter::repeat_n(0xFF, len));
        assert!(decrypt(&key, &bytes, Completeness::Complete).is_err());
    }
    assert_eq!(
        decrypt(&key, b"", Completeness::Complete).unwrap_err(),
        FormatError::NotARecording
    );
}

/// Streams `file` through a [`SegmentDecryptor`], as the API does.
fn stream_decrypt(key: &DataKey, file: &[u8]) -> Result<Vec<u8>, FormatError> {
    let (mut decryptor, _, start) = SegmentDecryptor::start(key, file)?;
    let chunks: Vec<&[u8]> = file[start..].chunks(SEALED_SEGMENT_LEN).collect();
    let mut audio = Vec::new();
    for (index, chunk) in chunks.iter().enumerate() {
        audio.extend(decryptor.open_next(chunk, index + 1 == chunks.len())?);
    }
    Ok(audio)
}

#[test]
fn streaming_decrypts_what_the_whole_file_decrypts_and_knows_its_length_first() {
    let key = DataKey::generate();
    for len in INTERESTING_LENGTHS {
        let plain = audio(len);
        let file = encrypt(&key, &plain);
        assert_eq!(stream_decrypt(&key, &file).unwrap(), plain, "length {len}");
        let start = header().encode().len() + TAG_LEN;
        assert_eq!(audio_len(file.len() as u64, start as u64), Some(len as u64));
    }
}

#[test]
fn streaming_refuses_tampering_reordering_and_truncation() {
    let key = DataKey::generate();
    let file = encrypt(&key, &audio(3 * SEGMENT_SIZE + 10));
    let mut flipped = file.clone();
    flipped[segment_start(1) + 5] ^= 1;
    assert!(matches!(
        stream_decrypt(&key, &flipped),
        Err(FormatError::SegmentTampered { index: 1 })
    ));
    let mut swapped = file.clone();
    let (a, b) = (segment_start(0), segment_start(1));
    let first: Vec<u8> = swapped[a..b].to_vec();
    let second: Vec<u8> = swapped[b..b + (b - a)].to_vec();
    swapped[a..b].copy_from_slice(&second);
    swapped[b..b + (b - a)].copy_from_slice(&first);
    assert!(matches!(
        stream_decrypt(&key, &swapped),
        Err(FormatError::SegmentsReordered { .. })
    ));
    let cut = &file[..segment_start(3)];
    assert!(
        stream_decrypt(&key, cut).is_err(),
        "the last segment is missing"
    );
    let mut header_edit = file.clone();
    header_edit[8] ^= 1;
    assert!(stream_decrypt(&key, &header_edit).is_err());
}
