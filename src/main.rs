//! The `callgate` command line: parses arguments, loads the config, runs the
//! library, and maps the outcome to an exit code.
//!
//! Exit codes: 0 success, 64 bad config or usage (EX_USAGE from sysexits.h,
//! also for argument errors clap would report as 2), 1 any other failure.
//! Every failure prints a one-line reason on stderr, `callgate: <reason>`
//! (a config with several problems prints one such line per problem).
//! SIGINT or SIGTERM drains the node (calls in progress go on to their end,
//! up to `node.drain_timeout_secs`), a second one hangs up every call and
//! stops, a third exits at once.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use callgate::config::{Config, ConfigError};
use callgate::metrics::Metrics;
use callgate::node;
use callgate::telemetry::{self, TelemetryError};
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;

mod tenant_commands;

const EX_USAGE: u8 = 64;

#[derive(Debug, Parser)]
#[command(name = "callgate", version, about = "WebRTC-to-SIP call-relay gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a node (on the embedded development default when no config is given)
    Serve(ConfigArg),
    /// Work with configuration files
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage recording key-encryption keys (KEKs)
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Work with stored call recordings
    Recording {
        #[command(subcommand)]
        command: RecordingCommand,
    },
    /// Manage tenants (the customers of a node)
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage API keys for the admin API
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Work with the node's database
    Database {
        #[command(subcommand)]
        command: DatabaseCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DatabaseCommand {
    /// Copy every row of this config's database into the empty database of
    /// another config (from the embedded SQLite to PostgreSQL); stop the
    /// node first
    Copy {
        /// The config whose [database] receives the copy
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Add a tenant
    Create {
        /// The tenant id (a-z, 0-9, '_' and '-')
        id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Set where a tenant's numbers may call (the toll-fraud guard)
    Allow {
        /// The tenant id
        id: String,
        /// Routes its numbers may take, comma-separated, or '*' for every
        /// route of the node
        #[arg(long, required_unless_present = "default", conflicts_with = "default")]
        routes: Option<String>,
        /// E.164 prefixes they may dial, comma-separated (+1,+44), or '*'
        /// for any number outside the high-cost ranges
        #[arg(long, required_unless_present = "default", conflicts_with = "default")]
        prefixes: Option<String>,
        /// Give the tenant the node's default ([limits] dial_routes and
        /// dial_prefixes) again
        #[arg(long)]
        default: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Subcommand)]
enum ApikeyCommand {
    /// Make a key and print it once; only its keyed hash is stored
    Create {
        /// The tenant the key belongs to (not for operator keys)
        #[arg(long)]
        tenant: Option<String>,
        /// admin (read and change), read (read only) or operator (node endpoints)
        #[arg(long)]
        role: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Revoke a key by its id (the hex part after "cg_")
    Revoke {
        id: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List a tenant's keys (ids, roles and dates; never the keys)
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Subcommand)]
enum RecordingCommand {
    /// Decrypt a recording to a two-channel WAV file (visitor left, callee
    /// right); the access is written to the audit log
    Decrypt {
        /// The recording id
        id: String,
        /// The WAV file to write (must not exist yet)
        #[arg(long, value_name = "FILE.wav")]
        out: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Print a new random key-encryption key (one base64 line), or write it
    /// to a new file readable by its owner only
    Generate {
        /// Write the key to this file (which must not exist yet)
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config (with CALLGATE_* overrides) and print every problem
    Check(ConfigArg),
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// Config file (TOML); without it, the embedded development default
    #[arg(long, value_name = "FILE", env = "CALLGATE_CONFIG")]
    config: Option<PathBuf>,
}

/// Why the command failed; decides the exit code.
enum Failure {
    Usage(String),
    Config(ConfigError),
    Other(anyhow::Error),
}

impl Failure {
    fn usage(error: impl std::fmt::Display) -> Self {
        Self::Usage(error.to_string())
    }

    fn report(&self) -> ExitCode {
        match self {
            Self::Usage(reason) => eprintln!("callgate: {reason}"),
            Self::Config(ConfigError::Invalid(problems)) => {
                for problem in problems {
                    eprintln!("callgate: {problem}");
                }
            }
            Self::Config(error) => eprintln!("callgate: {error}"),
            Self::Other(error) => eprintln!("callgate: {error:#}"),
        }
        match self {
            Self::Usage(_) | Self::Config(_) => ExitCode::from(EX_USAGE),
            Self::Other(_) => ExitCode::FAILURE,
        }
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

fn run() -> Result<(), Failure> {
    let Some(cli) = parse_args()? else {
        return Ok(());
    };
    match cli.command {
        Command::Serve(arg) => serve(arg.config),
        Command::Config {
            command: ConfigCommand::Check(arg),
        } => {
            load(arg.config)?;
            println!("config ok");
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Generate { out },
        } => generate_key(out),
        Command::Recording {
            command: RecordingCommand::Decrypt { id, out, config },
        } => decrypt_recording(&id, &out, config.config),
        Command::Tenant {
            command: TenantCommand::Create { id, config },
        } => with_store(config.config, async |store, _| {
            tenant_commands::create(&store, &id).await
        }),
        Command::Tenant {
            command:
                TenantCommand::Allow {
                    id,
                    routes,
                    prefixes,
                    default,
                    config,
                },
        } => {
            let allowance = match default {
                true => None,
                false => Some(
                    tenant_commands::parse_allowance(routes.as_deref(), prefixes.as_deref())
                        .map_err(Failure::usage)?,
                ),
            };
            with_store(config.config, async |store, config| {
                tenant_commands::allow(&store, &config, &id, allowance).await
            })
        }
        Command::Apikey { command } => apikey(command),
        Command::Database {
            command: DatabaseCommand::Copy { to, config },
        } => copy_database(&to, config.config),
    }
}

/// `callgate database copy`: the config's store into `to`'s, which must be
/// empty; prints the rows copied per table.
fn copy_database(to: &std::path::Path, from: Option<PathBuf>) -> Result<(), Failure> {
    let target_config = load(Some(to.to_owned()))?;
    with_store(from, async |source, config| {
        let from_url = config.database.url_for(&config.node.data_dir);
        let to_url = target_config.database.url_for(&target_config.node.data_dir);
        anyhow::ensure!(
            from_url != to_url,
            "--to names the database this config already uses"
        );
        let target = callgate::store::Store::open(&to_url).await?;
        let copied = source.copy_into(&target).await;
        target.close().await;
        for (table, rows) in copied? {
            println!("{table}\t{rows}");
        }
        Ok(())
    })
}

fn apikey(command: ApikeyCommand) -> Result<(), Failure> {
    match command {
        ApikeyCommand::Create {
            tenant,
            role,
            config,
        } => {
            let role =
                tenant_commands::parse_role(&role, tenant.as_deref()).map_err(Failure::usage)?;
            with_store(config.config, async |store, config| {
                let keys = callgate::recording::setup::key_ring(&config)?;
                tenant_commands::create_key(&store, &keys, tenant.as_deref(), role).await
            })
        }
        ApikeyCommand::Revoke { id, config } => with_store(config.config, async |store, _| {
            tenant_commands::revoke_key(&store, &id).await
        }),
        ApikeyCommand::List { tenant, config } => with_store(config.config, async |store, _| {
            tenant_commands::list_keys(&store, &tenant).await
        }),
    }
}

/// Opens the config's store on a small runtime and runs `work` with it.
fn with_store(
    path: Option<PathBuf>,
    work: impl AsyncFnOnce(callgate::store::Store, Config) -> anyhow::Result<()>,
) -> Result<(), Failure> {
    let config = load(path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::Other)?;
    runtime
        .block_on(async {
            let url = config.database.url_for(&config.node.data_dir);
            let store = callgate::store::Store::open(&url).await?;
            let outcome = work(store.clone(), config).await;
            store.close().await;
            outcome
        })
        .map_err(Failure::Other)
}

fn decrypt_recording(
    id: &str,
    out: &std::path::Path,
    path: Option<PathBuf>,
) -> Result<(), Failure> {
    use callgate::recording::{access, setup};
    let config = load(path)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::Other)?;
    let wav = runtime
        .block_on(async {
            let store =
                callgate::store::Store::open(&config.database.url_for(&config.node.data_dir))
                    .await?;
            let storage = setup::storage(&config)?;
            let keys = setup::key_ring(&config)?;
            let (_, decrypted) =
                access::open(&store, &storage, &keys, id, &callgate::store::Actor::Cli).await?;
            let audio = &decrypted.header.audio;
            anyhow::Ok(access::wav(
                &decrypted.audio,
                u16::from(audio.channels),
                audio.sample_rate,
            ))
        })
        .map_err(Failure::Other)?;
    write_new_file(out, &wav).map_err(Failure::Other)
}

/// Writes `bytes` to a new file only its owner can read.
fn write_new_file(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn generate_key(out: Option<PathBuf>) -> Result<(), Failure> {
    let text = callgate::keys::generate_kek_text();
    let Some(path) = out else {
        println!("{}", text.as_str());
        return Ok(());
    };
    let line = zeroize::Zeroizing::new(format!("{}\n", text.as_str()));
    write_new_file(&path, line.as_bytes())
        .context("cannot create key file")
        .map_err(Failure::Other)
}

/// `None` when `--help` or `--version` was printed (a success); every other
/// clap error is a usage error.
fn parse_args() -> Result<Option<Cli>, Failure> {
    let error = match Cli::try_parse() {
        Ok(cli) => return Ok(Some(cli)),
        Err(error) => error,
    };
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            error
                .print()
                .context("cannot print")
                .map_err(Failure::Other)?;
            Ok(None)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand | ErrorKind::MissingSubcommand => {
            let _ = error.print();
            Err(Failure::Usage("a command is required".to_owned()))
        }
        _ => {
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            let reason = first.strip_prefix("error: ").unwrap_or(first);
            Err(Failure::Usage(format!("{reason} (see 'callgate --help')")))
        }
    }
}

fn load(path: Option<PathBuf>) -> Result<Config, Failure> {
    Config::from_process(path.as_deref()).map_err(Failure::Config)
}

fn serve(path: Option<PathBuf>) -> Result<(), Failure> {
    let config = load(path)?;
    telemetry::init(&config.log).map_err(|error| match error {
        TelemetryError::Filter { .. } => Failure::Usage(error.to_string()),
        TelemetryError::AlreadyInstalled => Failure::Other(error.into()),
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(Failure::Other)?;
    // The node's one registry, built here and passed down to whatever
    // records into it.
    let metrics = Metrics::new()
        .map(Arc::new)
        .context("cannot build the metrics registry")
        .map_err(Failure::Other)?;
    runtime.block_on(async {
        let (drain, shutdown) = (CancellationToken::new(), CancellationToken::new());
        // Installed before the node binds anything, so a signal that arrives
        // as soon as the node is reachable is already handled gracefully.
        let signals = Signals::install()
            .context("cannot install signal handlers")
            .map_err(Failure::Other)?;
        tokio::spawn(signals.watch(drain.clone(), shutdown.clone()));
        node::run(config, metrics, drain, shutdown)
            .await
            .map_err(|error| Failure::Other(error.into()))
    })
}

struct Signals {
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.interrupt.recv() => "SIGINT",
        }
    }

    /// The first signal drains the node, the second hangs up every call
    /// and shuts it down, the third exits at once.
    async fn watch(mut self, drain: CancellationToken, shutdown: CancellationToken) {
        let first = self.next().await;
        tracing::info!(signal = first, "drain requested: calls in progress go on");
        drain.cancel();
        let second = self.next().await;
        tracing::warn!(
            signal = second,
            "second signal: hanging up every call and stopping"
        );
        shutdown.cancel();
        let third = self.next().await;
        tracing::warn!(signal = third, "third signal: exiting at once");
        std::process::exit(1);
    }
}
