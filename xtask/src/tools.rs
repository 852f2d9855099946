//! Installing what the commands need when it is missing: the wasm target and the pinned
//! wasm-bindgen CLI, Debian's Chromium and ChromeDriver, nginx, systemd-analyze, Schemathesis,
//! PostgreSQL (started when it is down) and the pinned npm tools.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::process::{cargo, output, run, target_dir, which};
use crate::{WASM_BINDGEN_VERSION, WASM_TARGET};

/// Installs the wasm target (rustup) and the pinned wasm-bindgen CLI (cargo install) if missing.
pub(crate) fn ensure_wasm_tools() -> Result<()> {
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
pub(crate) fn ensure_chromium() -> Result<(PathBuf, PathBuf)> {
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
pub(crate) fn ensure_nginx() -> Result<PathBuf> {
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
pub(crate) fn ensure_systemd_analyze() -> Result<PathBuf> {
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
pub(crate) const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// Installs schemathesis ([`SCHEMATHESIS`], from PyPI) into a virtual environment under the
/// target folder, once; returns its `st` CLI. Errors: no `python3`, or pip fails.
pub(crate) fn ensure_schemathesis(root: &Path) -> Result<PathBuf> {
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
pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
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
pub(crate) fn ensure_postgres() -> Result<String> {
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
pub(crate) fn postgres_ready(port: u16, wait: Duration) -> bool {
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

/// Installs the pinned npm tools of `xtask/js` (binaryen's wasm-opt, esbuild, typescript, and
/// axe-core for the dashboard's accessibility test) with `npm ci` when they are missing; returns
/// their `node_modules/.bin`.
pub(crate) fn ensure_node_tools(root: &Path) -> Result<PathBuf> {
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
