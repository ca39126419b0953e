//! What the two fanotify groups (the file guard's permission events, the change events) read
//! and mark the same way.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

/// One `read(2)` of a group into `buffer`, retried when interrupted.
pub fn read(group: &OwnedFd, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        // SAFETY: reading into a buffer we own, of the length given.
        let read = unsafe {
            libc::read(
                group.as_raw_fd(),
                buffer.as_mut_ptr() as *mut libc::c_void,
                buffer.len(),
            )
        };
        if read >= 0 {
            return Ok(read as usize);
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// The events in what one read returned: each one's metadata and the info records after it.
/// A record that does not fit ends the walk.
pub fn events(read: &[u8]) -> impl Iterator<Item = (libc::fanotify_event_metadata, &[u8])> {
    let header = std::mem::size_of::<libc::fanotify_event_metadata>();
    let mut offset = 0;
    std::iter::from_fn(move || {
        if offset + header > read.len() {
            return None;
        }
        // SAFETY: at least `header` bytes remain; read_unaligned copes with the byte buffer's
        // alignment.
        let event: libc::fanotify_event_metadata = unsafe {
            std::ptr::read_unaligned(read[offset..].as_ptr() as *const libc::fanotify_event_metadata)
        };
        let length = event.event_len as usize;
        if length < header || offset + length > read.len() {
            return None;
        }
        let infos = &read[offset + header..offset + length];
        offset += length;
        Some((event, infos))
    })
}

/// A path as the C string the fanotify and statfs calls take.
pub fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}
