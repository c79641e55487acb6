//! The public views of the node's records: what the admin API answers and
//! the webhooks send, one shape each, owned by neither. Each view is built
//! from its store row; times are RFC 3339 ([`times`]).

mod cdr;
mod progress;
mod recording;
pub mod times;

pub use self::cdr::CdrView;
pub use self::progress::CallProgressView;
pub use self::recording::RecordingView;
