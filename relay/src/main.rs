//! quint-relay: the cloud side of Quint. `migrate` and `admin`/`maintain` run as the database
//! owner; `serve` runs as a login role in `quint_app` and refuses anything more powerful.

mod admin;
mod api;
mod auth;
mod aws;
mod cache;
mod db;
mod error;
mod metrics;
mod migrate;
mod notify;
mod sink;
mod sns;
mod state;
mod tokens;
mod writer;

use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "quint-relay", version, about = "Quint's multi-tenant relay")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or update the schema (idempotent). Run as the owner role.
    Migrate {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Serve the API. Run as a login role IN ROLE quint_app.
    Serve {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, env = "QUINT_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// Database connections in the pool.
        #[arg(long, default_value_t = 16)]
        pool_size: usize,
        /// Requests per second each tenant may make (per relay process). A device uploads at
        /// most about once a second, so size it to the largest fleet.
        #[arg(long, env = "QUINT_RATE_LIMIT", default_value_t = 1000)]
        rate_limit: u32,
        /// Requests a tenant may make at once above the rate.
        #[arg(long, env = "QUINT_RATE_BURST", default_value_t = 2000)]
        rate_burst: u32,
        /// Redis for the token and policy cache shared by relay processes (optional: without
        /// it each process caches for itself; both are invalidated at once on revocation).
        #[arg(long, env = "REDIS_URL")]
        redis_url: Option<String>,
        /// Where accepted events go: `postgres` (written here) or `sns` (published to
        /// --sns-topic-arn for `quint-relay sink` workers to write).
        #[arg(long, env = "QUINT_BUS", value_enum, default_value_t = BusKind::Postgres)]
        bus: BusKind,
        /// The SNS FIFO topic for `--bus sns` (AWS_ENDPOINT_URL, AWS_REGION and the usual AWS
        /// credentials apply).
        #[arg(long, env = "QUINT_SNS_TOPIC_ARN", required_if_eq("bus", "sns"))]
        sns_topic_arn: Option<String>,
    },
    /// Drain an SQS FIFO queue subscribed to the bus into Postgres. Run as a login role IN
    /// ROLE quint_app, like `serve`.
    Sink(sink::SinkArgs),
    /// Tenant administration (owner role).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Create action partitions ahead and drop those past retention (owner role).
    Maintain {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long, default_value_t = 13)]
        retention_months: i32,
    },
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum BusKind {
    Postgres,
    Sns,
}

#[derive(Subcommand)]
enum AdminCommand {
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// AWS resources for the SNS bus.
    Aws {
        #[command(subcommand)]
        command: AwsCommand,
    },
}

#[derive(Subcommand)]
enum AwsCommand {
    /// Create the SNS FIFO topic, the sink queue with its dead-letter queue, their raw
    /// subscription and an example alert-only queue (idempotent). For development against a
    /// local endpoint (AWS_ENDPOINT_URL); production uses packaging/aws/quint-relay.yaml.
    Bootstrap {
        /// Prefix of every resource name.
        #[arg(long, default_value = "quint")]
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant; prints its id and first API key (shown once).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        #[arg(long)]
        json: bool,
    },
}

async fn connect(database_url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .context("connecting to the database")?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::error!(%error, "database connection closed");
        }
    });
    Ok(client)
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("QUINT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(error) = run(Cli::parse()).await {
        eprintln!("quint-relay: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate { database_url } => {
            let mut client = connect(&database_url).await?;
            let applied = migrate::migrate(&mut client).await?;
            let created = admin::ensure_partitions(&client).await?;
            if applied.is_empty() {
                println!("schema up to date");
            } else {
                println!("applied {}", applied.join(", "));
            }
            println!("{created} action partition(s) created");
        }
        Command::Serve {
            database_url,
            listen,
            pool_size,
            rate_limit,
            rate_burst,
            redis_url,
            bus,
            sns_topic_arn,
        } => {
            let pool = db::pool(&database_url, pool_size)?;
            let cache = Arc::new(match &redis_url {
                Some(url) => {
                    let signing_key = db::cache_signing_key(&pool).await?;
                    cache::Cache::connect(url, &signing_key).await
                }
                None => cache::Cache::local(),
            });
            let policy_changes = notify::start(database_url.clone(), cache.clone());
            let bus = match (bus, sns_topic_arn) {
                (BusKind::Sns, Some(topic)) => {
                    tracing::info!(%topic, "accepted events go to SNS");
                    state::Bus::Sns(Arc::new(sns::Publisher::new(
                        &aws::sdk_config(aws::SHORT_ATTEMPT).await,
                        topic,
                    )))
                }
                _ => state::Bus::Postgres,
            };
            serve(
                state::AppState::new(pool, rate_limit, rate_burst, policy_changes, cache, bus),
                &listen,
            )
            .await?
        }
        Command::Sink(args) => sink::run(args).await?,
        Command::Admin {
            command:
                AdminCommand::Aws {
                    command: AwsCommand::Bootstrap { name, json },
                },
        } => {
            let created = aws::bootstrap(&aws::sdk_config(aws::SHORT_ATTEMPT).await, &name).await?;
            if json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                println!("topic          {}", created.topic_arn);
                println!("sink queue     {}", created.sink_queue_url);
                println!("dead letters   {}", created.dead_letter_queue_url);
                println!(
                    "alert queue    {}  (deny and alert only)",
                    created.alert_queue_url
                );
            }
        }
        Command::Admin {
            command: AdminCommand::Tenant { command },
        } => match command {
            TenantCommand::Create {
                name,
                database_url,
                json,
            } => {
                let mut client = connect(&database_url).await?;
                let tenant = admin::create_tenant(&mut client, &name).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"tenant_id": tenant.tenant_id, "api_key": tenant.api_key})
                    );
                } else {
                    println!("tenant   {} ({})", tenant.tenant_id, tenant.name);
                    println!("api key  {}  (shown once; store it now)", tenant.api_key);
                }
            }
            TenantCommand::List { database_url, json } => {
                let client = connect(&database_url).await?;
                let tenants = admin::list_tenants(&client).await?;
                if json {
                    println!("{}", serde_json::to_string(&tenants)?);
                } else {
                    for t in tenants {
                        println!(
                            "{}  {}  {}{}",
                            t.tenant_id,
                            t.created_at.format("%Y-%m-%d"),
                            t.name,
                            if t.deleted { "  (deleted)" } else { "" }
                        );
                    }
                }
            }
        },
        Command::Maintain {
            database_url,
            retention_months,
        } => {
            let client = connect(&database_url).await?;
            let (created, dropped) = admin::maintain(&client, retention_months).await?;
            println!(
                "{created} partition(s) created, {} dropped{}",
                dropped.len(),
                if dropped.is_empty() {
                    String::new()
                } else {
                    format!(": {}", dropped.join(", "))
                }
            );
        }
    }
    Ok(())
}

async fn serve(state: state::AppState, listen: &str) -> anyhow::Result<()> {
    {
        let client = state
            .pool
            .get()
            .await
            .context("connecting to the database")?;
        db::check_service_role(&client).await?;
        // Partitions for this month and the next ones exist before the first ingest.
        client
            .query_one("SELECT quint_ensure_partitions_ahead()", &[])
            .await
            .context("creating action partitions")?;
    }
    let app = api::router(state);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "quint-relay serving");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    tracing::info!("quint-relay stopped");
    Ok(())
}

/// SIGTERM or Ctrl-C: stop accepting, finish what is in flight.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
