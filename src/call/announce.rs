//! [`CallAnnouncer`]: how the call service tells the rest of a cluster which
//! calls this node carries, so that another node can forward a call's
//! requests here, and write the call's record should this node die.

use crate::store::CdrRecord;

/// Hears of each call this node carries, from its start to its end.
pub trait CallAnnouncer: Send + Sync {
    /// The call `call_id` is carried here; `record` is how its record would
    /// read if the node died now (it is announced again once answered).
    fn carrying(&self, call_id: &str, record: &CdrRecord);
    /// The call ended here and its record is on its way to the store.
    fn ended(&self, call_id: &str);
}
