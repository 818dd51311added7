//! `jeex-operator`: `run` the controller, or print the `crd`.

use std::{net::SocketAddr, process::ExitCode};

use clap::{Parser, Subcommand};
use jeex_operator::{
    controller::{self, Settings},
    telemetry::{Telemetry, TelemetryConfig},
};

/// The JEEX operator: reconciles JeexBackend resources.
#[derive(Parser)]
#[command(name = "jeex-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the JeexBackend CustomResourceDefinition as YAML.
    Crd {
        /// Print it as the Helm chart's template (labels, keep policy, `crds.install`).
        #[arg(long)]
        chart: bool,
    },
    /// Run the controller (in the cluster, or against KUBECONFIG).
    Run {
        /// Where /healthz, /readyz and /metrics listen.
        #[arg(long, env = "JEEX_OPERATOR_HTTP_ADDR", default_value = "0.0.0.0:8080")]
        http_addr: SocketAddr,
        /// Namespace of the leader Lease (the operator's own; the chart sets it from the pod).
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        namespace: String,
        /// This replica's identity in the Lease (the chart sets the pod name).
        #[arg(long, env = "POD_NAME", default_value = "jeex-operator-local")]
        identity: String,
        /// Take the leader Lease before reconciling; turn off only for a single local run.
        #[arg(long, env = "JEEX_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
        leader_election: bool,
        /// Log format: json or pretty.
        #[arg(long, env = "JEEX_LOG_FORMAT", default_value = "json", value_parser = ["json", "pretty"])]
        log_format: String,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crd { chart } => {
            use std::io::Write;
            let text = if chart { jeex_operator::crd_chart_template() } else { jeex_operator::crd_yaml() };
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Command::Run { http_addr, namespace, identity, leader_election, log_format } => {
            let config = match TelemetryConfig::from_env(|k| std::env::var(k).ok()) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("jeex-operator: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,kube=warn".into());
            // The exporters run on the runtime's tasks: build them inside it.
            let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime");
            let _entered = runtime.enter();
            let telemetry = match Telemetry::build(&config) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("jeex-operator: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(e) = telemetry.install(filter, log_format == "json", config.endpoint.is_some()) {
                eprintln!("jeex-operator: {e}");
                return ExitCode::FAILURE;
            }
            let settings = Settings { http_addr, namespace, identity, leader_election, meter: telemetry.meter() };
            let outcome = runtime.block_on(controller::run(settings));
            telemetry.shutdown();
            match outcome {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("jeex-operator: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
