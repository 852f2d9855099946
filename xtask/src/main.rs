//! Build tooling: `cargo xtask demo`, `cargo xtask test`, `cargo xtask build`.
//!
//! Each command installs what it needs when it is missing (the wasm target, the pinned
//! wasm-bindgen CLI, and for tests Debian's Chromium and ChromeDriver), so the README's two
//! commands work on a fresh machine. Nothing is skipped silently: a missing tool that cannot be
//! installed stops the command with a message saying what to install.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

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

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a command, echoing it; fails naming the step when it fails.
fn run(step: &str, command: &mut Command) -> Result<()> {
    println!("==> {step}");
    let status = command.status().with_context(|| format!("{step}: could not start {command:?}"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

/// Runs `command` for `step` and returns its standard output. Errors: it cannot start, or fails.
fn output_of(step: &str, command: &mut Command) -> Result<String> {
    println!("==> {step}");
    let out = command.output().with_context(|| format!("{step}: could not start {command:?}"))?;
    if !out.status.success() {
        bail!("{step} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs the wasm target (rustup) and the pinned wasm-bindgen CLI (cargo install) if missing.
fn ensure_wasm_tools() -> Result<()> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if !installed.lines().any(|l| l.trim() == WASM_TARGET) {
        run("install the wasm target", Command::new("rustup").args(["target", "add", WASM_TARGET]))?;
    }
    let version = output(Command::new("wasm-bindgen").arg("--version")).unwrap_or_default();
    if version.split_whitespace().nth(1) != Some(WASM_BINDGEN_VERSION) {
        run(
            &format!("install wasm-bindgen-cli {WASM_BINDGEN_VERSION} (about 3 minutes)"),
            cargo().args(["install", "wasm-bindgen-cli", "--version", WASM_BINDGEN_VERSION, "--locked", "--force"]),
        )?;
    }
    Ok(())
}

/// Finds Chromium and ChromeDriver (`CHROME_BIN`, `CHROMEDRIVER`, else Debian's paths) and
/// installs Debian's packages when they are missing and apt-get can be used.
fn ensure_chromium() -> Result<(PathBuf, PathBuf)> {
    let chrome = std::env::var_os("CHROME_BIN").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromium".into());
    let driver = std::env::var_os("CHROMEDRIVER").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/chromedriver".into());
    if chrome.is_file() && driver.is_file() {
        return Ok((chrome, driver));
    }
    let installed = apt_install(&["chromium", "chromium-driver"]);
    if let Err(error) = installed {
        bail!(
            "the browser tests need Chromium and ChromeDriver, and installing them failed ({error}). \
             Install Debian's `chromium` and `chromium-driver`, or set CHROME_BIN and CHROMEDRIVER."
        );
    }
    if !(chrome.is_file() && driver.is_file()) {
        bail!("after installing, {} or {} is still missing", chrome.display(), driver.display());
    }
    Ok((chrome, driver))
}

/// Finds nginx (`NGINX_BIN`, else Debian's `/usr/sbin/nginx`), the load balancer of the
/// several-servers tests, and installs Debian's `nginx` when it is missing. The tests start their
/// own nginx processes on loopback (the package's own service is not used).
fn ensure_nginx() -> Result<PathBuf> {
    let nginx = std::env::var_os("NGINX_BIN").map(PathBuf::from).unwrap_or_else(|| "/usr/sbin/nginx".into());
    if nginx.is_file() {
        return Ok(nginx);
    }
    if let Err(error) = apt_install(&["nginx"]) {
        bail!("the load-balancer tests need nginx, and installing it failed ({error}). Install Debian's `nginx`, or set NGINX_BIN.");
    }
    if !nginx.is_file() {
        bail!("after installing nginx, {} is still missing", nginx.display());
    }
    Ok(nginx)
}

/// Debian's `systemd-analyze` (package `systemd`), which checks `deploy/session-log.service`;
/// installed when missing. Returns its path.
fn ensure_systemd_analyze() -> Result<PathBuf> {
    let tool =
        std::env::var_os("SYSTEMD_ANALYZE").map(PathBuf::from).unwrap_or_else(|| "/usr/bin/systemd-analyze".into());
    if tool.is_file() {
        return Ok(tool);
    }
    if let Err(error) = apt_install(&["systemd"]) {
        bail!("the deployment test needs systemd-analyze, and installing Debian's `systemd` failed ({error}); or set SYSTEMD_ANALYZE.");
    }
    if !tool.is_file() {
        bail!("after installing systemd, {} is still missing", tool.display());
    }
    Ok(tool)
}

/// The pinned schemathesis release the OpenAPI test runs.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Installs schemathesis ([`SCHEMATHESIS`], from PyPI) into a virtual environment under the
/// target folder, once; returns its `st` CLI. Errors: no `python3`, or pip fails.
fn ensure_schemathesis(root: &Path) -> Result<PathBuf> {
    let venv = target_dir(root).join("schemathesis-venv");
    let st = venv.join("bin/st");
    let pinned = venv.join(".pinned");
    if st.is_file() && std::fs::read_to_string(&pinned).is_ok_and(|p| p == SCHEMATHESIS) {
        return Ok(st);
    }
    if !venv.join("bin/pip").is_file() {
        let made = run("create the schemathesis virtualenv", Command::new("python3").args(["-m", "venv"]).arg(&venv));
        if made.is_err() {
            apt_install(&["python3-venv"])?;
            run("create the schemathesis virtualenv", Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        }
    }
    run(&format!("install {SCHEMATHESIS}"), Command::new(venv.join("bin/pip")).args(["install", "-q", SCHEMATHESIS]))?;
    std::fs::write(&pinned, SCHEMATHESIS)?;
    Ok(st)
}

/// Installs Debian packages with apt-get (through `sudo -n` when not root).
fn apt_install(packages: &[&str]) -> Result<()> {
    let root = output(Command::new("id").arg("-u")).is_some_and(|uid| uid.trim() == "0");
    let sudo: &[&str] = if root { &[] } else { &["sudo", "-n"] };
    let apt = |args: &[&str]| {
        let mut full: Vec<&str> = sudo.to_vec();
        full.push("apt-get");
        full.extend_from_slice(args);
        let mut command = Command::new(full[0]);
        command.args(&full[1..]).env("DEBIAN_FRONTEND", "noninteractive");
        command
    };
    run("apt-get update", &mut apt(&["update"]))?;
    let mut install = vec!["install", "-y"];
    install.extend_from_slice(packages);
    run(&format!("install {}", packages.join(" ")), &mut apt(&install))
}

/// The PostgreSQL server the tests create their databases on, as a maintenance-database URL:
/// `SESSION_LOG_TEST_POSTGRES` when set; else the machine's server on 127.0.0.1:5432 (started
/// with `pg_ctlcluster` when it is installed but down); else Debian's `postgresql`, installed,
/// with a throwaway cluster of ours on port 54329 (trust authentication on loopback). Errors:
/// none of these gives a server that answers within 30 s.
fn ensure_postgres() -> Result<String> {
    if let Ok(url) = std::env::var("SESSION_LOG_TEST_POSTGRES") {
        return Ok(url);
    }
    const DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";
    if postgres_ready(5432, Duration::from_secs(2)) {
        return Ok(DEFAULT.into());
    }
    let clusters = || std::fs::read_dir("/etc/postgresql").ok().into_iter().flatten().flatten();
    for version in clusters() {
        let version = version.file_name().to_string_lossy().into_owned();
        if Path::new(&format!("/etc/postgresql/{version}/main")).is_dir() {
            let _ = run(
                "start PostgreSQL",
                Command::new("pg_ctlcluster").args(["--skip-systemctl-redirect", &version, "main", "start"]),
            );
            if postgres_ready(5432, Duration::from_secs(30)) {
                return Ok(DEFAULT.into());
            }
        }
    }
    const PORT: u16 = 54329;
    if !postgres_ready(PORT, Duration::from_secs(1)) {
        if clusters().next().is_none() {
            apt_install(&["postgresql"])
                .map_err(|e| anyhow::anyhow!("the storage tests need PostgreSQL, and installing it failed: {e}"))?;
        }
        let version = clusters()
            .map(|v| v.file_name().to_string_lossy().into_owned())
            .max()
            .context("no PostgreSQL version under /etc/postgresql after installing")?;
        let port = PORT.to_string();
        if !Path::new(&format!("/etc/postgresql/{version}/session-log-test")).is_dir() {
            run(
                "create a throwaway PostgreSQL cluster",
                Command::new("pg_createcluster").args([
                    &version,
                    "session-log-test",
                    "-p",
                    &port,
                    "--",
                    "--auth=trust",
                ]),
            )?;
        }
        let _ = run(
            "start the throwaway PostgreSQL cluster",
            Command::new("pg_ctlcluster").args(["--skip-systemctl-redirect", &version, "session-log-test", "start"]),
        );
    }
    if !postgres_ready(PORT, Duration::from_secs(30)) {
        bail!("PostgreSQL does not answer on 127.0.0.1:{PORT}; set SESSION_LOG_TEST_POSTGRES to a server's URL");
    }
    Ok(format!("postgres://postgres@127.0.0.1:{PORT}/postgres"))
}

/// Whether a PostgreSQL server accepts connections on 127.0.0.1:`port` within `wait`
/// (`pg_isready` when installed, else a TCP connection).
fn postgres_ready(port: u16, wait: Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let ready = match output(Command::new("pg_isready").args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])) {
            Some(_) => true,
            None if which("pg_isready") => false,
            None => {
                std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).is_ok()
            }
        };
        if ready || std::time::Instant::now() >= deadline {
            return ready;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The files a page downloads through the ESM entry (besides `snippets/`), in load order.
const ESM_FILES: &[&str] = &["session_log.js", "session_log_core.js", "session_log_core_bg.wasm"];
/// The wasm features rustc's `wasm32-unknown-unknown` target enables by default, for wasm-opt.
const WASM_FEATURES: &[&str] = &[
    "--enable-bulk-memory",
    "--enable-nontrapping-float-to-int",
    "--enable-sign-ext",
    "--enable-mutable-globals",
    "--enable-reference-types",
    "--enable-multivalue",
];
/// wasm-opt's optimisation passes for the client module, measured on it (gzipped wasm):
/// `-Oz` alone 50,873 B; `--flatten --rereloop -Oz -Oz` 50,095 B (binaryen's flattening, then
/// its relooper, then size passes twice). `--converge`, `--gufa` and `--monomorphize` each took
/// under 0.2 KB off.
const WASM_OPT_PASSES: &[&str] = &["--flatten", "--rereloop", "-Oz", "-Oz"];

/// Renames the wasm module's imports and exports in its wasm-bindgen glue (`glue`, not yet
/// minified) to the short names binaryen's `--minify-imports-and-exports-and-modules` gave them.
/// `mapping` is that pass's report on standard output: `{"imports": [[module, name, short], …],
/// "exports": [[name, short], …]}`. wasm-bindgen names each import `__wbg_<name>_<16 hex
/// digits>` and every import sits in one module (`./session_log_core_bg.js`), so the long names
/// cost about 3 KB gzipped across the two files (measured: wasm 50,930 -> 48,867 B).
///
/// In the glue, an import is a key of the import object, the module a quoted key of the object
/// given to `WebAssembly.instantiate`, and an export is read as `wasm.<name>`. Errors: the
/// report is not that JSON, several modules are imported, or a long name is left in the glue
/// (a glue whose shape changed with a new wasm-bindgen: the build stops rather than ship a module
/// that cannot link).
fn rename_boundary(glue: &str, mapping: &str) -> Result<String> {
    let json_start = mapping.find('{').context("wasm-opt printed no import/export mapping")?;
    let report: serde_json::Value =
        serde_json::from_str(&mapping[json_start..]).context("wasm-opt's import/export mapping is not JSON")?;
    let imports: Vec<(String, String, String)> = serde_json::from_value(report["imports"].clone())
        .context("wasm-opt's imports are not [module, name, short] rows")?;
    let exports: Vec<(String, String)> =
        serde_json::from_value(report["exports"].clone()).context("wasm-opt's exports are not [name, short] rows")?;
    let modules: std::collections::BTreeSet<&str> = imports.iter().map(|(module, _, _)| module.as_str()).collect();
    let [module] = modules.into_iter().collect::<Vec<_>>()[..] else {
        bail!("expected the imports of one module from wasm-opt");
    };
    let imports_to: std::collections::HashMap<&str, &str> =
        imports.iter().map(|(_, name, short)| (name.as_str(), short.as_str())).collect();
    let exports_to: std::collections::HashMap<&str, &str> =
        exports.iter().map(|(name, short)| (name.as_str(), short.as_str())).collect();
    // The glue gives the import object to `WebAssembly.instantiate` under the module's quoted
    // name; binaryen names the one module "a".
    let quoted_module = format!("\"{module}\"");
    if glue.matches(&quoted_module).count() != 1 {
        bail!("expected the import module {quoted_module} once in the glue");
    }
    let glue = glue.replacen(&quoted_module, "\"a\"", 1);
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
    let mut out = String::with_capacity(glue.len());
    let mut rest = glue.as_str();
    while let Some(start) = rest.find(ident) {
        let (before, word_on) = rest.split_at(start);
        out.push_str(before);
        let end = word_on.find(|c: char| !ident(c)).unwrap_or(word_on.len());
        let word = &word_on[..end];
        let short = if out.ends_with("wasm.") {
            exports_to.get(word)
        } else if out.ends_with('.') {
            None
        } else {
            imports_to.get(word)
        };
        out.push_str(short.copied().unwrap_or(word));
        rest = &word_on[end..];
    }
    out.push_str(rest);
    if let Some(name) = imports_to.keys().find(|name| contains_word(&out, name)) {
        bail!("the glue still names the import {name} after renaming");
    }
    if let Some(name) = exports_to.keys().find(|name| contains_word(&out, &format!("wasm.{name}"))) {
        bail!("the glue still reads the export {name} after renaming");
    }
    Ok(out)
}

/// Whether `text` has `word` as a whole identifier.
fn contains_word(text: &str, word: &str) -> bool {
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'$';
    text.match_indices(word).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| text.as_bytes()[i]);
        let after = text.as_bytes().get(at + word.len()).copied();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}

/// `--remap-path-prefix` flags that shorten the source paths the wasm keeps for panic messages
/// (`client-wasm/src/machine.rs` becomes `machine.rs`, a crate from the registry loses the
/// registry's folder): bytes every student downloads, and a machine's paths stay out of the
/// package.
fn short_paths(root: &Path) -> Vec<String> {
    let mut flags = vec![
        "--remap-path-prefix=client-wasm/src/=".to_owned(),
        "--remap-path-prefix=protocol/src/=protocol/".to_owned(),
        format!("--remap-path-prefix={}/=", root.display()),
    ];
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(registry) = home.map(|h| h.join("registry/src")) {
        for index in std::fs::read_dir(&registry).into_iter().flatten().flatten() {
            flags.push(format!("--remap-path-prefix={}/=", index.path().display()));
        }
    }
    flags
}

/// The classic-script loader, on top of the ESM files.
const GLOBAL_FILE: &str = "session_log.global.js";

/// Builds the npm package into `client-wasm/pkg`: the wasm (size-optimised profile) and its
/// ESM glue (`--target web`, which bundlers also take) as `session_log_core*`, then the
/// hand-written entry `session_log.js`, the classic-script loader, the TypeScript declarations
/// and `package.json`. The wasm goes through wasm-opt ([`WASM_OPT_PASSES`], binaryen 132), which
/// also minifies the names it shares with the glue ([`rename_boundary`]), and the JavaScript
/// through esbuild's minifier, both from `xtask/js`.
/// Prints each file's gzipped size.
fn build_package(root: &Path) -> Result<()> {
    run(
        "build the wasm client",
        cargo()
            .args(["build", "-p", "session-log-client", "--target", WASM_TARGET, "--profile", "wasm-release"])
            .env("CARGO_ENCODED_RUSTFLAGS", short_paths(root).join("\x1f")),
    )?;
    let wasm = target_dir(root).join(WASM_TARGET).join("wasm-release/session_log_client.wasm");
    let pkg = root.join("client-wasm/pkg");
    if pkg.exists() {
        std::fs::remove_dir_all(&pkg)?;
    }
    run(
        "generate the JavaScript glue",
        Command::new("wasm-bindgen")
            .args(["--target", "web", "--no-typescript", "--out-name", "session_log_core", "--out-dir"])
            .arg(&pkg)
            .arg(&wasm),
    )?;
    let tools = ensure_node_tools(root)?;
    let module = pkg.join("session_log_core_bg.wasm");
    let mapping = output_of(
        "shrink the wasm (wasm-opt -Oz) and minify the names it shares with its glue",
        Command::new(tools.join("wasm-opt"))
            .arg(&module)
            .args(WASM_OPT_PASSES)
            .args(["--minify-imports-and-exports-and-modules", "--strip-debug", "--strip-producers", "-o"])
            .arg(&module)
            // The features rustc's wasm32 target emits by default.
            .args(WASM_FEATURES),
    )?;
    let glue = pkg.join("session_log_core.js");
    let renamed = rename_boundary(&std::fs::read_to_string(&glue)?, &mapping)?;
    std::fs::write(&glue, renamed)?;
    let js = root.join("client-wasm/js");
    for file in ["session_log.js", GLOBAL_FILE, "session_log.d.ts"] {
        std::fs::copy(js.join(file), pkg.join(file)).with_context(|| format!("copy {file}"))?;
    }
    write_inline_entry(&pkg)?;
    let mut scripts: Vec<PathBuf> =
        ["session_log.js", "session_log_core.js", GLOBAL_FILE, INLINE_FILE].iter().map(|f| pkg.join(f)).collect();
    scripts.extend(snippets(&pkg)?);
    minify(&tools, &scripts)?;
    std::fs::write(pkg.join("package.json"), package_json())?;
    std::fs::copy(root.join("client-wasm/README.md"), pkg.join("README.md"))?;
    let report = size_report(&pkg)?;
    println!("==> npm package in {}:\n{report}", pkg.display());
    Ok(())
}

/// The entry with the WebAssembly module inside (`session-log/inline`), for bundlers that do not
/// copy an asset named by `new URL(…, import.meta.url)` (esbuild, Rollup).
const INLINE_FILE: &str = "session_log.inline.js";

/// Writes [`INLINE_FILE`]: the `.wasm` as base64, decoded and compiled with
/// `WebAssembly.compile` when the module loads, then every export of the entry.
fn write_inline_entry(pkg: &Path) -> Result<()> {
    use base64::Engine;
    let wasm = std::fs::read(pkg.join("session_log_core_bg.wasm")).context("read the wasm")?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(wasm);
    let source = format!(
        r#"// session-log with its WebAssembly module inside: for bundlers that do not copy the `.wasm`
// (esbuild, Rollup). The same exports as session_log.js.
import {{ __setSource }} from "./session_log.js";
const WASM = "{encoded}";
__setSource(() => WebAssembly.compile(Uint8Array.from(atob(WASM), (c) => c.charCodeAt(0))));
export * from "./session_log.js";
export {{ default }} from "./session_log.js";
"#
    );
    std::fs::write(pkg.join(INLINE_FILE), source).context("write the inline entry")?;
    Ok(())
}

/// The wasm-bindgen snippet files (inline JavaScript of the crate) under `pkg/snippets`.
fn snippets(pkg: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut dirs = vec![pkg.join("snippets")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "js") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Minifies JavaScript files in place with esbuild (whitespace, syntax and local names; exports
/// and `import.meta.url` patterns are kept, so bundlers still find the `.wasm`).
fn minify(tools: &Path, files: &[PathBuf]) -> Result<()> {
    let esbuild = tools.join("esbuild");
    for file in files {
        run(
            &format!("minify {}", file.file_name().and_then(|n| n.to_str()).unwrap_or("")),
            Command::new(&esbuild)
                .arg(file)
                .args(["--minify", "--allow-overwrite", "--log-level=warning"])
                .arg(format!("--outfile={}", file.display())),
        )?;
    }
    Ok(())
}

/// Installs the pinned npm tools of `xtask/js` (binaryen's wasm-opt, esbuild, typescript, and
/// axe-core for the dashboard's accessibility test) with `npm ci` when they are missing; returns
/// their `node_modules/.bin`.
pub fn ensure_node_tools(root: &Path) -> Result<PathBuf> {
    let dir = root.join("xtask/js");
    let bin = dir.join("node_modules/.bin");
    let axe = dir.join("node_modules/axe-core/axe.min.js");
    if ["esbuild", "tsc", "wasm-opt"].iter().any(|tool| !bin.join(tool).exists()) || !axe.exists() {
        run(
            "install the npm build and test tools (npm ci)",
            Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir),
        )?;
    }
    Ok(bin)
}

/// Each file's size and gzipped size, the ESM total, and what the classic loader adds.
fn size_report(pkg: &Path) -> Result<String> {
    let mut lines = Vec::new();
    let mut total = 0;
    let mut files: Vec<PathBuf> = ESM_FILES.iter().map(|f| pkg.join(f)).collect();
    files.extend(snippets(pkg)?);
    for file in &files {
        let (raw, gz) = sizes(file)?;
        total += gz;
        let name = file.strip_prefix(pkg).unwrap_or(file).display().to_string();
        lines.push(format!("    {name:<60} {raw:>7} B  {gz:>6} B gzipped"));
    }
    lines.push(format!("    everything a page downloads through the ESM entry: {total} B gzipped (the budget test: tests/tests/package.rs)"));
    let (raw, gz) = sizes(&pkg.join(GLOBAL_FILE))?;
    lines.push(format!("    {GLOBAL_FILE} adds {raw} B, {gz} B gzipped"));
    // Through the inline entry a page downloads it instead of the `.wasm`, and everything else.
    let (raw, gz) = sizes(&pkg.join(INLINE_FILE))?;
    let (_, wasm_gz) = sizes(&pkg.join("session_log_core_bg.wasm"))?;
    let inline_total = total - wasm_gz + gz;
    lines.push(format!(
        "    {INLINE_FILE} (the .wasm as base64, for esbuild and Rollup): {raw} B, {gz} B gzipped; through it a page downloads {inline_total} B gzipped, {} B more than through the ESM entry",
        inline_total - total
    ));
    Ok(lines.join("\n"))
}

/// The package's `package.json`: `client-wasm/js/package.json` (the entry points, the files,
/// `sideEffects`) with this build's version.
fn package_json() -> String {
    let mut json: serde_json::Value = serde_json::from_str(include_str!("../../client-wasm/js/package.json"))
        .expect("client-wasm/js/package.json is JSON");
    json["version"] = env!("CARGO_PKG_VERSION").into();
    serde_json::to_string_pretty(&json).expect("JSON serializes") + "\n"
}

/// A file's size and its size gzipped at level 9 (what a server sending it compressed sends).
fn sizes(path: &Path) -> Result<(usize, usize)> {
    use std::io::Write;
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&bytes)?;
    Ok((bytes.len(), encoder.finish()?.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The CLI version xtask installs is the wasm-bindgen crate version in Cargo.lock.
    #[test]
    fn wasm_bindgen_cli_matches_the_locked_crate() {
        let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock")).unwrap();
        let entry = lock.split("[[package]]").find(|p| p.contains("name = \"wasm-bindgen\"\n")).unwrap();
        assert!(entry.contains(&format!("version = \"{WASM_BINDGEN_VERSION}\"")), "{entry}");
    }

    // The generated package.json is valid JSON naming the package and its ESM entry.
    #[test]
    fn package_json_names_the_entry_points() {
        let json: serde_json::Value = serde_json::from_str(&package_json()).unwrap();
        assert_eq!(json["name"], "session-log");
        assert_eq!(json["type"], "module");
        assert_eq!(json["module"], "session_log.js");
        assert_eq!(json["types"], "session_log.d.ts");
        assert_eq!(json["exports"]["."]["default"], "./session_log.js");
        assert_eq!(json["exports"]["./inline"]["default"], "./session_log.inline.js");
        assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    }

    const MAPPING: &str = r#"{
 "imports": [
  ["./m_bg.js", "__wbg_now_0123456789abcdef", "a"],
  ["./m_bg.js", "__wbindgen_throw_fedcba9876543210", "b"]
 ],
"exports": [
  ["memory", "c"],
  ["log", "d"]
 ]
}"#;

    // The glue's import keys, its module key and its `wasm.<export>` reads take the short names;
    // other words that look alike are left alone.
    #[test]
    fn the_glue_takes_the_short_names() {
        let glue = r#"const import0 = { __wbg_now_0123456789abcdef: function() { return Date.now(); },
 __wbindgen_throw_fedcba9876543210: function(p, l) { throw new Error(s(p, l)); } };
const imports = { "./m_bg.js": import0 };
export function log(x) { wasm.log(x); return x.log; }
const view = new Uint8Array(wasm.memory.buffer); const url = new URL('m_bg.wasm', import.meta.url);"#;
        let renamed = rename_boundary(glue, MAPPING).unwrap();
        assert!(renamed.contains("{ a: function() {"), "{renamed}");
        assert!(renamed.contains(" b: function(p, l)"), "{renamed}");
        assert!(renamed.contains(r#"{ "a": import0 }"#), "{renamed}");
        assert!(renamed.contains("export function log(x) { wasm.d(x); return x.log; }"), "{renamed}");
        assert!(renamed.contains("wasm.c.buffer"), "{renamed}");
        assert!(renamed.contains("new URL('m_bg.wasm'"), "{renamed}");
    }

    // A glue whose shape the renaming does not know (here: an import read through another
    // object) stops the build instead of shipping a module that cannot link.
    #[test]
    fn a_long_name_left_in_the_glue_stops_the_build() {
        let glue = r#"const imports = { "./m_bg.js": lib }; lib.__wbg_now_0123456789abcdef = Date.now;"#;
        let error = rename_boundary(glue, MAPPING).unwrap_err().to_string();
        assert!(error.contains("__wbg_now_0123456789abcdef"), "{error}");
    }
}
