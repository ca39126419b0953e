//! `quintctl mcp list|approve`: the pinned MCP servers, kept by quintd.

use crate::client::DaemonClient;
use crate::config::Config;
use crate::protocol::Request;
use crate::store::mcp_pins::{PinState, ServerPins};

use super::output::print_json;

fn client(config: &Config) -> DaemonClient {
    DaemonClient::new(&config.socket, std::time::Duration::from_secs(5))
}

pub fn list(config: &Config, json: bool) -> i32 {
    let servers: Vec<ServerPins> = match client(config).call(&Request::McpServers) {
        Ok(servers) => servers,
        Err(e) => {
            eprintln!("quintctl: {e}");
            return 1;
        }
    };
    if json {
        print_json(&servers);
        return 0;
    }
    if servers.is_empty() {
        println!("no MCP servers seen yet: run them through `quintctl mcp wrap` (`quintctl mcp install` does it for your agents)");
        return 0;
    }
    for server in &servers {
        let attention = server
            .tools
            .iter()
            .filter(|t| matches!(t.state, PinState::Changed | PinState::New))
            .count();
        let summary = if attention == 0 {
            "all tools as pinned".to_string()
        } else {
            format!(
                "{attention} tool(s) differ from the pin: review, then `quintctl mcp approve {}`",
                server.server
            )
        };
        println!("{} (uid {}): {summary}", server.server, server.uid);
        for tool in &server.tools {
            let state = if tool.removed {
                "removed"
            } else {
                tool.state.as_str()
            };
            let mut description: String = tool.description.chars().take(80).collect();
            if tool.description.chars().count() > 80 {
                description.push('…');
            }
            println!("  {:<8} {:<28} {description}", state, tool.name);
        }
    }
    0
}

pub fn approve(config: &Config, server: &str, json: bool) -> i32 {
    let reply: Result<usize, _> = client(config).call(&Request::McpApprove {
        server: server.to_string(),
    });
    match reply {
        Ok(moved) => {
            if json {
                print_json(&serde_json::json!({ "server": server, "approved": moved }));
            } else if moved == 0 {
                println!("{server}: nothing to approve, every tool is as pinned");
            } else {
                println!("{server}: {moved} tool definition(s) approved and pinned");
            }
            0
        }
        Err(e) => {
            eprintln!("quintctl: {e}");
            1
        }
    }
}
