//! `convlab`: the command-line tool. Every command calls the library's
//! public API only; a user error prints one line on stderr and exits 2.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// mimalloc keeps freed blocks for reuse: with glibc's allocator a training
/// step's large tensors went back to the kernel and came back as fresh
/// page faults every step (0.1 s of system time in a 0.8 s digits run).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "convlab",
    version,
    about = "Convolution and pooling layers of CNNs, exact to PyTorch"
)]
struct Cli {
    /// Use only exact convolution algorithms: every output a plain sum of
    /// its window's products (no Winograd, FFT or separable passes; see
    /// `convlab::ops::use_exact_algorithms`). Slower on the layers those
    /// would run; an output's rounding then never depends on values
    /// outside its window.
    #[arg(long, global = true)]
    exact: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reproduce Dive into Deep Learning ch. 6.2-6.5 cell by cell.
    Tour,
    /// Filter an image (or a directory of them) with a kernel, optionally pooled.
    Filter(filter::Args),
    /// Learn the kernel that maps INPUT to TARGET by gradient descent.
    Learn(learn::Args),
    /// Receptive field, jump and output size of a layer stack.
    Rf(rf::Args),
    /// Render kernels or feature maps as a PNG grid.
    Show(show::Args),
    /// Time conv and pooling forward and backward on a benchmark suite.
    Bench(bench::BenchArgs),
    /// Classify .npy tensors or images with a network of convlab::models.
    Predict(predict::Args),
    /// Train a CNN (small, LeNet or resnet18) on the UCI handwritten digits (checkpoints, resume, plot).
    TrainDigits(train_digits::TrainDigitsArgs),
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // A misspelt CONVLAB_MAX_BYTES or CONVLAB_ISA is an error before any work.
    convlab::env::check()?;
    convlab::ops::use_exact_algorithms(cli.exact);
    match cli.command {
        Command::Tour => {
            out!("{}", convlab::tour::render()?);
            Ok(())
        }
        Command::Filter(a) => filter::run(a),
        Command::Learn(a) => learn::run(a),
        Command::Rf(a) => rf::run(a),
        Command::Show(a) => show::run(a),
        Command::Bench(args) => bench::run(args),
        Command::Predict(args) => predict::run(args),
        // On a pool worker, so each op's parallel regions start without a
        // hand-off from this thread (see `bench::run`).
        Command::TrainDigits(args) => rayon::scope(|_| train_digits::run(args)),
    }
}

mod args;
mod bench;
mod bench_networks;
mod files;
mod filter;
mod learn;
mod out;
mod plot;
mod predict;
mod rf;
mod show;
mod train_digits;

use out::out;

/// On SIGINT, SIGTERM or SIGHUP: remove the temporary files of writes in
/// progress, then die of the signal as the default action would (the shell
/// sees 130 for Ctrl-C). Otherwise a Ctrl-C during a write leaves a
/// temporary file as large as the output behind.
#[cfg(unix)]
fn clean_up_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    use signal_hook::iterator::Signals;
    // Only fails when the handler cannot be installed: run without it.
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                convlab::io::abandon_writes();
                let _ = signal_hook::low_level::emulate_default_handler(sig);
                std::process::exit(128 + sig);
            }
        });
}

#[cfg(not(unix))]
fn clean_up_on_signals() {}

/// One line on stderr, ignoring a failure to write it (nowhere left to say so).
fn say(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "convlab: {msg}");
}

fn main() -> ExitCode {
    // Freed pages stay committed for reuse: by default mimalloc purges
    // them after 10 ms, and every large tensor of the next call came back
    // as fresh (zeroed) huge pages — 590 against 207 page faults in a
    // resnet_3x3_s2_128 bench, about a fifth of its time.
    // (`mi_option_purge_delay` of mimalloc 2's mimalloc.h, which
    // libmimalloc-sys 0.1 builds but does not name.)
    const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    // SAFETY: setting an option is allowed at any time, from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version are not errors; usage mistakes exit 2 (clap's convention too)
            // with one line, like every other error: clap's first line, without its "error: ".
            if !e.use_stderr() {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            // Without a command clap prints the whole help; one line says what is missing.
            if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                say("a command is needed: tour, filter, learn, rf, show, bench, predict or train-digits (see --help)");
                return ExitCode::from(2);
            }
            let text = e.render().to_string();
            // The first paragraph: "required arguments were not provided:" lists them below.
            let first: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.is_empty())
                .collect();
            let first = first.join(" ");
            let first = first.strip_prefix("error: ").unwrap_or(&first);
            say(&format!("{first} (see --help)"));
            return ExitCode::from(2);
        }
    };
    clean_up_on_signals();
    match run(cli).and_then(|()| Ok(out::flush()?)) {
        Ok(()) => ExitCode::SUCCESS,
        // `convlab tour | head -1`: the reader has what it wanted.
        Err(e) if out::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            say(&format!("{e:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}
