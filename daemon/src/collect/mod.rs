//! Interception sources: what agents do, seen from outside them (processes, files).

pub mod agents;
pub mod changes;
#[cfg(target_os = "linux")]
pub mod fanotify;
#[cfg(target_os = "linux")]
pub mod file_events;
#[cfg(target_os = "linux")]
pub mod file_guard;
pub mod open_guard;
#[cfg(target_os = "linux")]
pub mod proc_connector;
pub mod process;
pub mod process_scan;
pub mod process_watch;
pub mod protected_paths;
