//! Image references as users type them: `app`, `app:1.0`, `registry:5000/team/app:1.0`,
//! `app@sha256:...`, `sha256:...`, or a (short) image ID.
//!
//! Owns parsing and docker's normalisation: `app` is `docker.io/library/app:latest`, and
//! `app:1.0` and `docker.io/library/app:1.0` name the same image. Must not: look anything up
//! in the store (that is `Store::image`).

use std::fmt;
use std::str::FromStr;

use kiln_plan::reference::{tag_problem, valid_domain, valid_path_component, valid_tag};

use crate::oci::digest::is_sha256_hex;
use crate::oci::Digest;

const DEFAULT_DOMAIN: &str = "docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const MAX_NAME_LEN: usize = 255;

/// A normalised image name with its tag: `docker.io/library/app:latest`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageName {
    /// `docker.io`, `localhost:5000`, `ghcr.io`, ...
    domain: String,
    /// `library/app`, `team/app`, ...
    path: String,
    tag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum ReferenceError {
    #[error("invalid image reference `{reference}`: {reason}")]
    #[diagnostic(
        code(kiln::reference::invalid),
        help("an image reference is NAME[:TAG] (lowercase name, e.g. `app:1.0` or `registry.example:5000/team/app`), NAME@sha256:DIGEST, or an image ID")
    )]
    Invalid { reference: String, reason: String },
}

fn invalid(reference: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError::Invalid {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

/// Splits `name[:tag]` where a `:` before the last `/` is a port, not a tag.
fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

/// Parses a repository name (no tag, no digest) into (domain, path), normalised.
fn parse_repository(reference: &str, name: &str) -> Result<(String, String), ReferenceError> {
    if name.is_empty() {
        return Err(invalid(reference, "the name is empty"));
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.starts_with('[') =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    if !valid_domain(&domain) {
        return Err(invalid(
            reference,
            format!("`{domain}` is not a valid registry host"),
        ));
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid(reference, "repository names must be lowercase"));
    }
    if let Some(bad) = path.split('/').find(|c| !valid_path_component(c)) {
        return Err(invalid(
            reference,
            format!("`{bad}` is not a valid name component (lowercase letters, digits, and `.`, `_`, `__` or `-` between them)"),
        ));
    }
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path
    };
    if domain.len() + 1 + path.len() > MAX_NAME_LEN {
        return Err(invalid(
            reference,
            format!("the name is longer than {MAX_NAME_LEN} characters"),
        ));
    }
    Ok((domain, path))
}

impl ImageName {
    /// Parses `NAME[:TAG]`; the tag defaults to `latest`. A digest (`@sha256:...`) is refused:
    /// use [`ImageRef::parse`] for references that may carry one.
    pub fn parse(s: &str) -> Result<ImageName, ReferenceError> {
        if s.contains('@') {
            return Err(invalid(s, "a digest is not allowed here; give NAME[:TAG]"));
        }
        let (name, tag) = split_tag(s);
        let (domain, path) = parse_repository(s, name)?;
        let tag = match tag {
            Some(t) => match tag_problem(t) {
                None => t.to_string(),
                Some(why) => return Err(invalid(s, format!("`{t}` is not a valid tag: {why}"))),
            },
            None => DEFAULT_TAG.to_string(),
        };
        Ok(ImageName { domain, path, tag })
    }

    /// The full form: `docker.io/library/app:1.0` (for `io.containerd.image.name`).
    pub fn full(&self) -> String {
        format!("{}/{}:{}", self.domain, self.path, self.tag)
    }

    /// The short form docker prints: `app:1.0`, `team/app:1.0`, `ghcr.io/x/app:1.0`.
    pub fn familiar(&self) -> String {
        format!("{}:{}", self.repository(), self.tag)
    }

    /// The familiar repository without the tag: `app`, `team/app`, `localhost:5000/app`.
    pub fn repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_PREFIX)
                .unwrap_or(&self.path)
                .to_string()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The full repository without the tag: `docker.io/library/app`.
    pub fn full_repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The registry host: `docker.io`, `localhost:5000`, `ghcr.io`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry: `library/app`, `team/app`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The same repository with another tag.
    pub fn with_tag(&self, tag: &str) -> Result<ImageName, ReferenceError> {
        if !valid_tag(tag) {
            return Err(invalid(
                &format!("{}:{tag}", self.repository()),
                format!(
                    "`{tag}` is not a valid tag: {}",
                    tag_problem(tag).unwrap_or_default()
                ),
            ));
        }
        Ok(ImageName {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: tag.to_string(),
        })
    }
}

impl FromStr for ImageName {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageName::parse(s)
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.familiar())
    }
}

impl fmt::Debug for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full())
    }
}

/// What a user may type to pick an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// `app`, `app:1.0`. `tag_given` is false when the tag was defaulted to `latest`
    /// (`save` then takes every tag of the repository, as docker does).
    Name { name: ImageName, tag_given: bool },
    /// `app@sha256:...` (a manifest digest; any tag given alongside is ignored, as docker does).
    NameDigest { name: ImageName, digest: Digest },
    /// `sha256:<64 hex>`: a manifest digest or a full image ID.
    Digest(Digest),
    /// 1 to 63 hex digits, with or without `sha256:`: the start of an image ID. A short hex
    /// string is also a valid name; `name` holds that reading (`abc123:latest`) when it is one.
    IdPrefix {
        prefix: String,
        name: Option<ImageName>,
    },
}

impl ImageRef {
    pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
        if let Some(hex) = s.strip_prefix("sha256:") {
            if is_sha256_hex(hex) {
                return Ok(ImageRef::Digest(
                    Digest::from_hex(hex).map_err(|_| invalid(s, "malformed digest"))?,
                ));
            }
            if is_hex_prefix(hex) {
                return Ok(ImageRef::IdPrefix {
                    prefix: hex.to_string(),
                    name: None,
                });
            }
            return Err(invalid(
                s,
                "a digest is `sha256:` followed by lowercase hex digits",
            ));
        }
        if is_sha256_hex(s) {
            return Ok(ImageRef::Digest(
                Digest::from_hex(s).map_err(|_| invalid(s, "malformed digest"))?,
            ));
        }
        if let Some((name, digest)) = s.split_once('@') {
            let digest: Digest = digest
                .parse()
                .map_err(|e: crate::oci::DigestError| invalid(s, e.to_string()))?;
            let (repo, _tag) = split_tag(name);
            let (domain, path) = parse_repository(s, repo)?;
            return Ok(ImageRef::NameDigest {
                name: ImageName {
                    domain,
                    path,
                    tag: DEFAULT_TAG.to_string(),
                },
                digest,
            });
        }
        if is_hex_prefix(s) {
            return Ok(ImageRef::IdPrefix {
                prefix: s.to_string(),
                name: ImageName::parse(s).ok(),
            });
        }
        let tag_given = split_tag(s).1.is_some();
        Ok(ImageRef::Name {
            name: ImageName::parse(s)?,
            tag_given,
        })
    }
}

fn is_hex_prefix(s: &str) -> bool {
    !s.is_empty()
        && s.len() < 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageRef::Name { name, .. } => write!(f, "{name}"),
            ImageRef::NameDigest { name, digest } => write!(f, "{}@{digest}", name.repository()),
            ImageRef::Digest(d) => write!(f, "{d}"),
            ImageRef::IdPrefix { prefix, .. } => f.write_str(prefix),
        }
    }
}

impl FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> ImageName {
        ImageName::parse(s).unwrap()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(name("app").full(), "docker.io/library/app:latest");
        assert_eq!(name("app"), name("app:latest"));
        assert_eq!(name("app:1.0"), name("docker.io/library/app:1.0"));
        assert_eq!(name("app:1.0"), name("index.docker.io/library/app:1.0"));
        assert_eq!(name("docker.io/app:1.0"), name("app:1.0"));
        assert_eq!(name("docker.io/library/app:1.0").familiar(), "app:1.0");
        assert_eq!(name("team/app").full(), "docker.io/team/app:latest");
        assert_eq!(name("team/app").familiar(), "team/app:latest");
        assert_eq!(
            name("localhost:5000/app").full(),
            "localhost:5000/app:latest"
        );
        assert_eq!(
            name("localhost:5000/app:2").familiar(),
            "localhost:5000/app:2"
        );
        assert_eq!(name("ghcr.io/a/b/c:v1.2_3").repository(), "ghcr.io/a/b/c");
        assert_eq!(name("localhost/app").tag(), "latest");
        assert_eq!(name("my-app__x.y:1").familiar(), "my-app__x.y:1");
    }

    #[test]
    fn refuses_bad_names() {
        for bad in [
            "",
            "App",
            "app:",
            "app:-x",
            "-app",
            "app-",
            "a..b",
            "a___b",
            "app:1.0:2",
            "/app",
            "app/",
            "a//b",
            "reg:x/app",
            "app@sha256:12",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad} should be refused");
        }
        let long_tag = format!("app:{}", "t".repeat(129));
        assert!(ImageName::parse(&long_tag).is_err());
    }

    #[test]
    fn parses_references() {
        let hex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(
            ImageRef::parse(&format!("sha256:{hex}")).unwrap(),
            ImageRef::Digest(Digest::from_hex(hex).unwrap())
        );
        assert_eq!(
            ImageRef::parse(hex).unwrap(),
            ImageRef::Digest(Digest::from_hex(hex).unwrap())
        );
        assert!(
            matches!(ImageRef::parse("0123456789ab").unwrap(), ImageRef::IdPrefix { ref prefix, name: Some(_) } if prefix == "0123456789ab")
        );
        assert!(matches!(
            ImageRef::parse("sha256:0123").unwrap(),
            ImageRef::IdPrefix { name: None, .. }
        ));
        assert_eq!(
            ImageRef::parse(&format!("app:1@sha256:{hex}")).unwrap(),
            ImageRef::NameDigest {
                name: name("app"),
                digest: Digest::from_hex(hex).unwrap()
            }
        );
        assert_eq!(
            ImageRef::parse("app").unwrap(),
            ImageRef::Name {
                name: name("app"),
                tag_given: false
            }
        );
        assert_eq!(
            ImageRef::parse("app:2").unwrap(),
            ImageRef::Name {
                name: name("app:2"),
                tag_given: true
            }
        );
        assert_eq!(
            ImageRef::parse("localhost:5000/app").unwrap(),
            ImageRef::Name {
                name: name("localhost:5000/app"),
                tag_given: false
            }
        );
        assert!(ImageRef::parse("sha256:XYZ").is_err());
        assert!(ImageRef::parse("app@sha512:00").is_err());
    }
}
