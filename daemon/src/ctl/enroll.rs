//! `quintctl enroll`: hands a deploy token to quintd, which enrolls this device with the relay
//! and keeps the device token it gets root-only. The token comes from `--token`,
//! `--token-file` or `QUINT_DEPLOY_TOKEN` (packaging), never echoed.

use std::path::Path;

use super::output::{print_fields, print_json};
use crate::client::DaemonClient;
use crate::config::Config;
use crate::protocol::{EnrollReply, Request};

/// Where the deploy token was given.
pub enum TokenSource<'a> {
    Argument(&'a str),
    File(&'a Path),
    Environment,
}

fn read_token(source: TokenSource) -> Result<String, String> {
    let token = match source {
        TokenSource::Argument(token) => token.to_string(),
        TokenSource::File(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?,
        TokenSource::Environment => std::env::var("QUINT_DEPLOY_TOKEN").map_err(|_| {
            "no deploy token: give --token, --token-file or QUINT_DEPLOY_TOKEN".to_string()
        })?,
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err("the deploy token is empty".into());
    }
    Ok(token)
}

pub fn run(config: &Config, relay: &str, token: TokenSource, json: bool) -> i32 {
    let deploy_token = match read_token(token) {
        Ok(token) => token,
        Err(message) => {
            eprintln!("quintctl: {message}");
            return 2;
        }
    };
    // Enrolling waits on the relay (up to 30 s): more than an ordinary request.
    let client = DaemonClient::new(&config.socket, std::time::Duration::from_secs(45));
    let request = Request::Enroll {
        relay: relay.to_string(),
        deploy_token,
    };
    match client.call::<EnrollReply>(&request) {
        Ok(reply) => {
            if json {
                print_json(&reply);
            } else {
                println!("Enrolled: this device now reports to {}", reply.relay);
                print_fields(&[
                    ("tenant", reply.tenant_id.clone()),
                    ("device", reply.device_id.clone()),
                ]);
            }
            0
        }
        Err(crate::client::ClientError::Refused { message, .. }) => {
            eprintln!("quintctl: enrollment failed: {message}");
            1
        }
        Err(e) => {
            eprintln!("quintctl: enrollment failed: {e}");
            1
        }
    }
}
