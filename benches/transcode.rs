//! Transcoding without sockets: what libopus costs a transcoded call per
//! 20 ms packet, each way, as a media shard runs it.
//!
//! - `opus_nb_to_pcmu`: a browser's packet after the node's answer said
//!   `maxplaybackrate=8000` (Opus' speech mode, narrowband), decoded to
//!   G.711.
//! - `opus_fb_to_pcmu`: a browser's packet that ignored it (libopus'
//!   defaults at 48 kHz: fullband), decoded to G.711.
//! - `pcmu_to_opus`: the trunk's G.711 encoded for the browser.
//!
//! The audio is 1 s of a voiced sound (a gliding pitch and its harmonics),
//! cycled, so the codecs work as on speech rather than on silence.

use std::hint::black_box;

use callgate::domain::Codec;
use callgate::media::g711;
use callgate::media::transcode::Transcoder;
use criterion::{Criterion, criterion_group, criterion_main};

/// 1 s at `rate` Hz of a voiced sound.
fn voiced(rate: u32) -> Vec<i16> {
    (0..rate)
        .map(|i| {
            let t = f64::from(i) / f64::from(rate);
            let pitch = 120.0 + 40.0 * (1.3 * t).sin();
            let harmonics: f64 = (1..=24)
                .map(|h| (std::f64::consts::TAU * pitch * f64::from(h) * t).sin() / f64::from(h))
                .sum();
            (harmonics * 5000.0 * (0.6 + 0.4 * (3.0 * t).sin())) as i16
        })
        .collect()
}

/// 50 Opus packets of 20 ms, as a browser with `bandwidth` at most sends
/// them.
fn browser_packets(bandwidth: opus::Bandwidth) -> Vec<Vec<u8>> {
    let mut encoder =
        opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).expect("encoder");
    encoder.set_max_bandwidth(bandwidth).expect("bandwidth");
    let mut packet = [0u8; 1500];
    voiced(48_000)
        .chunks(960)
        .map(|frame| {
            let len = encoder.encode(frame, &mut packet).expect("encode");
            packet[..len].to_vec()
        })
        .collect()
}

fn bench_decode(c: &mut Criterion, name: &str, bandwidth: opus::Bandwidth) {
    let packets = browser_packets(bandwidth);
    let mut transcoder = Transcoder::new(Codec::Opus, Codec::Pcmu).expect("transcoder");
    let mut next = packets.iter().cycle();
    c.bench_function(name, |b| {
        b.iter(|| {
            let packet = next.next().expect("cycled");
            transcoder.convert(black_box(packet), |out| {
                black_box(out.payload);
            });
        });
    });
}

fn bench(c: &mut Criterion) {
    bench_decode(c, "opus_nb_to_pcmu", opus::Bandwidth::Narrowband);
    bench_decode(c, "opus_fb_to_pcmu", opus::Bandwidth::Fullband);

    let pcm = voiced(8_000);
    let mut ulaw = vec![0u8; pcm.len()];
    g711::encode_ulaw_into(&pcm, &mut ulaw);
    let mut transcoder = Transcoder::new(Codec::Pcmu, Codec::Opus).expect("transcoder");
    let mut next = ulaw.chunks(160).cycle();
    c.bench_function("pcmu_to_opus", |b| {
        b.iter(|| {
            let packet = next.next().expect("cycled");
            transcoder.convert(black_box(packet), |out| {
                black_box(out.payload);
            });
        });
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
