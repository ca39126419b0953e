//! Enforcement on `open()`: what a platform's guard does, whatever holds the opens (fanotify
//! permission events on Linux; Endpoint Security's AUTH_OPEN would be macOS's, which needs an
//! entitlement from Apple and is not built).

use std::io;

use super::protected_paths::Mark;

/// One open waiting for an answer.
pub struct OpenRequest<'a> {
    pub pid: u32,
    pub path: &'a str,
    pub exec: bool,
}

pub trait OpenGuard: Send + Sync {
    /// Holds opens under `mark` from now on: a directory's direct children, or one file.
    fn protect(&self, mark: &Mark) -> io::Result<()>;
    /// Answers held opens until the guard fails. `watched(pid)` false allows at once, before
    /// the path is even looked up (a process in no agent session); otherwise `allow(request)`
    /// false refuses the open.
    fn serve(
        &self,
        watched: &dyn Fn(u32) -> bool,
        allow: &mut dyn FnMut(&OpenRequest) -> bool,
    ) -> io::Error;
}
