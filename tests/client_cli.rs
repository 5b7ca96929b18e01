//! `eventhub events` and `eventhub publish` against a real hub: both
//! commands run as child processes of the built binary, the hub as
//! `eventhub serve` (the shared harness, `tests/common`).
//!
//! A client's stdout and stderr are read line by line on threads of their
//! own; every wait is bounded by the harness's timeout. Before publishing,
//! a test waits for the tail's own stderr line saying it is connected
//! (the hub's confirmation, or "following /events/ws..."), so nothing
//! depends on timing; "did not print X" is shown by a later marker that
//! had to come first, or by the whole output after the tail has exited.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::api::{config, config_with, publish, ADMIN_TOKEN, PRODUCER_TOKEN, VIEWER_KEY};
use common::{Server, TIMEOUT};
use serde_json::Value;

/// `eventhub SUBCOMMAND --url HUB ARGS`, with no token from the test's
/// own environment.
fn eventhub(server: &Server, args: &[&str]) -> Command {
    let (sub, rest) = args.split_first().expect("a subcommand");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_eventhub"));
    cmd.arg(sub)
        .arg("--url")
        .arg(format!("http://{}", server.addr))
        .args(rest)
        .env_remove("EVENTHUB_TOKEN")
        .env_remove("EVENTHUB_API_KEY");
    cmd
}

/// `eventhub publish ARGS --token TOKEN`, with `stdin` as its input.
fn publish_cli(server: &Server, token: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = eventhub(server, &["publish"])
        .args(args)
        .args(["--token", token])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn eventhub publish");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    wait_output(child)
}

/// A child's output, or a panic when it runs past the timeout.
fn wait_output(mut child: Child) -> Output {
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the client did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The seqs `eventhub publish` printed (`SEQ ID` per line).
fn printed_seqs(out: &Output) -> Vec<u64> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (seq, id) = l.split_once(' ').expect("SEQ ID");
            assert_eq!(id.len(), 64, "{l}");
            seq.parse().expect("a seq")
        })
        .collect()
}

fn token_file(name: &str, token: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("client-cli-{name}-{}.token", std::process::id()));
    std::fs::write(&path, format!("  {token}  \nsecond line ignored\n")).unwrap();
    path
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A running `eventhub events`: its stdout lines, its stderr so far.
struct Tail {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Tail {
    /// `eventhub events ARGS` with `env` set; returns once its stderr has
    /// a line containing `ready`.
    fn start(server: &Server, args: &[&str], env: &[(&str, &str)], ready: &str) -> Tail {
        let mut cmd = eventhub(server, &["events"]);
        cmd.args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn eventhub events");
        let lines = lines_of(child.stdout.take().unwrap());
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let tail = Tail {
            child,
            lines,
            stderr,
        };
        tail.wait_stderr(ready);
        tail
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for `text` on stderr.
    fn wait_stderr(&self, text: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.stderr().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} on the tail's stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The next `n` lines of stdout.
    fn next(&self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                self.lines.recv_timeout(TIMEOUT).unwrap_or_else(|_| {
                    panic!("line {i} of {n} did not come; stderr:\n{}", self.stderr())
                })
            })
            .collect()
    }

    /// SIGINT, then the exit code and the lines it printed after those
    /// read already.
    fn interrupt(mut self) -> (Option<i32>, Vec<String>) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
        self.wait()
    }

    /// Waits for the exit; the code and the remaining lines.
    fn wait(&mut self) -> (Option<i32>, Vec<String>) {
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the tail did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            rest.push(line);
        }
        (status.code(), rest)
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn lines_of(out: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// A Docker-shaped container event for `POST /v1/events`.
fn container_event(name: &str, action: &str, time: u64, tier: &str) -> String {
    format!(
        r#"{{"event_type":"container","body":{{"id":"{name}0123456789","Type":"container","Action":"{action}","Actor":{{"ID":"{name}0123456789","Attributes":{{"name":"{name}","image":"busybox:latest","tier":"{tier}"}}}},"time":{time}}}}}"#
    )
}

#[test]
fn events_published_from_arguments_and_stdin_are_tailed_as_received_with_their_seqs() {
    let server = Server::hub(1, &config());
    let tail = Tail::start(
        &server,
        &[
            "--format",
            "json",
            "--channel",
            "pdfm",
            "--channel",
            "alerts",
        ],
        &[("EVENTHUB_TOKEN", ADMIN_TOKEN)],
        "subscribed to",
    );
    assert!(
        tail.stderr().contains(r#"["pdfm","alerts","global"]"#),
        "{}",
        tail.stderr()
    );

    // The body goes as written, odd spacing and all.
    let body = r#"{"vm_id": "fb83",  "states":[ "suspended", "resuming" ]}"#;
    let from_args = publish_cli(
        &server,
        PRODUCER_TOKEN,
        &[
            "--channel",
            "pdfm",
            "--message",
            "VM_STATE_CHANGED",
            "--body",
            body,
        ],
        "",
    );
    assert!(from_args.status.success(), "{from_args:?}");
    assert_eq!(printed_seqs(&from_args), [1]);

    // stdin: an event, a blank line, an array; --token-file as the token.
    let file = token_file("admin", ADMIN_TOKEN);
    let mut child = eventhub(&server, &["publish", "--token-file"])
        .arg(&file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            b"{\"event_type\":\"alerts\",\"message\":\"disk\",\"body\":{\"pct\": 91}}\n\n[{\"event_type\":\"pdfm\",\"message\":\"a\"},{\"event_type\":\"orchestrator\",\"message\":\"not for this tail\"},{\"event_type\":\"pdfm\",\"message\":\"b\",\"body\":[1,2]}]\n",
        )
        .unwrap();
    let from_stdin = wait_output(child);
    assert!(from_stdin.status.success(), "{from_stdin:?}");
    assert_eq!(printed_seqs(&from_stdin), [2, 3, 4, 5]);

    let lines = tail.next(4);
    let events: Vec<Value> = lines.iter().map(|l| json(l)).collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 5], "orchestrator (seq 4) is not subscribed");
    assert!(
        lines[0].contains(&format!(
            r#""message":"VM_STATE_CHANGED","body":{body},"seq":1}}"#
        )),
        "printed exactly as received: {}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#""event_type":"alerts","#)
            && lines[1].contains(r#""body":{"pct": 91}"#)
    );
    assert_eq!(events[3]["body"], serde_json::json!([1, 2]));

    // Ctrl-C: a clean close and exit 0, nothing more printed.
    let (code, rest) = tail.interrupt();
    assert_eq!(code, Some(0));
    assert!(rest.is_empty(), "{rest:?}");
}

#[test]
fn the_readable_format_shows_time_channel_message_seq_and_body() {
    let server = Server::hub(1, &config());
    let tail = Tail::start(
        &server,
        &["--channel", "pdfm,container"],
        &[("EVENTHUB_TOKEN", ADMIN_TOKEN)],
        "subscribed to",
    );
    publish(
        server.addr,
        r#"{"event_type":"pdfm","message":"VM_STATE_CHANGED","body":{"vm_id":"x"}}"#,
    );
    publish(server.addr, &container_event("web", "start", 1_000, "s4"));
    let lines = tail.next(2);
    let (time, rest) = lines[0].split_once(' ').unwrap();
    assert!(time.ends_with('Z') && time.len() == 27, "{time}");
    assert_eq!(rest, r#"pdfm VM_STATE_CHANGED seq=1 {"vm_id":"x"}"#);
    assert!(
        lines[1].ends_with(
            " container start seq=2 web0123456789 (image=busybox:latest, name=web, tier=s4)"
        ),
        "{}",
        lines[1]
    );
    assert_eq!(tail.interrupt().0, Some(0));
}

#[test]
fn docker_filters_print_only_the_matching_container_events() {
    let server = Server::hub(1, &config());
    let tail = Tail::start(
        &server,
        &[
            "--format",
            "json",
            "--filter",
            "event=stop",
            "-f",
            "label=tier=s4",
        ],
        &[("EVENTHUB_TOKEN", ADMIN_TOKEN)],
        "following /events/ws?filters=",
    );
    let t = now_s();
    for (name, action, tier) in [
        ("web", "start", "s4"),
        ("web", "stop", "s4"),
        ("db", "stop", "s5"),
        ("api", "stop", "s4"),
    ] {
        publish(server.addr, &container_event(name, action, t, tier));
    }
    publish(
        server.addr,
        r#"{"event_type":"pdfm","message":"not a container event"}"#,
    );
    let first = tail.next(2);
    let (code, rest) = tail.interrupt();
    assert_eq!(code, Some(0));
    assert!(rest.is_empty(), "only matching events: {rest:?}");
    let got: Vec<(String, String)> = first
        .iter()
        .map(|l| {
            let v = json(l);
            assert_eq!(v["Type"], "container", "Docker's shape: {l}");
            (
                v["Actor"]["Attributes"]["name"].as_str().unwrap().into(),
                v["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("web".into(), "stop".into()), ("api".into(), "stop".into())]
    );
}

#[test]
fn docker_since_and_until_replay_a_window_then_end_with_exit_0() {
    let server = Server::hub(1, &config());
    for (name, time) in [("a", 1_000), ("b", 1_010), ("c", 1_020), ("d", 1_030)] {
        publish(server.addr, &container_event(name, "start", time, "s4"));
    }
    let out = wait_output(
        eventhub(
            &server,
            &[
                "events", "--docker", "--since", "1005", "--until", "1025", "--format", "json",
            ],
        )
        .env("EVENTHUB_TOKEN", ADMIN_TOKEN)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            json(l)["Actor"]["Attributes"]["name"]
                .as_str()
                .unwrap()
                .into()
        })
        .collect();
    assert_eq!(names, ["b", "c"]);
}

#[test]
fn a_tail_closed_by_the_maximum_age_resumes_without_gaps_or_duplicates() {
    let (server, tail) = age_limited_tail(&["--channel", "pdfm"], "subscribed to");
    // About 3 s of events: the hub closes the tail (1001) twice or more,
    // some events landing while it is away.
    let published: Vec<u64> = every_100ms(30, |i| {
        publish(
            server.addr,
            &format!(r#"{{"event_type":"pdfm","message":"m{i}"}}"#),
        )
    })
    .concat();
    let got: Vec<u64> = tail
        .next(30)
        .iter()
        .map(|l| json(l)["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(got, published);
    let stderr = tail.stderr();
    assert!(
        stderr.contains("1001 max connection age reached"),
        "{stderr}"
    );
    assert!(stderr.contains("reconnecting in 0.5 s"), "{stderr}");
    assert!(stderr.contains("resumed after seq "), "{stderr}");
    ends_cleanly_with_nothing_more(tail);
}

#[test]
fn a_docker_tail_closed_by_the_maximum_age_resumes_by_time_without_duplicates() {
    let (server, tail) = age_limited_tail(&["--filter", "event=start"], "following /events/ws");
    let want = every_100ms(25, |i| {
        let name = format!("c{i}");
        publish(server.addr, &container_event(&name, "start", now_s(), "s4"));
        name
    });
    let got: Vec<String> = tail
        .next(25)
        .iter()
        .map(|l| {
            json(l)["Actor"]["Attributes"]["name"]
                .as_str()
                .unwrap()
                .into()
        })
        .collect();
    assert_eq!(got, want);
    let stderr = tail.stderr();
    assert!(stderr.contains("resumed from time "), "{stderr}");
    ends_cleanly_with_nothing_more(tail);
}

/// A hub that closes every connection after 1 s (1001 "max connection
/// age"), and a `--format json` tail of it with `args`, once its stderr
/// says `ready`.
fn age_limited_tail(args: &[&str], ready: &str) -> (Server, Tail) {
    let server = Server::hub(1, &config_with("", "max_connection_age_s = 1"));
    let args: Vec<&str> = ["--format", "json"].iter().chain(args).copied().collect();
    let tail = Tail::start(&server, &args, &[("EVENTHUB_TOKEN", ADMIN_TOKEN)], ready);
    (server, tail)
}

/// `f(0)`, ..., `f(n - 1)`, 100 ms apart.
fn every_100ms<T>(n: usize, mut f: impl FnMut(usize) -> T) -> Vec<T> {
    (0..n)
        .map(|i| {
            let out = f(i);
            std::thread::sleep(Duration::from_millis(100));
            out
        })
        .collect()
}

/// Ctrl-C ends the tail with status 0, and nothing came after the events
/// it was asked for (no duplicate).
fn ends_cleanly_with_nothing_more(tail: Tail) {
    let (code, rest) = tail.interrupt();
    assert_eq!(code, Some(0));
    assert!(rest.is_empty(), "no duplicates after the last: {rest:?}");
}

/// Runs `cmd` to its end with no input: its exit code and its stderr.
fn code_and_stderr(cmd: &mut Command) -> (Option<i32>, String) {
    let out = wait_output(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn eventhub"),
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), err)
}

#[test]
fn a_bad_token_is_fatal_with_the_hubs_error() {
    let server = Server::hub(1, &config());
    let (code, err) = code_and_stderr(
        eventhub(&server, &["events", "--channel", "pdfm"]).env("EVENTHUB_TOKEN", "not-a-token"),
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains(r#"401 {"error":"invalid_credentials""#),
        "{err}"
    );
    assert!(
        !err.contains("not-a-token"),
        "the token is not echoed: {err}"
    );

    let out = publish_cli(
        &server,
        "not-a-token",
        &["--channel", "pdfm", "--message", "x"],
        "",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));

    // A 403: the producer may not subscribe to every channel.
    let file = token_file("producer", PRODUCER_TOKEN);
    let (code, err) = code_and_stderr(
        eventhub(&server, &["events", "--channel", "health", "--token-file"]).arg(&file),
    );
    assert_eq!(code, Some(1));
    assert!(err.contains(r#"403 {"error":"forbidden""#), "{err}");
}

#[test]
fn an_api_key_is_sent_as_x_api_key_and_never_together_with_a_token() {
    let server = Server::hub(1, &config());
    // The viewer has only an API key: from a file, it tails its channel.
    let file = token_file("viewer", VIEWER_KEY);
    let file_arg = file.to_str().unwrap();
    let tail = Tail::start(
        &server,
        &[
            "--format",
            "json",
            "--channel",
            "pdfm",
            "--api-key-file",
            file_arg,
        ],
        &[],
        "subscribed to",
    );
    let seqs = publish(
        server.addr,
        r#"[{"event_type":"pdfm","message":"for the viewer"}]"#,
    );
    let got = json(&tail.next(1)[0]);
    assert_eq!(got["seq"], seqs[0]);
    assert_eq!(got["message"], "for the viewer");
    ends_cleanly_with_nothing_more(tail);

    // From the environment it is the viewer too: a principal that may not
    // publish gets 403, where an unknown key would get 401.
    let (code, err) = code_and_stderr(
        eventhub(&server, &["publish", "--channel", "pdfm", "--message", "x"])
            .env("EVENTHUB_API_KEY", VIEWER_KEY),
    );
    assert_eq!(code, Some(1));
    assert!(err.contains(r#"403 {"error":"forbidden""#), "{err}");

    // The hub keeps keys and tokens apart: the key as a token is unknown.
    let (code, err) = code_and_stderr(&mut eventhub(
        &server,
        &["events", "--channel", "pdfm", "--token", VIEWER_KEY],
    ));
    assert_eq!(code, Some(1));
    assert!(
        err.contains(r#"401 {"error":"invalid_credentials""#),
        "{err}"
    );

    // Both at once is refused before connecting, naming every source.
    let (code, err) = code_and_stderr(
        eventhub(&server, &["events", "--api-key-file", file_arg])
            .env("EVENTHUB_TOKEN", ADMIN_TOKEN),
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("not both"), "{err}");
    assert!(
        !err.contains(VIEWER_KEY) && !err.contains(ADMIN_TOKEN),
        "{err}"
    );
}

#[test]
fn a_refused_line_is_named_with_the_hubs_error_and_the_others_still_publish() {
    let server = Server::hub(1, &config());
    let out = publish_cli(
        &server,
        ADMIN_TOKEN,
        &["--channel", "pdfm"],
        "{\"message\":\"channel from the flag\"}\n{\"event_type\":\"nope\"}\nnot json\n{\"event_type\":\"alerts\",\"message\":\"ok\"}\n",
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(printed_seqs(&out), [1, 2]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"line 2 refused: {"error":"invalid_event","message":"event 0: unknown channel \"nope\""#),
        "{err}"
    );
    assert!(
        err.contains("line 3 refused: {\"error\":\"invalid_event\""),
        "{err}"
    );
    assert!(err.contains("2 event message(s) were refused"), "{err}");
}
