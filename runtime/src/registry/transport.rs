//! One registry's HTTP conversation: the agent (TLS with the system's CA certificates plus
//! per-registry CA directories, or no verification with `--tls-verify=false`), the scheme
//! (plain http is allowed for loopback registries only), authentication (basic, or bearer
//! tokens from the realm a `WWW-Authenticate` challenge names), and retries with backoff.
//!
//! Must not: know manifests or the store; send credentials over plain http to anything but a
//! loopback registry; put a password in an error or a log line.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::credentials::{AuthFile, Credentials};
use super::{RegistryError, RegistryOptions, Result};

/// Attempts of one operation before giving up (dropped connections, 5xx, 429).
const ATTEMPTS: u32 = 5;
/// The first pause between attempts; doubled after each failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Largest error body read to find the registry's message.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// Largest token response accepted.
const TOKEN_LIMIT: u64 = 1024 * 1024;

/// How a registry asked to be authenticated (`WWW-Authenticate` on `GET /v2/`).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A connection to one registry, authenticated for a set of repository scopes.
pub struct Client {
    /// The registry as references name it: `docker.io`, `127.0.0.1:5000`.
    host: String,
    /// `https://registry-1.docker.io`, `http://127.0.0.1:5000`.
    base: String,
    agent: ureq::Agent,
    credentials: Option<Credentials>,
    challenge: Option<Challenge>,
    /// Scopes asked of the token server (`repository:team/app:pull,push`).
    scopes: Mutex<Vec<String>>,
    /// The `Authorization` header value in use, if any.
    authorization: Mutex<Option<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("host", &self.host)
            .field("base", &self.base)
            .finish()
    }
}

/// A request body.
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`, reported through `progress` as they are sent.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
        progress: &'a (dyn Fn(u64) + Sync),
    },
}

/// True for hosts that may be spoken to over plain http: `localhost` and 127.0.0.0/8 (and
/// `[::1]`), with or without a port.
pub fn is_loopback(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.split(':').next().unwrap_or(host)
    };
    if name == "localhost" || name == "::1" {
        return true;
    }
    name.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The API host for a registry name: Docker Hub's API lives at `registry-1.docker.io`.
fn api_host(host: &str) -> &str {
    if host == "docker.io" {
        "registry-1.docker.io"
    } else {
        host
    }
}

impl Client {
    /// Connects to `host`: decides the scheme, reads the credentials (`credentials`, else the
    /// auth file's), pings `/v2/` and authenticates for `scopes`.
    pub fn connect(
        host: &str,
        options: &RegistryOptions,
        credentials: Option<Credentials>,
        scopes: Vec<String>,
    ) -> Result<Client> {
        let credentials = match credentials {
            Some(c) => Some(c),
            None => {
                let path = AuthFile::location(options.auth_file.as_deref())?;
                AuthFile::load(&path)?.get(host)?
            }
        };
        let agent = ureq::AgentBuilder::new()
            .tls_config(tls_config(host, options)?)
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(120))
            .timeout_write(Duration::from_secs(120))
            .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
            .user_agent(concat!("kiln/", env!("CARGO_PKG_VERSION")))
            .build();
        let mut client = Client {
            host: host.to_string(),
            base: format!("https://{}", api_host(host)),
            agent,
            credentials,
            challenge: None,
            scopes: Mutex::new(scopes),
            authorization: Mutex::new(None),
        };
        client.challenge = client.ping()?;
        client.authenticate(None)?;
        Ok(client)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    /// `GET /v2/` without credentials: learns the scheme (https, or http for a loopback
    /// registry without TLS) and the challenge.
    fn ping(&mut self) -> Result<Option<Challenge>> {
        let response = match self.ping_once() {
            Err(RegistryError::Unreachable { .. }) if is_loopback(&self.host) => {
                self.base = format!("http://{}", self.host);
                self.ping_once()?
            }
            other => other?,
        };
        Ok(match response {
            Ok(_) => None,
            Err(www_authenticate) => parse_challenge(&www_authenticate),
        })
    }

    /// One ping: Ok(Ok) when open, Ok(Err(header)) on a 401 challenge.
    fn ping_once(&self) -> Result<std::result::Result<(), String>> {
        let url = format!("{}/v2/", self.base);
        match self.agent.get(&url).call() {
            Ok(_) => Ok(Ok(())),
            Err(ureq::Error::Status(401, response)) => Ok(Err(response
                .header("WWW-Authenticate")
                .unwrap_or("")
                .to_string())),
            // Some registries answer 404 on /v2/ yet serve the API.
            Err(ureq::Error::Status(404, _)) => Ok(Ok(())),
            Err(e) => Err(self.error(e, "GET /v2/")),
        }
    }

    /// Sets the `Authorization` header for the challenge: basic credentials, or a token for
    /// the scopes (with `extra_scope` added, from an `insufficient_scope` answer).
    fn authenticate(&self, extra_scope: Option<&str>) -> Result<()> {
        let header = match &self.challenge {
            None => None,
            Some(Challenge::Basic) => self.credentials.as_ref().map(Credentials::basic_header),
            Some(Challenge::Bearer { realm, service }) => {
                let scopes = {
                    let mut scopes = self.scopes.lock().map(|s| s.clone()).unwrap_or_default();
                    if let Some(extra) = extra_scope {
                        for s in extra.split(' ').filter(|s| !s.is_empty()) {
                            if !scopes.iter().any(|x| x == s) {
                                scopes.push(s.to_string());
                            }
                        }
                        if let Ok(mut kept) = self.scopes.lock() {
                            kept.clone_from(&scopes);
                        }
                    }
                    scopes
                };
                Some(format!(
                    "Bearer {}",
                    self.token(realm, service.as_deref(), &scopes)?
                ))
            }
        };
        if let Ok(mut slot) = self.authorization.lock() {
            *slot = header;
        }
        Ok(())
    }

    /// Asks the token server for a token (with the credentials as basic auth, when there are
    /// any; anonymously otherwise).
    fn token(&self, realm: &str, service: Option<&str>, scopes: &[String]) -> Result<String> {
        let fail = |message: String| RegistryError::Token {
            host: self.host.clone(),
            realm: realm.to_string(),
            message,
        };
        let mut request = self.agent.get(realm);
        if let Some(service) = service {
            request = request.query("service", service);
        }
        for scope in scopes {
            request = request.query("scope", scope);
        }
        if let Some(c) = &self.credentials {
            request = request
                .query("account", &c.username)
                .set("Authorization", &c.basic_header());
        }
        let response = match request.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(401, _)) if self.credentials.is_some() => {
                return Err(RegistryError::Unauthorized {
                    host: self.host.clone(),
                    user: self.credentials.as_ref().map(|c| c.username.clone()),
                })
            }
            Err(ureq::Error::Status(code, r)) => {
                return Err(fail(format!("HTTP {code}: {}", error_message(r))))
            }
            Err(ureq::Error::Transport(t)) => return Err(fail(t.to_string())),
        };
        let mut body = Vec::new();
        response
            .into_reader()
            .take(TOKEN_LIMIT)
            .read_to_end(&mut body)
            .map_err(|e| fail(e.to_string()))?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("the answer is not a token document: {e}")))?;
        answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail("the answer has no token".to_string()))
    }

    /// The full URL of an API path (`/v2/...`), or `location` resolved against the registry
    /// (upload URLs may be relative).
    pub fn url(&self, location: &str) -> Result<String> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Ok(location.to_string());
        }
        let base = url::Url::parse(&self.base).map_err(|e| RegistryError::BadDocument {
            host: self.host.clone(),
            what: "the registry address".to_string(),
            reason: e.to_string(),
        })?;
        base.join(location)
            .map(|u| u.to_string())
            .map_err(|e| RegistryError::BadDocument {
                host: self.host.clone(),
                what: format!("the location `{location}`"),
                reason: e.to_string(),
            })
    }

    /// Sends one request (no retries; see [`Client::retrying`]). A 401 renews the token once
    /// (with the scope the registry asked for) and sends again.
    pub fn send(
        &self,
        method: &str,
        location: &str,
        headers: &[(&str, &str)],
        body: &Body<'_>,
        what: &str,
    ) -> Result<ureq::Response> {
        let url = self.url(location)?;
        let mut renewed = false;
        loop {
            let mut request = self.agent.request(method, &url);
            for (k, v) in headers {
                request = request.set(k, v);
            }
            if let Some(auth) = self.authorization.lock().ok().and_then(|a| a.clone()) {
                request = request.set("Authorization", &auth);
            }
            let result = match body {
                Body::Empty => request.call(),
                Body::Bytes(bytes) => request
                    .set("Content-Length", &bytes.len().to_string())
                    .send_bytes(bytes),
                Body::File {
                    path,
                    offset,
                    len,
                    progress,
                } => {
                    let mut file = fs::File::open(path).map_err(|e| {
                        RegistryError::Store(crate::store::StoreError::Io {
                            action: "open",
                            path: path.to_path_buf(),
                            error: e,
                        })
                    })?;
                    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(*offset)).map_err(
                        |e| {
                            RegistryError::Store(crate::store::StoreError::Io {
                                action: "read",
                                path: path.to_path_buf(),
                                error: e,
                            })
                        },
                    )?;
                    let reader = CountingReader {
                        inner: file.take(*len),
                        done: 0,
                        progress: *progress,
                    };
                    request.set("Content-Length", &len.to_string()).send(reader)
                }
            };
            match result {
                Ok(response) => return Ok(response),
                Err(ureq::Error::Status(401, response)) => {
                    let header = response
                        .header("WWW-Authenticate")
                        .unwrap_or("")
                        .to_string();
                    let challenge = parse_challenge(&header);
                    let may_renew = !renewed
                        && matches!(challenge, Some(Challenge::Bearer { .. }))
                        && !matches!(body, Body::File { .. });
                    if may_renew {
                        renewed = true;
                        let scope = challenge_params(&header).remove("scope");
                        self.authenticate(scope.as_deref())?;
                        continue;
                    }
                    return Err(self.unauthorized(what));
                }
                Err(e) => return Err(self.error(e, what)),
            }
        }
    }

    fn unauthorized(&self, what: &str) -> RegistryError {
        match &self.credentials {
            Some(c) => RegistryError::Unauthorized {
                host: self.host.clone(),
                user: Some(c.username.clone()),
            },
            None => RegistryError::LoginRequired {
                host: self.host.clone(),
                what: what.to_string(),
            },
        }
    }

    /// Turns a ureq error into ours, with the registry's own message for HTTP errors.
    pub fn error(&self, error: ureq::Error, what: &str) -> RegistryError {
        match error {
            ureq::Error::Status(401, _) => self.unauthorized(what),
            ureq::Error::Status(403, r) => RegistryError::Denied {
                host: self.host.clone(),
                what: what.to_string(),
                message: error_message(r),
            },
            ureq::Error::Status(404, _) => RegistryError::NotFound {
                host: self.host.clone(),
                what: what.to_string(),
            },
            ureq::Error::Status(status, r) => RegistryError::Status {
                host: self.host.clone(),
                what: what.to_string(),
                status,
                message: error_message(r),
            },
            ureq::Error::Transport(t) => {
                if is_certificate_error(&t) {
                    RegistryError::Certificate {
                        host: self.host.clone(),
                        message: t.to_string(),
                    }
                } else {
                    RegistryError::Unreachable {
                        host: self.host.clone(),
                        message: format!("{what}: {t}"),
                    }
                }
            }
        }
    }

    /// Runs `attempt` until it succeeds, fails with an error that is not worth retrying, or
    /// has failed [`ATTEMPTS`] times; waits 0.2 s, 0.4 s, ... between attempts. `on_retry`
    /// hears about each failure that will be retried.
    pub fn retrying<T>(
        &self,
        what: &str,
        on_retry: impl Fn(u32, &RegistryError),
        mut attempt: impl FnMut() -> Result<T>,
    ) -> Result<T> {
        let mut pause = FIRST_BACKOFF;
        let mut n = 1;
        loop {
            match attempt() {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && n < ATTEMPTS => {
                    on_retry(n, &e);
                    std::thread::sleep(pause);
                    pause *= 2;
                    n += 1;
                }
                Err(e) if e.is_retryable() => {
                    return Err(RegistryError::GaveUp {
                        what: what.to_string(),
                        attempts: n,
                        last: Box::new(e),
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Checks credentials against a registry (what `kiln login` does before storing them).
pub fn check_login(host: &str, options: &RegistryOptions, credentials: Credentials) -> Result<()> {
    let client = Client::connect(host, options, Some(credentials), Vec::new())?;
    match client.challenge {
        // An open registry accepts anything, as docker login does.
        None => Ok(()),
        Some(_) => client
            .send("GET", "/v2/", &[], &Body::Empty, "logging in")
            .map(|_| ()),
    }
}

struct CountingReader<'a, R> {
    inner: R,
    done: u64,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl<R: Read> Read for CountingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        (self.progress)(self.done);
        Ok(n)
    }
}

/// The registry's message from an error body (`{"errors":[{"code":..,"message":..}]}`), or
/// the HTTP status text.
fn error_message(response: ureq::Response) -> String {
    let status_text = response.status_text().to_string();
    let mut body = Vec::new();
    let _ = response
        .into_reader()
        .take(ERROR_BODY_LIMIT)
        .read_to_end(&mut body);
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Errors>(&body) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|x| format!("{} ({})", x.message, x.code))
            .collect::<Vec<_>>()
            .join("; "),
        _ => status_text,
    }
}

/// Parses `Basic realm=".."` or `Bearer realm="..",service="..",scope=".."`.
fn parse_challenge(header: &str) -> Option<Challenge> {
    let scheme = header.split_whitespace().next()?;
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if scheme.eq_ignore_ascii_case("bearer") {
        let mut params = challenge_params(header);
        let realm = params.remove("realm")?;
        return Some(Challenge::Bearer {
            realm,
            service: params.remove("service"),
        });
    }
    None
}

/// The `key=value` / `key="quoted value"` parameters after the scheme of a challenge.
fn challenge_params(header: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let rest = header
        .trim_start()
        .split_once(char::is_whitespace)
        .map(|(_, r)| r)
        .unwrap_or("");
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.insert(key, value);
    }
    out
}

fn is_certificate_error(t: &ureq::Transport) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(t);
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return matches!(
                    tls,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                );
            }
        }
        source = e.source();
    }
    false
}

/// Directories whose `*.crt` files are extra CA certificates for `host`.
fn ca_dirs(host: &str, options: &RegistryOptions) -> Vec<PathBuf> {
    match &options.cert_dir {
        Some(dir) => vec![dir.clone()],
        None => ["/etc/docker/certs.d", "/etc/containers/certs.d"]
            .iter()
            .map(|d| Path::new(d).join(host))
            .collect(),
    }
}

fn tls_config(host: &str, options: &RegistryOptions) -> Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::CaCertificates {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
    if !options.tls_verify {
        return Ok(Arc::new(
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are not fatal: a registry with its own CA still works.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    for dir in ca_dirs(host, options) {
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && options.cert_dir.is_none() => {
                continue
            }
            Err(e) => {
                return Err(RegistryError::CaCertificates {
                    path: dir,
                    message: e.to_string(),
                })
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect();
        files.sort();
        for path in files {
            let fail = |message: String| RegistryError::CaCertificates {
                path: path.clone(),
                message,
            };
            for cert in CertificateDer::pem_file_iter(&path).map_err(|e| fail(e.to_string()))? {
                let cert = cert.map_err(|e| fail(e.to_string()))?;
                roots.add(cert).map_err(|e| fail(e.to_string()))?;
            }
        }
    }
    Ok(Arc::new(
        builder.with_root_certificates(roots).with_no_client_auth(),
    ))
}

/// `--tls-verify=false`: any certificate is accepted (signatures are still checked, so the
/// handshake itself is sound).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "docker.io",
            "10.0.0.1:5000",
            "example.com:5000",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into())
            })
        );
        let p = challenge_params(
            r#"Bearer realm="r", scope="repository:x:pull", error=insufficient_scope"#,
        );
        assert_eq!(
            p.get("scope").map(String::as_str),
            Some("repository:x:pull")
        );
        assert_eq!(
            p.get("error").map(String::as_str),
            Some("insufficient_scope")
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge(""), None);
    }
}
