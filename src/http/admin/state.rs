//! [`AdminState`]: what every admin route shares.

use std::sync::Arc;

use super::node_control::NodeControl;
use crate::config::LimitsConfig;
use crate::keys::KeyRing;
use crate::recording::storage::RecordingStorage;
use crate::store::Store;

/// What the admin routes share. Cheap to clone.
#[derive(Clone)]
pub struct AdminState {
    pub store: Store,
    /// Checks API keys and opens recordings.
    pub keys: Arc<KeyRing>,
    pub storage: RecordingStorage,
    /// The `[[sip.routes]]` names a number's `trunk` may take.
    pub routes: Arc<[String]>,
    /// Where browsers reach this node, for embed snippets.
    pub base_url: String,
    /// The node's limits, which a widget's own may only tighten, and the
    /// default dialing allowance.
    pub limits: LimitsConfig,
    /// `webhooks.allow_private_targets`: a webhook URL may name a private
    /// address.
    pub webhooks_allow_private: bool,
    /// What the operator routes report and drain.
    pub node: NodeControl,
}
