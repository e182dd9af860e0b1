//! `strata login` and `strata logout`: registry credentials in Docker's `config.json`
//! (`$DOCKER_CONFIG`, else `~/.docker`), or its credential helper, as the Docker CLI keeps them.

use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use strata_remote::credentials::DOCKER_HUB_SERVER;

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username.
    #[arg(short, long)]
    username: Option<String>,
    /// Password or personal access token (insecure: prefer --password-stdin).
    #[arg(short, long)]
    password: Option<String>,
    /// Take the password from stdin.
    #[arg(long)]
    password_stdin: bool,
    /// The registry (default: Docker Hub).
    server: Option<String>,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry (default: Docker Hub).
    server: Option<String>,
}

pub fn login(args: &LoginArgs) -> anyhow::Result<()> {
    let server = args.server.as_deref().unwrap_or(DOCKER_HUB_SERVER);
    if args.password.is_some() {
        if args.password_stdin {
            bail!("--password and --password-stdin are mutually exclusive");
        }
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let stdin = io::stdin();
    let password = if args.password_stdin {
        if args.username.is_none() {
            bail!("Must provide --username with --password-stdin");
        }
        let mut text = String::new();
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("reading the password from stdin")?;
        Some(text.trim_end_matches(['\n', '\r']).to_owned())
    } else {
        args.password.clone()
    };
    let interactive = stdin.is_terminal();
    let username = match &args.username {
        Some(u) => u.clone(),
        None if interactive => prompt("Username: ", true)?,
        None => bail!("Cannot perform an interactive login from a non TTY device"),
    };
    let password = match password {
        Some(p) => p,
        None if interactive => prompt("Password: ", false)?,
        None => bail!("Cannot perform an interactive login from a non TTY device"),
    };
    if username.trim().is_empty() {
        bail!("Username is required");
    }
    if password.is_empty() {
        bail!("Password is required");
    }
    let remote = super::remote_without_store()?;
    let rt = strata_engine::runtime::runtime().context("starting the network runtime")?;
    rt.block_on(remote.login(server, username.trim(), &password))
        .with_context(|| format!("login {server}"))?;
    if let Some(path) = stored_in_plain_text(server) {
        eprintln!(
            "WARNING! Your credentials are stored unencrypted in '{}'.\n\
             Configure a credential helper to remove this warning. See\n\
             https://docs.docker.com/go/credential-store/",
            path.display()
        );
    }
    println!("Login Succeeded");
    Ok(())
}

/// Docker's `config.json` when it holds the password of `server` itself (no credential
/// helper took it).
fn stored_in_plain_text(server: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))?;
    let path = dir.join("config.json");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let host = canonical_host(server);
    config
        .get("auths")?
        .as_object()?
        .iter()
        .any(|(key, entry)| canonical_host(key) == host && entry.get("auth").is_some())
        .then_some(path)
}

/// The host a server address names, Docker Hub's aliases folded into one.
fn canonical_host(server: &str) -> &str {
    match hostname(server) {
        "docker.io" | "registry-1.docker.io" => "index.docker.io",
        h => h,
    }
}

pub fn logout(args: &LogoutArgs) -> anyhow::Result<()> {
    // Docker names Docker Hub by its server URL and any other registry by its host name.
    let (server, shown) = match args.server.as_deref() {
        None => (DOCKER_HUB_SERVER, DOCKER_HUB_SERVER.to_owned()),
        Some(s) => (s, hostname(s).to_owned()),
    };
    let remote = super::remote_without_store()?;
    let rt = strata_engine::runtime::runtime().context("starting the network runtime")?;
    let removed = rt
        .block_on(remote.erase_credentials(server))
        .with_context(|| format!("logout {shown}"))?;
    if removed {
        println!("Removing login credentials for {shown}");
    } else {
        println!("Not logged in to {shown}");
    }
    Ok(())
}

/// `https://host/path` → `host`.
fn hostname(server: &str) -> &str {
    let s = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    s.split('/').next().unwrap_or(s)
}

/// Asks on the terminal; without echo for a password.
fn prompt(question: &str, echo: bool) -> anyhow::Result<String> {
    let mut err = io::stderr().lock();
    write!(err, "{question}")?;
    err.flush()?;
    let stdin = io::stdin();
    let saved = if echo {
        None
    } else {
        let saved = rustix::termios::tcgetattr(&stdin).context("reading the terminal mode")?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet)
            .context("turning the terminal echo off")?;
        Some(saved)
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &saved);
        writeln!(err)?;
    }
    read.context("reading from the terminal")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames_of_servers() {
        assert_eq!(hostname("https://index.docker.io/v1/"), "index.docker.io");
        assert_eq!(hostname("localhost:5000"), "localhost:5000");
        assert_eq!(hostname("http://127.0.0.1:5000/"), "127.0.0.1:5000");
        assert_eq!(canonical_host("docker.io"), "index.docker.io");
        assert_eq!(canonical_host(DOCKER_HUB_SERVER), "index.docker.io");
    }
}
