//! sip (to be written)
