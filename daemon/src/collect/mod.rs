//! Interception sources: what agents do, seen from outside them (processes, files).

pub mod agents;
#[cfg(target_os = "linux")]
pub mod file_events;
#[cfg(target_os = "linux")]
pub mod file_guard;
#[cfg(target_os = "linux")]
pub mod proc_connector;
pub mod process;
#[cfg(target_os = "linux")]
pub mod process_watch;
pub mod protected_paths;
