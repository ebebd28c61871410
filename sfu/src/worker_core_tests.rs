//! Worker core tests.
