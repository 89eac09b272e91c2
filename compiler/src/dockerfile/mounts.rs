//! `RUN --mount` values, parsed as BuildKit's `instructions/commands_runmount.go` does
//! (`parseMount`): csv fields, `key=value` pairs with case-insensitive keys, bare `ro`,
//! `readonly`, `rw`, `readwrite` and `required`, defaults per type, and its consistency checks.
//!
//! Values (never keys, never bare words) are expanded with the instruction's environment
//! before they are read, as BuildKit's expander does; `from=` may not use variables.
//! Must not: resolve `from=` or targets (that is `lower`, which knows stages and WORKDIR).

use crate::dockerfile::error::DockerfileError;
use crate::plan::Sharing;
use crate::syntax::Span;

/// BuildKit's mount types, in its documentation's order.
pub const MOUNT_TYPES: &[&str] = &["bind", "cache", "tmpfs", "secret", "ssh"];

/// Every key `parseMount` accepts.
pub const MOUNT_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountType {
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// One `--mount` after parsing: BuildKit's `instructions.Mount`, before `from=` and the
/// target are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMount {
    pub kind: MountType,
    pub from: String,
    pub source: String,
    pub target: String,
    pub readonly: bool,
    /// tmpfs `size=` in bytes (0: no limit).
    pub size: u64,
    /// `id=`.
    pub id: String,
    pub sharing: Option<Sharing>,
    pub required: bool,
    pub env: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Go's `encoding/csv` reading one record (what `csvvalue.Fields` does): fields split on
/// `,`; a field starting with `"` is quoted, `""` inside it is one `"`, and it must end at
/// a `,` or the end; a `"` inside an unquoted field is an error.
pub fn csv_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        if let Some(q) = rest.strip_prefix('"') {
            let mut field = String::new();
            let mut chars = q.char_indices();
            let after = loop {
                match chars.next() {
                    None => return Err("extraneous or missing \" in quoted-field".into()),
                    Some((i, '"')) => {
                        if q[i + 1..].starts_with('"') {
                            field.push('"');
                            chars.next();
                        } else {
                            break &q[i + 1..];
                        }
                    }
                    Some((_, c)) => field.push(c),
                }
            };
            fields.push(field);
            match after.strip_prefix(',') {
                Some(r) => rest = r,
                None if after.is_empty() => return Ok(fields),
                None => return Err("extraneous or missing \" in quoted-field".into()),
            }
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            let field = &rest[..end];
            if field.contains('"') {
                return Err("bare \" in non-quoted-field".into());
            }
            fields.push(field.to_string());
            if end == rest.len() {
                return Ok(fields);
            }
            rest = &rest[end + 1..];
        }
    }
}

/// The checks BuildKit makes when the Dockerfile is parsed, before any expansion: the csv
/// is well formed and `from=` uses no variable (a `$` other than the last character).
pub fn check_unexpanded(raw: &str, span: Span) -> Result<(), DockerfileError> {
    let fields = csv_fields(raw).map_err(|e| csv_error(&e, span))?;
    for field in fields {
        if let Some((key, value)) = field.split_once('=') {
            if key.eq_ignore_ascii_case("from") {
                if let Some(i) = value.find('$') {
                    if i != value.len() - 1 {
                        return Err(DockerfileError::at(
                            "'from' doesn't support variable expansion, define alias stage instead",
                            span,
                            "variable in from=",
                        )
                        .with_help("add a stage `FROM ${VAR} AS alias` and mount from=alias"));
                    }
                }
            }
        }
    }
    Ok(())
}

fn csv_error(e: &str, span: Span) -> DockerfileError {
    DockerfileError::at(
        format!("failed to parse csv mounts: {e}"),
        span,
        "not a valid --mount value",
    )
    .with_help("--mount takes comma-separated key=value pairs; quote a value with \"...\"")
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseUint(s, base, 32)` for base 8 or 10 (digits only, no sign, no prefix).
fn parse_u32(s: &str, radix: u32) -> Option<u32> {
    if s.is_empty() || !s.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u32::from_str_radix(s, radix).ok()
}

/// docker/go-units `RAMInBytes`: `^(\d+(\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$`, binary
/// multipliers.
pub fn ram_in_bytes(s: &str) -> Option<u64> {
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, mut unit) = s.split_at(num_len);
    if num.is_empty() || !num.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    if num.split('.').any(str::is_empty) {
        return None;
    }
    let n: f64 = num.parse().ok()?;
    unit = unit.strip_prefix(' ').unwrap_or(unit);
    let mut chars = unit.chars().peekable();
    let mult: f64 = match chars.peek().map(|c| c.to_ascii_lowercase()) {
        Some('k') => 1024f64,
        Some('m') => 1024f64.powi(2),
        Some('g') => 1024f64.powi(3),
        Some('t') => 1024f64.powi(4),
        Some('p') => 1024f64.powi(5),
        _ => 1.0,
    };
    if mult != 1.0 {
        chars.next();
    }
    if matches!(chars.peek(), Some('i' | 'I')) {
        chars.next();
    }
    if matches!(chars.peek(), Some('b' | 'B')) {
        chars.next();
    }
    if chars.next().is_some() {
        return None;
    }
    let v = n * mult;
    if v >= i64::MAX as f64 {
        return None;
    }
    Some(v as u64)
}

/// Parse one `--mount` value as BuildKit's `parseMount` does with an expander: `expand`
/// gets every `key=value` value. Errors carry `span` (the flag) and kiln's help.
pub fn parse_mount(
    raw: &str,
    span: Span,
    mut expand: impl FnMut(&str) -> Result<String, DockerfileError>,
) -> Result<ParsedMount, DockerfileError> {
    let fields = csv_fields(raw).map_err(|e| csv_error(&e, span))?;
    let mut m = ParsedMount {
        kind: MountType::Bind,
        from: String::new(),
        source: String::new(),
        target: String::new(),
        readonly: false,
        size: 0,
        id: String::new(),
        sharing: None,
        required: false,
        env: None,
        mode: None,
        uid: None,
        gid: None,
    };
    let err = |msg: String, label: &str, help: String| {
        DockerfileError::at(msg, span, label).with_help(help)
    };
    // BuildKit's refusal of a key the mount's type does not take.
    let wrong_type = |key: &str, kind: MountType, help: &str| {
        err(
            format!("unexpected key '{key}' for mount type '{}'", kind.as_str()),
            "not for this type",
            help.to_string(),
        )
    };
    let mut ro_auto = true;
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                }
                "required" if matches!(m.kind, MountType::Secret | MountType::Ssh) => {
                    m.required = true;
                }
                "required" => {
                    return Err(wrong_type(
                        &key,
                        m.kind,
                        "required applies to secret and ssh mounts; put type= before it",
                    ))
                }
                _ => {
                    let help = match crate::suggest::closest(&key, MOUNT_KEYS.iter().copied()) {
                        Some(s) if s != key => format!("did you mean {s}=...?"),
                        _ => "only ro, readonly, rw, readwrite and required stand alone".into(),
                    };
                    return Err(err(
                        format!("invalid field '{field}' must be a key=value pair"),
                        "not key=value",
                        help,
                    ));
                }
            }
            continue;
        };
        let value = expand(value)?;
        let bad_bool = |key: &str, value: &str| {
            err(
                format!("invalid value for {key}: {value}"),
                "not a boolean",
                format!("{key} takes true or false (or write {key} alone)"),
            )
        };
        match key.as_str() {
            "type" => {
                let lower = value.to_ascii_lowercase();
                m.kind = match lower.as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        let help =
                            match crate::suggest::closest(&lower, MOUNT_TYPES.iter().copied()) {
                                Some(s) => format!(
                                    "did you mean type={s}? valid types: {}",
                                    MOUNT_TYPES.join(", ")
                                ),
                                None => format!("valid types: {}", MOUNT_TYPES.join(", ")),
                            };
                        return Err(err(
                            format!("unsupported mount type {value:?}"),
                            "unknown mount type",
                            help,
                        ));
                    }
                };
            }
            "from" => m.from = value,
            "source" | "src" => m.source = value,
            "target" | "dst" | "destination" => m.target = value,
            "readonly" | "ro" => {
                m.readonly = parse_bool(&value).ok_or_else(|| bad_bool(&key, &value))?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&value).ok_or_else(|| bad_bool(&key, &value))?;
                ro_auto = false;
            }
            "required" => {
                if !matches!(m.kind, MountType::Secret | MountType::Ssh) {
                    return Err(wrong_type(
                        &key,
                        m.kind,
                        "required applies to secret and ssh mounts; put type= before it",
                    ));
                }
                m.required = parse_bool(&value).ok_or_else(|| bad_bool(&key, &value))?;
            }
            "size" => {
                if m.kind != MountType::Tmpfs {
                    return Err(wrong_type(
                        &key,
                        m.kind,
                        "size applies to tmpfs mounts; put type=tmpfs before it",
                    ));
                }
                m.size = ram_in_bytes(&value).ok_or_else(|| {
                    err(
                        format!("invalid value for {key}: {value}"),
                        "not a size",
                        "sizes look like 64m, 1g or 1048576".into(),
                    )
                })?;
            }
            "id" => m.id = value,
            "sharing" => {
                m.sharing = Some(match value.to_ascii_lowercase().as_str() {
                    "shared" => Sharing::Shared,
                    "private" => Sharing::Private,
                    "locked" => Sharing::Locked,
                    other => {
                        let modes = ["shared", "private", "locked"];
                        let help = match crate::suggest::closest(other, modes) {
                            Some(s) => {
                                format!("did you mean sharing={s}? valid: shared, private, locked")
                            }
                            None => "valid: shared, private, locked".into(),
                        };
                        return Err(err(
                            format!("unsupported sharing value {value:?}"),
                            "unknown sharing mode",
                            help,
                        ));
                    }
                });
            }
            "mode" => {
                m.mode = Some(parse_u32(&value, 8).ok_or_else(|| {
                    err(
                        format!("invalid value {value} for mode"),
                        "not an octal mode",
                        "mode is octal digits, e.g. mode=0755 or mode=400".into(),
                    )
                })?);
            }
            "uid" | "gid" => {
                let n = parse_u32(&value, 10).ok_or_else(|| {
                    err(
                        format!("invalid value {value} for {key}"),
                        "not a number",
                        format!("{key} is a decimal number, e.g. {key}=1000"),
                    )
                })?;
                if key == "uid" {
                    m.uid = Some(n);
                } else {
                    m.gid = Some(n);
                }
            }
            "env" => m.env = Some(value),
            _ => {
                let help = match crate::suggest::closest(&key, MOUNT_KEYS.iter().copied()) {
                    Some(s) => format!("did you mean {s}?"),
                    None => format!("--mount keys: {}", MOUNT_KEYS.join(", ")),
                };
                return Err(err(
                    format!("unexpected key '{key}' in '{field}'"),
                    "unknown mount option",
                    help,
                ));
            }
        }
    }

    let file_info_allowed = matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    );
    if !file_info_allowed {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(err(
                    format!("{name} not allowed for {:?} type mounts", m.kind.as_str()),
                    "not for this type",
                    "mode, uid and gid apply to cache, secret and ssh mounts".into(),
                ));
            }
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if !m.from.is_empty() {
            return Err(err(
                "secret mount should not have a from".into(),
                "from= on a secret",
                "secrets come from the build's --secret options, not a stage".into(),
            ));
        }
        if m.sharing.is_some() {
            return Err(err(
                "secret mount should not define sharing".into(),
                "sharing= on a secret",
                "sharing applies to cache mounts".into(),
            ));
        }
        if m.source.is_empty() && m.target.is_empty() && m.id.is_empty() {
            return Err(err(
                "invalid secret mount. one of source, target required".into(),
                "no id or target",
                "write type=secret,id=NAME (mounted at /run/secrets/NAME) or give target=".into(),
            ));
        }
        if !m.source.is_empty() && !m.id.is_empty() {
            return Err(err(
                "both source and id can't be set".into(),
                "source= and id=",
                "source= is another name for a secret's id; give one of them".into(),
            ));
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(err(
            format!("invalid cache sharing set for {} mount", m.kind.as_str()),
            "sharing= outside a cache",
            "sharing applies to type=cache mounts".into(),
        ));
    }
    Ok(m)
}

/// Go's `path.Clean`, for targets and ids.
pub fn path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => ["/", &joined].concat(),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `path.Base`.
pub fn path_base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_as_go_reads_it() {
        assert_eq!(csv_fields("a=1,b").unwrap(), ["a=1", "b"]);
        assert_eq!(csv_fields("\"a=1,2\",b").unwrap(), ["a=1,2", "b"]);
        assert_eq!(csv_fields("\"x\"\"y\"").unwrap(), ["x\"y"]);
        assert_eq!(csv_fields("a,").unwrap(), ["a", ""]);
        assert!(csv_fields("a=\"x\"").is_err());
        assert!(csv_fields("\"x\"y").is_err());
        assert!(csv_fields("\"x").is_err());
    }

    #[test]
    fn sizes_as_go_units() {
        assert_eq!(ram_in_bytes("64m"), Some(64 << 20));
        assert_eq!(ram_in_bytes("1g"), Some(1 << 30));
        assert_eq!(ram_in_bytes("1 GiB"), Some(1 << 30));
        assert_eq!(ram_in_bytes("1.5k"), Some(1536));
        assert_eq!(ram_in_bytes("100"), Some(100));
        assert_eq!(ram_in_bytes("10x"), None);
        assert_eq!(ram_in_bytes(""), None);
        assert_eq!(ram_in_bytes("-1"), None);
    }

    #[test]
    fn go_paths() {
        assert_eq!(path_clean("/a/../b/"), "/b");
        assert_eq!(path_clean("a/./b"), "a/b");
        assert_eq!(path_clean(""), ".");
        assert_eq!(path_clean("/.."), "/");
        assert_eq!(path_base("/run/secrets/x"), "x");
        assert_eq!(path_base("x/"), "x");
        assert_eq!(path_base("/"), "/");
    }
}
