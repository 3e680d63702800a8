//! The HTTP API in one run, on loopback:
//! - requests per second of `GET /v1/sessions` with a valid token (keep-alive connections,
//!   several in parallel; every request verifies the JWT and reads the store),
//! - session output through a WebSocket attach against an SSH attach (OpenSSH `ssh -tt`) of
//!   the same command, both timed from the first byte to the end.
//!
//! Run with `benches/api.sh`.

use cordon_test_support::host::Host;
use cordon_test_support::http::{exchange, request};
use cordon_test_support::ssh;
use std::io::{BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CORDON: &str = env!("CARGO_BIN_EXE_cordon");

const OUTPUT: usize = 256 << 20;

fn main() {
    let mut h = Host::start_with(CORDON, "[api]\nrate_limit = 100000000");
    let key = h.user("bench", "admin");
    let out = h.cordon(&["token", "issue", "bench"]);
    let token = serde_json::from_str::<serde_json::Value>(&out.stdout).expect("token json")
        ["access_token"]
        .as_str()
        .expect("token")
        .to_string();
    for _ in 0..3 {
        request(
            h.api,
            &token,
            "POST",
            "/v1/sessions",
            r#"{"command":["sleep","600"]}"#,
        );
    }

    println!("HTTP API benchmarks, loopback\n");
    for conns in [1, 4] {
        let rps = requests_per_second(h.api, &token, conns, Duration::from_secs(5));
        println!(
            "GET /v1/sessions (3 sessions), {conns} keep-alive connection(s): {rps:.0} requests/s"
        );
    }

    let ws = websocket_attach(h.api, &token);
    let ssh = ssh_attach(h.port, &key);
    let mib = OUTPUT as f64 / 1048576.0;
    println!("\nattach throughput, {mib:.0} MiB of session output, first byte to end:");
    println!(
        "  SSH attach (ssh -tt ... new)     {:>7.1} MiB/s ({:.1} MiB delivered)",
        mib / ssh.0,
        ssh.1 as f64 / 1048576.0
    );
    println!(
        "  WebSocket attach (/v1/.../attach) {:>7.1} MiB/s ({:.1} MiB delivered)",
        mib / ws.0,
        ws.1 as f64 / 1048576.0
    );
    println!("  WebSocket / SSH: {:.2}", ssh.0 / ws.0);
    println!("(a viewer more than 1 MiB behind is resynced from the screen: fewer bytes may arrive, by design)");

    // SIGTERM ends every session.
    h.stop();
}

/// Requests per second of `GET /v1/sessions` on `conns` keep-alive connections for `time`.
fn requests_per_second(port: u16, token: &str, conns: usize, time: Duration) -> f64 {
    let start = Instant::now();
    let workers: Vec<_> = (0..conns)
        .map(|_| {
            let token = token.to_string();
            std::thread::spawn(move || {
                let mut r = BufReader::new(
                    std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect"),
                );
                r.get_ref().set_nodelay(true).ok();
                let mut n = 0u64;
                while start.elapsed() < time {
                    let (status, _) = exchange(&mut r, &token, "GET", "/v1/sessions", "");
                    assert_eq!(status, 200);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let total: u64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    total as f64 / start.elapsed().as_secs_f64()
}

/// Seconds from the first byte to the end, and the bytes delivered.
fn websocket_attach(port: u16, token: &str) -> (f64, usize) {
    let body = format!(r#"{{"command":["sh","-c","sleep 1; head -c {OUTPUT} /dev/zero"]}}"#);
    let created: serde_json::Value =
        serde_json::from_slice(&request(port, token, "POST", "/v1/sessions", &body)).expect("json");
    let id = created["id"].as_u64().expect("id");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        use futures::StreamExt;
        use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
        let mut req = format!("ws://127.0.0.1:{port}/v1/sessions/{id}/attach")
            .into_client_request()
            .expect("request");
        req.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("attach");
        // The first frame is the (empty) screen; output starts a second later.
        let mut first: Option<Instant> = None;
        let mut total = 0usize;
        while let Some(Ok(m)) = ws.next().await {
            match m {
                Message::Binary(b) if b.len() > 64 || first.is_some() => {
                    first.get_or_insert_with(Instant::now);
                    total += b.len();
                }
                Message::Text(_) => break,
                _ => {}
            }
        }
        (
            first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(f64::NAN),
            total,
        )
    })
}

/// Seconds from the first byte to the end, and the bytes delivered.
fn ssh_attach(port: u16, key: &Path) -> (f64, usize) {
    let argv = ssh::argv(port, key, "bench");
    let mut child = Command::new(&argv[0])
        .arg("-tt")
        .args(&argv[1..])
        .args([
            "new",
            "--",
            "sh",
            "-c",
            &format!("'sleep 1; head -c {OUTPUT} /dev/zero'"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("ssh");
    let mut out = child.stdout.take().expect("stdout");
    let mut buf = vec![0u8; 256 << 10];
    let mut first: Option<Instant> = None;
    let mut total = 0usize;
    while let Ok(n) = out.read(&mut buf) {
        if n == 0 {
            break;
        }
        if n > 64 || first.is_some() {
            first.get_or_insert_with(Instant::now);
            total += n;
        }
    }
    let _ = child.wait();
    (
        first.map(|f| f.elapsed().as_secs_f64()).unwrap_or(f64::NAN),
        total,
    )
}
