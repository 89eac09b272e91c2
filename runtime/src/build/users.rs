//! `--chown` resolution: `user[:group]` to numeric ids, names looked up in the image's own
//! /etc/passwd and /etc/group (never the host's).
//! Must not: read host files.

/// Numeric owner for COPY/ADD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u64,
    pub gid: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, miette::Diagnostic)]
pub enum ChownError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    #[diagnostic(help(
        "the name is looked up in the image's /etc/passwd; use a numeric uid or add the user first"
    ))]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    #[diagnostic(help("the name is looked up in the image's /etc/group; use a numeric gid"))]
    NoGroup(String),
    #[error("invalid --chown value {0:?}")]
    #[diagnostic(help("write --chown=USER[:GROUP] with names or numeric ids"))]
    Invalid(String),
}

/// Find `name` in passwd/group-style text: the value of field `field` (uid: 2, primary gid: 3).
fn lookup(text: Option<&str>, name: &str, field: usize) -> Option<u64> {
    text?.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() == Some(&name) {
            fields.get(field)?.trim().parse().ok()
        } else {
            None
        }
    })
}

/// Resolve `spec` with the image's passwd and group files (None when absent).
pub fn resolve_chown(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<Owner, ChownError> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || grp == Some("") {
        return Err(ChownError::Invalid(spec.to_string()));
    }
    let (uid, primary_gid) = match user.parse::<u64>() {
        Ok(uid) => (uid, None),
        Err(_) => {
            let uid =
                lookup(passwd, user, 2).ok_or_else(|| ChownError::NoUser(user.to_string()))?;
            (uid, lookup(passwd, user, 3))
        }
    };
    let gid = match grp {
        None => primary_gid.unwrap_or(uid),
        Some(g) => match g.parse::<u64>() {
            Ok(gid) => gid,
            Err(_) => lookup(group, g, 2).ok_or_else(|| ChownError::NoGroup(g.to_string()))?,
        },
    };
    Ok(Owner { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\napp:x:1001:\n";

    #[test]
    fn names_and_numbers() {
        assert_eq!(
            resolve_chown("1000", None, None),
            Ok(Owner {
                uid: 1000,
                gid: 1000
            })
        );
        assert_eq!(
            resolve_chown("1000:50", None, None),
            Ok(Owner { uid: 1000, gid: 50 })
        );
        assert_eq!(
            resolve_chown("app", Some(PASSWD), Some(GROUP)),
            Ok(Owner {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            resolve_chown("app:staff", Some(PASSWD), Some(GROUP)),
            Ok(Owner { uid: 1000, gid: 50 })
        );
        assert_eq!(
            resolve_chown("nobody", Some(PASSWD), Some(GROUP)),
            Err(ChownError::NoUser("nobody".into()))
        );
        assert_eq!(
            resolve_chown("app:wheel", Some(PASSWD), Some(GROUP)),
            Err(ChownError::NoGroup("wheel".into()))
        );
        assert!(resolve_chown(":x", None, None).is_err());
    }
}
