//! quintctl's subcommands, one module each.

pub mod audit;
pub mod doctor;
pub mod enroll;
pub mod events;
pub mod find_secret;
pub mod hook;
pub mod hooks_install;
pub mod mcp;
pub mod mcp_install;
pub mod output;
pub mod policy;
pub mod redact;
pub mod sessions;
pub mod settings_file;
pub mod status;
