//! `jeex-api`: the JEEX API server's command line.

use std::{fmt::Write as _, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use jeex_api::{
    api::{self, validation::Check},
    config::{Config, VARIABLES},
    run,
    telemetry::Telemetry,
};

mod allocator;

#[derive(Parser)]
#[command(name = "jeex-api", version, about = "JEEX API server", after_long_help = variables_help())]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server until SIGTERM/SIGINT (configured from the environment; see --help).
    #[command(after_long_help = variables_help())]
    Serve,
    /// Print the OpenAPI document of the API.
    Openapi {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// Validate the configuration and probe every configured dependency; exits non-zero
    /// naming each failure.
    #[command(after_long_help = variables_help())]
    Check,
    /// Apply pending database migrations as the owner role (JEEX_MIGRATE_DATABASE_URL) under an
    /// advisory lock, then grant the server's role (the DATABASE_URL user) what it needs.
    #[command(after_long_help = variables_help())]
    Migrate,
    /// Access tokens from the command line.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create the user if missing and print an access token and a refresh token.
    Issue {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// Display name for a new user.
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Yaml,
}

fn variables_help() -> String {
    let mut out = String::from("Environment variables:\n");
    for v in VARIABLES {
        let _ = writeln!(out, "  {}\n      {} [default: {}]", v.name, v.meaning, v.default);
    }
    out
}

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi { format } => {
            // The committed document shows the default vector size; a server serves its own.
            let rendered = api::contract::render(&api::service(()), jeex_api::config::DEFAULT_VECTOR_DIM);
            println!(
                "{}",
                match format {
                    Format::Json => rendered.json,
                    Format::Yaml => rendered.yaml,
                }
            );
            ExitCode::SUCCESS
        }
        Command::Serve => with_runtime(serve),
        Command::Check => with_runtime(check),
        Command::Migrate => with_runtime(migrate),
        Command::Token { command: TokenCommand::Issue { email, name } } => {
            with_runtime(async move |config| issue_token(config, email, name).await)
        }
    }
}

/// Logs go to stderr, so stdout carries only the command's result.
fn cli_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .try_init();
}

fn failed(e: &run::RunError, production_by_default: bool) -> ExitCode {
    let note = if e.is_config() && production_by_default { jeex_api::config::PRODUCTION_BY_DEFAULT } else { "" };
    eprintln!("jeex-api: {e}{note}");
    if e.is_config() { ExitCode::from(2) } else { ExitCode::FAILURE }
}

async fn migrate(config: Config) -> ExitCode {
    let by_default = config.production_by_default;
    cli_logging();
    match run::migrate(&config).await {
        Ok(report) => {
            for (version, description) in &report.applied {
                println!("applied {version} {description}");
            }
            if report.applied.is_empty() {
                println!("schema up to date ({} migrations already applied)", report.already_applied);
            }
            if let Some(role) = &report.granted {
                println!("granted role {role:?} its privileges");
            }
            ExitCode::SUCCESS
        }
        Err(e) => failed(&e, by_default),
    }
}

async fn issue_token(config: Config, email: String, name: Option<String>) -> ExitCode {
    let by_default = config.production_by_default;
    cli_logging();
    let mut check = Check::default();
    let email = check.email("--email", &email);
    let name = name.map(|n| check.text("--name", &n, 200));
    if let Err(e) = check.finish() {
        let jeex_api::error::ApiError::Validation { errors, .. } = e else { return ExitCode::from(2) };
        for err in errors {
            eprintln!("jeex-api: {}: {}", err.field, err.message);
        }
        return ExitCode::from(2);
    }
    match run::issue_token(&config, &email, name.as_deref()).await {
        Ok((user, pair)) => {
            println!("user_id={}", user.id);
            println!("access_token={}", pair.access_token.unwrap_or_default());
            println!("refresh_token={}", pair.refresh_token.unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => failed(&e, by_default),
    }
}

fn with_runtime(f: impl AsyncFnOnce(Config) -> ExitCode) -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("jeex-api: {e}");
            return ExitCode::from(2);
        }
    };
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(f(config)),
        Err(e) => {
            eprintln!("jeex-api: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    let by_default = config.production_by_default;
    let telemetry = match Telemetry::init(&config.telemetry) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("jeex-api: {e}");
            return ExitCode::from(2);
        }
    };
    // Panics are logged through tracing, inside the request span when there is one, so the
    // line carries the correlation ID.
    std::panic::set_hook(Box::new(|info| tracing::error!(panic = %info, "panic")));
    match run::serve(config, telemetry, allocator::release_startup_memory).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "jeex-api stopped");
            failed(&e, by_default)
        }
    }
}

async fn check(config: Config) -> ExitCode {
    println!("configuration: valid (JEEX_ENV={})", config.env.as_str());
    let export_ok = match Telemetry::build(&config.telemetry) {
        Ok(t) => match (&config.telemetry.otlp_endpoint, &t.export_error) {
            (None, _) => {
                println!("otlp: disabled (not configured)");
                true
            }
            (Some(_), Some(error)) => {
                println!("otlp: UNUSABLE: {error}");
                false
            }
            (Some(endpoint), None) => {
                println!("otlp: exporting to {endpoint} (delivery is never checked: export failures cannot stop the server)");
                true
            }
        },
        Err(e) => {
            println!("telemetry: UNUSABLE: {e}");
            false
        }
    };
    match run::check(&config).await {
        Ok((lines, ok)) => {
            for line in lines {
                println!("{line}");
            }
            if ok && export_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
        }
        Err(e) => {
            eprintln!("jeex-api: {e}");
            ExitCode::FAILURE
        }
    }
}
