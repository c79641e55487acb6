//! callgate: a WebRTC-to-SIP call-relay gateway with privacy built in.
//!
//! ```text
//!  browser widget                 callgate node                          SIP trunk / PSTN
//!  ┌──────────────┐  HTTPS offer  ┌───────────────────────────────┐
//!  │ call button  │ ────────────▶ │ http/   signalling, admin,    │
//!  │ consent      │ ◀── events ── │         health, metrics       │   SIP (UDP/TCP/TLS)
//!  └──────┬───────┘               │ sip/    trunk user agent      │ ──────────────────▶
//!         │ ICE + DTLS-SRTP       │ media/  RTP endpoint, relay,  │   RTP / SRTP
//!         └─────────────────────▶ │         codecs, DTMF          │ ◀────────────────▶
//!                                 └───────────────────────────────┘
//! ```
//!
//! Module map:
//! - [`domain`]: the words every layer shares: identifiers, codecs, how
//!   and by whom a call ended, each leg's figures, recording policy and
//!   consent.
//! - [`config`]: TOML plus `CALLGATE_*` overrides, validated all at once.
//! - [`privacy`]: [`privacy::Pii`], the wrapper that keeps personal data out of logs.
//! - [`http`]: the node's HTTP surface: signalling, admin API, dashboard, health, metrics.
//! - [`sip`]: the trunk leg, a SIP user agent behind our own small API.
//! - [`webrtc`]: the browser leg: the answer, the ICE-lite port's routing,
//!   STUN checks, the DTLS-SRTP handshake and each call's session.
//! - [`media`]: the trunk-side RTP endpoint (a sans-IO core and a tokio host
//!   for the echo trunk), SRTP for both legs, and the pure packet logic
//!   under them.
//! - [`metrics`]: the node's Prometheus registry, built once by `main` and
//!   passed down, and the handles that record into it.
//! - [`call`]: one call: its media (the browser session, the trunk's RTP
//!   endpoint core and the relay, sans-IO), the media shards that host the
//!   media of many calls on a thread per core, the trunk leg's SIP dialog,
//!   the state machine, the control task of each call, and the call's
//!   record as it ends.
//! - [`cluster`]: several nodes on one Redis: the node registry,
//!   cluster-wide limits as leases, placement, and each node's calls (so a
//!   call's requests reach its node and a lost node's calls are written);
//!   absent without `[cluster]`.
//! - [`echo_trunk`]: the built-in loopback trunk that answers and echoes.
//! - [`recording`]: the encrypted recording format, the consent gate and
//!   the recorder.
//! - [`keys`]: the node's key-encryption keys and what is done under them:
//!   recordings' data keys wrapped, consent receipts signed, API keys
//!   hashed, dashboard sessions tagged, webhook secrets sealed.
//! - [`store`]: the database (SQLite via sqlx): tenants, numbers, widgets, CDRs.
//! - [`views`]: the public views of CDRs, recordings and call progress,
//!   as the admin API answers them and the webhooks send them.
//! - [`webhooks`]: the signed `call.ended` / `recording.ready` queue and its delivery worker.
//! - [`node`]: starts and stops the pieces of one node.
//! - [`supervise`]: core tasks whose failure stops the node, never leaving
//!   it half-alive.
//! - [`telemetry`]: logging setup, text or JSON lines on stderr.
//! - [`proc_stat`]: a process's CPU time and memory from `/proc` (the
//!   node's CPU in the cluster registry, a node's figures in the load tool).
//! - `fuzzing` (feature `fuzzing`): the entry points of `fuzz/`'s targets.
//!
//! Layers, lowest first; a module imports only modules on its own line or
//! the lines above it, and no file imports one that imports it back:
//! 1. `domain`, `privacy`, `dialing`, `supervise`, `proc_stat`
//! 2. `keys`, `cluster`
//! 3. `config`, then `telemetry`
//! 4. `store`, `media`
//! 5. `views`, `webrtc`, `sip`, then `metrics`
//! 6. `webhooks`, then `recording`
//! 7. `call`
//! 8. `echo_trunk`, `http`
//! 9. `node` (and `fuzzing`), which start and join the rest
//!
//! Protocol and policy logic does no I/O; only `http/`, the socket loops
//! (`call/shard/worker.rs`, the echo trunk's endpoint task), `sip/`
//! transports and storage backends touch the world.
#![forbid(unsafe_code)]

pub mod call;
pub mod cluster;
pub mod config;
pub mod dialing;
pub mod domain;
pub mod echo_trunk;
#[cfg(any(feature = "fuzzing", test))]
pub mod fuzzing;
pub mod http;
pub mod keys;
pub mod media;
pub mod metrics;
pub mod node;
pub mod privacy;
pub mod proc_stat;
pub mod recording;
pub mod sip;
pub mod store;
pub mod supervise;
pub mod telemetry;
pub mod views;
pub mod webhooks;
pub mod webrtc;
