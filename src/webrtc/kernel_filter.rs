//! A classic BPF socket filter for the shared browser port: the kernel
//! drops every datagram that is neither STUN, DTLS nor RTP/RTCP by its
//! first byte (RFC 7983 §7), and every empty one, before the receive loop
//! wakes for it. Junk in a flood then costs no system call, no copy and no
//! lookup; what passes is classified again by [`super::demux`] and
//! authenticated by the call it reaches.
//!
//! The program is plain data ([`PROGRAM`]); its test runs it through a
//! small interpreter for every first byte and compares with
//! [`super::demux::classify`].

/// On a UDP socket the filter sees the datagram from its UDP header on
/// (the kernel runs it before pulling the header), so the payload's first
/// byte is at offset 8.
const FIRST_PAYLOAD_BYTE: u32 = 8;

const LOAD_BYTE: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
const JUMP_GREATER: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JUMP_AT_LEAST: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const RETURN: u16 = 0x06; // BPF_RET | BPF_K

/// One instruction: (code, jump if true, jump if false, constant).
pub type Instruction = (u16, u8, u8, u32);

/// Accepts first bytes 0..=3 (STUN), 20..=63 (DTLS) and 128..=191
/// (RTP/RTCP); a load past the end (an empty datagram) drops.
pub const PROGRAM: [Instruction; 8] = [
    (LOAD_BYTE, 0, 0, FIRST_PAYLOAD_BYTE),
    (JUMP_GREATER, 5, 0, 191),
    (JUMP_AT_LEAST, 3, 0, 128),
    (JUMP_GREATER, 3, 0, 63),
    (JUMP_AT_LEAST, 1, 0, 20),
    (JUMP_GREATER, 1, 0, 3),
    (RETURN, 0, 0, u32::MAX),
    (RETURN, 0, 0, 0),
];

/// Attaches [`PROGRAM`] to `socket`.
#[cfg(target_os = "linux")]
pub fn attach(socket: &socket2::Socket) -> std::io::Result<()> {
    let program: Vec<socket2::SockFilter> = PROGRAM
        .iter()
        .map(|&(code, jt, jf, k)| socket2::SockFilter::new(code, jt, jf, k))
        .collect();
    socket.attach_filter(&program)
}

/// Elsewhere the receive loop's own classification does the same work.
#[cfg(not(target_os = "linux"))]
pub fn attach(_socket: &socket2::Socket) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webrtc::demux::{PacketClass, classify};

    /// Runs the program over `packet` (UDP header included) as the kernel
    /// would for the instructions it uses; returns the bytes kept.
    fn run(packet: &[u8]) -> u32 {
        let (mut pc, mut a) = (0usize, 0u32);
        loop {
            let (code, jt, jf, k) = PROGRAM[pc];
            let jump = |taken: bool| pc + 1 + usize::from(if taken { jt } else { jf });
            pc = match code {
                LOAD_BYTE => match packet.get(k as usize) {
                    Some(&byte) => {
                        a = u32::from(byte);
                        pc + 1
                    }
                    None => return 0,
                },
                JUMP_GREATER => jump(a > k),
                JUMP_AT_LEAST => jump(a >= k),
                RETURN => return k,
                other => panic!("instruction {other:#x} not interpreted"),
            };
        }
    }

    #[test]
    fn the_kernel_keeps_exactly_what_demux_would_route() {
        for first in 0..=255u8 {
            let mut packet = vec![0u8; 8];
            packet.extend_from_slice(&[first, 1, 2, 3]);
            let kept = run(&packet) > 0;
            let routable = classify(&packet[8..]) != PacketClass::Other;
            assert_eq!(kept, routable, "first byte {first}");
        }
        assert_eq!(run(&[0u8; 8]), 0, "an empty datagram is dropped");
    }
}
