//! The kiln binary and the temporary kiln stores the tests build in.

use super::*;

/// The kiln binary cargo built for these tests.
pub fn kiln_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_kiln"))
}

/// A kiln store in a temporary directory, passed as `--root`.
pub struct KilnStore {
    dir: tempfile::TempDir,
}

impl KilnStore {
    /// An empty store.
    pub fn new() -> KilnStore {
        KilnStore { dir: temp_dir() }
    }

    /// An empty store with the busybox base imported as `busybox:test`.
    pub fn with_busybox() -> KilnStore {
        let s = KilnStore::new();
        s.import_busybox();
        s
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// `kiln --root <store>`, with the caller's SOURCE_DATE_EPOCH removed so tests decide it.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(kiln_bin());
        c.arg("--root").arg(self.root());
        c.env_remove("SOURCE_DATE_EPOCH");
        c.env_remove("KILN_ROOT");
        c.stdin(Stdio::null());
        c
    }

    /// Run kiln with these arguments.
    pub fn kiln<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        run(self.cmd().args(args))
    }

    /// Run kiln and panic (showing its output) unless it exits 0.
    pub fn kiln_ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        run_ok(self.cmd().args(args))
    }

    /// `kiln import <busybox rootfs tarball> busybox:test`.
    pub fn import_busybox(&self) {
        let bb = busybox();
        self.kiln_ok(["import".as_ref(), bb.tarball.as_os_str(), BUSYBOX.as_ref()]);
    }

    /// `kiln save -o <dest> <image>`.
    pub fn save(&self, image: &str, dest: &Path) {
        self.kiln_ok([
            "save".as_ref(),
            "-o".as_ref(),
            dest.as_os_str(),
            image.as_ref(),
        ]);
    }

    /// The image ID kiln prints for `kiln images -q`-style lookups: `kiln inspect` JSON `Id`.
    pub fn image_id(&self, image: &str) -> String {
        let out = self.kiln_ok(["inspect", image]);
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("kiln inspect {image} is not JSON: {e}"));
        let first = if v.is_array() { &v[0] } else { &v };
        first["Id"]
            .as_str()
            .unwrap_or_else(|| panic!("kiln inspect {image} has no Id: {v}"))
            .to_string()
    }

    /// Every file in the store directory with its size and sha256 (to show that a refused
    /// operation changed nothing).
    pub fn snapshot(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        snapshot_dir(self.root(), self.root(), &mut out);
        out
    }
}

pub(crate) fn snapshot_dir(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p
            .strip_prefix(base)
            .unwrap_or(&p)
            .to_string_lossy()
            .into_owned();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            out.insert(format!("{rel}/"), "dir".into());
            snapshot_dir(base, &p, out);
        } else if meta.is_file() {
            out.insert(rel, sha256_file(&p));
        } else {
            out.insert(rel, "other".into());
        }
    }
}

/// One store per test process with `busybox:test` imported, shared by tests that only build
/// and save (several kiln processes on one store is a supported use).
pub fn shared_store() -> &'static KilnStore {
    static STORE: OnceLock<KilnStore> = OnceLock::new();
    STORE.get_or_init(KilnStore::with_busybox)
}
