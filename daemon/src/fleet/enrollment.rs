//! Enrollment: a fleet-wide deploy token (`qdt_…`) buys this device its own device token
//! (`qdv_…`), kept root-only in the state dir. Enrolling again replaces it.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize)]
pub struct Enrollment {
    pub relay_url: String,
    pub tenant_id: String,
    pub device_id: String,
    pub device_token: String,
    pub enrolled_at: String,
}

/// Never prints the token.
impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("relay_url", &self.relay_url)
            .field("tenant_id", &self.tenant_id)
            .field("device_id", &self.device_id)
            .finish_non_exhaustive()
    }
}

impl Enrollment {
    /// The stored enrollment; `None` when this device was never enrolled.
    pub fn load(path: &Path) -> anyhow::Result<Option<Enrollment>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .with_context(|| format!("{} is not an enrollment record", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        crate::key_file::replace(path, &serde_json::to_vec_pretty(self)?)
    }

    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.relay_url)
    }
}

/// The relay's address as given, checked: https, or http only to this machine (a device token
/// must not cross a network in clear).
pub fn relay_url(given: &str) -> Result<String, String> {
    let url =
        reqwest::Url::parse(given.trim()).map_err(|e| format!("`{given}` is not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    let local = host == "localhost"
        || host
            .trim_matches(|c| c == '[' || c == ']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if local => {}
        "http" => {
            return Err(format!(
                "`{given}` is plain http to another machine: use https (the device token must not travel in clear)"
            ))
        }
        other => return Err(format!("`{given}`: the scheme must be https, not {other}")),
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{given}`: give the relay's base URL, without query or fragment"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[derive(Serialize)]
struct EnrollRequest<'a> {
    deploy_token: &'a str,
    host: Host,
    daemon_version: &'static str,
}

#[derive(Serialize)]
struct Host {
    hostname: String,
    os: &'static str,
    arch: &'static str,
    machine_id: String,
}

#[derive(Deserialize)]
struct EnrollReply {
    device_id: String,
    device_token: String,
    tenant_id: String,
}

/// Enrolls with the relay. Errors are for the person enrolling: a bad, expired or revoked
/// token says so (the relay's words), an unreachable relay names the address.
pub async fn enroll(
    http: &reqwest::Client,
    relay: &str,
    deploy_token: &str,
) -> Result<Enrollment, String> {
    let relay_url = relay_url(relay)?;
    let deploy_token = deploy_token.trim();
    if !deploy_token.starts_with("qdt_") {
        return Err("that is not a deploy token (they start with qdt_)".into());
    }
    let request = EnrollRequest {
        deploy_token,
        host: host(),
        daemon_version: env!("CARGO_PKG_VERSION"),
    };
    let response = http
        .post(format!("{relay_url}/v1/enroll"))
        .timeout(std::time::Duration::from_secs(30))
        .json(&request)
        .send()
        .await
        .map_err(|e| {
            format!(
                "cannot reach the relay at {relay_url}: {}",
                super::RelayError::unreachable(e).message()
            )
        })?;
    if !response.status().is_success() {
        let error = super::RelayError::from_response(response).await;
        return Err(match error {
            super::RelayError::Unauthorized(m) => {
                format!("the relay refused the deploy token: {m}")
            }
            other => format!("enrollment failed: {}", other.message()),
        });
    }
    let reply: EnrollReply = response
        .json()
        .await
        .map_err(|e| format!("the relay's answer is not an enrollment: {e}"))?;
    Ok(Enrollment {
        relay_url,
        tenant_id: reply.tenant_id,
        device_id: reply.device_id,
        device_token: reply.device_token,
        enrolled_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

fn host() -> Host {
    let hostname = sysinfo::System::host_name().unwrap_or_else(|| "unknown".into());
    Host {
        machine_id: machine_id().unwrap_or_else(|| format!("host-{hostname}")),
        hostname,
        os: std::env::consts::OS,
        arch: std::env::consts::ARCH,
    }
}

/// The OS's stable machine id (systemd's, or the dbus one); `None` where there is none.
fn machine_id() -> Option<String> {
    ["/etc/machine-id", "/var/lib/dbus/machine-id"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_must_be_https_unless_local() {
        assert_eq!(
            relay_url("https://relay.example.com/").unwrap(),
            "https://relay.example.com"
        );
        assert_eq!(
            relay_url("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert!(relay_url("http://localhost:8080").is_ok());
        assert!(relay_url("http://relay.example.com")
            .unwrap_err()
            .contains("use https"));
        assert!(relay_url("ftp://relay.example.com").is_err());
        assert!(relay_url("relay.example.com").is_err());
        assert!(relay_url("https://relay.example.com/?x=1").is_err());
    }

    #[test]
    fn debug_output_leaves_the_token_out() {
        let enrollment = Enrollment {
            relay_url: "https://r".into(),
            tenant_id: "t".into(),
            device_id: "d".into(),
            device_token: "qdv_secret".into(),
            enrolled_at: "now".into(),
        };
        assert!(!format!("{enrollment:?}").contains("qdv_secret"));
    }
}
