//! Debian's nginx in front of session-log servers, on loopback, with the project's deployment
//! recipe `deploy/nginx.conf`: as the load balancer of several servers ([`Nginx::start`]: the
//! recipe's proxy blocks, round robin, `X-Forwarded-For` appended, connecting from a loopback
//! address of its own so that the servers can trust it alone with `--trusted-proxy`), or the
//! whole recipe with TLS at the proxy ([`Nginx::start_recipe`]).
//!
//! Nothing is skipped: without the binary (`NGINX_BIN`, else `/usr/sbin/nginx`) this panics
//! saying how to get it (`cargo xtask test` installs Debian's `nginx`).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx; stopped on drop.
pub struct Nginx {
    /// `http://127.0.0.1:<port>` ([`Nginx::start`]) or `https://127.0.0.1:<port>`
    /// ([`Nginx::start_recipe`]).
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx on a free loopback port, balancing round robin over `upstreams`
    /// (`http://127.0.0.1:<port>` each) with the proxy blocks of `deploy/nginx.conf` as they are,
    /// connecting to the servers from `source` (a loopback address such as `127.0.0.2`). A server
    /// that refuses connections is skipped for 5 s (`max_fails=1 fail_timeout=5s`): nginx passes
    /// a request to the next server only when it could not be sent (a POST it sent is never sent
    /// twice; the client retries it).
    pub fn start(upstreams: &[&str], source: &str) -> Nginx {
        let bin = nginx_bin();
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let servers: String = upstreams
            .iter()
            .map(|url| format!("        server {} max_fails=1 fail_timeout=5s;\n", url.trim_start_matches("http://")))
            .collect();
        let config = format!(
            r#"{top}
http {{
    access_log off;
{temp}
    upstream session_log {{
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 2m;
{proxy}
    }}
}}
"#,
            top = top_level(dir.path()),
            temp = temp_paths(dir.path()),
            proxy = proxy_blocks(source),
        );
        let mut nginx = Nginx::run(&bin, dir, config, port);
        nginx.url = format!("http://127.0.0.1:{port}");
        nginx
    }

    /// Runs `bin` with `config` in `dir` and waits (at most 10 s) until it listens on `port`.
    fn run(bin: &std::path::Path, dir: tempfile::TempDir, config: String, port: u16) -> Nginx {
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).expect("write nginx.conf");
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let nginx = Nginx { url: String::new(), child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen within 10 s: {}", nginx.error_log());
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// Starts nginx with `deploy/nginx.conf` as it is, but for the lines marked CHANGE: the
    /// upstream `servers` (`http://127.0.0.1:<port>` each), loopback ports for its plain-HTTP
    /// and TLS listeners, and the certificate and key files. Returns the nginx, its HTTPS URL
    /// (`https://127.0.0.1:<port>`) and its plain-HTTP URL (which only redirects).
    pub fn start_recipe(upstreams: &[&str], cert: &std::path::Path, key: &std::path::Path) -> (Nginx, String, String) {
        let bin = nginx_bin();
        let dir = tempfile::tempdir().expect("temp dir");
        let free = || TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let (http_port, https_port) = (free(), free());
        let recipe = std::fs::read_to_string(recipe_path()).expect("read deploy/nginx.conf");
        let mut lines = Vec::new();
        let mut servers_done = false;
        for line in recipe.lines() {
            let trimmed = line.trim_start();
            let changed = if !line.contains("# CHANGE") {
                line.to_owned()
            } else if trimmed.starts_with("server ") && !servers_done {
                servers_done = true;
                upstreams
                    .iter()
                    .map(|u| format!("    server {} max_fails=1 fail_timeout=5s;", u.trim_start_matches("http://")))
                    .collect::<Vec<_>>()
                    .join("\n")
            } else if trimmed.starts_with("server_name ") {
                "    server_name 127.0.0.1;".to_owned()
            } else if trimmed.starts_with("ssl_certificate ") {
                format!("    ssl_certificate {};", cert.display())
            } else if trimmed.starts_with("ssl_certificate_key ") {
                format!("    ssl_certificate_key {};", key.display())
            } else {
                panic!("deploy/nginx.conf: a CHANGE line the test does not know: {line}");
            };
            let changed = match changed.trim() {
                "listen 80;" => format!("    listen 127.0.0.1:{http_port};"),
                "listen 443 ssl;" => format!("    listen 127.0.0.1:{https_port} ssl;"),
                _ => changed,
            };
            lines.push(changed);
        }
        let site = dir.path().join("session-log.conf");
        std::fs::write(&site, lines.join("\n")).expect("write the site");
        let config = format!(
            "{}\nhttp {{\n    access_log off;\n{}\n    include {};\n}}\n",
            top_level(dir.path()),
            temp_paths(dir.path()),
            site.display()
        );
        let mut nginx = Nginx::run(&bin, dir, config, https_port);
        nginx.url = format!("https://127.0.0.1:{https_port}");
        let http = format!("http://127.0.0.1:{http_port}");
        let https = nginx.url.clone();
        (nginx, https, http)
    }

    /// What nginx logged (warnings and errors).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// The nginx binary (`NGINX_BIN`, else Debian's); panics saying how to get it.
fn nginx_bin() -> PathBuf {
    let bin = std::env::var_os("NGINX_BIN").map(PathBuf::from).unwrap_or_else(|| "/usr/sbin/nginx".into());
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo xtask test` (it installs Debian's nginx) or set NGINX_BIN",
        bin.display()
    );
    bin
}

/// The deployment recipe, `deploy/nginx.conf`.
fn recipe_path() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx.conf")
}

/// The recipe's proxy blocks (between its `# session-log: proxy` and `# session-log: end of
/// proxy` lines), each connecting to the servers from `source`.
fn proxy_blocks(source: &str) -> String {
    let recipe = std::fs::read_to_string(recipe_path()).expect("read deploy/nginx.conf");
    let start = recipe.find("# session-log: proxy").expect("deploy/nginx.conf marks its proxy blocks");
    let end = recipe.find("# session-log: end of proxy").expect("deploy/nginx.conf marks the end of its proxy blocks");
    recipe[start..end]
        .lines()
        .flat_map(|line| {
            let bind = line.trim_start().starts_with("proxy_pass ").then(|| format!("        proxy_bind {source};"));
            std::iter::once(line.to_owned()).chain(bind)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top of a test nginx's configuration: in the foreground, one worker, files in `dir`.
fn top_level(dir: &std::path::Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 512; }}"
    )
}

/// nginx's temporary folders in `dir` (its defaults are system folders).
fn temp_paths(dir: &std::path::Path) -> String {
    let d = dir.display();
    ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
        .iter()
        .map(|name| format!("    {name}_temp_path {d}/{name};"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
