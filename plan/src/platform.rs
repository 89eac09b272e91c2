//! The platform kiln builds for: the host's, in Go/OCI names.
//!
//! Owns the one table from Rust's target architecture (and endianness) to Go's `GOARCH` and
//! the OCI variant, and the two spellings built from it: the variant an image config records
//! (what containerd's `platforms.DefaultSpec` reports, `arm64` with `v8`) and the normalised
//! platform build arguments see (what `platforms.Normalize` makes of it: `linux/arm64`
//! without a variant, `linux/arm/v7`). Both kiln-compiler (TARGETPLATFORM and friends) and
//! kiln-runtime (image configs, picking a manifest from an index) read it from here.
//! Must not: read the machine beyond Rust's compile-time target (no /proc/cpuinfo, no uname);
//! cross builds are not supported, so the target kiln was compiled for is the platform.

/// An OS, architecture and variant, in the names OCI image configs and indexes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// Go's `GOOS` (`linux`).
    pub os: &'static str,
    /// Go's `GOARCH` (`amd64`, `arm64`, `ppc64le`, ...).
    pub architecture: &'static str,
    /// The CPU variant an image config records (`v8` for arm64, `v7` for arm), if any.
    pub variant: Option<&'static str>,
}

impl Platform {
    /// The variant as containerd's `platforms.Normalize` leaves it: arm64's `v8` is the
    /// default and is dropped (BuildKit's TARGETVARIANT is empty on arm64 hosts).
    pub fn normalized_variant(&self) -> Option<&'static str> {
        match (self.architecture, self.variant) {
            ("arm64", Some("v8")) => None,
            (_, variant) => variant,
        }
    }

    /// `os/arch[/variant]` with the normalised variant, as BuildKit's TARGETPLATFORM.
    pub fn normalized_specifier(&self) -> String {
        match self.normalized_variant() {
            Some(v) => format!("{}/{}/{v}", self.os, self.architecture),
            None => format!("{}/{}", self.os, self.architecture),
        }
    }
}

/// Go's name and the default OCI variant for a Rust `target_arch` of the given endianness.
/// None for an architecture Go has no port for.
pub fn go_arch(
    rust_arch: &str,
    little_endian: bool,
) -> Option<(&'static str, Option<&'static str>)> {
    let named = match (rust_arch, little_endian) {
        ("x86_64", true) => ("amd64", None),
        ("x86", true) => ("386", None),
        ("aarch64", true) => ("arm64", Some("v8")),
        ("aarch64", false) => ("arm64be", None),
        // containerd's Normalize gives a bare `arm` the v7 variant.
        ("arm", true) => ("arm", Some("v7")),
        ("arm", false) => ("armbe", None),
        ("powerpc64", true) => ("ppc64le", None),
        ("powerpc64", false) => ("ppc64", None),
        ("powerpc", false) => ("ppc", None),
        ("mips", false) => ("mips", None),
        ("mips", true) => ("mipsle", None),
        ("mips64", false) => ("mips64", None),
        ("mips64", true) => ("mips64le", None),
        ("riscv64", true) => ("riscv64", None),
        ("s390x", false) => ("s390x", None),
        ("sparc64", false) => ("sparc64", None),
        ("loongarch64", true) => ("loong64", None),
        ("wasm32", true) => ("wasm", None),
        _ => return None,
    };
    Some(named)
}

/// The platform of the machine kiln was compiled for. An architecture Go has no name for
/// keeps Rust's name (no OCI image can name it either way).
pub fn host() -> Platform {
    let little_endian = cfg!(target_endian = "little");
    let (architecture, variant) =
        go_arch(std::env::consts::ARCH, little_endian).unwrap_or((std::env::consts::ARCH, None));
    Platform {
        os: std::env::consts::OS,
        architecture,
        variant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_architectures_get_go_names() {
        let cases = [
            ("x86_64", true, "amd64", None),
            ("x86", true, "386", None),
            ("aarch64", true, "arm64", Some("v8")),
            ("arm", true, "arm", Some("v7")),
            ("powerpc64", true, "ppc64le", None),
            ("powerpc64", false, "ppc64", None),
            ("mips64", true, "mips64le", None),
            ("riscv64", true, "riscv64", None),
            ("s390x", false, "s390x", None),
            ("loongarch64", true, "loong64", None),
        ];
        for (rust, le, arch, variant) in cases {
            assert_eq!(go_arch(rust, le), Some((arch, variant)), "{rust} le={le}");
        }
        assert_eq!(go_arch("avr", true), None);
    }

    #[test]
    fn build_args_use_containerds_normalised_form() {
        let arm64 = Platform {
            os: "linux",
            architecture: "arm64",
            variant: Some("v8"),
        };
        assert_eq!(arm64.normalized_variant(), None);
        assert_eq!(arm64.normalized_specifier(), "linux/arm64");
        let arm = Platform {
            os: "linux",
            architecture: "arm",
            variant: Some("v7"),
        };
        assert_eq!(arm.normalized_specifier(), "linux/arm/v7");
        let amd64 = Platform {
            os: "linux",
            architecture: "amd64",
            variant: None,
        };
        assert_eq!(amd64.normalized_specifier(), "linux/amd64");
    }

    #[test]
    fn the_host_is_in_the_table() {
        let host = host();
        assert_eq!(host.os, std::env::consts::OS);
        let little_endian = cfg!(target_endian = "little");
        assert_eq!(
            go_arch(std::env::consts::ARCH, little_endian),
            Some((host.architecture, host.variant)),
            "kiln is built for {}, which the table does not name",
            std::env::consts::ARCH
        );
        #[cfg(target_arch = "x86_64")]
        assert_eq!(host.normalized_specifier(), "linux/amd64");
    }
}
