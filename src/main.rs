//! The `autoencoder` command line: clap subcommands over the library. Errors become `anyhow`
//! messages here, at the edge, each ending with a hint of what to do.
#![forbid(unsafe_code)]

mod cli;

/// Large buffers on cache lines, where the kernels' 512-bit loads want them (`kernels::alloc`).
#[global_allocator]
static ALLOC: kernels::alloc::CacheAligned = kernels::alloc::CacheAligned;

fn main() -> std::process::ExitCode {
    cli::main()
}
