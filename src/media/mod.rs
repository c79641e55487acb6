//! media (to be written)
