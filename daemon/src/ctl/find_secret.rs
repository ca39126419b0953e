//! `quintctl audit find-secret`: was this secret ever seen? Reads the candidate on stdin, asks
//! quintd to fingerprint it with the device key, and lists the actions where that fingerprint
//! was recorded. Neither the candidate nor any secret is stored or printed.

use std::io::Read;

use super::output::print_json;
use crate::client::DaemonClient;
use crate::config::Config;
use crate::protocol::{FindSecretReply, Request};

pub fn run(config: &Config, json: bool) -> i32 {
    let mut candidate = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut candidate) {
        eprintln!("quintctl: cannot read the candidate from stdin: {e}");
        return 2;
    }
    // `echo $TOKEN | quintctl audit find-secret` adds a newline that is not part of the secret.
    let candidate = candidate.trim_end_matches(['\n', '\r']).to_string();
    if candidate.is_empty() {
        eprintln!("quintctl: give the candidate secret on stdin");
        return 2;
    }
    let client = DaemonClient::new(&config.socket, std::time::Duration::from_secs(30));
    let reply = match client.call::<FindSecretReply>(&Request::FindSecret { candidate }) {
        Ok(reply) => reply,
        Err(e) => {
            eprintln!("quintctl: {e} (the device key is quintd's: it must be running)");
            return 2;
        }
    };
    if json {
        print_json(&reply);
    } else if reply.sightings.is_empty() {
        println!(
            "not seen: no recorded action holds fingerprint {}",
            reply.fingerprint
        );
    } else {
        println!(
            "SEEN in {} action(s) (fingerprint {}):",
            reply.sightings.len(),
            reply.fingerprint
        );
        for sighting in &reply.sightings {
            println!(
                "  #{} {} session {} event {} [{}]",
                sighting.seq,
                sighting.timestamp,
                sighting.session_id,
                sighting.event_id,
                sighting.rule_ids.join(", ")
            );
        }
    }
    if reply.sightings.is_empty() {
        1
    } else {
        0
    }
}
