//! The `autoencoder` command line: clap subcommands over the library. Errors become `anyhow`
//! messages here, at the edge, each ending with a hint of what to do.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
