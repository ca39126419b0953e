//! A small blocking client for the quintd socket. Blocking on purpose: `quintctl hook` runs
//! before every tool call, and starting an async runtime would cost more than the round trip.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::protocol::{Reply, Request};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("quintd is not reachable at {socket}: {source}")]
    Unreachable {
        socket: PathBuf,
        source: std::io::Error,
    },
    #[error("quintd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("quintd refused the request ({code}): {message}")]
    Refused { code: String, message: String },
    #[error("unexpected reply from quintd: {0}")]
    Protocol(String),
}

pub struct DaemonClient {
    socket: PathBuf,
    timeout: Duration,
}

impl DaemonClient {
    pub fn new(socket: &Path, timeout: Duration) -> DaemonClient {
        DaemonClient {
            socket: socket.to_path_buf(),
            timeout,
        }
    }

    fn connect(&self) -> Result<UnixStream, ClientError> {
        let stream =
            UnixStream::connect(&self.socket).map_err(|source| ClientError::Unreachable {
                socket: self.socket.clone(),
                source,
            })?;
        stream.set_read_timeout(Some(self.timeout)).ok();
        stream.set_write_timeout(Some(self.timeout)).ok();
        Ok(stream)
    }

    fn send(&self, request: &Request) -> Result<BufReader<UnixStream>, ClientError> {
        let mut stream = self.connect()?;
        let mut line =
            serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        stream.write_all(&line).map_err(|e| self.io_error(e))?;
        Ok(BufReader::new(stream))
    }

    fn io_error(&self, error: std::io::Error) -> ClientError {
        match error.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
                ClientError::Timeout(self.timeout)
            }
            _ => ClientError::Unreachable {
                socket: self.socket.clone(),
                source: error,
            },
        }
    }

    /// Sends one request and decodes the result.
    pub fn call<T: DeserializeOwned>(&self, request: &Request) -> Result<T, ClientError> {
        let mut reader = self.send(request)?;
        let mut line = String::new();
        let read = reader.read_line(&mut line).map_err(|e| self.io_error(e))?;
        if read == 0 {
            return Err(ClientError::Protocol(
                "quintd closed the connection without answering".into(),
            ));
        }
        decode(&line)
    }

    /// Sends a streaming request and hands each reply line to `each` until it returns false.
    pub fn stream<T: DeserializeOwned>(
        &self,
        request: &Request,
        mut each: impl FnMut(T) -> bool,
    ) -> Result<(), ClientError> {
        let mut reader = self.send(request)?;
        reader.get_ref().set_read_timeout(None).ok();
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).map_err(|e| self.io_error(e))? == 0 {
                return Ok(());
            }
            if !each(decode(&line)?) {
                return Ok(());
            }
        }
    }
}

fn decode<T: DeserializeOwned>(line: &str) -> Result<T, ClientError> {
    let reply: Reply =
        serde_json::from_str(line).map_err(|e| ClientError::Protocol(e.to_string()))?;
    if let Some(error) = reply.error {
        return Err(ClientError::Refused {
            code: error.code,
            message: error.message,
        });
    }
    serde_json::from_value(reply.result.unwrap_or_default())
        .map_err(|e| ClientError::Protocol(e.to_string()))
}
