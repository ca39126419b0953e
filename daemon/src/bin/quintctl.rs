//! quintctl: Quint's command line — status, events, policy tools, audit, and the agent hook.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use quint_daemon::config::Config;
use quint_daemon::ctl::{self, hooks_install::Scope, policy::EvalInput};
use quint_daemon::hook::Agent;
use quint_daemon::store::outbox::EventFilter;
use quint_policy::rules::spec::TestCase;
use quint_policy::{ActionType, Decision};

#[derive(Parser)]
#[command(
    name = "quintctl",
    version,
    about = "See and control what AI coding agents do on this machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Whether this machine is protected: daemon, policy, counts, sessions, outbox.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The agent hook entry point: reads the agent's hook JSON on stdin, answers in its format.
    Hook {
        /// claude-code, cursor, codex or gemini-cli
        agent: String,
    },
    /// Check the installation and print the fix for each failure (exit 1 if any failed).
    Doctor {
        #[arg(long)]
        json: bool,
    },
    /// Enroll this device with a relay: quintd then uploads its actions there and takes the
    /// tenant's policy from it. Enrolling again replaces the device token.
    Enroll {
        /// The relay's base URL (https; http only to this machine).
        #[arg(long)]
        relay: String,
        /// The deploy token (qdt_…); prefer --token-file or QUINT_DEPLOY_TOKEN, which stay
        /// out of the process list and shell history.
        #[arg(long, conflicts_with = "token_file")]
        token: Option<String>,
        #[arg(long)]
        token_file: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Install or remove Quint's hook in agents' settings.
    Hooks {
        #[command(subcommand)]
        action: HooksAction,
    },
    /// Agent sessions running now, each with its process tree (needs the process collector).
    Sessions {
        /// Only this session (its recorded or observed id).
        session: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Recorded actions.
    Events {
        /// Keep printing new events as they are recorded.
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        session: Option<String>,
        #[arg(long)]
        decision: Option<Decision>,
        /// How many of the newest events to list.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Policy tools that work offline.
    Policy {
        #[command(subcommand)]
        action: Box<PolicyAction>,
    },
    /// Redact stdin to stdout as Quint would store it; --json prints the findings instead.
    Redact {
        #[arg(long)]
        json: bool,
    },
    /// The tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// The MCP gateway: wrap servers, see and approve their pinned tools.
    Mcp {
        #[command(subcommand)]
        action: McpAction,
    },
}

#[derive(Subcommand)]
enum McpAction {
    /// Run an MCP server (stdio) through Quint: every tools/call is decided by policy first.
    Wrap {
        /// The server's name in policy, events and pins (default: from the command).
        #[arg(long)]
        name: Option<String>,
        /// The agent that starts this server (claude-code, cursor, …), for events.
        #[arg(long)]
        agent: Option<String>,
        /// The server command and its arguments, after `--`.
        #[arg(last = true, required = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },
    /// Known servers, their tools and pin state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Accept a server's tool definitions as last listed (after reviewing a change).
    Approve {
        server: String,
        #[arg(long)]
        json: bool,
    },
    /// Route agents' MCP servers through `quintctl mcp wrap` (idempotent, with a backup).
    Install(McpInstallArgs),
    /// Undo `mcp install`; restores the original file byte for byte when untouched since.
    Uninstall(McpInstallArgs),
}

#[derive(Args)]
struct McpInstallArgs {
    /// Only these agents (repeatable); default: every agent whose config exists.
    #[arg(long = "agent")]
    agents: Vec<ctl::mcp_install::McpAgent>,
    /// Show the diff, write nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum HooksAction {
    /// Merge Quint's hook into each installed agent's settings (idempotent, with a backup).
    Install(HooksArgs),
    /// Remove Quint's hook; restores the original file byte for byte when untouched since.
    Uninstall(HooksArgs),
}

#[derive(Args)]
struct HooksArgs {
    /// Only these agents (repeatable); default: every agent detected in your home.
    #[arg(long = "agent")]
    agents: Vec<Agent>,
    #[arg(long, value_enum, default_value_t = Scope::User)]
    scope: Scope,
    /// Show the diff, write nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum PolicyAction {
    /// Compile the default pack plus policy files; errors name file, line and rule.
    Lint {
        /// Files or directories (default: the configured policy.d).
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Run the `tests:` embedded in rules.
    Test {
        /// Files or directories to test on their own (default: everything in force).
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Decide on one event, given as an envelope (--event) or by flags.
    Eval(Box<EvalArgs>),
}

#[derive(Args)]
struct EvalArgs {
    /// An event envelope as JSON: a file, or - for stdin.
    #[arg(long, conflicts_with_all = ["action", "tool", "command", "path", "url"])]
    event: Option<String>,
    #[arg(long)]
    action: Option<ActionType>,
    #[arg(long)]
    tool: Option<String>,
    #[arg(long)]
    platform: Option<String>,
    #[arg(long)]
    command: Option<String>,
    #[arg(long)]
    path: Option<PathBuf>,
    #[arg(long)]
    url: Option<String>,
    #[arg(long)]
    mcp_server: Option<String>,
    #[arg(long)]
    mcp_tool: Option<String>,
    /// pinned, changed, new or unlisted
    #[arg(long)]
    mcp_tool_pin: Option<String>,
    /// SQL passed to an MCP tool.
    #[arg(long)]
    sql: Option<String>,
    #[arg(long)]
    cwd: Option<String>,
    /// Policy files or directories to evaluate with (default: the configured policy.d).
    #[arg(long = "policy")]
    policy: Vec<PathBuf>,
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum AuditAction {
    /// Check the hash chain and signed checkpoints; names the first altered record.
    Verify {
        #[arg(long)]
        json: bool,
    },
    /// Was this secret (on stdin) ever recorded? Matches by keyed fingerprint; exit 0 if seen.
    FindSecret {
        #[arg(long)]
        json: bool,
    },
}

/// The agent hook: runs before every tool call, so it skips building the whole CLI, and it
/// must answer in the agent's convention even when the config is broken.
fn run_hook(agent: &str) -> ExitCode {
    // A panic must block, not exit 101 (which agents treat as "hook failed, run the tool").
    let agent_name = agent.to_string();
    std::panic::set_hook(Box::new(move |info| {
        let answer =
            quint_daemon::hook::refuse(agent_name.parse().ok(), &format!("internal error: {info}"));
        print!("{}", answer.stdout);
        eprint!("{}", answer.stderr);
        std::process::exit(2);
    }));
    let config = Config::load_for_hook();
    match &config {
        Err(e) => eprintln!("quint: {e}"),
        Ok(c) if c.hook_overrides_ignored => {
            eprintln!("quint: QUINT_* overrides ignored: a system installation is present")
        }
        Ok(_) => {}
    }
    let answer = ctl::hook::run(agent, config.as_ref().ok());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(answer.stdout.as_bytes());
    let _ = stdout.flush();
    eprint!("{}", answer.stderr);
    ExitCode::from(answer.exit_code as u8)
}

/// The MCP gateway outlives config errors: the server still runs, and every tool call is
/// refused with the reason, like the hook does.
fn run_mcp_wrap(
    name: Option<String>,
    agent: Option<String>,
    command: Vec<std::ffi::OsString>,
) -> ExitCode {
    let config = match Config::load_for_hook() {
        Ok(config) => Some(config),
        Err(e) => {
            eprintln!("quint mcp: {e}; every tool call will be refused");
            None
        }
    };
    let name = name.unwrap_or_else(|| quint_daemon::mcp::derive_server_name(&command));
    let options = quint_daemon::mcp::proxy::WrapOptions {
        name,
        agent,
        command,
    };
    ExitCode::from(quint_daemon::mcp::proxy::run(options, config).clamp(0, 255) as u8)
}

fn mcp_install(install: bool, args: McpInstallArgs) -> i32 {
    ctl::mcp_install::run(ctl::mcp_install::Request {
        install,
        agents: args.agents,
        dry_run: args.dry_run,
        json: args.json,
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 3 && args[1] == "hook" {
        return run_hook(&args[2]);
    }
    let cli = Cli::parse();
    if let Command::Hook { agent } = &cli.command {
        return run_hook(agent);
    }
    if let Command::Mcp {
        action:
            McpAction::Wrap {
                name,
                agent,
                command,
            },
    } = cli.command
    {
        return run_mcp_wrap(name, agent, command);
    }
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("quintctl: {e}");
            return ExitCode::from(78);
        }
    };
    let code = match cli.command {
        Command::Hook { .. } => unreachable!("handled above"),
        Command::Mcp { action } => match action {
            McpAction::Wrap { .. } => unreachable!("handled above"),
            McpAction::List { json } => ctl::mcp::list(&config, json),
            McpAction::Approve { server, json } => ctl::mcp::approve(&config, &server, json),
            McpAction::Install(args) => mcp_install(true, args),
            McpAction::Uninstall(args) => mcp_install(false, args),
        },
        Command::Status { json } => ctl::status::run(&config, json),
        Command::Doctor { json } => ctl::doctor::run(&config, json),
        Command::Enroll {
            relay,
            token,
            token_file,
            json,
        } => {
            let source = match (&token, &token_file) {
                (Some(token), _) => ctl::enroll::TokenSource::Argument(token),
                (None, Some(path)) => ctl::enroll::TokenSource::File(path),
                (None, None) => ctl::enroll::TokenSource::Environment,
            };
            ctl::enroll::run(&config, &relay, source, json)
        }
        Command::Sessions { session, json } => {
            ctl::sessions::run(&config, session.as_deref(), json)
        }
        Command::Hooks { action } => {
            let (install, args) = match action {
                HooksAction::Install(args) => (true, args),
                HooksAction::Uninstall(args) => (false, args),
            };
            ctl::hooks_install::run(ctl::hooks_install::Request {
                install,
                agents: args.agents,
                scope: args.scope,
                dry_run: args.dry_run,
                json: args.json,
            })
        }
        Command::Events {
            follow,
            session,
            decision,
            limit,
            json,
        } => {
            let filter = EventFilter {
                session,
                decision,
                limit: Some(limit),
                ..EventFilter::default()
            };
            ctl::events::run(&config, filter, follow, json)
        }
        Command::Policy { action } => match *action {
            PolicyAction::Lint { paths, json } => ctl::policy::lint(&config, &paths, json),
            PolicyAction::Test { paths, json } => ctl::policy::test(&config, &paths, json),
            PolicyAction::Eval(args) => {
                let input = match args.event {
                    Some(from) => EvalInput::Envelope(from),
                    None => EvalInput::Flags(Box::new(TestCase {
                        action: args.action,
                        tool: args.tool,
                        platform: args.platform,
                        path: args.path.map(|p| p.display().to_string()),
                        command: args.command,
                        url: args.url,
                        mcp_server: args.mcp_server,
                        mcp_tool: args.mcp_tool,
                        mcp_tool_pin: args.mcp_tool_pin,
                        sql: args.sql,
                        cwd: args.cwd,
                    })),
                };
                ctl::policy::eval(&config, &args.policy, input, args.json)
            }
        },
        Command::Redact { json } => ctl::redact::run(&config, json),
        Command::Audit { action } => match action {
            AuditAction::Verify { json } => ctl::audit::verify(&config, json),
            AuditAction::FindSecret { json } => ctl::find_secret::run(&config, json),
        },
    };
    ExitCode::from(code as u8)
}
