//! privacy (to be written)
