//! `flotte-bench`: Flotte's benchmarks. Each writes its section of BENCHMARKS.md
//! with the machine and the date. Run through `scripts/bench.sh`, which builds
//! in release mode and starts a PostgreSQL for the PostgreSQL figures.
//!
//! Usage: flotte-bench [apple] [directory] [windows] [profiles] [--laptops 1000] [--devices 1000,10000] [--push-devices 2703,100000] [--postgres URL] [--out BENCHMARKS.md]

use flotte_tests::benchmarks::{Figure, machine, table, write_section};
use std::path::PathBuf;

struct Args {
    suites: Vec<String>,
    devices: Vec<usize>,
    laptops: usize,
    push_devices: Vec<usize>,
    postgres: Option<String>,
    out: PathBuf,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        suites: Vec::new(),
        devices: vec![1000, 10000],
        laptops: 1000,
        push_devices: vec![2703, 100_000],
        postgres: std::env::var("TEST_POSTGRES_URL")
            .ok()
            .filter(|s| !s.is_empty()),
        out: PathBuf::from("BENCHMARKS.md"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--devices" => {
                args.devices = it
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--devices needs a list"))?
                    .split(',')
                    .map(|n| n.trim().parse())
                    .collect::<Result<_, _>>()?;
            }
            "--push-devices" => {
                args.push_devices = it
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--push-devices needs a list"))?
                    .split(',')
                    .map(|n| n.trim().parse())
                    .collect::<Result<_, _>>()?;
            }
            "--postgres" => args.postgres = it.next(),
            "--laptops" => {
                args.laptops = it
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--laptops needs a number"))?
                    .parse()?;
            }
            "--out" => {
                args.out = it
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--out needs a path"))?
                    .into()
            }
            "-h" | "--help" => {
                println!(
                    "flotte-bench [apple] [directory] [windows] [profiles] [--laptops 1000] [--devices 1000,10000] [--push-devices 2703,100000] [--postgres URL] [--out BENCHMARKS.md]"
                );
                std::process::exit(0);
            }
            suite => args.suites.push(suite.to_owned()),
        }
    }
    if args.suites.is_empty() {
        args.suites = vec!["apple".into()];
    }
    Ok(args)
}

fn header() -> String {
    format!(
        "Machine: {}. Date: {}. Release build.\n\n",
        machine(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    for suite in &args.suites {
        match suite.as_str() {
            "apple" => {
                let mut figures: Vec<Figure> = Vec::new();
                let mut backends: Vec<Option<&str>> = vec![None];
                if let Some(pg) = args.postgres.as_deref() {
                    backends.push(Some(pg));
                }
                for backend in backends {
                    for &n in &args.devices {
                        eprintln!(
                            "apple: {n} iPads on {}",
                            if backend.is_some() {
                                "PostgreSQL"
                            } else {
                                "SQLite"
                            }
                        );
                        figures.extend(flotte_tests::bench_apple::run(backend, n).await?);
                    }
                }
                let body = format!(
                    "{}Simulated iPads (signed `Mdm-Signature`, identities from Flotte's CA) against `flotte up` \
                     in-process, 32 HTTPS/1.1 keep-alive connections from a load generator on the same machine. \
                     Bodies are signed before timing. The ceiling is an empty handler on the same rustls stack \
                     with the same request bodies; ratios compare against it. The floor is a handler on the same \
                     stack that only does what the protocol demands before any storage: it checks the \
                     check-ins' `Mdm-Signature` (a new identity's chain once, then its cached key) and parses \
                     the plist.\n\n{}",
                    header(),
                    table(&figures)
                );
                write_section(&args.out, "Apple check-in and command poll", &body)?;
            }
            "directory" => {
                let mut figures = flotte_tests::bench_directory::run(None).await?;
                if let Some(pg) = args.postgres.as_deref() {
                    figures.extend(flotte_tests::bench_directory::run(Some(pg)).await?);
                }
                let body = format!(
                    "{}A city-sized directory (57 schools, 30,000 pupils, 3,000 teachers, about 1,100 classes)                      in a private slapd, synchronised through the real read → plan → apply path.\n\n{}",
                    header(),
                    table(&figures)
                );
                write_section(&args.out, "Directory", &body)?;
            }
            "windows" => {
                let mut figures = Vec::new();
                let mut backends: Vec<Option<&str>> = vec![None];
                if let Some(pg) = args.postgres.as_deref() {
                    backends.push(Some(pg));
                }
                for backend in backends {
                    eprintln!(
                        "windows: {} laptops on {}",
                        args.laptops,
                        if backend.is_some() {
                            "PostgreSQL"
                        } else {
                            "SQLite"
                        }
                    );
                    figures.extend(flotte_tests::bench_windows::run(backend, args.laptops).await?);
                }
                let body = format!(
                    "{}Simulated Windows laptops (`tests/src/windows_device.rs`) against `flotte up` in-process, \
                     each laptop on its own HTTPS keep-alive connection, {} laptops at a time, load generator \
                     on the same machine. A session is what a laptop's poll costs: package 1 without \
                     credentials, the 407 challenge, package 1 again with the MD5 digest (212), then one \
                     message per round of commands. RSA keys come from a pool of 16 generated before \
                     timing.\n\n{}",
                    header(),
                    flotte_tests::bench_windows::CONCURRENCY,
                    table(&figures)
                );
                write_section(&args.out, "Windows", &body)?;
            }
            "profiles" => {
                let mut figures =
                    flotte_tests::bench_profiles::run(None, &args.push_devices).await?;
                if let Some(pg) = args.postgres.as_deref() {
                    figures.extend(
                        flotte_tests::bench_profiles::run(Some(pg), &args.push_devices).await?,
                    );
                }
                let body = format!(
                    "{}Rendering and CMS signing measured alone (one core). Then one bulk push of a \
                     school-wide template per size against `flotte up` in-process (server and worker, \
                     APNs stand-in on loopback, rate limit lifted to measure the machine): devices \
                     inserted enrolled with push tokens; up to 10,000 of them are simulated iPads that \
                     answer their pushes with signed sessions, 32 at a time. The baseline, measured in \
                     the same run, writes the same number of command rows in one transaction with no \
                     planning; its ratio says what the fan-out costs over the bare inserts.\n\n{}",
                    header(),
                    table(&figures)
                );
                write_section(&args.out, "Profiles and bulk pushes", &body)?;
            }
            other => {
                anyhow::bail!(
                    "unknown benchmark {other:?} (known: apple, directory, windows, profiles)"
                )
            }
        }
    }
    Ok(())
}
