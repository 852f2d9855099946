//! `cargo xtask build`: the npm package in `client-wasm/pkg` (the wasm and its glue, wasm-opt,
//! the hand-written entries, `package.json`) and its size report.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::process::{cargo, output_of, run, target_dir};
use crate::tools::ensure_node_tools;
use crate::WASM_TARGET;

/// The files a page downloads through the ESM entry (besides `snippets/`), in load order.
pub(crate) const ESM_FILES: &[&str] = &["session_log.js", "session_log_core.js", "session_log_core_bg.wasm"];

/// The wasm features rustc's `wasm32-unknown-unknown` target enables by default, for wasm-opt.
pub(crate) const WASM_FEATURES: &[&str] = &[
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
pub(crate) const WASM_OPT_PASSES: &[&str] = &["--flatten", "--rereloop", "-Oz", "-Oz"];

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
pub(crate) fn rename_boundary(glue: &str, mapping: &str) -> Result<String> {
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
pub(crate) fn contains_word(text: &str, word: &str) -> bool {
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
pub(crate) fn short_paths(root: &Path) -> Vec<String> {
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
pub(crate) const GLOBAL_FILE: &str = "session_log.global.js";

/// Builds the npm package into `client-wasm/pkg`: the wasm (size-optimised profile) and its
/// ESM glue (`--target web`, which bundlers also take) as `session_log_core*`, then the
/// hand-written entry `session_log.js`, the classic-script loader, the TypeScript declarations
/// and `package.json`. The wasm goes through wasm-opt ([`WASM_OPT_PASSES`], binaryen 132), which
/// also minifies the names it shares with the glue ([`rename_boundary`]), and the JavaScript
/// through esbuild's minifier, both from `xtask/js`.
/// Prints each file's gzipped size.
pub(crate) fn build_package(root: &Path) -> Result<()> {
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
    let js = root.join("client-wasm/js");
    // The entry's hand-over of calls made before the module is ready travels in the glue: a file
    // of its own cost about 190 B gzipped more (its own gzip stream, its own import).
    let handoff = std::fs::read_to_string(js.join(HANDOFF_SOURCE)).context("read the hand-over")?;
    std::fs::write(&glue, format!("{renamed}\n{handoff}"))?;
    for file in ["session_log.js", HELP_FILE, GLOBAL_FILE, "session_log.d.ts", "session_log.global.d.ts"] {
        std::fs::copy(js.join(file), pkg.join(file)).with_context(|| format!("copy {file}"))?;
    }
    write_inline_entry(&pkg)?;
    let mut scripts: Vec<PathBuf> = ["session_log.js", "session_log_core.js", HELP_FILE, GLOBAL_FILE, INLINE_FILE]
        .iter()
        .map(|f| pkg.join(f))
        .collect();
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
pub(crate) const INLINE_FILE: &str = "session_log.inline.js";
/// The JavaScript appended to the glue (`session_log_core.js`): `saveCalls` and `handedCalls`,
/// what the entry does with the calls made before the module is ready when its page is left.
pub(crate) const HANDOFF_SOURCE: &str = "handoff.js";
/// The help channel, loaded by the entry on the first `onHelp`, `onNotice` or `cancelHelp`
/// (not part of what a page that never calls them downloads).
pub(crate) const HELP_FILE: &str = "session_log_help.js";

/// Writes [`INLINE_FILE`]: the `.wasm` as base64, decoded and compiled with
/// `WebAssembly.compile` when the module loads, then every export of the entry.
pub(crate) fn write_inline_entry(pkg: &Path) -> Result<()> {
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
pub(crate) fn snippets(pkg: &Path) -> Result<Vec<PathBuf>> {
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
pub(crate) fn minify(tools: &Path, files: &[PathBuf]) -> Result<()> {
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

/// Each file's size and gzipped size, the ESM total, and what the classic loader adds.
pub(crate) fn size_report(pkg: &Path) -> Result<String> {
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
    let (raw, gz) = sizes(&pkg.join(HELP_FILE))?;
    lines.push(format!(
        "    {HELP_FILE} (loaded on the first onHelp, onNotice or cancelHelp) adds {raw} B, {gz} B gzipped"
    ));
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
/// Written as text, not through `serde_json::Value`: its maps sort their keys, and the order of
/// an export's conditions matters (`types` first, `default` last; publint checks it).
pub(crate) fn package_json() -> String {
    let source = include_str!("../../client-wasm/js/package.json");
    let placeholder = "\"version\": \"0.0.0\"";
    assert!(source.contains(placeholder), "client-wasm/js/package.json has {placeholder}");
    source.replacen(placeholder, &format!("\"version\": \"{}\"", env!("CARGO_PKG_VERSION")), 1)
}

/// A file's size and its size gzipped at level 9 (what a server sending it compressed sends).
pub(crate) fn sizes(path: &Path) -> Result<(usize, usize)> {
    use std::io::Write;
    let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&bytes)?;
    Ok((bytes.len(), encoder.finish()?.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::workspace_root;
    use crate::WASM_BINDGEN_VERSION;

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
