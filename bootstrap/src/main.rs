//! `herald`: the standalone server and its commands. Every failure exits non-zero with one
//! line on stderr, `herald: <reason>`.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use clap::Parser as _;
use clap::error::ErrorKind;
use herald::config::{Cli, Command, DatabaseConfig, LogArgs, MigrateArgs, ServerArgs};
use herald::{BuiltinPostgres, Herald};
use herald_postgres::PgStore;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return command_line_error(&err),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&anyhow!(err).context("starting the async runtime")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server(*args).await,
            Command::Migrate(args) => migrate(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

/// Help and version go to stdout as clap prints them; a usage error becomes one line.
fn command_line_error(err: &clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2))
        }
        _ => {
            let text = err.to_string();
            let line = text.lines().next().unwrap_or_default();
            eprintln!("herald: {}", line.strip_prefix("error: ").unwrap_or(line));
            ExitCode::from(2)
        }
    }
}

fn fail(err: &anyhow::Error) -> ExitCode {
    let text = format!("{err:#}").replace('\n', " ");
    eprintln!("herald: {text}");
    ExitCode::FAILURE
}

fn init_logging(log: &LogArgs) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.log_filter)
        .map_err(|err| anyhow!("--log-filter: {err}"))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|err| anyhow!("setting up logging: {err}"))
}

async fn server(args: ServerArgs) -> Result<()> {
    init_logging(&args.log)?;
    let config = args.validate()?;
    let key = match config.unsubscribe_key.clone() {
        Some(key) => key,
        None => herald::unsubscribe_key_in(&config.data_dir)?,
    };
    match &config.database {
        DatabaseConfig::External(url) => tracing::info!(database = %url, "starting herald"),
        DatabaseConfig::Builtin(options) => tracing::info!(
            data_dir = %options.data_dir.display(),
            "starting herald with the built-in PostgreSQL"
        ),
    }
    let http_address = config.http_address;
    let delivery = config.delivery.clone();
    // Listen for signals from the start: a SIGTERM while the database is still starting
    // abandons the start (stopping a built-in cluster again) instead of killing the process.
    let signal = wait_for_signal()?;
    tokio::pin!(signal);
    let herald = tokio::select! {
        built = Herald::builder().config(config).unsubscribe_key(key).build() => built?,
        name = &mut signal => {
            tracing::info!(signal = name, "stopped while starting");
            return Ok(());
        }
    };
    let available: Vec<_> = delivery.available().iter().map(|m| m.as_str()).collect();
    tracing::info!(
        methods = %available.join(","),
        default_method = %delivery.default_method(),
        "herald server started; the notifier is running (stop with SIGINT or SIGTERM)"
    );
    tracing::warn!(
        %http_address,
        "the HTTP API is not part of this release; nothing listens on --http-address yet"
    );

    let name = signal.await;
    tracing::info!(signal = name, "shutting down");
    herald.shutdown().await
}

/// Starts listening for SIGINT and SIGTERM; the future resolves with the first one's name.
fn wait_for_signal() -> Result<impl std::future::Future<Output = &'static str>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        }
    })
}

async fn migrate(args: MigrateArgs) -> Result<()> {
    init_logging(&args.log)?;
    match args.database.validate()? {
        DatabaseConfig::External(url) => {
            let store = PgStore::connect(url.expose())
                .await
                .with_context(|| format!("connecting to the database at {url}"))?;
            store
                .migrate()
                .await
                .context("applying the database migrations")?;
            store.pool().close().await;
            println!("migrations applied to {url}");
        }
        DatabaseConfig::Builtin(options) => {
            let cluster = BuiltinPostgres::start(&options).await?;
            let result = async {
                let store = PgStore::connect(cluster.url())
                    .await
                    .context("connecting to the built-in PostgreSQL")?;
                store
                    .migrate()
                    .await
                    .context("applying the database migrations")?;
                store.pool().close().await;
                anyhow::Ok(())
            }
            .await;
            cluster.stop().await?;
            result?;
            println!(
                "migrations applied to the built-in database in {}",
                options.data_dir.display()
            );
        }
    }
    Ok(())
}
