//! In-dialog requests are heard only from the dialog's own peer.
//!
//! Every outbound call's Call-ID is pinned to the trunk that carries it,
//! from before its INVITE leaves until the call is over. The endpoint's
//! [`EdgeInspector`] sees each message with the address it came from: a
//! request naming a pinned Call-ID from an address that is not that
//! trunk's (or its proxy's, or in the operator's trusted networks) is
//! counted and given a Call-ID of its own, so it matches no dialog and is
//! answered 481 (or 403, for an INVITE), and the call goes on. Another
//! trusted trunk therefore cannot end, hold or redirect a call it does not
//! carry. The port itself reads only trusted sources ([`super::sources`]).
//!
//! The pin also keeps what the trunk's BYE said of why it hung up (its
//! `Reason` header), which the dialog layer does not pass on, until the
//! call's driver reads it; it goes with the pin.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use rsipstack::sip::{HeadersExt, Host, SipMessage};
use rsipstack::transaction::endpoint::MessageInspector;
use rsipstack::transport::SipAddr;

use super::counters::SipCounters;
use super::digest_compat::DigestAlgorithmSpelling;
use super::reason::TrunkReason;
use super::sources::TrustedSources;

/// Every outbound call in progress, by Call-ID.
#[derive(Debug, Default)]
pub(crate) struct DialogPins {
    calls: Mutex<HashMap<String, Pin>>,
}

/// One call's pin.
#[derive(Debug)]
struct Pin {
    /// The trunk that carries the call, by number.
    trunk: usize,
    /// Why the trunk's BYE says it hung up.
    bye_reason: Option<TrunkReason>,
}

impl DialogPins {
    /// Pins `call_id` to trunk number `trunk` until the guard is dropped.
    pub(crate) fn pin(self: &Arc<Self>, call_id: String, trunk: usize) -> Pinned {
        let pin = Pin {
            trunk,
            bye_reason: None,
        };
        self.lock().insert(call_id.clone(), pin);
        Pinned {
            pins: self.clone(),
            call_id,
        }
    }

    /// Keeps why the trunk's BYE for `call_id` says it hung up, if the call
    /// is still pinned.
    pub(crate) fn note_bye_reason(&self, call_id: &str, reason: TrunkReason) {
        if let Some(pin) = self.lock().get_mut(call_id) {
            pin.bye_reason = Some(reason);
        }
    }

    /// Why the trunk's BYE for `call_id` said it hung up, once.
    pub(crate) fn take_bye_reason(&self, call_id: &str) -> Option<TrunkReason> {
        self.lock().get_mut(call_id)?.bye_reason.take()
    }

    fn trunk_of(&self, call_id: &str) -> Option<usize> {
        self.lock().get(call_id).map(|pin| pin.trunk)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pin>> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A call's pin; dropping it unpins the Call-ID.
#[derive(Debug)]
pub(crate) struct Pinned {
    pins: Arc<DialogPins>,
    call_id: String,
}

impl Pinned {
    pub(crate) fn call_id(&self) -> &str {
        &self.call_id
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.pins.lock().remove(&self.call_id);
    }
}

/// What the endpoint runs on every message: the digest spelling fix both
/// ways, and the pinning of received requests (when the port is filtered).
pub(crate) struct EdgeInspector {
    pub(crate) pins: Arc<DialogPins>,
    pub(crate) sources: Option<Arc<TrustedSources>>,
    pub(crate) counters: Arc<SipCounters>,
}

impl MessageInspector for EdgeInspector {
    fn before_send(&self, msg: SipMessage, dest: Option<&SipAddr>) -> SipMessage {
        DigestAlgorithmSpelling.before_send(msg, dest)
    }

    fn after_received(&self, msg: SipMessage, from: Option<&SipAddr>) -> SipMessage {
        let msg = DigestAlgorithmSpelling.after_received(msg, from);
        let (Some(sources), Some(from)) = (&self.sources, from) else {
            return msg;
        };
        let Host::IpAddr(ip) = from.addr.host else {
            return msg;
        };
        self.pinned(msg, sources, ip)
    }
}

impl EdgeInspector {
    fn pinned(&self, mut msg: SipMessage, sources: &TrustedSources, from: IpAddr) -> SipMessage {
        let SipMessage::Request(request) = &mut msg else {
            return msg;
        };
        let Ok(call_id) = request.call_id_header_mut() else {
            return msg;
        };
        let foreign = self
            .pins
            .trunk_of(call_id.value())
            .is_some_and(|trunk| !sources.allows_for(trunk, from));
        if foreign {
            self.counters
                .foreign_dialog_requests
                .fetch_add(1, Ordering::Relaxed);
            call_id.replace(format!("foreign-{}", uuid::Uuid::new_v4().simple()));
        }
        msg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsipstack::sip::{HostWithPort, Transport};

    const BYE: &str = "BYE sip:gateway@192.0.2.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK74bf9\r\nMax-Forwards: 70\r\n\
From: <sip:callee@192.0.2.7>;tag=a6c85cf\r\nTo: <sip:gateway@192.0.2.1>;tag=1928301774\r\n\
Call-ID: pinned-call\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";

    fn inspector() -> EdgeInspector {
        let peers = [
            (
                0,
                HostWithPort::try_from("192.0.2.7").expect("host"),
                Transport::Udp,
            ),
            (
                1,
                HostWithPort::try_from("192.0.2.8").expect("host"),
                Transport::Udp,
            ),
        ];
        EdgeInspector {
            pins: Arc::default(),
            sources: Some(Arc::new(TrustedSources::new(peers, &[]))),
            counters: Arc::default(),
        }
    }

    fn received(inspector: &EdgeInspector, from: &str) -> String {
        let from = SipAddr::new(Transport::Udp, HostWithPort::try_from(from).expect("addr"));
        let msg = SipMessage::try_from(BYE).expect("a BYE");
        let msg = inspector.after_received(msg, Some(&from));
        let SipMessage::Request(request) = msg else {
            panic!("still a request");
        };
        request
            .call_id_header()
            .expect("a Call-ID")
            .value()
            .to_owned()
    }

    #[test]
    fn a_call_hears_its_own_trunk_and_not_another() {
        let inspector = inspector();
        let pin = inspector.pins.pin("pinned-call".to_owned(), 0);
        assert_eq!(received(&inspector, "192.0.2.7:5060"), "pinned-call");
        let foreign = received(&inspector, "192.0.2.8:5060");
        assert!(foreign.starts_with("foreign-"), "{foreign}");
        let counted = inspector
            .counters
            .foreign_dialog_requests
            .load(Ordering::Relaxed);
        assert_eq!(counted, 1);

        drop(pin);
        assert_eq!(
            received(&inspector, "192.0.2.8:5060"),
            "pinned-call",
            "a Call-ID no call holds is left to the dialog layer"
        );
    }
}
