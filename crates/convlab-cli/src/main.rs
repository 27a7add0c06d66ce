//! `convlab`: the command-line tool. Every command calls the library's
//! public API only; a user error prints one line on stderr and exits 2.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "convlab",
    version,
    about = "Convolution and pooling layers of CNNs, exact to PyTorch"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reproduce Dive into Deep Learning ch. 6.2-6.5 cell by cell.
    Tour,
    /// Time conv and pooling forward and backward on a benchmark suite.
    Bench(bench::BenchArgs),
    /// Train a small CNN on the UCI handwritten digits (checkpoints, resume, plot).
    TrainDigits(train_digits::TrainDigitsArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Tour => {
            print!("{}", tour::render()?);
            Ok(())
        }
        Command::Bench(args) => bench::run(args),
        Command::TrainDigits(args) => train_digits::run(args),
    }
}

mod bench;
mod tour;
mod train_digits;
mod train_plot;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; usage mistakes exit 2 (clap's convention too).
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("convlab: {msg}");
            ExitCode::from(2)
        }
    }
}
