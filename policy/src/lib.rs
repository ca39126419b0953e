//! quint-policy: the event envelope, the rule language and its evaluator, and risk scoring.
//!
//! Pure and synchronous: no I/O, no async, so the daemon, the CLI's offline fallback and the
//! relay evaluate exactly the same way, and benchmarks measure only the logic.

pub mod default_pack;
pub mod envelope;
pub mod redact;
pub mod risk;
pub mod rules;
pub mod shape;
pub mod tools;

pub use envelope::{ActionType, Decision, Event, Severity, Source, SCHEMA_VERSION};
pub use rules::compile::{Policy, PolicyError, PolicySource, Verdict};
