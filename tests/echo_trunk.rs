//! The built-in echo trunk of `callgate serve` on its embedded default,
//! called by sipp as a UAC: the call connects and the speech sent comes back.
//!
//! The test owns the caller's media socket (sipp only signals), so it speaks
//! real speech into the call and compares what returns.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use support::audio::{similarity_ulaw, speech_ulaw};
use support::process::{PeerProcess, temp_dir};
use support::rtp::{RtpSocket, packets, ulaw_audio};
use support::sip_trace::sdp_audio_addr;
use support::sipp::{EXIT_ALL_CALLS_OK, Sipp};
use support::{ports, wait_until};

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn http_ok(addr: SocketAddr, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut reply = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut reply).is_ok()
        && reply.starts_with("HTTP/1.1 200")
}

#[test]
fn echo_trunk_answers_a_sipp_call_and_echoes_its_speech() {
    let dir = temp_dir("echo-node");
    let http = loopback(ports::free_tcp_port());
    let echo = loopback(ports::free_udp_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_callgate"));
    command
        .arg("serve")
        .env("CALLGATE_HTTP_LISTEN", http.to_string())
        .env("CALLGATE_DATA_DIR", dir.path().join("data"))
        .env(
            "CALLGATE_SIP_LISTEN_UDP",
            loopback(ports::free_udp_port()).to_string(),
        )
        .env("CALLGATE_ECHO_TRUNK_LISTEN", echo.to_string())
        .env(
            "CALLGATE_WEBRTC_LISTEN",
            loopback(ports::free_browser_ports()).to_string(),
        )
        // Clear of the ports the test harness hands out to peers.
        .env("CALLGATE_MEDIA_RTP_PORT_MIN", "13000")
        .env("CALLGATE_MEDIA_RTP_PORT_MAX", "13999");
    let mut node = PeerProcess::spawn_node("callgate", command, dir.path());
    assert!(
        wait_until(Duration::from_secs(10), || http_ok(http, "/readyz")),
        "node never became ready\n{}",
        node.output_tail(30)
    );

    let media = RtpSocket::bind();
    let mut sipp = Sipp::uac("uac_echo_call.xml", echo)
        .service("echo")
        .key("rtp_port", &media.port().to_string())
        .pause_ms(5000)
        .spawn();
    let answer = sipp
        .wait_for_message(Duration::from_secs(10), |m| m.is_response(200, "INVITE"))
        .unwrap_or_else(|| panic!("no 200 OK from the echo trunk\n{}", sipp.report()));
    let echo_media = sdp_audio_addr(&answer.body).expect("the 200 OK carries an SDP answer");

    let speech = speech_ulaw("one two three four five, the echo trunk repeats this");
    let sender = media.send_ulaw(echo_media, &speech);
    let heard = media.capture(Duration::from_secs(8), Duration::from_millis(800));
    sender.join().expect("sender thread");

    assert!(
        heard.iter().all(|a| a.from == echo_media),
        "echo came from another address"
    );
    let audio = ulaw_audio(&packets(&heard), 0);
    let likeness = similarity_ulaw(&speech, &audio);
    assert!(
        likeness.score > 0.8,
        "echo does not match the speech sent: {likeness:?}"
    );
    sipp.expect_exit(Duration::from_secs(15), EXIT_ALL_CALLS_OK);

    node.signal("TERM");
    let status = node
        .wait_for_exit(Duration::from_secs(15))
        .expect("node stops on SIGTERM");
    assert!(
        status.success(),
        "node exit {status:?}\n{}",
        node.output_tail(30)
    );
    let logs = node.output_tail(200);
    assert!(
        !logs.contains("c=IN IP4"),
        "SDP reached the node's log:\n{logs}"
    );
}
