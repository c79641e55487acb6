//! [`Webhooks`]: the queue side. An event is queued in the store, with the
//! body its endpoint will receive, and the worker is woken. Also the event
//! names an endpoint may choose.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::Notify;
use tracing::warn;

use crate::store::{CdrRecord, Store, WidgetRoute, unix_ms};
use crate::views::{CallProgressView, CdrView, RecordingView, times};

/// `Callgate-Event` of a finished call; the body is its [`CdrView`].
pub const CALL_ENDED: &str = "call.ended";
/// `Callgate-Event` of a stored recording; the body is its [`RecordingView`].
pub const RECORDING_READY: &str = "recording.ready";
/// `Callgate-Event` of a call whose callee's phone rings (180 or 183 from
/// the trunk); the body is a [`CallProgressView`].
pub const CALL_RINGING: &str = "call.ringing";
/// `Callgate-Event` of a call the callee answered; the body is a
/// [`CallProgressView`].
pub const CALL_ANSWERED: &str = "call.answered";
/// Every event an endpoint may receive.
pub const EVENTS: [&str; 4] = [CALL_RINGING, CALL_ANSWERED, CALL_ENDED, RECORDING_READY];
/// What an endpoint receives unless it chooses.
pub const DEFAULT_EVENTS: &str = "call.ended,recording.ready";

/// Queues events and wakes the worker. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Webhooks {
    pub(super) store: Store,
    pub(super) wake: Arc<Notify>,
}

impl Webhooks {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Queues `call.ended` for the tenant of a written CDR.
    pub async fn on_call_ended(&self, tenant: &str, cdr: &CdrRecord) {
        let view = CdrView::from(cdr.clone());
        self.enqueue(tenant, CALL_ENDED, &view).await;
    }

    /// Queues `call.ringing` or `call.answered` (`event`) of call
    /// `call_id` on `widget`, reached `at`.
    pub async fn on_call_progress(
        &self,
        widget: &WidgetRoute,
        call_id: &str,
        event: &'static str,
        at: SystemTime,
    ) {
        let view = CallProgressView {
            call_id: call_id.into(),
            number_id: widget.number_id.clone(),
            widget_id: widget.widget_id.clone(),
            at: times::format(unix_ms(at)),
        };
        self.enqueue(&widget.tenant_id, event, &view).await;
    }

    /// Queues `recording.ready` for recording `id`, now stored.
    pub async fn on_recording_stored(&self, id: &str) {
        match self.store.recording(id).await {
            Ok(Some(row)) => {
                let tenant = row.tenant_id.clone();
                self.enqueue(&tenant, RECORDING_READY, &RecordingView::from(row))
                    .await;
            }
            Ok(None) => {}
            Err(error) => {
                warn!(recording = %id, %error, "cannot read a stored recording for its webhook")
            }
        }
    }

    async fn enqueue(&self, tenant: &str, event: &'static str, view: &impl serde::Serialize) {
        let body = match serde_json::to_string(view) {
            Ok(body) => body,
            Err(error) => {
                warn!(event, %error, "cannot encode a webhook body");
                return;
            }
        };
        match self.store.enqueue_webhook(tenant, event, &body).await {
            Ok(true) => self.wake.notify_one(),
            Ok(false) => {}
            Err(error) => warn!(event, %error, "cannot queue a webhook"),
        }
    }
}
