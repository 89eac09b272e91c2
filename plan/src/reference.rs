//! Docker's image-reference grammar (`[domain/]path[:tag][@digest]`): the component rules the
//! runtime's `image` module parses references with, and whether a FROM name is one that
//! `reference.ParseNormalizedNamed` accepts (the InvalidDefaultArgInFrom check).
//! Must not: normalise or resolve anything (the store's references are the runtime's
//! `image` module).

/// A path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub fn valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if !b.first().is_some_and(|&x| alnum(x)) || !b.last().is_some_and(|&x| alnum(x)) {
        return false;
    }
    let mut rest = c;
    while !rest.is_empty() {
        let run = rest.bytes().take_while(|&x| alnum(x)).count();
        rest = &rest[run..];
        let sep = rest.bytes().take_while(|&x| !alnum(x)).count();
        let s = &rest[..sep];
        if !(s.is_empty() || s == "." || s == "_" || s == "__" || s.bytes().all(|x| x == b'-')) {
            return false;
        }
        rest = &rest[sep..];
    }
    true
}

/// A registry host (`[a-zA-Z0-9-]` labels joined by `.`, or `[ipv6]`) with optional `:port`.
pub fn valid_domain(d: &str) -> bool {
    let valid_port = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = d.strip_prefix('[') {
        let Some((ip, tail)) = rest.split_once(']') else {
            return false;
        };
        let ip_ok = !ip.is_empty() && ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        return ip_ok && (tail.is_empty() || tail.strip_prefix(':').is_some_and(valid_port));
    }
    let (host, port) = match d.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    host_ok && port.is_none_or(valid_port)
}

/// The longest tag Docker accepts.
pub const MAX_TAG_LEN: usize = 128;

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn valid_tag(t: &str) -> bool {
    tag_problem(t).is_none()
}

/// Why `t` is not a valid tag, or `None` when it is one.
pub fn tag_problem(t: &str) -> Option<String> {
    let b = t.as_bytes();
    match b.first() {
        Some(&f) if f.is_ascii_alphanumeric() || f == b'_' => {}
        Some(_) => return Some("a tag must start with a letter, a digit or `_`".to_string()),
        None => return Some("the tag is empty".to_string()),
    }
    if b.len() > MAX_TAG_LEN {
        return Some(format!(
            "a tag may have at most {MAX_TAG_LEN} characters, this one has {}",
            b.len()
        ));
    }
    b.iter()
        .find(|&&x| !(x.is_ascii_alphanumeric() || b"_.-".contains(&x)))
        .map(|&x| {
            format!(
                "`{}` may not appear in a tag (letters, digits, `_`, `.` and `-` only)",
                char::from(x).escape_default()
            )
        })
}

/// A digest: `algorithm:hex` with at least 32 hex digits (64 lowercase ones for sha256).
fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let alg_ok = alg.split(['-', '_', '+', '.']).all(|part| {
        part.as_bytes().first().is_some_and(u8::is_ascii_alphabetic)
            && part.bytes().all(|b| b.is_ascii_alphanumeric())
    });
    let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    let sha_ok = alg != "sha256"
        || (hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    alg_ok && hex_ok && sha_ok
}

/// Does `ParseNormalizedNamed` accept `s`?
pub fn is_valid_image_name(s: &str) -> bool {
    if s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return false;
    }
    let (name, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if digest.is_some_and(|d| !valid_digest(d)) {
        return false;
    }
    let (repo, tag) = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    };
    if tag.is_some_and(|t| !valid_tag(t)) {
        return false;
    }
    // A first component with `.` or `:`, `localhost`, or any upper case is a registry.
    let (domain, path) = match repo.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first != first.to_ascii_lowercase() =>
        {
            (Some(first), rest)
        }
        _ => (None, repo),
    };
    if domain.is_some_and(|d| !valid_domain(d)) {
        return false;
    }
    repo.len() <= 255 && !path.is_empty() && path.split('/').all(valid_path_component)
}

#[cfg(test)]
mod tests {
    use super::is_valid_image_name;

    #[test]
    fn references_docker_accepts() {
        for s in [
            "busybox",
            "scratch",
            "busybox:latest",
            "busybox:stable-musl",
            "library/busybox",
            "localhost:5000/team/app:1.0",
            "ghcr.io/a/b",
            "[::1]:5000/app",
            "a__b/c-d--e.f",
            "app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(is_valid_image_name(s), "{s}");
        }
    }

    #[test]
    fn references_docker_refuses() {
        for s in [
            "",
            "busybox:",
            ":latest",
            "Busybox",
            "busy box",
            "busybox:-x",
            "a//b",
            "-a",
            "app@sha256:abc",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "busy${SFX}",
        ] {
            assert!(!is_valid_image_name(s), "{s}");
        }
    }
}
