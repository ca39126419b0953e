//! `quintctl redact`: shows exactly what Quint would keep of a text. Fingerprints are the
//! device's when quintd answers (it holds the key); otherwise a one-off key is used and the
//! fingerprints say nothing about this device.

use std::io::Read;

use super::output::print_json;
use crate::client::DaemonClient;
use crate::config::Config;
use crate::protocol::{RedactReply, Request};

pub fn run(config: &Config, json: bool) -> i32 {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("quintctl: cannot read stdin as UTF-8 text: {e}");
        return 2;
    }
    let client = DaemonClient::new(&config.socket, std::time::Duration::from_secs(10));
    let reply = match client.call::<RedactReply>(&Request::Redact { text: text.clone() }) {
        Ok(reply) => reply,
        Err(e) => {
            eprintln!("quintctl: {e}; redacting locally with a one-off key (fingerprints are not this device's)");
            let redactor = match crate::redaction::one_off_redactor() {
                Ok(redactor) => redactor,
                Err(e) => {
                    eprintln!("quintctl: {e}");
                    return 2;
                }
            };
            let (redacted, findings) = redactor.redact(&text);
            RedactReply { redacted, findings }
        }
    };
    if json {
        print_json(&reply.findings);
    } else {
        print!("{}", reply.redacted);
    }
    0
}
