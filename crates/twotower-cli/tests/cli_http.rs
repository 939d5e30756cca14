//! `twotower serve` as a real process on 127.0.0.1 (port 0), driven by a
//! real HTTP client: its answers equal `recommend` / `similar` on the same
//! run, every kind of bad request gets its status and a JSON error naming
//! the field — and the server keeps answering after each —, and SIGTERM
//! stops it cleanly.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod common;

use common::{bin, fixture, run_ok, train_config};

/// Trains the fixture's config (a model with a user feature `age`, item
/// features and the history feature) into `dir/run`.
fn trained_run(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["i.csv", "items.csv", "users.csv", "c.toml"] {
        std::fs::copy(fixture("run-v1").join("data").join(f), data.join(f)).unwrap();
    }
    let run = dir.join("run");
    train_config(&data.join("c.toml"), &run);
    run
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(run: &Path) -> Self {
        let mut child = bin()
            .args(["serve", "--addr", "127.0.0.1:0", "--threads", "2", "--run"])
            .arg(run)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let base = loop {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "server exited");
            if let Some(p) = line.find("http://") {
                break line[p..].split_whitespace().next().unwrap().to_string();
            }
        };
        // keep draining stderr so the server never blocks on a full pipe
        std::thread::spawn(move || for _ in err.lines() {});
        Self { child, base }
    }

    /// (status, JSON body)
    fn get(&self, path: &str) -> (u16, serde_json::Value) {
        answer(ureq::get(&format!("{}{path}", self.base)).call())
    }

    fn post(&self, path: &str, body: &str) -> (u16, serde_json::Value) {
        answer(
            ureq::post(&format!("{}{path}", self.base))
                .set("Content-Type", "application/json")
                .send_string(body),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, serde_json::Value) {
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

/// `(item, score to 4 decimals)` of a CLI TSV answer.
fn cli(args: &[&str], run: &Path) -> Vec<(String, String)> {
    let text = run_ok(args, run);
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split('\t').collect();
    let col = header.iter().position(|&h| h == "score").unwrap();
    lines
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1].to_string(), f[col].to_string())
        })
        .collect()
}

fn http_items(v: &serde_json::Value) -> Vec<(String, String)> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["item"].as_str().unwrap().to_string(),
                format!("{:.4}", h["score"].as_f64().unwrap()),
            )
        })
        .collect()
}

#[test]
fn the_server_answers_as_recommend_and_similar_do() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained_run(dir.path());
    let srv = Server::start(&run);

    assert_eq!(
        srv.get("/livez"),
        (200, serde_json::json!({"status": "ok"}))
    );
    let (s, ready) = srv.get("/readyz");
    assert_eq!(s, 200);
    assert_eq!(ready["items"], 7);
    assert_eq!(ready["users"], 4);
    assert_eq!(ready["index"], "exact");

    for user in ["1", "2", "3", "4"] {
        let (s, v) = srv.get(&format!("/recommend/{user}?k=3"));
        assert_eq!(s, 200, "{v}");
        assert_eq!(
            http_items(&v),
            cli(&["recommend", "--user", user, "-k", "3"], &run),
            "user {user}"
        );
        let (_, all) = srv.get(&format!("/recommend/{user}?k=7&include_seen=true"));
        assert_eq!(
            http_items(&all),
            cli(
                &["recommend", "--user", user, "-k", "7", "--include-seen"],
                &run
            )
        );
        assert_eq!(all["items"].as_array().unwrap().len(), 7);
    }
    // a new user from raw features and the items they interacted with
    let (s, v) = srv.post(
        "/recommend",
        r#"{"features": {"age": 40}, "items": ["1", "6"], "k": 4}"#,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        http_items(&v),
        cli(
            &[
                "recommend",
                "--user",
                "new",
                "--feature",
                "age=40",
                "--items",
                "1,6",
                "-k",
                "4"
            ],
            &run
        )
    );
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["item"] != "1" && h["item"] != "6"));
    // the label column comes with each item
    assert!(v["items"][0]["label"].is_string());

    // a batch equals its queries one by one
    let (s, b) = srv.post(
        "/recommend/batch",
        r#"{"users": ["1", "3"], "queries": [{"items": ["2"], "k": 2}], "k": 3}"#,
    );
    assert_eq!(s, 200, "{b}");
    let r = b["results"].as_array().unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(
        http_items(&r[0]),
        cli(&["recommend", "--items", "2", "-k", "2"], &run)
    );
    assert_eq!(
        http_items(&r[1]),
        cli(&["recommend", "--user", "1", "-k", "3"], &run)
    );
    assert_eq!(
        http_items(&r[2]),
        cli(&["recommend", "--user", "3", "-k", "3"], &run)
    );

    for item in ["1", "5", "7"] {
        let (s, v) = srv.get(&format!("/items/{item}/similar?k=3"));
        assert_eq!(s, 200);
        assert_eq!(
            http_items(&v),
            cli(&["similar", "--item", item, "-k", "3"], &run)
        );
    }
}

#[test]
fn every_bad_request_gets_a_json_error_naming_the_field_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained_run(dir.path());
    let srv = Server::start(&run);
    let good = |srv: &Server| {
        let (s, v) = srv.get("/recommend/1?k=2");
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["items"].as_array().unwrap().len(), 2);
    };
    let cases: Vec<(&str, &str, Option<&str>, u16, &str)> = vec![
        // (method, path, body, status, field)
        ("GET", "/recommend/nobody", None, 404, "user"),
        ("GET", "/items/nothing/similar", None, 404, "item"),
        ("GET", "/recommend/1?k=0", None, 400, "k"),
        ("GET", "/recommend/1?k=1000000", None, 400, "k"),
        ("GET", "/recommend/1?k=-3", None, 400, "k"),
        ("GET", "/recommend/1?k=ten", None, 400, "k"),
        ("GET", "/recommend/1?color=red", None, 400, "color"),
        ("POST", "/recommend", Some("{not json"), 400, "body"),
        ("POST", "/recommend", Some(r#"{"k": "many"}"#), 400, "k"),
        ("POST", "/recommend", Some(r#"{"k": -1}"#), 400, "k"),
        (
            "POST",
            "/recommend",
            Some(r#"{"colour": 1}"#),
            400,
            "colour",
        ),
        (
            "POST",
            "/recommend",
            Some(r#"{"features": {"age": null}}"#),
            400,
            "features.age",
        ),
        ("POST", "/recommend", Some(r#"{}"#), 400, "user"),
        ("DELETE", "/recommend/1", None, 405, "method"),
        ("PUT", "/recommend", Some("{}"), 405, "method"),
        (
            "POST",
            "/recommend",
            Some(r#"{"features": {"shoe_size": 42}}"#),
            400,
            "features.shoe_size",
        ),
        (
            "POST",
            "/recommend",
            Some(r#"{"features": {"age": "old"}}"#),
            400,
            "features.age",
        ),
        (
            "POST",
            "/recommend",
            Some(r#"{"user": "stranger"}"#),
            404,
            "user",
        ),
        (
            "POST",
            "/recommend",
            Some(r#"{"items": ["no", "such"]}"#),
            404,
            "items",
        ),
        (
            "POST",
            "/recommend",
            Some(r#"{"user": "1", "k": 0}"#),
            400,
            "k",
        ),
        ("POST", "/recommend/batch", Some(r#"{}"#), 400, "queries"),
        (
            "POST",
            "/recommend/batch",
            Some(r#"{"users": ["1", "ghost"]}"#),
            404,
            "users[1]",
        ),
        (
            "POST",
            "/recommend/batch",
            Some(r#"{"queries": [{"user": "1"}, {"features": {"age": "x"}}]}"#),
            400,
            "queries[1].features.age",
        ),
        ("GET", "/no/such/endpoint", None, 404, "path"),
    ];
    for (method, path, body, status, field) in cases {
        let (s, v) = match method {
            "GET" => srv.get(path),
            "POST" => srv.post(path, body.unwrap()),
            m => answer(
                ureq::request(m, &format!("{}{path}", srv.base))
                    .set("Content-Type", "application/json")
                    .send_string(body.unwrap_or("")),
            ),
        };
        assert_eq!(s, status, "{method} {path} {body:?}: {v}");
        assert!(v["error"].is_string(), "{method} {path}: {v}");
        if !field.is_empty() {
            assert_eq!(v["field"], field, "{method} {path} {body:?}: {v}");
        }
        good(&srv);
    }
    // too many queries in one batch is refused before any work
    let users = vec!["\"1\""; 10_001].join(",");
    let (s, v) = srv.post("/recommend/batch", &format!("{{\"users\": [{users}]}}"));
    assert_eq!(s, 400, "{v}");
    // a body over the limit (8 MiB) is refused once the limit is read
    // (a raw request: ureq would report the early answer as a broken pipe)
    {
        use std::io::{Read, Write};
        let addr = srv.base.trim_start_matches("http://");
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(30)))
            .unwrap();
        let n = 9 << 20;
        write!(
            tcp,
            "POST /recommend HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
             Content-Length: {n}\r\nConnection: close\r\n\r\n["
        )
        .unwrap();
        let _ = tcp.write_all(&vec![b' '; n - 1]);
        let mut head = [0u8; 12];
        tcp.read_exact(&mut head).unwrap();
        assert_eq!(&head, b"HTTP/1.1 413", "{}", String::from_utf8_lossy(&head));
    }
    good(&srv);
}

#[cfg(unix)]
#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let run = trained_run(dir.path());
    let mut srv = Server::start(&run);
    assert_eq!(srv.get("/livez").0, 200);
    let pid = srv.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = srv.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

/// Regression (fresh-clone trial): requests already accepted when SIGTERM
/// arrived were reset when more of them than worker threads were queued
/// (scoring held the async workers, so queued requests were never read);
/// scoring runs on the blocking pool now and each is answered.
#[cfg(unix)]
#[test]
fn sigterm_finishes_every_request_already_sent() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let run = trained_run(dir.path());
    let mut srv = Server::start(&run);
    let addr = srv.base.trim_start_matches("http://").to_string();
    let users = vec!["\"1\", \"2\", \"3\", \"4\""; 2_000].join(",");
    let body = format!("{{\"users\": [{users}], \"k\": 5}}");
    let (tx, rx) = std::sync::mpsc::channel();
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (addr, body, tx) = (addr.clone(), body.clone(), tx.clone());
            std::thread::spawn(move || {
                let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
                write!(
                    tcp,
                    "POST /recommend/batch HTTP/1.1\r\nHost: {addr}\r\nContent-Type: \
                     application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .unwrap();
                tx.send(()).unwrap();
                let mut answer = String::new();
                tcp.read_to_string(&mut answer).unwrap();
                answer
            })
        })
        .collect();
    for _ in 0..6 {
        rx.recv().unwrap();
    }
    // give the server time to accept them (a connection still in the
    // kernel's accept queue at the signal is refused: graceful shutdown
    // stops accepting first)
    std::thread::sleep(std::time::Duration::from_millis(500));
    let pid = srv.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    for c in clients {
        let answer = c.join().unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{}",
            &answer[..answer.len().min(200)]
        );
    }
    assert!(srv.child.wait().unwrap().success());
}
