//! Interception sources: what agents do, seen from outside them (processes, files).

pub mod agents;
