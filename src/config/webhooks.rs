//! The `[webhooks]` section: how the delivery worker retries a tenant's
//! webhook endpoint. The endpoint itself (url and signing secret) is the
//! tenant's, set through the admin API, not here.

use serde::{Deserialize, Serialize};

use super::at::At;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Seconds before the first retry of a failed delivery; each later
    /// retry waits twice as long as the one before.
    pub retry_initial_secs: u32,
    /// The longest wait between two retries, in seconds.
    pub retry_max_secs: u32,
    /// A delivery still failing this many hours after its event is given
    /// up and marked failed.
    pub give_up_hours: u32,
    /// Lets tenants' webhooks reach private, loopback and link-local
    /// addresses (and `http://` to loopback). Off: a tenant cannot point
    /// the node at its own network. Only for a node whose tenants are
    /// trusted, or for development.
    pub allow_private_targets: bool,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            retry_initial_secs: 5,
            retry_max_secs: 600,
            give_up_hours: 24,
            allow_private_targets: false,
        }
    }
}

pub(super) fn check_webhooks(webhooks: &WebhooksConfig, at: &mut At) {
    at.range("retry_initial_secs", webhooks.retry_initial_secs, 1..=3600);
    at.range("retry_max_secs", webhooks.retry_max_secs, 1..=86_400);
    at.range("give_up_hours", webhooks.give_up_hours, 1..=720);
    if webhooks.retry_max_secs < webhooks.retry_initial_secs {
        at.bad("retry_max_secs", "must not be less than retry_initial_secs");
    }
}
