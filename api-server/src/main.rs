//! `jeex-api`: the JEEX API server's command line.

use std::{fmt::Write as _, process::ExitCode};

use clap::{Parser, Subcommand, ValueEnum};
use jeex_api::{
    api,
    config::{Config, VARIABLES},
    run,
    telemetry::Telemetry,
};

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
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi { format } => {
            let service = api::service(());
            println!(
                "{}",
                match format {
                    Format::Json => service.spec(),
                    Format::Yaml => service.spec_yaml(),
                }
            );
            ExitCode::SUCCESS
        }
        Command::Serve => with_runtime(serve),
        Command::Check => with_runtime(check),
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
    match run::serve(config, telemetry).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "jeex-api stopped");
            eprintln!("jeex-api: {e}");
            ExitCode::FAILURE
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
