//! Negative controls.
