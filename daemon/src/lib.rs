//! quint-daemon: quintd (collect → decide → record) and quintctl (the CLI and agent hooks).

pub mod client;
pub mod collect;
pub mod config;
pub mod ctl;
pub mod fleet;
pub mod hook;
pub mod key_file;
pub mod mcp;
pub mod policy_layers;
pub mod protocol;
pub mod redaction;
pub mod server;
pub mod spool;
pub mod store;
