//! Build tooling: `cargo xtask demo`, `cargo xtask test`, `cargo xtask build`.
//!
//! Each command installs what it needs when it is missing (the wasm target, the pinned
//! wasm-bindgen CLI, and for tests Debian's Chromium and ChromeDriver), so the README's two
//! commands work on a fresh machine. Nothing is skipped silently: a missing tool that cannot be
//! installed stops the command with a message saying what to install.

use std::path::PathBuf;
use std::process::Command;

use anyhow::Result;
use clap::{Parser, Subcommand};

mod package;
mod process;
mod tools;

use package::build_package;
use process::{cargo, run, target_dir, workspace_root};
use tools::{
    ensure_chromium, ensure_nginx, ensure_postgres, ensure_schemathesis, ensure_systemd_analyze, ensure_wasm_tools,
};

/// The wasm-bindgen CLI version; the `wasm-bindgen` crate is pinned to exactly this in
/// `client-wasm/Cargo.toml` (the CLI and the crate must match; 0.2.130 does not install with
/// `--locked` from this registry).
const WASM_BINDGEN_VERSION: &str = "0.2.129";

const WASM_TARGET: &str = "wasm32-unknown-unknown";

#[derive(Parser)]
#[command(about = "session-log build tooling")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the npm package and the server, then run the server with the demo workshop.
    /// Arguments after `--` go to the server (e.g. `-- --bind 0.0.0.0:8080`).
    Demo {
        /// Extra arguments for session-log-server.
        #[arg(last = true)]
        server_args: Vec<String>,
    },
    /// Run every test: unit, integration, wasm (headless Chromium) and end-to-end.
    Test,
    /// Build the npm package into client-wasm/pkg and print its gzipped size.
    Build,
    /// Run the client benchmark in headless Chromium (logAction against plain JavaScript).
    BenchClient,
    /// Run the help channel's benchmark in headless Chromium (30 pages: how soon a claim, a
    /// resolve and a notice reach them; requests per page per minute).
    BenchHelp,
    /// Run the query benchmark: 1,000,000 events in 2,000 sessions, the instructors' queries
    /// against the release server (loopback, about 1–2 min). Arguments after `--` go to it
    /// (`--events N`, `--sessions N`).
    BenchQuery {
        /// Extra arguments for session-log-query-bench.
        #[arg(last = true)]
        bench_args: Vec<String>,
    },
    /// Run the memory benchmark against the release server: `--mode keys` (100 MB of distinct
    /// keys, RSS before and after) or `--mode steady` (2,000 events/s for `--minutes`, default 30,
    /// RSS and p99 every minute). Arguments after `--` go to it (`--database-url` for PostgreSQL).
    Soak {
        /// Extra arguments for session-log-soak.
        #[arg(last = true)]
        soak_args: Vec<String>,
    },
    /// Run the ingest benchmark against the release server (loopback, about 4 minutes: three rounds).
    /// Arguments after `--` go to the benchmark (`--seconds N`, `--rounds N`, `--batch-clients N,M,...`, `--single-clients N`).
    Bench {
        /// Extra arguments for session-log-bench.
        #[arg(last = true)]
        bench_args: Vec<String>,
    },
}

fn main() -> Result<()> {
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match Cli::parse().command {
        Cmd::Build => {
            ensure_wasm_tools()?;
            build_package(&root)?;
        }
        Cmd::Demo { server_args } => {
            ensure_wasm_tools()?;
            build_package(&root)?;
            run("build the server", cargo().args(["build", "--release", "-p", "session-log-server"]))?;
            let server = target_dir(&root).join("release/session-log-server");
            println!("==> starting the demo: open the address below; Ctrl-C stops it");
            run(
                "run the server",
                Command::new(server).args(["--www", "www", "--pkg", "client-wasm/pkg"]).args(server_args),
            )?;
        }
        Cmd::Bench { bench_args } => {
            let release = build_release_bins("session-log-bench")?;
            run(
                "ingest benchmark",
                Command::new(release.join("session-log-bench"))
                    .args(bench_args)
                    .env("SESSION_LOG_SERVER_BIN", release.join("session-log-server")),
            )?;
        }
        Cmd::Soak { soak_args } => {
            let release = build_release_bins("session-log-soak")?;
            run(
                "memory benchmark",
                Command::new(release.join("session-log-soak"))
                    .args(soak_args)
                    .env("SESSION_LOG_SERVER_BIN", release.join("session-log-server")),
            )?;
        }
        Cmd::BenchQuery { bench_args } => {
            let release = build_release_bins("session-log-query-bench")?;
            run(
                "query benchmark",
                Command::new(release.join("session-log-query-bench"))
                    .args(bench_args)
                    .env("SESSION_LOG_SERVER_BIN", release.join("session-log-server")),
            )?;
        }
        Cmd::BenchClient => {
            ensure_wasm_tools()?;
            let (chrome, driver) = ensure_chromium()?;
            build_package(&root)?;
            let release = build_release_bins("session-log-client-bench")?;
            run(
                "client benchmark",
                Command::new(release.join("session-log-client-bench"))
                    .env("SESSION_LOG_SERVER_BIN", release.join("session-log-server"))
                    .env("SESSION_LOG_PKG", root.join("client-wasm/pkg"))
                    .env("CHROME_BIN", &chrome)
                    .env("CHROMEDRIVER", &driver),
            )?;
        }
        Cmd::BenchHelp => {
            ensure_wasm_tools()?;
            let (chrome, driver) = ensure_chromium()?;
            build_package(&root)?;
            let release = build_release_bins("session-log-help-bench")?;
            run(
                "help channel benchmark",
                Command::new(release.join("session-log-help-bench"))
                    .env("SESSION_LOG_SERVER_BIN", release.join("session-log-server"))
                    .env("SESSION_LOG_PKG", root.join("client-wasm/pkg"))
                    .env("CHROME_BIN", &chrome)
                    .env("CHROMEDRIVER", &driver),
            )?;
        }
        Cmd::Test => {
            ensure_wasm_tools()?;
            let (chrome, driver) = ensure_chromium()?;
            let postgres = ensure_postgres()?;
            let nginx = ensure_nginx()?;
            let systemd_analyze = ensure_systemd_analyze()?;
            let schemathesis = ensure_schemathesis(&root)?;
            build_package(&root)?;
            run("build the server", cargo().args(["build", "-p", "session-log-server"]))?;
            let artifacts = root.join("test-artifacts");
            std::fs::create_dir_all(&artifacts)?;
            run(
                "native, integration and end-to-end tests",
                cargo()
                    .args(["test", "--workspace"])
                    .env("SESSION_LOG_SERVER_BIN", target_dir(&root).join("debug/session-log-server"))
                    .env("SESSION_LOG_WWW", root.join("www"))
                    .env("SESSION_LOG_PKG", root.join("client-wasm/pkg"))
                    .env("SESSION_LOG_ARTIFACTS", &artifacts)
                    .env("SESSION_LOG_TEST_POSTGRES", &postgres)
                    .env("NGINX_BIN", &nginx)
                    .env("SYSTEMD_ANALYZE", &systemd_analyze)
                    .env("SCHEMATHESIS_BIN", &schemathesis)
                    .env("CHROME_BIN", &chrome)
                    .env("CHROMEDRIVER", &driver),
            )?;
            run(
                "the redaction rules as the wasm client links them (without text-rules)",
                cargo().args(["test", "-p", "session-log-protocol", "--lib"]),
            )?;
            run(
                "wasm tests in headless Chromium",
                cargo()
                    .args(["test", "-p", "session-log-client", "--target", WASM_TARGET])
                    .current_dir(root.join("client-wasm"))
                    .env("CHROMEDRIVER", &driver)
                    .env("WASM_BINDGEN_NO_DEBUG", "1"),
            )?;
            println!("==> all tests passed");
        }
    }
    Ok(())
}

/// Builds the release server and the benchmark binary `bench`; returns the release folder.
fn build_release_bins(bench: &str) -> Result<PathBuf> {
    run(
        &format!("build the server and {bench} (release)"),
        cargo().args(["build", "--release", "-p", "session-log-server", "-p", "session-log-e2e"]).args([
            "--bin",
            "session-log-server",
            "--bin",
            bench,
        ]),
    )?;
    Ok(target_dir(&workspace_root()).join("release"))
}
