//! `bench_windows`: enrolments and management sessions per second for simulated Windows
//! laptops; writes the "Windows" section of BENCHMARKS.md. Until the suite joins
//! `flotte-bench`, run it in release mode:
//!
//! `cargo run --release -p flotte-tests --bin bench_windows -- [--laptops 1000] [--postgres URL] [--out BENCHMARKS.md]`

use flotte_tests::benchmarks::{Figure, machine, table, write_section};
use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut laptops = 1000usize;
    let mut postgres = std::env::var("TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty());
    let mut out = PathBuf::from("BENCHMARKS.md");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--laptops" => {
                laptops = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--laptops needs a number"))?
                    .parse()?;
            }
            "--postgres" => postgres = args.next(),
            "--out" => {
                out = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--out needs a path"))?
                    .into();
            }
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    let mut figures: Vec<Figure> = Vec::new();
    let mut backends = vec![None];
    if postgres.is_some() {
        backends.push(postgres.as_deref());
    }
    for backend in backends {
        eprintln!(
            "windows: {laptops} laptops on {}",
            if backend.is_some() {
                "PostgreSQL"
            } else {
                "SQLite"
            }
        );
        figures.extend(flotte_tests::bench_windows::run(backend, laptops).await?);
    }
    let body = format!(
        "Machine: {}. Date: {}. Release build.\n\n\
         Simulated Windows laptops (`tests/src/windows_device.rs`) against `flotte up` in-process, \
         each laptop on its own HTTPS keep-alive connection, {} laptops at a time, load generator \
         on the same machine. A session is what a laptop's poll costs: package 1 without \
         credentials, the 407 challenge, package 1 again with the MD5 digest (212), then one \
         message per round of commands. RSA keys come from a pool of 16 generated before \
         timing.\n\n{}",
        machine(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        flotte_tests::bench_windows::CONCURRENCY,
        table(&figures)
    );
    write_section(&out, "Windows", &body)?;
    println!("{}", table(&figures));
    Ok(())
}
