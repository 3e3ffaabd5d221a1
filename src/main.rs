use clap::Parser;

/// mimalloc instead of glibc's allocator: a GraphQL answer is thousands of small allocations
/// (a future, a value and a map entry per field), freed together, on two threads; glibc spent
/// about a quarter of discovery's time in malloc and free (BENCHMARKS.md, "Where the time
/// goes").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    roster::cli::run(roster::cli::Cli::parse()).await
}
