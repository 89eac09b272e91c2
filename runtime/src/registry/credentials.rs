//! Registry credentials in Docker's `config.json` format, so `docker login` works for kiln
//! and `kiln login` works for docker: `auths.<server>.auth` (base64 of `user:password`), and
//! the credential helpers `credHelpers.<server>` / `credsStore` (`docker-credential-NAME`
//! programs speaking JSON on stdin/stdout) when they are installed.
//!
//! Owns reading, updating and atomically rewriting that file (keeping every key kiln does not
//! know) and calling helpers. Must not: print or log a password (`Credentials`' Debug hides
//! it), or talk to a registry.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{Map, Value};

/// The key docker uses for Docker Hub in `auths`.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl Credentials {
    /// The value of an `Authorization: Basic` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CredentialsError {
    #[error("no credentials file location: neither DOCKER_CONFIG nor HOME is set")]
    #[diagnostic(
        code(kiln::credentials::no_home),
        help("set DOCKER_CONFIG to the directory holding config.json")
    )]
    NoLocation,
    #[error("cannot {action} {}: {error}", path.display())]
    #[diagnostic(code(kiln::credentials::io))]
    Io {
        action: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    #[error("{} is not a valid Docker config file: {reason}", path.display())]
    #[diagnostic(
        code(kiln::credentials::bad_file),
        help("it must be a JSON object such as {{\"auths\":{{}}}}; fix or remove it")
    )]
    BadFile { path: PathBuf, reason: String },
    #[error("credential helper docker-credential-{helper} failed to {action} credentials for {server}: {message}")]
    #[diagnostic(code(kiln::credentials::helper))]
    Helper {
        helper: String,
        action: &'static str,
        server: String,
        message: String,
    },
}

type Result<T, E = CredentialsError> = std::result::Result<T, E>;

/// Docker's config file, read whole; unknown keys are kept when it is rewritten.
#[derive(Debug)]
pub struct AuthFile {
    path: PathBuf,
    doc: Map<String, Value>,
}

/// The `auths` key for a registry host: Docker Hub's historical URL, else the host itself.
pub fn server_key(host: &str) -> String {
    if host == "docker.io" {
        DOCKER_HUB_KEY.to_string()
    } else {
        host.to_string()
    }
}

/// The host an `auths` key names: `https://host:5000/v2/` and `host:5000` both name
/// `host:5000`; Docker Hub's several spellings name `docker.io`.
fn key_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    }
}

impl AuthFile {
    /// Where the file is: `explicit`, else `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`.
    pub fn location(explicit: Option<&Path>) -> Result<PathBuf> {
        if let Some(p) = explicit {
            return Ok(p.to_path_buf());
        }
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(dir).join("config.json"));
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => Ok(PathBuf::from(home).join(".docker/config.json")),
            None => Err(CredentialsError::NoLocation),
        }
    }

    /// Reads the file; a missing file is an empty one.
    pub fn load(path: &Path) -> Result<AuthFile> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(AuthFile {
                    path: path.to_path_buf(),
                    doc: Map::new(),
                })
            }
            Err(error) => {
                return Err(CredentialsError::Io {
                    action: "read",
                    path: path.to_path_buf(),
                    error,
                })
            }
        };
        let bad = |reason: String| CredentialsError::BadFile {
            path: path.to_path_buf(),
            reason,
        };
        let value: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?
        };
        match value {
            Value::Object(doc) => Ok(AuthFile {
                path: path.to_path_buf(),
                doc,
            }),
            _ => Err(bad("the top level is not an object".to_string())),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The helper for `host`: `credHelpers.<host>`, else `credsStore`, when that program is
    /// installed.
    fn helper(&self, host: &str) -> Option<String> {
        let from_map = self
            .doc
            .get("credHelpers")
            .and_then(Value::as_object)
            .and_then(|m| {
                m.iter()
                    .find(|(k, _)| key_host(k) == host)
                    .and_then(|(_, v)| v.as_str())
            });
        let name = from_map.or_else(|| self.doc.get("credsStore").and_then(Value::as_str))?;
        let program = format!("docker-credential-{name}");
        on_path(&program).then(|| name.to_string())
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.doc.get("auths").and_then(Value::as_object)
    }

    /// The credentials stored for `host`, if any.
    pub fn get(&self, host: &str) -> Result<Option<Credentials>> {
        if let Some(helper) = self.helper(host) {
            if let Some(c) = helper_get(&helper, &server_key(host))? {
                return Ok(Some(c));
            }
        }
        let Some(auths) = self.auths() else {
            return Ok(None);
        };
        // The exact key first, then any spelling that names the same host.
        let entry = auths
            .get(&server_key(host))
            .or_else(|| {
                auths
                    .iter()
                    .find(|(k, _)| key_host(k) == host)
                    .map(|(_, v)| v)
            })
            .and_then(Value::as_object);
        let Some(entry) = entry else {
            return Ok(None);
        };
        let bad = |reason: String| CredentialsError::BadFile {
            path: self.path.clone(),
            reason,
        };
        if let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| bad(format!("auths.{host}.auth is not base64: {e}")))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| bad(format!("auths.{host}.auth is not UTF-8")))?;
            let Some((username, password)) = text.split_once(':') else {
                return Err(bad(format!("auths.{host}.auth is not `user:password`")));
            };
            return Ok(Some(Credentials {
                username: username.to_string(),
                password: password.to_string(),
            }));
        }
        let field = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_string);
        match (field("username"), field("password")) {
            (Some(username), Some(password)) => Ok(Some(Credentials { username, password })),
            _ => Ok(None),
        }
    }

    /// Stores credentials for `host` (in its helper when one is configured and installed, else
    /// in `auths`), and rewrites the file.
    pub fn store(&mut self, host: &str, credentials: &Credentials) -> Result<()> {
        let key = server_key(host);
        if let Some(helper) = self.helper(host) {
            helper_store(&helper, &key, credentials)?;
            // Docker leaves an empty entry so `docker login` lists the server.
            self.with_auths(|a| a.insert(key, Value::Object(Map::new())));
        } else {
            let raw = format!("{}:{}", credentials.username, credentials.password);
            let mut entry = Map::new();
            entry.insert(
                "auth".to_string(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(raw)),
            );
            self.with_auths(|a| a.insert(key, Value::Object(entry)));
        }
        self.write()
    }

    /// Removes the credentials for `host`; false when there were none.
    pub fn erase(&mut self, host: &str) -> Result<bool> {
        let key = server_key(host);
        let mut found = false;
        if let Some(helper) = self.helper(host) {
            found |= helper_erase(&helper, &key)?;
        }
        let keys: Vec<String> = self
            .auths()
            .map(|a| a.keys().filter(|k| key_host(k) == host).cloned().collect())
            .unwrap_or_default();
        found |= self.with_auths(|auths| {
            let mut removed = false;
            for k in &keys {
                removed |= auths.remove(k).is_some();
            }
            removed
        });
        if found {
            self.write()?;
        }
        Ok(found)
    }

    /// Runs `change` on the `auths` object (made when missing or not an object).
    fn with_auths<T>(&mut self, change: impl FnOnce(&mut Map<String, Value>) -> T) -> T {
        let mut auths = match self.doc.remove("auths") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let out = change(&mut auths);
        self.doc.insert("auths".to_string(), Value::Object(auths));
        out
    }

    /// Writes the file atomically (a temporary file beside it, mode 0600, renamed over it).
    fn write(&self) -> Result<()> {
        let io_err = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |error| CredentialsError::Io {
                action,
                path,
                error,
            }
        };
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        let mut bytes = serde_json::to_vec_pretty(&Value::Object(self.doc.clone()))
            .map_err(|e| io_err("encode", &self.path)(io::Error::other(e)))?;
        bytes.push(b'\n');
        let mut tmp = tempfile::Builder::new()
            .prefix(".config.json.")
            .tempfile_in(dir)
            .map_err(io_err("create a temporary file in", dir))?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_err("set permissions of", tmp.path()))?;
        tmp.write_all(&bytes)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(io_err("write", tmp.path()))?;
        tmp.persist(&self.path)
            .map_err(|e| io_err("replace", &self.path)(e.error))?;
        Ok(())
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            fs::metadata(dir.join(program))
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
    })
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin; returns stdout, or the
/// helper's message when it fails.
fn run_helper(
    helper: &str,
    action: &'static str,
    server: &str,
    input: &[u8],
) -> Result<std::result::Result<Vec<u8>, String>> {
    let fail = |message: String| CredentialsError::Helper {
        helper: helper.to_string(),
        action,
        server: server.to_string(),
        message,
    };
    let mut child = Command::new(format!("docker-credential-{helper}"))
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).map_err(|e| fail(e.to_string()))?;
    }
    let out = child.wait_with_output().map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(Ok(out.stdout))
    } else {
        // Helpers print their error on stdout; never echo the input (it may hold a secret).
        let mut message = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if message.is_empty() {
            message = String::from_utf8_lossy(&out.stderr).trim().to_string();
        }
        Ok(Err(message))
    }
}

fn helper_get(helper: &str, server: &str) -> Result<Option<Credentials>> {
    match run_helper(helper, "get", server, server.as_bytes())? {
        Ok(stdout) => {
            let doc: BTreeMap<String, Value> =
                serde_json::from_slice(&stdout).map_err(|e| CredentialsError::Helper {
                    helper: helper.to_string(),
                    action: "get",
                    server: server.to_string(),
                    message: format!("its answer is not JSON: {e}"),
                })?;
            let field = |k: &str| {
                doc.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            Ok(Some(Credentials {
                username: field("Username"),
                password: field("Secret"),
            }))
        }
        Err(message) if message.contains("credentials not found") => Ok(None),
        Err(message) => Err(CredentialsError::Helper {
            helper: helper.to_string(),
            action: "get",
            server: server.to_string(),
            message,
        }),
    }
}

fn helper_store(helper: &str, server: &str, c: &Credentials) -> Result<()> {
    let input =
        serde_json::json!({"ServerURL": server, "Username": c.username, "Secret": c.password});
    match run_helper(helper, "store", server, input.to_string().as_bytes())? {
        Ok(_) => Ok(()),
        Err(message) => Err(CredentialsError::Helper {
            helper: helper.to_string(),
            action: "store",
            server: server.to_string(),
            message,
        }),
    }
}

fn helper_erase(helper: &str, server: &str) -> Result<bool> {
    match run_helper(helper, "erase", server, server.as_bytes())? {
        Ok(_) => Ok(true),
        Err(message) if message.contains("credentials not found") => Ok(false),
        Err(message) => Err(CredentialsError::Helper {
            helper: helper.to_string(),
            action: "erase",
            server: server.to_string(),
            message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_hosts_as_docker_writes_them() {
        assert_eq!(key_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(key_host("https://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(key_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(server_key("docker.io"), DOCKER_HUB_KEY);
        assert_eq!(server_key("localhost:5000"), "localhost:5000");
    }

    #[test]
    fn stores_and_reads_back_keeping_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(
            &path,
            r#"{"auths":{"other:1":{"auth":"eDp5"}},"psFormat":"x"}"#,
        )
        .unwrap();
        let mut file = AuthFile::load(&path).unwrap();
        let creds = Credentials {
            username: "u".into(),
            password: "p:w".into(),
        };
        file.store("127.0.0.1:5000", &creds).unwrap();
        let again = AuthFile::load(&path).unwrap();
        assert_eq!(again.get("127.0.0.1:5000").unwrap(), Some(creds));
        assert_eq!(
            again.get("other:1").unwrap().map(|c| c.username),
            Some("x".to_string())
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains("psFormat"), "{text}");
        assert!(!text.contains("p:w"), "the password is stored encoded");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut again = again;
        assert!(again.erase("127.0.0.1:5000").unwrap());
        assert!(!again.erase("127.0.0.1:5000").unwrap());
        assert_eq!(
            AuthFile::load(&path)
                .unwrap()
                .get("127.0.0.1:5000")
                .unwrap(),
            None
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let c = Credentials {
            username: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn refuses_a_broken_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        fs::write(&path, "[1]").unwrap();
        assert!(AuthFile::load(&path).is_err());
        fs::write(&path, r#"{"auths":{"h":{"auth":"!!"}}}"#).unwrap();
        assert!(AuthFile::load(&path).unwrap().get("h").is_err());
    }
}
