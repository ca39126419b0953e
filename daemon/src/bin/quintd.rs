//! quintd: the Quint daemon. Decides on agent actions and records every one of them.

use std::process::ExitCode;

use clap::Parser;
use quint_daemon::config::Config;

#[derive(Parser)]
#[command(
    name = "quintd",
    version,
    about = "Quint daemon: policy decisions and a durable record of every AI agent action"
)]
struct Args {
    /// Config file (default /etc/quint/config.yaml; also QUINT_CONFIG).
    #[arg(long, value_name = "PATH")]
    config: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = args.config {
        std::env::set_var("QUINT_CONFIG", path);
    }
    let config = match Config::load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("quintd: {e}");
            return ExitCode::from(78);
        }
    };
    init_logging(&config);
    // Everything quintd creates is private unless it says otherwise (snapshot, spool, socket).
    unsafe { libc::umask(0o077) };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("quintd: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(quint_daemon::server::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("quintd: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("QUINT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
