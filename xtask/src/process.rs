//! Running commands: the workspace's folders, `cargo`, and running a step that fails naming
//! itself.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs a command, echoing it; fails naming the step when it fails.
pub(crate) fn run(step: &str, command: &mut Command) -> Result<()> {
    println!("==> {step}");
    let status = command.status().with_context(|| format!("{step}: could not start {command:?}"))?;
    if !status.success() {
        bail!("{step} failed ({status})");
    }
    Ok(())
}

/// Runs `command` for `step` and returns its standard output. Errors: it cannot start, or fails.
pub(crate) fn output_of(step: &str, command: &mut Command) -> Result<String> {
    println!("==> {step}");
    let out = command.output().with_context(|| format!("{step}: could not start {command:?}"))?;
    if !out.status.success() {
        bail!("{step} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(crate) fn which(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
