//! `jeex-operator`: `run` the controller, or print the `crd`.

use clap::{Parser, Subcommand};

/// The JEEX operator.
#[derive(Parser)]
#[command(name = "jeex-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the JeexBackend CustomResourceDefinition as YAML.
    Crd,
}

fn main() {
    match Cli::parse().command {
        Command::Crd => {
            use std::io::Write;
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = std::io::stdout().write_all(jeex_operator::crd_yaml().as_bytes());
        }
    }
}
