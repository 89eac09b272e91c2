//! The OCI distribution client: `kiln push`, `kiln pull`, `kiln login` and the base images a
//! build pulls, against any registry speaking the OCI distribution spec v1.1 or Docker's
//! registry v2 API.
//!
//! Owns the HTTP conversation (`transport`: TLS, plain http for loopback registries, basic
//! and bearer-token auth, retries with backoff), Docker's credential file (`credentials`),
//! and moving images between a registry and the store (`pull`, `push`).
//!
//! Invariant: nothing enters the store unverified. Every blob is streamed into a
//! [`crate::store::BlobWriter`] and committed only when its sha256 equals the digest the
//! manifest names; every manifest's bytes are hashed and compared with the digest asked for
//! (or the one an index names, or the registry's `Docker-Content-Digest`) before they are
//! stored. A dropped connection or a wrong byte leaves nothing behind in the store.
//! Push sends the exact bytes the store holds, so a manifest keeps its digest.
//!
//! Must not: parse Dockerfiles or image references (it receives an
//! [`crate::image::ImageName`]), or write into the store except through its blob and index
//! functions.

pub mod credentials;
mod pull;
mod push;
mod resolver;
mod transport;

use std::path::PathBuf;

use crate::oci::Digest;
use crate::store::StoreError;

pub use credentials::{Credentials, CredentialsError};
pub(crate) use pull::{fetch_blob, fetch_manifest, fetch_small_blob};
pub use pull::{pull, PullOptions, Pulled};
pub use push::{push, Pushed};
pub(crate) use push::{push_document, Document};
pub use resolver::PullingResolver;
pub use transport::{check_login, Client};

/// How kiln talks to registries: TLS settings and where credentials come from.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// Verify TLS certificates (`--tls-verify=false` turns it off).
    pub tls_verify: bool,
    /// A directory of extra CA certificates (`*.crt`) for every registry (`--cert-dir`). Without
    /// it, `/etc/docker/certs.d/<host>/` and `/etc/containers/certs.d/<host>/` are read.
    pub cert_dir: Option<PathBuf>,
    /// Docker's `config.json` (default: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`).
    pub auth_file: Option<PathBuf>,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            tls_verify: true,
            cert_dir: None,
            auth_file: None,
        }
    }
}

/// What a transfer reports, per blob, for a progress display.
#[derive(Debug, Clone)]
pub enum TransferEvent {
    /// A blob transfer starts (`size` bytes).
    Start { digest: Digest, size: u64 },
    /// `done` of the blob's bytes have moved so far.
    Bytes { digest: Digest, done: u64 },
    /// The blob was already there (in the store, or in the registry).
    Exists { digest: Digest },
    /// The registry mounted the blob from another repository.
    Mounted { digest: Digest, from: String },
    /// The blob is transferred and verified.
    Done { digest: Digest },
    /// An attempt failed and is being retried.
    Retry {
        digest: Digest,
        attempt: u32,
        error: String,
    },
}

/// Receives transfer events; called from several threads at once.
pub trait TransferProgress: Sync {
    fn event(&self, event: TransferEvent);
}

/// Ignores every event.
pub struct NoProgress;

impl TransferProgress for NoProgress {
    fn event(&self, _event: TransferEvent) {}
}

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum RegistryError {
    #[error("cannot reach registry {host}: {message}")]
    #[diagnostic(
        code(kiln::registry::unreachable),
        help("check the registry's address and that it is running")
    )]
    Unreachable { host: String, message: String },
    #[error("the TLS certificate of registry {host} is not trusted: {message}")]
    #[diagnostic(
        code(kiln::registry::certificate),
        help("put the registry's CA certificate in /etc/docker/certs.d/{host}/ca.crt or a directory given with --cert-dir, or pass --tls-verify=false")
    )]
    Certificate { host: String, message: String },
    #[error("registry {host} refused the credentials{}", user.as_deref().map(|u| format!(" of user `{u}`")).unwrap_or_default())]
    #[diagnostic(
        code(kiln::registry::unauthorized),
        help("check the user name and password; `kiln login {host}` stores them")
    )]
    Unauthorized { host: String, user: Option<String> },
    #[error("registry {host} requires authentication for {what}")]
    #[diagnostic(
        code(kiln::registry::login_required),
        help("log in first: `kiln login {host}`")
    )]
    LoginRequired { host: String, what: String },
    #[error("registry {host} denied {what}: {message}")]
    #[diagnostic(
        code(kiln::registry::denied),
        help("the account lacks the permission, or the repository does not exist")
    )]
    Denied {
        host: String,
        what: String,
        message: String,
    },
    #[error("{what} is not in registry {host}")]
    #[diagnostic(
        code(kiln::registry::not_found),
        help("check the repository name and tag")
    )]
    NotFound { host: String, what: String },
    #[error("registry {host} answered HTTP {status} to {what}: {message}")]
    #[diagnostic(code(kiln::registry::status))]
    Status {
        host: String,
        what: String,
        status: u16,
        message: String,
    },
    #[error("the token server {realm} of registry {host} failed: {message}")]
    #[diagnostic(code(kiln::registry::token))]
    Token {
        host: String,
        realm: String,
        message: String,
    },
    #[error("{what} from registry {host} has digest {actual}, expected {expected}")]
    #[diagnostic(
        code(kiln::registry::digest_mismatch),
        help("the data was corrupted in transit or the registry is broken; nothing was stored")
    )]
    DigestMismatch {
        host: String,
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{what} from registry {host} is not usable: {reason}")]
    #[diagnostic(code(kiln::registry::bad_document))]
    BadDocument {
        host: String,
        what: String,
        reason: String,
    },
    #[error("{reference} has no image for platform {wanted} (it has: {available})")]
    #[diagnostic(
        code(kiln::registry::no_platform),
        help("pick one of the listed platforms with --platform")
    )]
    NoPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    #[error("cannot read CA certificates from {}: {message}", path.display())]
    #[diagnostic(code(kiln::registry::ca))]
    CaCertificates { path: PathBuf, message: String },
    #[error("{what} failed after {attempts} attempts: {last}")]
    #[diagnostic(code(kiln::registry::retries))]
    GaveUp {
        what: String,
        attempts: u32,
        last: Box<RegistryError>,
    },
    #[error(transparent)]
    #[diagnostic(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    /// Errors worth another attempt: dropped connections, 5xx, 429, truncated bodies.
    pub fn is_retryable(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            // A truncated or corrupted download: the next attempt may be whole.
            RegistryError::DigestMismatch { .. } => true,
            _ => false,
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Runs `work` on every item with at most `workers` threads; the first error wins (the other
/// items already started finish, no new ones start).
pub(crate) fn in_parallel<T: Sync>(
    items: &[T],
    workers: usize,
    work: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, items.len().max(1)) {
            scope.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { return };
                if let Err(e) = work(item) {
                    failed.store(true, Ordering::Relaxed);
                    if let Ok(mut slot) = first_error.lock() {
                        slot.get_or_insert(e);
                    }
                    return;
                }
            });
        }
    });
    match first_error.into_inner() {
        Ok(Some(e)) => Err(e),
        Ok(None) => Ok(()),
        Err(poisoned) => match poisoned.into_inner() {
            Some(e) => Err(e),
            None => Ok(()),
        },
    }
}
