//! Recording encryption without storage: what sealing a call's audio costs.
//!
//! - `frame_20ms`: one 20 ms two-channel frame (640 bytes) pushed into the
//!   encryptor, as the recorder does 50 times a second per recorded call
//!   (a segment is sealed every 103rd frame, included in the average).
//! - `seal_1MiB` / `open_1MiB`: throughput over a 1 MiB recording
//!   (16 segments), per core.

use std::hint::black_box;

use callgate::keys::DataKey;
use callgate::recording::format::{
    AudioFormat, Completeness, RecordingHeader, SegmentEncryptor, decrypt,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const FRAME: usize = 640;
const MIB: usize = 1 << 20;

fn header() -> RecordingHeader {
    RecordingHeader {
        key_id: "bench".into(),
        recording_id: "bench-recording".into(),
        nonce_prefix: [1; 7],
        consent_hash: [2; 32],
        audio: AudioFormat::two_channel_8k(),
    }
}

fn seal(key: &DataKey, audio: &[u8]) -> Vec<u8> {
    let (mut encryptor, mut out) = SegmentEncryptor::new(key, &header());
    for frame in audio.chunks(FRAME) {
        encryptor.push(frame, &mut out).expect("push");
    }
    encryptor.finish(&mut out).expect("finish");
    out
}

fn bench(c: &mut Criterion) {
    let key = DataKey::generate();
    let frame = [0x5Au8; FRAME];
    let mut group = c.benchmark_group("recording");
    group.throughput(Throughput::Bytes(FRAME as u64));
    let (mut encryptor, _) = SegmentEncryptor::new(&key, &header());
    let mut out = Vec::with_capacity(2 * 64 * 1024);
    group.bench_function("frame_20ms", |b| {
        b.iter(|| {
            encryptor.push(black_box(&frame), &mut out).expect("push");
            if out.len() > 64 * 1024 {
                out.clear();
            }
        });
    });
    let audio = vec![0x5Au8; MIB];
    group.throughput(Throughput::Bytes(MIB as u64));
    group.bench_function("seal_1MiB", |b| b.iter(|| seal(&key, black_box(&audio))));
    let sealed = seal(&key, &audio);
    group.bench_function("open_1MiB", |b| {
        b.iter(|| decrypt(&key, black_box(&sealed), Completeness::Complete).expect("open"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
