//! `herald`: the standalone server and its commands. Every failure exits non-zero with one
//! line on stderr, `herald: <reason>`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use clap::Parser as _;
use clap::error::ErrorKind;
use herald::config::{
    Cli, Command, CreateUserArgs, DatabaseConfig, LogArgs, MigrateArgs, ServerArgs, UsersCommand,
};
use herald::logging::LogFilter;
use herald::{BuiltinPostgres, Herald};
use herald_application::ports::{Clock, SystemClock};
use herald_application::{AuthCache, Tokens, UserInput, Users};
use herald_domain::UserId;
use herald_postgres::PgStore;

/// mimalloc rather than glibc's malloc: the server allocates and frees many small, short-lived
/// values per message (rows, rendered text, JSON bodies), which mimalloc serves with less CPU,
/// for a little more resident memory.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long requests in flight may take to finish once the server is told to stop.
const HTTP_DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
            Command::Users(UsersCommand::Create(args)) => create_user(args).await,
            Command::Templates(command) => herald::client::templates(command).await,
            Command::Notifications(command) => herald::client::notifications(command).await,
            Command::Preferences(command) => herald::client::preferences(command).await,
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
            // The first paragraph, on one line: "the following required arguments were not
            // provided: --token <TOKEN>".
            let text = err.to_string();
            let line = text
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("herald: {}", line.strip_prefix("error: ").unwrap_or(&line));
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
    let filter = LogFilter::parse(&log.log_filter).map_err(|err| anyhow!("--log-filter: {err}"))?;
    herald::logging::init(filter).map_err(|err| anyhow!("setting up logging: {err}"))
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
    let http_limits = config.http_limits;
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
    let Some(router) = herald.http_router() else {
        return fail_after(
            herald,
            anyhow!("the HTTP API needs Herald's own user directory"),
        )
        .await;
    };
    let listener = match tokio::net::TcpListener::bind(http_address).await {
        Ok(listener) => listener,
        Err(err) => {
            let err =
                anyhow!(err).context(format!("--http-address: cannot listen on {http_address}"));
            return fail_after(herald, err).await;
        }
    };
    let address = match listener.local_addr() {
        Ok(address) => address,
        Err(err) => {
            return fail_after(
                herald,
                anyhow!(err).context("reading the listening address"),
            )
            .await;
        }
    };
    let delivery = herald.delivery();
    let available: Vec<_> = delivery.available().iter().map(|m| m.as_str()).collect();
    tracing::info!(
        methods = %available.join(","),
        default_method = %delivery.default_method(),
        "herald server started; the notifier is running (stop with SIGINT or SIGTERM)"
    );
    tracing::info!(%address, "HTTP API listening on http://{address}/api/v2");
    tracing::info!(
        header_read_timeout = ?http_limits.header_read_timeout,
        idle_timeout = ?http_limits.idle_timeout,
        request_timeout = ?http_limits.request_timeout,
        max_connections = http_limits.max_connections,
        "HTTP limits"
    );
    if let Some(open_files) = herald::http_server::open_files_limit()
        && u64::try_from(http_limits.max_connections).is_ok_and(|max| max >= open_files)
    {
        tracing::warn!(
            max_connections = http_limits.max_connections,
            open_files,
            "--http-max-connections is not below the limit on open files (ulimit -n): \
             connections may use up the file descriptors the server needs"
        );
    }

    // The HTTP server stops taking connections on the signal and finishes the requests in
    // flight; then the notifier and the rest stop.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let connection_metrics = herald.connection_metrics();
    let serving = tokio::spawn(herald::http_server::serve(
        listener,
        router,
        http_limits,
        connection_metrics,
        async move {
            let _ = stopped.await;
        },
    ));
    let name = signal.await;
    tracing::info!(signal = name, "shutting down");
    let _ = stop.send(());
    // Requests in flight get a bounded time to finish, so a hung client cannot hold the
    // shutdown.
    let abort = serving.abort_handle();
    match tokio::time::timeout(HTTP_DRAIN_TIMEOUT, serving).await {
        Ok(Ok(Ok(()))) => tracing::info!("HTTP API stopped"),
        Ok(Ok(Err(err))) => tracing::warn!(error = %err, "the HTTP server ended with an error"),
        Ok(Err(err)) => tracing::error!(error = %err, "the HTTP server task ended abnormally"),
        Err(_) => {
            abort.abort();
            tracing::warn!(
                timeout = ?HTTP_DRAIN_TIMEOUT,
                "HTTP API stopped with requests still in flight"
            );
        }
    }
    herald.shutdown().await
}

/// Stops what was started, then reports `err`.
async fn fail_after(herald: Herald, err: anyhow::Error) -> Result<()> {
    if let Err(stop) = herald.shutdown().await {
        tracing::warn!(error = %stop, "could not stop cleanly");
    }
    Err(err)
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

/// `herald users create`: writes the user and a token straight to the database (migrating it
/// first, so it works on a fresh one) and prints the token as the only line on stdout.
async fn create_user(args: CreateUserArgs) -> Result<()> {
    init_logging(&args.log)?;
    let input = UserInput::parse(
        &args.email,
        &args.username,
        &args.name,
        &args.roles,
        "active",
    )
    .map_err(|err| match err {
        herald_application::Error::Invalid { field, reason } => anyhow!("--{field}: {reason}"),
        other => anyhow!(other),
    })?;
    match args.database.validate()? {
        DatabaseConfig::External(url) => {
            let store = PgStore::connect(url.expose())
                .await
                .with_context(|| format!("connecting to the database at {url}"))?;
            let result = create_user_in(&store, input).await;
            store.close().await;
            result
        }
        DatabaseConfig::Builtin(options) => {
            let cluster = BuiltinPostgres::start(&options).await?;
            let result = async {
                let store = PgStore::connect(cluster.url().expose())
                    .await
                    .context("connecting to the built-in PostgreSQL")?;
                let result = create_user_in(&store, input).await;
                store.close().await;
                result
            }
            .await;
            cluster.stop().await?;
            result
        }
    }
}

async fn create_user_in(store: &PgStore, input: UserInput) -> Result<()> {
    store
        .migrate()
        .await
        .context("applying the database migrations")?;
    let store = Arc::new(store.clone());
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let auth_cache = AuthCache::default();
    let users = Users::new(
        store.clone(),
        store.clone(),
        clock.clone(),
        auth_cache.clone(),
    );
    let tokens = Tokens::new(store.clone(), store, clock, auth_cache);
    let user = users
        .upsert(UserId::random(), input)
        .await
        .map_err(|err| anyhow!(err))
        .context("creating the user")?;
    let token = tokens
        .issue(user.id)
        .await
        .map_err(|err| anyhow!(err))
        .context("issuing a token")?;
    tracing::info!(user_id = %user.id, username = %user.username, "created the user");
    println!("{}", token.expose());
    Ok(())
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
            store.close().await;
            println!("migrations applied to {url}");
        }
        DatabaseConfig::Builtin(options) => {
            let cluster = BuiltinPostgres::start(&options).await?;
            let result = async {
                let store = PgStore::connect(cluster.url().expose())
                    .await
                    .context("connecting to the built-in PostgreSQL")?;
                store
                    .migrate()
                    .await
                    .context("applying the database migrations")?;
                store.close().await;
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
