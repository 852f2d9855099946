//! Debian's nginx as the load balancer in front of several servers, on loopback: round robin,
//! `X-Forwarded-For` appended, connecting to the servers from a loopback address of its own so
//! that they can trust it alone (`--trusted-proxy`).
//!
//! Nothing is skipped: without the binary (`NGINX_BIN`, else `/usr/sbin/nginx`) this panics
//! saying how to get it (`cargo xtask test` installs Debian's `nginx`).

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nginx; stopped on drop.
pub struct Nginx {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx on a free loopback port, balancing round robin over `upstreams`
    /// (`http://127.0.0.1:<port>` each) and connecting to them from `source` (a loopback
    /// address such as `127.0.0.2`). A server that refuses connections is skipped for 5 s
    /// (`max_fails=1 fail_timeout=5s`): nginx passes a request to the next server only when it
    /// could not be sent (a POST it sent is never sent twice; the client retries it).
    pub fn start(upstreams: &[&str], source: &str) -> Nginx {
        let bin = std::env::var_os("NGINX_BIN").map(PathBuf::from).unwrap_or_else(|| "/usr/sbin/nginx".into());
        assert!(
            bin.is_file(),
            "{} is missing: run `cargo xtask test` (it installs Debian's nginx) or set NGINX_BIN",
            bin.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let servers: String = upstreams
            .iter()
            .map(|url| format!("        server {} max_fails=1 fail_timeout=5s;\n", url.trim_start_matches("http://")))
            .collect();
        let d = dir.path().display();
        let config = format!(
            r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 512; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream session_log {{
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 2m;
        location / {{
            proxy_pass http://session_log;
            proxy_bind {source};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"#
        );
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, config).expect("write nginx.conf");
        let child = Command::new(&bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let nginx = Nginx { url: format!("http://127.0.0.1:{port}"), child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen within 10 s: {}", nginx.error_log());
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// What nginx logged (warnings and errors).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
