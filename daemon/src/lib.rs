//! quint-daemon: quintd (collect → decide → record) and quintctl (the CLI and agent hooks).

pub mod config;
pub mod store;
pub mod client;
pub mod hook;
pub mod protocol;
pub mod policy_layers;
pub mod server;
pub mod spool;
pub mod ctl;
