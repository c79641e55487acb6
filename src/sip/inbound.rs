//! Inbound calls: INVITEs the agent accepts when its owner asked for them.
//!
//! Only the built-in echo trunk accepts inbound calls today; a node's trunk
//! agent refuses them with 403 (a request can never choose a destination).

use std::sync::Arc;
use std::time::Duration;

use rsipstack::dialog::dialog::{DialogState, DialogStateReceiver};
use rsipstack::dialog::invite_dialog::InviteDialog;
use rsipstack::sip::{Header, Method, StatusCode};
use rsipstack::transaction::Transaction;
use tokio::sync::mpsc;
use tracing::debug;

use super::agent_inner::AgentInner;
use super::call::OfferReply;
use super::error::SipError;

/// Progress of an inbound call after it was answered.
#[derive(Debug)]
pub enum InboundEvent {
    /// The caller sent a new offer (re-INVITE): answer it through `reply`.
    RemoteOffer { sdp: Vec<u8>, reply: OfferReply },
    /// The call is over (BYE from the caller, or the transaction failed).
    Ended,
}

/// An INVITE waiting for its owner to answer or refuse it.
pub struct InboundCall {
    dialog: InviteDialog,
    offer: Vec<u8>,
    states: DialogStateReceiver,
    inner: Arc<AgentInner>,
}

impl InboundCall {
    /// The SDP offer of the INVITE (empty for a late-offer INVITE).
    pub fn offer(&self) -> &[u8] {
        &self.offer
    }

    /// Answer with 200 OK and our SDP.
    pub async fn accept(&mut self, answer_sdp: Vec<u8>) -> Result<(), SipError> {
        self.wait_until_calling().await;
        let headers = vec![Header::ContentType("application/sdp".into())];
        self.dialog
            .accept(Some(headers), Some(answer_sdp))
            .map_err(|e| SipError::Stack(e.to_string()))
    }

    /// Refuse with a final status (e.g. 488 when no codec matches).
    pub async fn reject(mut self, code: u16) {
        self.wait_until_calling().await;
        let _ = self.dialog.reject(Some(StatusCode::from(code)), None);
        self.inner.dialogs.remove_dialog(&self.dialog.id());
    }

    /// The next event; `Ended` once, then `None`.
    pub async fn next_event(&mut self) -> Option<InboundEvent> {
        loop {
            match self.states.recv().await? {
                DialogState::Terminated(id, _) => {
                    self.inner.dialogs.remove_dialog(&id);
                    return Some(InboundEvent::Ended);
                }
                DialogState::Updated(_, request, handle) if request.method == Method::Invite => {
                    return Some(InboundEvent::RemoteOffer {
                        sdp: request.body,
                        reply: OfferReply::new(handle),
                    });
                }
                DialogState::Updated(_, _, handle)
                | DialogState::Options(_, _, handle)
                | DialogState::Info(_, _, handle) => {
                    let _ = handle.reply(StatusCode::OK).await;
                }
                _ => {}
            }
        }
    }

    /// Hang up an answered call with BYE.
    pub async fn hangup(&self) -> Result<(), SipError> {
        self.dialog
            .bye()
            .await
            .map_err(|e| SipError::Stack(e.to_string()))
    }

    /// rsipstack reports `Calling` once the server transaction is ready for
    /// our answer; answering earlier can race the transaction's start.
    async fn wait_until_calling(&mut self) {
        let wait = async {
            while let Some(state) = self.states.recv().await {
                if matches!(state, DialogState::Calling(_)) {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
    }
}

pub(crate) fn accept_new(
    inner: Arc<AgentInner>,
    mut tx: Transaction,
    owner: mpsc::Sender<InboundCall>,
) {
    let (state_tx, states) = inner.dialogs.new_dialog_state_channel();
    let contact = inner.dialogs.build_local_contact(None, None).ok();
    let mut dialog = match inner
        .dialogs
        .get_or_create_server_invite(&tx, state_tx, None, contact)
    {
        Ok(dialog) => dialog,
        Err(e) => {
            debug!(error = %e, "could not create a dialog for an inbound INVITE");
            tokio::spawn(async move {
                let _ = tx.reply(StatusCode::ServerInternalError).await;
            });
            return;
        }
    };
    let call = InboundCall {
        dialog: dialog.clone(),
        offer: tx.original.body.clone(),
        states,
        inner: inner.clone(),
    };
    if owner.try_send(call).is_err() {
        inner.dialogs.remove_dialog(&dialog.id());
        tokio::spawn(async move {
            let _ = tx.reply(StatusCode::ServiceUnavailable).await;
        });
        return;
    }
    tokio::spawn(async move {
        if let Err(e) = dialog.handle(&mut tx).await {
            debug!(error = %e, "inbound INVITE transaction failed");
        }
    });
}
