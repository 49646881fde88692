//! `stylize ctl <command>`: send one control request to a running `stylize webcam` and print
//! its JSON reply. Exits non-zero when the daemon answers with an error.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::control::{self, Request, Response};

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// Control socket (default: $XDG_RUNTIME_DIR/stylize.sock).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// Switch to a style (name, style-NN or index).
    Style { name: String },
    /// Blend styles, e.g. "starry-swirls:0.7,mosaic:0.3".
    Blend { weights: String },
    /// Style from a picture (needs an arbitrary-style model).
    StyleImage { path: PathBuf },
    /// Style from a text prompt.
    Prompt {
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Pass the camera through unstylized.
    Pause,
    /// Stylize again.
    Resume,
    /// Frame counters, drops and per-stage latency (p50/p95/p99) as JSON.
    Stats,
    /// Stop the daemon.
    Quit,
}

impl CtlCommand {
    pub fn request(&self) -> Request {
        match self {
            CtlCommand::Style { name } => Request::Style { name: name.clone() },
            CtlCommand::Blend { weights } => Request::Blend {
                weights: weights.clone(),
            },
            CtlCommand::StyleImage { path } => Request::StyleImage {
                // The daemon may run in another directory.
                path: std::path::absolute(path).unwrap_or_else(|_| path.clone()),
            },
            CtlCommand::Prompt { text } => Request::Prompt {
                text: text.join(" "),
            },
            CtlCommand::Pause => Request::Pause,
            CtlCommand::Resume => Request::Resume,
            CtlCommand::Stats => Request::Stats,
            CtlCommand::Quit => Request::Quit,
        }
    }
}

/// Send raw request lines over one connection; one reply per line.
pub fn exchange(socket: &Path, lines: &[String]) -> Result<Vec<Response>> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "no stylize webcam is listening on {} (start one, or pass --socket)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut replies = Vec::new();
    for line in lines {
        stream.write_all(line.as_bytes())?;
        if !line.ends_with('\n') {
            stream.write_all(b"\n")?;
        }
        let mut reply = String::new();
        if reader.read_line(&mut reply)? == 0 {
            bail!("the daemon closed the connection without a reply");
        }
        let value = serde_json::from_str(&reply)
            .with_context(|| format!("the daemon's reply is not JSON: {reply}"))?;
        replies.push(Response(value));
    }
    Ok(replies)
}

pub fn send(socket: &Path, request: &Request) -> Result<Response> {
    Ok(exchange(socket, &[request.to_line()])?.remove(0))
}

pub fn run(args: &CtlArgs) -> Result<()> {
    let socket = match &args.socket {
        Some(p) => p.clone(),
        None => control::default_socket_path()?,
    };
    let reply = send(&socket, &args.command.request())?;
    println!("{}", serde_json::to_string_pretty(&reply.0)?);
    if !reply.is_ok() {
        bail!("{}", reply.error_message().unwrap_or("the daemon refused"));
    }
    Ok(())
}
