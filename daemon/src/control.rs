//! Runtime control of a running `stylize webcam`: line-delimited JSON over a Unix socket.
//!
//! One request per line, one reply per line:
//!
//! ```text
//! → {"cmd":"style","name":"mosaic"}
//! ← {"ok":true,"style":"mosaic"}
//! → {"cmd":"blend","weights":"starry-swirls:0.7,mosaic:0.3"}
//! → {"cmd":"style-image","path":"/home/me/painting.jpg"}
//! → {"cmd":"prompt","text":"blue watercolour"}
//! → {"cmd":"pause"}  {"cmd":"resume"}  {"cmd":"stats"}  {"cmd":"quit"}
//! ← {"ok":false,"error":"..."}
//! ```
//!
//! Anything malformed (not UTF-8, not JSON, unknown command, missing or extra fields, a line
//! over [`MAX_LINE`] bytes) gets an error reply; the connection and the stream carry on.
//! The socket is created with mode 0600 in `$XDG_RUNTIME_DIR` (a per-user 0700 directory),
//! else in a 0700 directory `/tmp/stylize-<uid>/`: only its owner may restyle the camera.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest accepted request line, in bytes (a prompt or a path fits many times over).
pub const MAX_LINE: usize = stylize_engines::limits::MAX_CONTROL_LINE;
/// Connections served at once; one more is answered with an error and closed, so idle
/// clients cannot pile up threads.
pub const MAX_CLIENTS: usize = stylize_engines::limits::MAX_CONTROL_CLIENTS;

/// The commands, as `cmd` names them.
pub const COMMANDS: [&str; 8] = [
    "style",
    "blend",
    "style-image",
    "prompt",
    "pause",
    "resume",
    "stats",
    "quit",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// Switch to one style (name, `style-NN` or index).
    Style { name: String },
    /// Blend styles, e.g. `"starry-swirls:0.7,mosaic:0.3"`.
    Blend { weights: String },
    /// Style from a picture (arbitrary-style models).
    StyleImage { path: PathBuf },
    /// Style from a text prompt.
    Prompt { text: String },
    /// Pass the camera through unstylized.
    Pause,
    /// Stylize again.
    Resume,
    /// Counters, drops and per-stage latency.
    Stats,
    /// Stop the daemon.
    Quit,
}

/// A reply: `{"ok":true, ...fields}` or `{"ok":false,"error":"..."}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response(pub Value);

impl Response {
    /// Success; the fields of an object `data` are merged into the reply.
    pub fn ok(data: Value) -> Self {
        let mut map = Map::new();
        map.insert("ok".into(), Value::Bool(true));
        if let Value::Object(fields) = data {
            map.extend(fields);
        }
        Response(Value::Object(map))
    }

    pub fn error(message: impl Into<String>) -> Self {
        let mut map = Map::new();
        map.insert("ok".into(), Value::Bool(false));
        map.insert("error".into(), Value::String(message.into()));
        Response(Value::Object(map))
    }

    pub fn is_ok(&self) -> bool {
        self.0["ok"] == Value::Bool(true)
    }

    pub fn error_message(&self) -> Option<&str> {
        self.0["error"].as_str()
    }

    pub fn to_line(&self) -> String {
        format!("{}\n", self.0)
    }
}

/// Cut a user string for an error message (at a character boundary).
pub fn shorten(s: &str, max_chars: usize) -> String {
    let mut out: String = s.chars().take(max_chars).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

impl Request {
    pub fn to_line(&self) -> String {
        format!(
            "{}\n",
            serde_json::to_string(self).expect("requests always serialize")
        )
    }

    /// Parse one line (without its newline). Never panics; every failure is a message.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        if line.len() > MAX_LINE {
            return Err(format!(
                "request of {} bytes is over the {MAX_LINE}-byte limit",
                line.len()
            ));
        }
        let text = std::str::from_utf8(line).map_err(|_| "request is not UTF-8".to_string())?;
        let value: Value =
            serde_json::from_str(text.trim()).map_err(|e| format!("request is not JSON: {e}"))?;
        let Some(object) = value.as_object() else {
            return Err("request must be a JSON object with a `cmd` field".into());
        };
        let cmd = match object.get("cmd") {
            Some(Value::String(c)) => c.clone(),
            Some(_) => return Err("`cmd` must be a string".into()),
            None => return Err("request has no `cmd` field".into()),
        };
        if !COMMANDS.contains(&cmd.as_str()) {
            return Err(format!(
                "unknown command `{}` (known: {})",
                shorten(&cmd, 40),
                COMMANDS.join(", ")
            ));
        }
        let fields: Vec<String> = object.keys().cloned().collect();
        let request: Request =
            serde_json::from_value(value).map_err(|e| format!("bad `{cmd}` request: {e}"))?;
        // serde ignores extra fields on unit variants of a tagged enum: a typo such as
        // {"cmd":"pause","sytle":"x"} must not pass silently.
        let known = serde_json::to_value(&request).expect("requests always serialize");
        if let Some(extra) = fields.iter().find(|f| known.get(f.as_str()).is_none()) {
            return Err(format!(
                "bad `{cmd}` request: unknown field `{}`",
                shorten(extra, 40)
            ));
        }
        request.validate()?;
        Ok(request)
    }

    fn validate(&self) -> Result<(), String> {
        let empty = |field: &str, v: &str| {
            if v.trim().is_empty() {
                Err(format!("`{field}` must not be empty"))
            } else {
                Ok(())
            }
        };
        match self {
            Request::Style { name } => empty("name", name),
            Request::Blend { weights } => empty("weights", weights),
            Request::StyleImage { path } => empty("path", &path.to_string_lossy()),
            Request::Prompt { text } => empty("text", text),
            _ => Ok(()),
        }
    }
}

/// `$XDG_RUNTIME_DIR/stylize.sock`, else `/tmp/stylize-<uid>/stylize.sock`.
pub fn default_socket_path() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("stylize.sock"));
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("stylize-{uid}"));
    private_dir(&dir, uid)?;
    Ok(dir.join("stylize.sock"))
}

/// Create `dir` with mode 0700, or accept an existing one only if `uid` owns it and nobody
/// else can enter it: in a shared /tmp, a directory someone else made first must not be
/// trusted with our socket.
fn private_dir(dir: &Path, uid: u32) -> Result<()> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
        bail!(
            "{} is not a private directory owned by uid {uid}; pass --socket",
            dir.display()
        );
    }
    Ok(())
}

pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// The control socket's accept loop, on its own thread.
pub struct Server {
    path: PathBuf,
    /// (device, inode) of the socket this run created.
    identity: (u64, u64),
    thread: JoinHandle<()>,
}

impl Server {
    /// Bind and serve until `stop`. A stale socket left by a crashed run is replaced; any
    /// other file at `path` (a regular file, a directory, a live socket) is refused and left
    /// untouched: `--socket` must never cost the user a file.
    pub fn bind(path: &Path, handler: Handler, stop: Arc<AtomicBool>) -> Result<Self> {
        remove_stale_socket(path)?;
        let listener = UnixListener::bind(path)
            .with_context(|| format!("creating the control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let meta = std::fs::symlink_metadata(path)?;
        listener.set_nonblocking(true)?;
        let thread = std::thread::Builder::new()
            .name("stylize-control".into())
            .spawn(move || accept_loop(listener, handler, stop))?;
        Ok(Self {
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            thread,
        })
    }

    /// Wait for the accept loop (after `stop` was set) and remove the socket, if it is still
    /// the one this run created (not a file someone put there since).
    pub fn join(self) {
        let _ = self.thread.join();
        if let Ok(meta) = std::fs::symlink_metadata(&self.path) {
            if meta.file_type().is_socket() && (meta.dev(), meta.ino()) == self.identity {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// Remove `path` only if it is a socket nobody answers on (left by a crashed run). Anything
/// else there is an error naming what it is; nothing is deleted.
fn remove_stale_socket(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    };
    let kind = meta.file_type();
    if !kind.is_socket() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_symlink() {
            "a symbolic link"
        } else if kind.is_file() {
            "a regular file"
        } else {
            "not a socket"
        };
        bail!(
            "{} exists and is {what}, not a control socket; refusing to replace it \
             (pass another --socket)",
            path.display()
        );
    }
    match UnixStream::connect(path) {
        Ok(_) => bail!(
            "{} is in use by another stylize webcam; pass --socket",
            path.display()
        ),
        // Nobody listening: a socket left by a run that crashed.
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display())),
        Err(e) => Err(e).with_context(|| {
            format!(
                "{} is a socket that cannot be checked; pass --socket",
                path.display()
            )
        }),
    }
}

fn accept_loop(listener: UnixListener, handler: Handler, stop: Arc<AtomicBool>) {
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        clients.retain(|t| !t.is_finished());
        match listener.accept() {
            Ok((stream, _)) if clients.len() >= MAX_CLIENTS => refuse(stream),
            Ok((stream, _)) => {
                let (h, s) = (handler.clone(), stop.clone());
                if let Ok(t) = std::thread::Builder::new()
                    .name("stylize-control-client".into())
                    .spawn(move || serve_client(stream, h, s))
                {
                    clients.push(t);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(25));
            }
            Err(e) => {
                eprintln!("stylize webcam: control socket: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    for t in clients {
        let _ = t.join();
    }
}

/// Tell a connection over [`MAX_CLIENTS`] why it is closed (without waiting on it).
fn refuse(mut stream: UnixStream) {
    let reply = Response::error(format!(
        "too many control connections (at most {MAX_CLIENTS} at once); try again later"
    ));
    let _ = stream.set_nonblocking(true);
    let _ = stream.write_all(reply.to_line().as_bytes());
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes; longer lines are reported
/// once and skipped up to their newline, without buffering them.
#[derive(Default)]
pub struct LineReader {
    buf: Vec<u8>,
    overflowed: bool,
}

/// One complete line, or an oversized one that was skipped.
#[derive(Debug, PartialEq)]
pub enum Line {
    Complete(Vec<u8>),
    TooLong,
}

impl LineReader {
    /// Feed received bytes; returns every line they complete.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<Line> {
        let mut lines = Vec::new();
        while let Some(pos) = bytes.iter().position(|&b| b == b'\n') {
            let (head, rest) = (&bytes[..pos], &bytes[pos + 1..]);
            if self.overflowed || self.buf.len() + head.len() > MAX_LINE {
                lines.push(Line::TooLong);
            } else {
                self.buf.extend_from_slice(head);
                lines.push(Line::Complete(std::mem::take(&mut self.buf)));
            }
            self.buf.clear();
            self.overflowed = false;
            bytes = rest;
        }
        if !self.overflowed {
            if self.buf.len() + bytes.len() > MAX_LINE {
                self.overflowed = true;
                self.buf.clear();
            } else {
                self.buf.extend_from_slice(bytes);
            }
        }
        lines
    }

    /// At end of input: the last request when it had no newline (`printf '{"cmd":"stats"}' |
    /// nc -U ...` deserves a reply too), or an oversized one.
    pub fn finish(&mut self) -> Option<Line> {
        let line = if self.overflowed {
            Some(Line::TooLong)
        } else if self.buf.is_empty() {
            None
        } else {
            Some(Line::Complete(std::mem::take(&mut self.buf)))
        };
        self.buf.clear();
        self.overflowed = false;
        line
    }
}

/// The reply to one received line.
pub fn reply_to(line: &Line, handler: &Handler) -> Response {
    match line {
        Line::TooLong => Response::error(format!(
            "request is over the {MAX_LINE}-byte limit and was ignored"
        )),
        Line::Complete(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => {
            Response::error("empty request")
        }
        Line::Complete(bytes) => match Request::parse(bytes) {
            Ok(request) => handler(request),
            Err(message) => Response::error(message),
        },
    }
}

fn serve_client(mut stream: UnixStream, handler: Handler, stop: Arc<AtomicBool>) {
    // Timeouts keep a silent client from holding the thread past shutdown.
    if stream.set_nonblocking(false).is_err()
        || stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .is_err()
    {
        return;
    }
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let mut reader = LineReader::default();
    let mut chunk = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let n = match stream.read(&mut chunk) {
            Ok(0) => {
                if let Some(line) = reader.finish() {
                    let _ = stream.write_all(reply_to(&line, &handler).to_line().as_bytes());
                }
                return;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        for line in reader.push(&chunk[..n]) {
            let reply = reply_to(&line, &handler);
            if stream.write_all(reply.to_line().as_bytes()).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn all_requests() -> Vec<Request> {
        vec![
            Request::Style {
                name: "mosaic".into(),
            },
            Request::Blend {
                weights: "starry-swirls:0.7,mosaic:0.3".into(),
            },
            Request::StyleImage {
                path: "/tmp/painting.jpg".into(),
            },
            Request::Prompt {
                text: "blue \"watercolour\"\nwith ünïcode".into(),
            },
            Request::Pause,
            Request::Resume,
            Request::Stats,
            Request::Quit,
        ]
    }

    #[test]
    fn every_request_round_trips_through_a_line() {
        let requests = all_requests();
        assert_eq!(requests.len(), COMMANDS.len());
        for (request, cmd) in requests.iter().zip(COMMANDS) {
            let line = request.to_line();
            assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
            let value: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(value["cmd"], cmd);
            assert_eq!(
                &Request::parse(line.trim_end().as_bytes()).unwrap(),
                request
            );
        }
    }

    #[test]
    fn malformed_requests_get_reasons() {
        for (line, reason) in [
            (&b"not json"[..], "not JSON"),
            (b"[1,2]", "JSON object"),
            (b"{}", "no `cmd`"),
            (br#"{"cmd":3}"#, "must be a string"),
            (br#"{"cmd":"explode"}"#, "unknown command `explode`"),
            (br#"{"cmd":"style"}"#, "missing field `name`"),
            (br#"{"cmd":"style","name":"  "}"#, "must not be empty"),
            (br#"{"cmd":"style","name":7}"#, "bad `style` request"),
            (br#"{"cmd":"pause","extra":1}"#, "unknown field"),
            (b"\xff\xfe", "not UTF-8"),
        ] {
            let err = Request::parse(line).unwrap_err();
            assert!(
                err.contains(reason),
                "{}: {err}",
                String::from_utf8_lossy(line)
            );
        }
        let huge = vec![b' '; MAX_LINE + 1];
        assert!(Request::parse(&huge).unwrap_err().contains("limit"));
    }

    #[test]
    fn line_reader_splits_and_skips_oversized_lines() {
        let mut r = LineReader::default();
        assert!(r.push(b"{\"cmd\":").is_empty());
        assert_eq!(
            r.push(b"\"stats\"}\n{\"cmd\":\"pause\"}\npartial"),
            vec![
                Line::Complete(br#"{"cmd":"stats"}"#.to_vec()),
                Line::Complete(br#"{"cmd":"pause"}"#.to_vec()),
            ]
        );
        // An oversized line arriving in pieces is reported once, and the next line is intact.
        for _ in 0..3 {
            assert!(r.push(&vec![b'x'; MAX_LINE / 2]).is_empty());
        }
        assert!(r.buf.is_empty(), "an oversized line is not buffered");
        assert_eq!(
            r.push(b"tail\n{\"cmd\":\"quit\"}\n"),
            vec![Line::TooLong, Line::Complete(br#"{"cmd":"quit"}"#.to_vec())]
        );
    }

    #[test]
    fn responses_merge_fields() {
        let r = Response::ok(json!({"style": "mosaic"}));
        assert_eq!(r.0, json!({"ok": true, "style": "mosaic"}));
        assert!(r.is_ok());
        let e = Response::error("nope");
        assert_eq!(e.to_line(), "{\"error\":\"nope\",\"ok\":false}\n");
        assert_eq!(e.error_message(), Some("nope"));
    }

    #[test]
    fn socket_fallback_directory_must_be_private_and_ours() {
        let base = std::env::temp_dir().join(format!("stylize-dirs-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let fresh = base.join("fresh");
        private_dir(&fresh, uid).unwrap();
        let mode = std::fs::metadata(&fresh).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        private_dir(&fresh, uid).unwrap(); // reused
        let open = base.join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(private_dir(&open, uid)
            .unwrap_err()
            .to_string()
            .contains("private"));
        assert!(
            private_dir(&fresh, uid + 1).is_err(),
            "someone else's directory"
        );
        let file = base.join("file");
        std::fs::write(&file, "").unwrap();
        assert!(private_dir(&file, uid).is_err());
        let _ = std::fs::remove_dir_all(&base);
    }

    fn stopped_server(path: &Path) -> Result<Server> {
        let handler: Handler = Arc::new(|_| Response::ok(json!({})));
        let stop = Arc::new(AtomicBool::new(true));
        Server::bind(path, handler, stop)
    }

    #[test]
    fn bind_never_deletes_what_is_not_a_stale_socket() {
        let base = std::env::temp_dir().join(format!("stylize-bind-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();

        // A regular file (the user's data) is refused and kept byte for byte.
        let file = base.join("notes.txt");
        std::fs::write(&file, "precious").unwrap();
        let err = stopped_server(&file).err().unwrap().to_string();
        assert!(
            err.contains("is a regular file, not a control socket"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious");

        let dir = base.join("dir");
        std::fs::create_dir(&dir).unwrap();
        let err = stopped_server(&dir).err().unwrap().to_string();
        assert!(err.contains("a directory"), "{err}");
        assert!(dir.is_dir());

        let link = base.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = stopped_server(&link).err().unwrap().to_string();
        assert!(err.contains("a symbolic link"), "{err}");
        assert!(std::fs::symlink_metadata(&link).is_ok());

        // A live socket is in use; a stale one (nobody listening) is replaced.
        let live_path = base.join("live.sock");
        let live = UnixListener::bind(&live_path).unwrap();
        let err = stopped_server(&live_path).err().unwrap().to_string();
        assert!(err.contains("in use"), "{err}");
        drop(live);
        let server = stopped_server(&live_path).unwrap();
        let replaced = std::fs::symlink_metadata(&live_path).unwrap();
        assert!(replaced.file_type().is_socket(), "a fresh socket is bound");

        // At exit only our own socket is removed, not a file put there since.
        std::fs::remove_file(&live_path).unwrap();
        std::fs::write(&live_path, "someone else's").unwrap();
        server.join();
        assert_eq!(
            std::fs::read_to_string(&live_path).unwrap(),
            "someone else's"
        );
        let server = stopped_server(&base.join("own.sock")).unwrap();
        server.join();
        assert!(
            !base.join("own.sock").exists(),
            "our socket is removed at exit"
        );
        let _ = std::fs::remove_dir_all(&base);
    }

    fn running_server(path: &Path) -> (Server, Arc<AtomicBool>) {
        let handler: Handler = Arc::new(|req| Response::ok(json!({ "got": format!("{req:?}") })));
        let stop = Arc::new(AtomicBool::new(false));
        (Server::bind(path, handler, stop.clone()).unwrap(), stop)
    }

    fn read_reply(stream: &mut UnixStream) -> Value {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        serde_json::from_str(text.lines().next().expect("a reply line")).unwrap()
    }

    #[test]
    fn a_request_ending_at_eof_without_newline_is_answered() {
        let mut r = LineReader::default();
        assert!(r.push(br#"{"cmd":"stats"}"#).is_empty());
        assert_eq!(
            r.finish(),
            Some(Line::Complete(br#"{"cmd":"stats"}"#.to_vec()))
        );
        assert_eq!(r.finish(), None);

        let dir = std::env::temp_dir().join(format!("stylize-eof-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let (server, stop) = running_server(&path);
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(br#"{"cmd":"stats"}"#).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let reply = read_reply(&mut client);
        assert_eq!(reply["ok"], true, "{reply}");
        assert_eq!(reply["got"], "Stats");
        stop.store(true, Ordering::Relaxed);
        server.join();
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn idle_connections_are_capped_and_the_rest_refused_with_a_reason() {
        let dir = std::env::temp_dir().join(format!("stylize-cap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ctl.sock");
        let (server, stop) = running_server(&path);
        // Idle clients: connected, silent. Each takes a serving thread, up to the cap; the
        // rest are refused, so no number of them makes more threads.
        let idle: Vec<UnixStream> = (0..MAX_CLIENTS)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        // Connections past the cap were told why and closed.
        let mut late = UnixStream::connect(&path).unwrap();
        let reply = read_reply(&mut late);
        assert!(
            reply["error"]
                .as_str()
                .is_some_and(|e| e.contains("too many control connections")),
            "{reply}"
        );
        // Once idle clients leave, requests are served again.
        drop(idle);
        std::thread::sleep(Duration::from_millis(500));
        let mut client = UnixStream::connect(&path).unwrap();
        client.write_all(b"{\"cmd\":\"pause\"}\n").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        assert_eq!(read_reply(&mut client)["ok"], true);
        stop.store(true, Ordering::Relaxed);
        server.join();
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// JSON-ish text: values that are almost requests, to get past the first checks.
    fn near_requests() -> impl Strategy<Value = Vec<u8>> {
        let cmd = prop_oneof![
            proptest::sample::select(COMMANDS.to_vec()).prop_map(String::from),
            ".{0,20}",
        ];
        let value = prop_oneof![
            Just("null".to_string()),
            any::<i64>().prop_map(|v| v.to_string()),
            ".{0,30}".prop_map(|s| serde_json::to_string(&s).unwrap()),
            Just("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]".to_string()),
            Just("{\"a\":{\"b\":{}}}".to_string()),
        ];
        let field = proptest::sample::select(vec!["name", "weights", "path", "text", "cmd", "x"]);
        (cmd, proptest::collection::vec((field, value), 0..4)).prop_map(|(cmd, fields)| {
            let mut s = format!("{{\"cmd\":{}", serde_json::to_string(&cmd).unwrap());
            for (k, v) in fields {
                s.push_str(&format!(",\"{k}\":{v}"));
            }
            s.push('}');
            s.into_bytes()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Request::parse(&bytes);
        }

        #[test]
        fn parser_never_panics_on_near_requests(line in near_requests()) {
            // Either a valid request that serializes back to an equal one, or a message.
            match Request::parse(&line) {
                Ok(request) => prop_assert_eq!(
                    Request::parse(request.to_line().trim_end().as_bytes()).unwrap(),
                    request
                ),
                Err(message) => prop_assert!(!message.is_empty()),
            }
        }

        #[test]
        fn line_reader_never_panics_and_bounds_memory(
            pieces in proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..64),
                    (1usize..3).prop_map(|k| vec![b'y'; k * MAX_LINE / 2 + 1]),
                ],
                0..8,
            )
        ) {
            let mut r = LineReader::default();
            let handler: Handler = Arc::new(|_| Response::ok(json!({})));
            for piece in &pieces {
                for line in r.push(piece) {
                    if let Line::Complete(bytes) = &line {
                        prop_assert!(bytes.len() <= MAX_LINE);
                    }
                    let reply = reply_to(&line, &handler);
                    prop_assert!(reply.0["ok"].is_boolean());
                }
                prop_assert!(r.buf.len() <= MAX_LINE);
            }
        }
    }
}
