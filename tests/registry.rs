//! Registries: kiln push/pull/login against Debian's `docker-registry` (distribution) started
//! by the tests on 127.0.0.1 random ports — one open over plain http, one with htpasswd basic
//! auth behind TLS with a CA made here with `openssl` — checked with docker and skopeo; and a
//! TCP proxy that drops a connection in the middle of a blob, to show that uploads and
//! downloads recover and leave no partial blob in the store.
//!
//! Must not: touch docker images other than the `*kiln-e2e*` tags it makes, or listen
//! anywhere but 127.0.0.1.

use crate::common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

pub(crate) const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Skips (or fails in CI) when a tool the registry tests need is missing.
pub(crate) fn require_tools(tools: &[&str]) -> bool {
    for tool in tools {
        let found = if tool.starts_with('/') {
            Path::new(tool).is_file()
        } else {
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false)
        };
        if !found {
            skip_or_fail(
                tool,
                "not installed (Debian: docker-registry, apache2-utils, openssl)",
            );
            return false;
        }
    }
    true
}

/// A running `docker-registry serve`, killed when dropped.
pub(crate) struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

pub(crate) struct Tls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Registry {
    pub(crate) fn start(tls: Option<&Tls>, htpasswd: Option<&Path>) -> Registry {
        let auth = htpasswd.map(|h| {
            format!(
                "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                h.display()
            )
        });
        Registry::start_with_auth(tls, auth.as_deref())
    }

    /// A registry whose config gets `auth` (a YAML `auth:` section) verbatim.
    fn start_with_auth(tls: Option<&Tls>, auth: Option<&str>) -> Registry {
        let dir = temp_dir();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(t) = tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                t.cert.display(),
                t.key.display()
            ));
        }
        if let Some(auth) = auth {
            config.push_str(auth);
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let registry = Registry { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {port}: {}",
                std::fs::read_to_string(registry.dir.path().join("registry.log"))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        registry
    }

    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A test CA and a server certificate for 127.0.0.1 signed by it (`openssl`).
fn make_tls(dir: &Path) -> Tls {
    let ca = dir.join("ca.crt");
    let ca_key = dir.join("ca.key");
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    let csr = dir.join("server.csr");
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=kiln test CA",
                "-keyout",
            ])
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca),
    );
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&csr),
    );
    run_ok(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert),
    );
    Tls { ca, cert, key }
}

/// A TCP proxy to `target` that cuts one connection once `limit` bytes have gone through it
/// in the chosen direction (`upload`: client to server), then forwards everything.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl Proxy {
    fn start(target: u16, upload: bool, limit: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(true));
        let cut = Arc::new(AtomicBool::new(false));
        let (armed2, cut2) = (armed.clone(), cut.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let counted = Arc::new(AtomicU64::new(0));
                let pipe = |from: TcpStream, to: TcpStream, count: bool| {
                    let (armed, cut, counted) = (armed2.clone(), cut2.clone(), counted.clone());
                    let (a, b) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let (mut from, mut to) = (from, to);
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if count
                                && counted.fetch_add(n as u64, Ordering::Relaxed) + n as u64 > limit
                                && armed.swap(false, Ordering::Relaxed)
                            {
                                cut.store(true, Ordering::Relaxed);
                                let _ = a.shutdown(Shutdown::Both);
                                let _ = b.shutdown(Shutdown::Both);
                                break;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                };
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    upload,
                );
                pipe(server, client, !upload);
            }
        });
        Proxy { port, cut }
    }
}

/// A file of `len` pseudo-random bytes (incompressible, distinct per `seed`).
fn random_file(path: &Path, len: usize, seed: u64) {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut bytes = Vec::with_capacity(len);
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(len);
    write_file(path, &bytes, 0o644);
}

/// A one-layer image in `store` named `name`, from a directory with a `len`-byte file.
fn import_image(store: &KilnStore, name: &str, len: usize, seed: u64) {
    let dir = temp_dir();
    random_file(&dir.path().join("rootfs/data.bin"), len, seed);
    store.kiln_ok([
        "import".as_ref(),
        dir.path().join("rootfs").as_os_str(),
        name.as_ref(),
    ]);
}

/// The sha256 of each layer file a docker-archive's manifest.json lists, in order.
fn layer_digests(tarball: &Path) -> Vec<String> {
    let mut files = std::collections::HashMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(tarball).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        files.insert(path, bytes);
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| sha256_hex(&files[l.as_str().unwrap()]))
        .collect()
}

/// No file of the store's tmp directory or blobs is partial: every blob's name is its
/// sha256, and tmp holds no staged data.
pub(crate) fn assert_store_whole(store: &KilnStore) {
    let blobs = store.root().join("blobs/sha256");
    for e in std::fs::read_dir(&blobs).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert_eq!(
            sha256_file(&e.path()),
            name,
            "blob {name} is not what its name says"
        );
    }
    let mut staged = Vec::new();
    if let Ok(sessions) = std::fs::read_dir(store.root().join("tmp")) {
        for s in sessions.flatten().filter(|s| s.path().is_dir()) {
            for f in std::fs::read_dir(s.path()).unwrap().flatten() {
                staged.push(f.path());
            }
        }
    }
    assert!(staged.is_empty(), "staged files left behind: {staged:?}");
}

fn skopeo_digest(reference: &str, extra: &[&str]) -> String {
    let out = run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .args(extra)
            .arg(format!("docker://{reference}")),
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

fn digest_line(out: &std::process::Output) -> String {
    let text = stdout_text(out);
    text.split_whitespace()
        .find(|w| w.starts_with("sha256:"))
        .unwrap_or_else(|| panic!("no digest in {text}"))
        .to_string()
}

#[test]
fn push_then_docker_and_skopeo_see_the_same_digest() {
    if !require_tools(&[REGISTRY_BIN]) {
        return;
    }
    require_peer!("busybox", "skopeo", "docker");
    let registry = Registry::start(None, None);
    let store = KilnStore::with_busybox();
    let name = format!("{}/kiln-e2e/busybox:1", registry.host());
    store.kiln_ok(["tag", BUSYBOX, &name]);
    let out = store.kiln_ok(["push", &name]);
    let pushed = digest_line(&out);
    assert_eq!(skopeo_digest(&name, &["--tls-verify=false"]), pushed);

    // Pushed again unchanged: one HEAD, no upload.
    let started = Instant::now();
    let again = store.kiln_ok(["push", &name]);
    let took = started.elapsed();
    assert_eq!(digest_line(&again), pushed);
    assert!(
        stderr_text(&again).contains("already exists"),
        "{}",
        stderr_text(&again)
    );
    eprintln!(
        "second push of an unchanged image: {:.3}s",
        took.as_secs_f64()
    );

    // Another repository of the same registry: the layer is mounted, not uploaded.
    let other = format!("{}/kiln-e2e/other:1", registry.host());
    store.kiln_ok(["tag", BUSYBOX, &other]);
    let mounted = store.kiln_ok(["push", &other]);
    assert!(
        stderr_text(&mounted).contains("mounted from kiln-e2e/busybox"),
        "{}",
        stderr_text(&mounted)
    );
    assert_eq!(digest_line(&mounted), pushed);

    // A build in an empty store pulls its FROM image (and --pull checks it again).
    let ctx = temp_dir();
    write_file(
        &ctx.path().join("Dockerfile"),
        format!("FROM {name}\nCOPY a /a\n").as_bytes(),
        0o644,
    );
    write_file(&ctx.path().join("a"), b"a\n", 0o644);
    let fresh = KilnStore::new();
    fresh.kiln_ok([
        "build".as_ref(),
        "-t".as_ref(),
        "kiln-e2e/built:1".as_ref(),
        ctx.path().as_os_str(),
    ]);
    let base: Value = serde_json::from_slice(&fresh.kiln_ok(["inspect", &name]).stdout).unwrap();
    assert!(base.to_string().contains(&pushed), "{base}");
    fresh.kiln_ok([
        "build".as_ref(),
        "--pull".as_ref(),
        "-t".as_ref(),
        "kiln-e2e/built:1".as_ref(),
        ctx.path().as_os_str(),
    ]);

    run_ok(docker().args(["pull", &name]));
    let repo_digests = run_ok(docker().args([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &name,
    ]));
    docker_rmi(&name);
    assert!(
        stdout_text(&repo_digests).contains(&pushed),
        "docker pull saw {} for {pushed}",
        stdout_text(&repo_digests)
    );
}

#[test]
fn docker_push_then_kiln_pull_and_save_match_docker_save() {
    if !require_tools(&[REGISTRY_BIN]) {
        return;
    }
    require_peer!("busybox", "docker");
    let registry = Registry::start(None, None);
    let name = format!("{}/kiln-e2e/from-docker:1", registry.host());
    run_ok(docker().args(["tag", docker_busybox(), &name]));
    run_ok(docker().args(["push", &name]));
    let dir = temp_dir();
    let docker_tar = dir.path().join("docker.tar");
    docker_save(&name, &docker_tar);
    docker_rmi(&name);

    let store = KilnStore::new();
    let out = store.kiln_ok(["pull", &name]);
    assert!(
        stdout_text(&out).contains("Downloaded newer image"),
        "{}",
        stdout_text(&out)
    );
    let kiln_tar = dir.path().join("kiln.tar");
    store.save(&name, &kiln_tar);
    assert_eq!(layer_digests(&kiln_tar), layer_digests(&docker_tar));
    assert_store_whole(&store);
    // Pulled again: nothing to fetch.
    let again = store.kiln_ok(["pull", &name]);
    assert!(
        stdout_text(&again).contains("up to date"),
        "{}",
        stdout_text(&again)
    );
}

#[test]
fn login_over_tls_with_basic_auth() {
    if !require_tools(&[REGISTRY_BIN, "htpasswd", "openssl"]) {
        return;
    }
    require_peer!("busybox", "skopeo");
    let dir = temp_dir();
    let tls = make_tls(dir.path());
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&tls.ca, certs.join("ca.crt")).unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let line = run_ok(Command::new("htpasswd").args(["-Bbn", "kiln", "s3cret-pw"]));
    std::fs::write(&htpasswd, &line.stdout).unwrap();
    let registry = Registry::start(Some(&tls), Some(&htpasswd));
    let host = registry.host();
    let docker_config = dir.path().join("docker-config");
    let cert_dir = certs.to_str().unwrap();
    let store = KilnStore::with_busybox();
    let kiln = |args: &[&str], stdin: &[u8]| {
        run_with_stdin(
            store.cmd().env("DOCKER_CONFIG", &docker_config).args(args),
            stdin,
        )
    };

    // Without the CA: a clear certificate error.
    let untrusted = kiln(
        &["login", "-u", "kiln", "--password-stdin", &host],
        b"s3cret-pw\n",
    );
    assert!(!untrusted.status.success());
    assert!(
        stderr_text(&untrusted).contains("not trusted"),
        "{}",
        stderr_text(&untrusted)
    );

    let wrong = kiln(
        &[
            "login",
            "--cert-dir",
            cert_dir,
            "-u",
            "kiln",
            "--password-stdin",
            &host,
        ],
        b"wrong\n",
    );
    assert!(!wrong.status.success());
    let err = stderr_text(&wrong);
    assert!(
        err.contains("refused the credentials of user `kiln`"),
        "{err}"
    );
    assert!(!docker_config.join("config.json").exists());

    let name = format!("{host}/kiln-e2e/private:1");
    store.kiln_ok(["tag", BUSYBOX, &name]);
    let anonymous = kiln(&["push", "--cert-dir", cert_dir, &name], b"");
    assert!(!anonymous.status.success());
    assert!(
        stderr_text(&anonymous).contains("requires authentication"),
        "{}",
        stderr_text(&anonymous)
    );

    let ok = kiln(
        &[
            "login",
            "--cert-dir",
            cert_dir,
            "-u",
            "kiln",
            "--password-stdin",
            &host,
        ],
        b"s3cret-pw\n",
    );
    assert_success("kiln login", &ok);
    assert!(!stdout_text(&ok).contains("s3cret") && !stderr_text(&ok).contains("s3cret"));
    let config: Value =
        serde_json::from_slice(&std::fs::read(docker_config.join("config.json")).unwrap()).unwrap();
    assert!(config["auths"][&host]["auth"].is_string(), "{config}");

    let pushed = kiln(&["push", "--cert-dir", cert_dir, &name], b"");
    assert_success("kiln push", &pushed);
    // skopeo reads the same config.json.
    let authfile = docker_config.join("config.json");
    assert_eq!(
        skopeo_digest(
            &name,
            &[
                "--cert-dir",
                cert_dir,
                "--authfile",
                authfile.to_str().unwrap()
            ]
        ),
        digest_line(&pushed)
    );
    let fresh = KilnStore::new();
    let pulled = run(fresh.cmd().env("DOCKER_CONFIG", &docker_config).args([
        "pull",
        "--cert-dir",
        cert_dir,
        &name,
    ]));
    assert_success("kiln pull", &pulled);
    // --tls-verify=false works without the CA.
    let insecure = run(fresh.cmd().env("DOCKER_CONFIG", &docker_config).args([
        "pull",
        "--tls-verify=false",
        &name,
    ]));
    assert_success("kiln pull --tls-verify=false", &insecure);

    let out = kiln(&["logout", &host], b"");
    assert_success("kiln logout", &out);
    let config: Value =
        serde_json::from_slice(&std::fs::read(docker_config.join("config.json")).unwrap()).unwrap();
    assert!(config["auths"].get(&host).is_none(), "{config}");
}

#[test]
fn a_dropped_connection_mid_blob_recovers_without_partial_blobs() {
    if !require_tools(&[REGISTRY_BIN]) {
        return;
    }
    let registry = Registry::start(None, None);
    // Larger than one upload chunk (64 MiB), so the upload is chunked and resumes.
    let size = 80 * 1024 * 1024;
    let store = KilnStore::new();

    // Upload cut after 30 MiB.
    let up = Proxy::start(registry.port, true, 30 * 1024 * 1024);
    let name = format!("127.0.0.1:{}/kiln-e2e/big:1", up.port);
    import_image(&store, &name, size, 7);
    let pushed = store.kiln_ok(["push", &name]);
    assert!(
        up.cut.load(Ordering::Relaxed),
        "the proxy never cut the upload"
    );
    assert!(
        stderr_text(&pushed).contains("retrying"),
        "{}",
        stderr_text(&pushed)
    );
    let digest = digest_line(&pushed);

    // Download cut after 20 MiB.
    let down = Proxy::start(registry.port, false, 20 * 1024 * 1024);
    let name = format!("127.0.0.1:{}/kiln-e2e/big:1", down.port);
    let fresh = KilnStore::new();
    let pulled = fresh.kiln_ok(["pull", &name]);
    assert!(
        down.cut.load(Ordering::Relaxed),
        "the proxy never cut the download"
    );
    assert!(
        stderr_text(&pulled).contains("retrying"),
        "{}",
        stderr_text(&pulled)
    );
    assert!(
        stdout_text(&pulled).contains(&digest),
        "{}",
        stdout_text(&pulled)
    );
    assert_store_whole(&fresh);
    let dir = temp_dir();
    fresh.save(&name, &dir.path().join("x.tar"));
}

/// The two-platform fixture: two one-layer images pushed by kiln from `store` as
/// `HOST/kiln-e2e/multi:{amd64,arm64}`, then an OCI index naming them linux/amd64 and
/// linux/arm64, PUT with curl as `multi:both`. Returns the index's reference, its exact bytes
/// and the two manifest descriptors (amd64 first). (Both configs say the host's platform: as
/// docker does, a manifest chosen from an index is taken for the platform the index names.)
fn two_platform_index(store: &KilnStore, host: &str) -> (String, Vec<u8>, Vec<Value>) {
    let mut descriptors = Vec::new();
    for (arch, seed) in [("amd64", 1u64), ("arm64", 2)] {
        let name = format!("{host}/kiln-e2e/multi:{arch}");
        import_image(store, &name, 4096, seed);
        let pushed = store.kiln_ok(["push", &name]);
        let digest = digest_line(&pushed);
        let size: u64 = stdout_text(&pushed)
            .split_whitespace()
            .last()
            .unwrap()
            .parse()
            .unwrap();
        descriptors.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "platform": {"os": "linux", "architecture": arch}
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": descriptors
    })
    .to_string();
    let put = run(Command::new("curl").args([
        "-sf",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.index.v1+json",
        "--data-binary",
        &index,
        &format!("http://{host}/v2/kiln-e2e/multi/manifests/both"),
    ]));
    assert_success("curl PUT index", &put);
    (
        format!("{host}/kiln-e2e/multi:both"),
        index.into_bytes(),
        descriptors,
    )
}

#[test]
fn a_two_platform_index_pulls_each_platform() {
    if !require_tools(&[REGISTRY_BIN, "curl"]) {
        return;
    }
    let registry = Registry::start(None, None);
    let store = KilnStore::new();
    let (both, _, descriptors) = two_platform_index(&store, &registry.host());
    for (i, platform) in ["linux/amd64", "linux/arm64"].iter().enumerate() {
        let fresh = KilnStore::new();
        let out = fresh.kiln(["pull", "--platform", platform, "-q", &both]);
        let want = descriptors[i]["digest"].as_str().unwrap();
        assert_success("kiln pull --platform", &out);
        assert_eq!(stdout_text(&out).trim(), want);
    }
    let fresh = KilnStore::new();
    let out = fresh.kiln(["pull", "--platform", "linux/s390x", &both]);
    assert!(!out.status.success());
    assert!(
        stderr_text(&out).contains("linux/amd64, linux/arm64"),
        "{}",
        stderr_text(&out)
    );
}

/// The blob files of a kiln store, by hex digest.
fn stored_blobs(store: &KilnStore) -> std::collections::BTreeSet<String> {
    std::fs::read_dir(store.root().join("blobs/sha256"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// `pull --all-platforms` keeps the index whole (its exact bytes, both platforms), `push` of
/// it to another repository gives the same index digest (skopeo reads the same bytes back),
/// each platform pulls from the copy with `--platform`, FROM and inspect of the index take
/// the host's platform, prune keeps a tagged index's children and deletes them once it is
/// removed.
#[test]
fn all_platforms_pull_then_push_keeps_the_index_whole() {
    if !require_tools(&[REGISTRY_BIN, "curl"]) {
        return;
    }
    require_peer!("skopeo");
    let registry = Registry::start(None, None);
    let host = registry.host();
    let (both, index_bytes, descriptors) = two_platform_index(&KilnStore::new(), &host);
    let index_digest = format!("sha256:{}", sha256_hex(&index_bytes));
    let child = |i: usize| descriptors[i]["digest"].as_str().unwrap().to_string();

    let store = KilnStore::new();
    let out = store.kiln_ok(["pull", "--all-platforms", "-q", &both]);
    assert_eq!(stdout_text(&out).trim(), index_digest);
    assert_store_whole(&store);
    let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
    assert_eq!(
        std::fs::read(store.root().join("blobs/sha256").join(hex(&index_digest))).unwrap(),
        index_bytes,
        "the index is stored with the bytes it came with"
    );
    let listed = stdout_text(&store.kiln_ok(["images"]));
    let short = &hex(&index_digest)[..12];
    assert!(
        listed
            .lines()
            .any(|l| l.contains("kiln-e2e/multi") && l.contains("both") && l.contains(short)),
        "{listed}"
    );

    // inspect and FROM of the index take the host's platform.
    let host_arch = match std::env::consts::ARCH {
        "x86_64" => Some(0),
        "aarch64" => Some(1),
        _ => None,
    };
    let inspected: Value =
        serde_json::from_slice(&store.kiln_ok(["inspect", &both]).stdout).unwrap();
    assert_eq!(
        inspected[0]["Index"]["Digest"],
        index_digest.as_str(),
        "{inspected}"
    );
    if let Some(i) = host_arch {
        assert_eq!(
            inspected[0]["ManifestDigest"],
            child(i).as_str(),
            "{inspected}"
        );
        let ctx = temp_dir();
        write_file(
            &ctx.path().join("Dockerfile"),
            format!("FROM {both}\nCOPY a /a\n").as_bytes(),
            0o644,
        );
        write_file(&ctx.path().join("a"), b"a\n", 0o644);
        store.kiln_ok([
            "build".as_ref(),
            "-t".as_ref(),
            "kiln-e2e/on-index:1".as_ref(),
            ctx.path().as_os_str(),
        ]);
        let built: Value =
            serde_json::from_slice(&store.kiln_ok(["inspect", "kiln-e2e/on-index:1"]).stdout)
                .unwrap();
        assert_eq!(
            built[0]["RootFS"]["Layers"].as_array().unwrap().len(),
            2,
            "{built}"
        );
    }

    // Pushed to another repository: children first, then the same index bytes.
    let copy = format!("{host}/kiln-e2e/copy:both");
    store.kiln_ok(["tag", &both, &copy]);
    let pushed = store.kiln_ok(["push", &copy]);
    assert_eq!(digest_line(&pushed), index_digest);
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{copy}"),
    ]));
    assert_eq!(raw.stdout, index_bytes, "skopeo reads back other bytes");
    assert_eq!(skopeo_digest(&copy, &["--tls-verify=false"]), index_digest);
    for (i, platform) in ["linux/amd64", "linux/arm64"].iter().enumerate() {
        let fresh = KilnStore::new();
        let out = fresh.kiln_ok(["pull", "--platform", platform, "-q", &copy]);
        assert_eq!(stdout_text(&out).trim(), child(i));
        assert_store_whole(&fresh);
    }
    // Pushed again unchanged: the tag's HEAD says it is there.
    let again = store.kiln_ok(["push", &copy]);
    assert_eq!(digest_line(&again), index_digest);

    // A child is not an image of its own: rmi refuses it.
    let out = store.kiln(["rmi", &child(1)]);
    assert!(!out.status.success());
    assert!(
        stderr_text(&out).contains("inside an image index"),
        "{}",
        stderr_text(&out)
    );

    // prune keeps every child of a tagged index (the arm64 one is no image of this machine).
    let arm_manifest: Value = serde_json::from_slice(
        &std::fs::read(store.root().join("blobs/sha256").join(hex(&child(1)))).unwrap(),
    )
    .unwrap();
    let arm_blobs: Vec<String> = std::iter::once(&arm_manifest["config"])
        .chain(arm_manifest["layers"].as_array().unwrap())
        .map(|d| hex(d["digest"].as_str().unwrap()))
        .chain([hex(&child(1)), hex(&child(0)), hex(&index_digest)])
        .collect();
    store.kiln_ok(["rmi", "kiln-e2e/on-index:1"]);
    store.kiln_ok(["prune"]);
    let blobs = stored_blobs(&store);
    for b in &arm_blobs {
        assert!(blobs.contains(b), "prune deleted {b} of the tagged index");
    }
    // Untagged everywhere, the index and its children go at the next prune.
    store.kiln_ok(["rmi", &both, &copy]);
    store.kiln_ok(["prune"]);
    let blobs = stored_blobs(&store);
    for b in &arm_blobs {
        assert!(!blobs.contains(b), "prune kept {b} of a removed index");
    }
}

/// Removes a file docker reads (a CA under /etc/docker/certs.d) when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `docker login` then `kiln pull`, and `kiln login` then `docker pull`, against the TLS
/// registry with basic auth: one config.json format for both. Docker's daemon needs the CA
/// in /etc/docker/certs.d/HOST:PORT/ca.crt, which kiln reads too (removed afterwards).
#[test]
fn docker_and_kiln_share_logins_over_tls() {
    if !require_tools(&[REGISTRY_BIN, "htpasswd", "openssl"]) {
        return;
    }
    require_peer!("busybox", "docker");
    if !running_as_root() {
        skip_or_fail(
            "/etc/docker/certs.d",
            "writing docker's CA directory needs root",
        );
        return;
    }
    let dir = temp_dir();
    let tls = make_tls(dir.path());
    let htpasswd = dir.path().join("htpasswd");
    let line = run_ok(Command::new("htpasswd").args(["-Bbn", "kiln", "s3cret-pw"]));
    std::fs::write(&htpasswd, &line.stdout).unwrap();
    let registry = Registry::start(Some(&tls), Some(&htpasswd));
    let host = registry.host();
    let certs_d = Path::new("/etc/docker/certs.d").join(&host);
    std::fs::create_dir_all(&certs_d).unwrap();
    let _cleanup = RemoveOnDrop(certs_d.clone());
    std::fs::copy(&tls.ca, certs_d.join("ca.crt")).unwrap();

    // docker login (its own config dir), docker push; kiln pulls with docker's login.
    let docker_config = dir.path().join("docker-login");
    let name = format!("{host}/kiln-e2e/shared:1");
    let login = run_with_stdin(
        docker().env("DOCKER_CONFIG", &docker_config).args([
            "login",
            "-u",
            "kiln",
            "--password-stdin",
            &host,
        ]),
        b"s3cret-pw\n",
    );
    assert_success("docker login", &login);
    run_ok(docker().args(["tag", docker_busybox(), &name]));
    let pushed = run(docker()
        .env("DOCKER_CONFIG", &docker_config)
        .args(["push", &name]));
    docker_rmi(&name);
    assert_success("docker push", &pushed);
    let store = KilnStore::new();
    // Without the login, the registry refuses.
    let anonymous = run(store
        .cmd()
        .env("DOCKER_CONFIG", dir.path().join("nobody"))
        .args(["pull", &name]));
    assert!(!anonymous.status.success());
    assert!(
        stderr_text(&anonymous).contains("requires authentication"),
        "{}",
        stderr_text(&anonymous)
    );
    let pulled = run(store
        .cmd()
        .env("DOCKER_CONFIG", &docker_config)
        .args(["pull", &name]));
    assert_success("kiln pull with docker's login", &pulled);

    // kiln login (another config dir), kiln push; docker pulls with kiln's login.
    let kiln_config = dir.path().join("kiln-login");
    let other = format!("{host}/kiln-e2e/from-kiln:1");
    store.kiln_ok(["tag", &name, &other]);
    let wrong = run_with_stdin(
        store.cmd().env("DOCKER_CONFIG", &kiln_config).args([
            "login",
            "-u",
            "kiln",
            "--password-stdin",
            &host,
        ]),
        b"not-it\n",
    );
    assert!(!wrong.status.success());
    assert!(
        stderr_text(&wrong).contains("refused the credentials of user `kiln`"),
        "{}",
        stderr_text(&wrong)
    );
    let ok = run_with_stdin(
        store.cmd().env("DOCKER_CONFIG", &kiln_config).args([
            "login",
            "-u",
            "kiln",
            "--password-stdin",
            &host,
        ]),
        b"s3cret-pw\n",
    );
    assert_success("kiln login", &ok);
    let kiln_pushed = run(store
        .cmd()
        .env("DOCKER_CONFIG", &kiln_config)
        .args(["push", &other]));
    assert_success("kiln push", &kiln_pushed);
    let docker_anonymous = run(docker()
        .env("DOCKER_CONFIG", dir.path().join("nobody"))
        .args(["pull", &other]));
    assert!(
        !docker_anonymous.status.success(),
        "docker pulled without a login"
    );
    let docker_pulled = run(docker()
        .env("DOCKER_CONFIG", &kiln_config)
        .args(["pull", &other]));
    let digests = run(docker().args([
        "image",
        "inspect",
        "--format",
        "{{json .RepoDigests}}",
        &other,
    ]));
    docker_rmi(&other);
    assert_success("docker pull with kiln's login", &docker_pulled);
    assert!(
        stdout_text(&digests).contains(&digest_line(&kiln_pushed)),
        "{}",
        stdout_text(&digests)
    );
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key and its self-signed certificate (the registry's `rootcertbundle`).
#[derive(Clone)]
struct TokenKey {
    key: PathBuf,
    cert: PathBuf,
    /// The certificate's DER, standard base64 (the JWT's `x5c`).
    x5c: String,
}

fn token_key(dir: &Path, name: &str) -> TokenKey {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    run_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", &format!("/CN=kiln test token issuer {name}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    let der = run_ok(
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(&cert),
    );
    use base64::Engine;
    let x5c = base64::engine::general_purpose::STANDARD.encode(&der.stdout);
    TokenKey { key, cert, x5c }
}

const TOKEN_ISSUER: &str = "kiln-test-issuer";
const TOKEN_SERVICE: &str = "kiln-test-registry";

/// A JWT for `access` (`[{"type","name","actions"}]`), RS256-signed with `key` by openssl.
fn sign_token(key: &TokenKey, subject: &str, access: Value) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [key.x5c]});
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER, "sub": subject, "aud": TOKEN_SERVICE,
        "exp": now + 300, "nbf": now - 10, "iat": now,
        "jti": format!("{now}-{}", rand_suffix()), "access": access,
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = run_with_stdin(
        Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(&key.key),
        input.as_bytes(),
    );
    assert_success("openssl dgst -sign", &sig);
    format!("{input}.{}", b64url(&sig.stdout))
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    h.finish()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// What the token server was asked: the account (None when anonymous) and the scopes.
type TokenLog = std::sync::Mutex<Vec<(Option<String>, Vec<String>)>>;

/// A token server on 127.0.0.1 (the registry's `auth: token: realm`): `GET /token` with
/// basic credentials of `user`/`password` gets a token for the scopes asked; without
/// credentials, a token with no access; with wrong ones, 401. Records each request's
/// `(account, scopes)`.
struct TokenServer {
    port: u16,
    requests: Arc<TokenLog>,
}

impl TokenServer {
    fn start(key: TokenKey, user: &'static str, password: &'static str) -> TokenServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = requests.clone();
        let key = Arc::new(key);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (log, key) = (log.clone(), key.clone());
                std::thread::spawn(move || {
                    let _ = serve_token(stream, &key, user, password, &log);
                });
            }
        });
        TokenServer { port, requests }
    }

    fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }
}

fn serve_token(
    mut stream: TcpStream,
    key: &TokenKey,
    user: &str,
    password: &str,
    log: &TokenLog,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let scopes: Vec<String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| *k == "scope")
        .map(|(_, v)| percent_decode(v))
        .collect();
    let auth = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("authorization")
            .then(|| value.trim().to_string())
    });
    let account = match auth.as_deref().and_then(|a| a.strip_prefix("Basic ")) {
        None => None,
        Some(b64) => {
            use base64::Engine;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .unwrap_or_default();
            if String::from_utf8_lossy(&decoded) != format!("{user}:{password}") {
                let body = r#"{"details":"invalid credentials"}"#;
                write!(
                    stream,
                    "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )?;
                return Ok(());
            }
            Some(user.to_string())
        }
    };
    if let Ok(mut l) = log.lock() {
        l.push((account.clone(), scopes.clone()));
    }
    let access: Vec<Value> = match &account {
        None => Vec::new(),
        Some(_) => scopes
            .iter()
            .filter_map(|s| {
                let (rest, actions) = s.rsplit_once(':')?;
                let (kind, name) = rest.split_once(':')?;
                Some(serde_json::json!({
                    "type": kind, "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect(),
    };
    let token = sign_token(key, account.as_deref().unwrap_or(""), Value::Array(access));
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Bearer-token auth: the registry (`auth: token:` with the token server's certificate as
/// its root bundle) accepts only JWTs the test token server signed; kiln gets one from the
/// realm its challenge names, with the scopes of the operation, using the credentials of
/// `kiln login`; skopeo reads the same config.json and goes through the same server.
#[test]
fn bearer_token_auth_through_a_token_server() {
    if !require_tools(&[REGISTRY_BIN, "openssl", "curl"]) {
        return;
    }
    require_peer!("busybox", "skopeo");
    let dir = temp_dir();
    let key = token_key(dir.path(), "issuer");
    let forger = token_key(dir.path(), "forger");
    let bundle = key.cert.clone();
    let tokens = TokenServer::start(key.clone(), "kiln", "t0ken-pw");
    let auth = format!(
        "auth:\n  token:\n    realm: {}\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
        tokens.realm(),
        bundle.display()
    );
    let registry = Registry::start_with_auth(None, Some(&auth));
    let host = registry.host();

    // The registry really demands a token signed by the issuer's key.
    let status = |token: Option<&str>| {
        let mut c = Command::new("curl");
        c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(t) = token {
            c.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        stdout_text(&run(c.arg(format!("http://{host}/v2/"))))
    };
    assert_eq!(status(None), "401");
    assert_eq!(
        status(Some(&sign_token(&forger, "kiln", Value::Array(Vec::new())))),
        "401",
        "a token signed by another key was accepted"
    );
    assert_eq!(
        status(Some(&sign_token(&key, "kiln", Value::Array(Vec::new())))),
        "200",
        "the issuer's own token was refused"
    );

    let config = dir.path().join("docker-config");
    let store = KilnStore::with_busybox();
    let kiln = |args: &[&str], stdin: &[u8]| {
        run_with_stdin(store.cmd().env("DOCKER_CONFIG", &config).args(args), stdin)
    };
    let name = format!("{host}/kiln-e2e/token:1");
    store.kiln_ok(["tag", BUSYBOX, &name]);

    let anonymous = kiln(&["push", &name], b"");
    assert!(!anonymous.status.success());
    assert!(
        stderr_text(&anonymous).contains("requires authentication"),
        "{}",
        stderr_text(&anonymous)
    );
    let wrong = kiln(
        &["login", "-u", "kiln", "--password-stdin", &host],
        b"nope\n",
    );
    assert!(!wrong.status.success());
    assert!(
        stderr_text(&wrong).contains("refused the credentials of user `kiln`"),
        "{}",
        stderr_text(&wrong)
    );
    let ok = kiln(
        &["login", "-u", "kiln", "--password-stdin", &host],
        b"t0ken-pw\n",
    );
    assert_success("kiln login", &ok);

    let pushed = kiln(&["push", &name], b"");
    assert_success("kiln push", &pushed);
    let digest = digest_line(&pushed);
    let asked = tokens.requests.lock().unwrap().clone();
    assert!(
        asked
            .iter()
            .any(|(account, scopes)| account.as_deref() == Some("kiln")
                && scopes.contains(&"repository:kiln-e2e/token:pull,push".to_string())),
        "token requests: {asked:?}"
    );

    let authfile = config.join("config.json");
    assert_eq!(
        skopeo_digest(
            &name,
            &[
                "--tls-verify=false",
                "--authfile",
                authfile.to_str().unwrap()
            ]
        ),
        digest
    );
    let fresh = KilnStore::new();
    let pulled = run(fresh
        .cmd()
        .env("DOCKER_CONFIG", &config)
        .args(["pull", &name]));
    assert_success("kiln pull", &pulled);
    assert!(
        stdout_text(&pulled).contains(&digest),
        "{}",
        stdout_text(&pulled)
    );
    assert_store_whole(&fresh);
}
