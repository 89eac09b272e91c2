//! Platform specifiers as `FROM --platform` and image configs write them (`linux/amd64`,
//! `linux/arm/v7`, `arm64`), read with containerd's `platforms.Parse` rules and normalised
//! (`x86_64` is `amd64`, `aarch64` is `arm64`), for the build checks that compare platforms.
//! Must not: decide which platform kiln builds for (that is the host's).

use std::fmt;

/// An OS, an architecture and an optional variant, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: String,
}

const KNOWN_OS: &[&str] = &[
    "aix",
    "android",
    "darwin",
    "dragonfly",
    "freebsd",
    "hurd",
    "illumos",
    "ios",
    "js",
    "linux",
    "nacl",
    "netbsd",
    "openbsd",
    "plan9",
    "solaris",
    "wasip1",
    "windows",
    "zos",
];

const KNOWN_ARCH: &[&str] = &[
    "386",
    "amd64",
    "amd64p32",
    "arm",
    "armbe",
    "arm64",
    "arm64be",
    "ppc64",
    "ppc64le",
    "loong64",
    "mips",
    "mipsle",
    "mips64",
    "mips64le",
    "mips64p32",
    "mips64p32le",
    "ppc",
    "riscv",
    "riscv64",
    "s390",
    "s390x",
    "sparc",
    "sparc64",
    "wasm",
];

/// A specifier component: containerd's `^[A-Za-z0-9_.-]+$`.
fn valid_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn normalize_os(os: &str) -> String {
    let os = os.to_ascii_lowercase();
    if os == "macos" {
        "darwin".into()
    } else {
        os
    }
}

/// containerd's `normalizeArch`: the canonical architecture and variant.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    let pair = |a: &str, v: &str| (a.to_string(), v.to_string());
    match arch.as_str() {
        "i386" => pair("386", ""),
        "x86_64" | "x86-64" | "amd64" if variant == "v1" => pair("amd64", ""),
        "x86_64" | "x86-64" | "amd64" => pair("amd64", &variant),
        "aarch64" | "arm64" if matches!(variant.as_str(), "8" | "v8" | "v8.0") => pair("arm64", ""),
        "aarch64" | "arm64" => pair("arm64", &variant),
        "armhf" => pair("arm", "v7"),
        "armel" => pair("arm", "v6"),
        "arm" => match variant.as_str() {
            "" | "7" => pair("arm", "v7"),
            "5" | "6" | "8" => ("arm".to_string(), ["v", &variant].concat()),
            _ => pair("arm", &variant),
        },
        _ => (arch.clone(), variant.clone()),
    }
}

impl Platform {
    /// `platforms.Parse`: `os`, `arch`, `os/arch` or `os/arch/variant`; a lone word that is not
    /// an OS is an architecture on `default_os`, a lone OS runs `default_arch`. None where
    /// containerd reports an error.
    pub fn parse(specifier: &str, default_os: &str, default_arch: &str) -> Option<Platform> {
        let parts: Vec<&str> = specifier.split('/').collect();
        if !parts.iter().all(|p| valid_component(p)) {
            return None;
        }
        match parts.as_slice() {
            [one] => {
                let os = normalize_os(one);
                if KNOWN_OS.contains(&os.as_str()) {
                    let (architecture, variant) = normalize_arch(default_arch, "");
                    return Some(Platform {
                        os,
                        architecture,
                        variant,
                    });
                }
                let (architecture, mut variant) = normalize_arch(one, "");
                if architecture == "arm" && variant == "v7" {
                    variant.clear();
                }
                KNOWN_ARCH
                    .contains(&architecture.as_str())
                    .then(|| Platform {
                        os: default_os.to_string(),
                        architecture,
                        variant,
                    })
            }
            [os, arch] => {
                let (architecture, variant) = normalize_arch(arch, "");
                Some(Platform {
                    os: normalize_os(os),
                    architecture,
                    variant,
                })
            }
            [os, arch, variant] => {
                let (architecture, variant) = normalize_arch(arch, variant);
                Some(Platform {
                    os: normalize_os(os),
                    architecture,
                    variant,
                })
            }
            _ => None,
        }
    }

    /// An image config's `os`, `architecture` and `variant` fields, normalised.
    pub fn from_config(os: &str, architecture: &str, variant: &str) -> Platform {
        let (architecture, variant) = normalize_arch(architecture, variant);
        Platform {
            os: normalize_os(os),
            architecture,
            variant,
        }
    }
}

/// `os/arch[/variant]`, as containerd's `platforms.Format` writes it.
impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Platform;

    fn parse(s: &str) -> Option<String> {
        Platform::parse(s, "linux", "amd64").map(|p| p.to_string())
    }

    #[test]
    fn specifiers_normalise_as_containerd_does() {
        assert_eq!(parse("linux/amd64").as_deref(), Some("linux/amd64"));
        assert_eq!(parse("Linux/x86_64").as_deref(), Some("linux/amd64"));
        assert_eq!(parse("linux/aarch64").as_deref(), Some("linux/arm64"));
        assert_eq!(parse("linux/arm64/v8").as_deref(), Some("linux/arm64"));
        assert_eq!(parse("linux/arm").as_deref(), Some("linux/arm/v7"));
        assert_eq!(parse("linux/armhf").as_deref(), Some("linux/arm/v7"));
        assert_eq!(parse("arm64").as_deref(), Some("linux/arm64"));
        assert_eq!(parse("windows").as_deref(), Some("windows/amd64"));
        assert_eq!(parse("macos/arm64").as_deref(), Some("darwin/arm64"));
    }

    #[test]
    fn malformed_specifiers_are_refused() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("linux/"), None);
        assert_eq!(parse("linux/$ARCH"), None);
        assert_eq!(parse("a/b/c/d"), None);
        assert_eq!(parse("nonsense"), None);
    }
}
