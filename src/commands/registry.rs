//! push, pull, login, logout: the registry commands. Arguments to runtime calls, and the lines
//! docker prints. The password is read from stdin or the terminal (without echo) and never
//! printed.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::PathBuf;

use kiln_runtime::image::{ImageName, ImageRef};
use kiln_runtime::oci::Platform;
use kiln_runtime::registry::credentials::AuthFile;
use kiln_runtime::registry::{self, Credentials, PullOptions, RegistryOptions};
use miette::IntoDiagnostic;

use super::progress::TransferPrinter;
use super::transfer::open_store;
use crate::cli::{LoginArgs, LogoutArgs, PullArgs, PushArgs, RegistryArgs, SearchArgs};

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
enum RegistryCommandError {
    #[error("`{0}` names no registry image")]
    #[diagnostic(help("give NAME[:TAG] or NAME@sha256:DIGEST, e.g. 127.0.0.1:5000/team/app:1.0"))]
    NotARegistryReference(String),
    #[error("`{0}` is not a platform")]
    #[diagnostic(help("a platform is OS/ARCH[/VARIANT], e.g. linux/amd64 or linux/arm/v7"))]
    BadPlatform(String),
    #[error("no {what} given and standard input is not a terminal")]
    #[diagnostic(help("pass -u USER and --password-stdin, e.g. `echo \"$PW\" | kiln login -u USER --password-stdin HOST`"))]
    NoTerminal { what: &'static str },
    #[error("the {0} is empty")]
    Empty(&'static str),
    #[error("`{0}` is not a registry host")]
    #[diagnostic(help("give HOST[:PORT], e.g. 127.0.0.1:5000 or registry.example.com"))]
    BadServer(String),
    #[error("limit {0} is outside the range of [1, 100]")]
    SearchLimit(u32),
    #[error("invalid filter '{0}'")]
    #[diagnostic(help(
        "docker search's filters are stars=N, is-official=BOOL and is-automated=BOOL"
    ))]
    SearchFilter(String),
    #[error("{host} cannot be searched for `{term}`: kiln speaks the registry (distribution) API, which has no search")]
    #[diagnostic(help("{hint}"))]
    SearchRefused {
        host: String,
        term: String,
        hint: String,
    },
    #[error("no repository {0} tags in the store")]
    #[diagnostic(help("`kiln images` lists them; tag one with `kiln tag`"))]
    NoTags(String),
}

pub(crate) fn registry_options(args: &RegistryArgs) -> RegistryOptions {
    RegistryOptions {
        tls_verify: args.tls_verify,
        cert_dir: args.cert_dir.clone(),
        auth_file: args.authfile.clone(),
    }
}

fn parse_platform(s: &str) -> Result<Platform, RegistryCommandError> {
    let bad = || RegistryCommandError::BadPlatform(s.to_string());
    let parts: Vec<&str> = s.split('/').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let (os, arch, variant) = match parts.as_slice() {
        [os, arch] => (*os, *arch, None),
        [os, arch, variant] => (*os, *arch, Some(variant.to_string())),
        _ => return Err(bad()),
    };
    Ok(Platform {
        os: os.to_string(),
        architecture: arch.to_string(),
        variant,
        ..Platform::default()
    })
}

pub fn push(root: Option<PathBuf>, args: PushArgs) -> miette::Result<()> {
    let name = ImageName::parse(&args.image)?;
    let store = open_store(root)?;
    let options = registry_options(&args.registry);
    let names = if args.all_tags {
        let mut names: Vec<ImageName> = store
            .list_refs()?
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.full_repository() == name.full_repository())
            .collect();
        names.sort();
        if names.is_empty() {
            return Err(RegistryCommandError::NoTags(name.repository()).into());
        }
        names
    } else {
        vec![name]
    };
    let printer = TransferPrinter::new("Pushing", args.quiet);
    for name in names {
        if !args.quiet {
            eprintln!("The push refers to repository [{}]", name.full_repository());
        }
        let pushed = registry::push(&store, &name, &options, &printer)?;
        if args.quiet {
            println!("{}", pushed.digest);
        } else {
            println!(
                "{}: digest: {} size: {}",
                pushed.name.tag(),
                pushed.digest,
                pushed.size
            );
        }
    }
    Ok(())
}

pub fn pull(root: Option<PathBuf>, args: PullArgs) -> miette::Result<()> {
    let (name, digest) = match ImageRef::parse(&args.image)? {
        ImageRef::Name { name, .. } => (name, None),
        ImageRef::NameDigest { name, digest } => (name, Some(digest)),
        ImageRef::Digest(_) | ImageRef::IdPrefix { .. } => {
            return Err(RegistryCommandError::NotARegistryReference(args.image).into())
        }
    };
    let platform = args.platform.as_deref().map(parse_platform).transpose()?;
    let store = open_store(root)?;
    let options = registry_options(&args.registry);
    let printer = TransferPrinter::new("Downloading", args.quiet);
    let pulled = registry::pull(
        &store,
        &name,
        digest.as_ref(),
        &options,
        &PullOptions {
            platform,
            all_platforms: args.all_platforms,
        },
        &printer,
    )?;
    if args.quiet {
        println!("{}", pulled.stored.digest());
        return Ok(());
    }
    println!("Digest: {}", pulled.resolved_digest);
    if pulled.fetched == 0 {
        println!("Status: Image is up to date for {}", args.image);
    } else {
        println!("Status: Downloaded newer image for {}", args.image);
    }
    match &digest {
        Some(d) => println!("{}@{d}", name.full_repository()),
        None => println!("{}", name.full()),
    }
    Ok(())
}

/// `https://host:5000/v2/` and `host:5000` name the same server.
fn server_host(server: Option<&str>) -> Result<String, RegistryCommandError> {
    let Some(server) = server else {
        return Ok("docker.io".to_string());
    };
    let rest = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = rest.split('/').next().unwrap_or(rest);
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    };
    // A host is valid when a reference on it is.
    ImageName::parse(&format!("{host}/x"))
        .ok()
        .filter(|n| n.domain() == host)
        .map(|n| n.domain().to_string())
        .ok_or_else(|| RegistryCommandError::BadServer(server.to_string()))
}

/// Reads one line from the terminal, with echo off when `secret`.
fn prompt(label: &str, secret: bool) -> miette::Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let saved = if secret {
        let saved = tcgetattr(&stdin).into_diagnostic()?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).into_diagnostic()?;
        Some(saved)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
    }
    read.into_diagnostic()?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub fn login(args: LoginArgs) -> miette::Result<()> {
    let host = server_host(args.server.as_deref())?;
    let terminal = std::io::stdin().is_terminal();
    let username = match args.username {
        Some(u) => u,
        None if terminal && !args.password_stdin => prompt("Username: ", false)?,
        None => return Err(RegistryCommandError::NoTerminal { what: "user name" }.into()),
    };
    if username.is_empty() {
        return Err(RegistryCommandError::Empty("user name").into());
    }
    let password = if args.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .lock()
            .read_to_string(&mut text)
            .into_diagnostic()?;
        text.trim_end_matches(['\r', '\n']).to_string()
    } else if terminal {
        prompt("Password: ", true)?
    } else {
        return Err(RegistryCommandError::NoTerminal { what: "password" }.into());
    };
    if password.is_empty() {
        return Err(RegistryCommandError::Empty("password").into());
    }
    let options = registry_options(&args.registry);
    let credentials = Credentials { username, password };
    registry::check_login(&host, &options, credentials.clone())?;
    let path = AuthFile::location(options.auth_file.as_deref())?;
    let mut file = AuthFile::load(&path)?;
    file.store(&host, &credentials)?;
    eprintln!("Credentials saved in {}", file.path().display());
    println!("Login Succeeded");
    Ok(())
}

pub fn logout(args: LogoutArgs) -> miette::Result<()> {
    let host = server_host(args.server.as_deref())?;
    let path = AuthFile::location(args.authfile.as_deref())?;
    let mut file = AuthFile::load(&path)?;
    if file.erase(&host)? {
        println!("Removing login credentials for {host}");
    } else {
        println!("Not logged in to {host}");
    }
    Ok(())
}

/// `kiln search`: the flags are checked as docker checks them, then the search is refused with
/// status 1, as docker answers when a registry refuses it (docker's search is the v1 index API
/// of Docker Hub, which no distribution registry serves). Nothing is printed on stdout.
pub fn search(args: SearchArgs) -> miette::Result<()> {
    if args.limit > 100 {
        return Err(RegistryCommandError::SearchLimit(args.limit).into());
    }
    for f in &args.filter {
        let (key, value) = f.split_once('=').unwrap_or((f.as_str(), ""));
        let valid = match key {
            "stars" => value.parse::<u32>().is_ok(),
            "is-official" | "is-automated" => matches!(value, "true" | "false"),
            _ => false,
        };
        if !valid {
            return Err(RegistryCommandError::SearchFilter(f.clone()).into());
        }
    }
    let (host, term) = search_target(&args.term);
    let hint = if host == "docker.io" {
        format!("Docker Hub's search is on the web: https://hub.docker.com/search?q={term}; `kiln pull NAME` then fetches an image by name")
    } else {
        "`kiln pull REGISTRY/NAME[:TAG]` fetches an image by name".to_string()
    };
    Err(RegistryCommandError::SearchRefused {
        host: host.to_string(),
        term: term.to_string(),
        hint,
    }
    .into())
}

/// The registry and the term of `docker search [REGISTRY/]TERM`: the part before the first
/// `/` is a registry when it looks like a host (a `.` or `:`, or `localhost`), as docker reads it.
fn search_target(term: &str) -> (&str, &str) {
    match term.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => (host, rest),
        _ => ("docker.io", term),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms() {
        let p = parse_platform("linux/arm/v7").unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm", Some("v7"))
        );
        assert!(parse_platform("linux").is_err());
        assert!(parse_platform("linux//x").is_err());
        assert!(parse_platform("a/b/c/d").is_err());
    }

    #[test]
    fn servers() {
        assert_eq!(server_host(None).unwrap(), "docker.io");
        assert_eq!(
            server_host(Some("https://index.docker.io/v1/")).unwrap(),
            "docker.io"
        );
        assert_eq!(
            server_host(Some("127.0.0.1:5000")).unwrap(),
            "127.0.0.1:5000"
        );
        assert_eq!(
            server_host(Some("https://127.0.0.1:5000/v2/")).unwrap(),
            "127.0.0.1:5000"
        );
        assert!(server_host(Some("bad host")).is_err());
    }

    #[test]
    fn search_targets() {
        assert_eq!(search_target("webdriver"), ("docker.io", "webdriver"));
        assert_eq!(
            search_target("selenium/webdriver"),
            ("docker.io", "selenium/webdriver")
        );
        assert_eq!(
            search_target("127.0.0.1:5000/webdriver"),
            ("127.0.0.1:5000", "webdriver")
        );
        assert_eq!(search_target("localhost/x"), ("localhost", "x"));
    }
}
