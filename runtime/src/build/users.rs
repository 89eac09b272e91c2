//! `--chown` resolution: the plan's parsed `user[:group]` to numeric ids, names looked up in
//! the image's own /etc/passwd and /etc/group (never the host's).
//! Must not: read host files, or parse the flag's text (the planner did).

use kiln_plan::plan::{Chown, OwnerId};

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

/// Resolve `spec` (already parsed by the planner) with the image's passwd and group files
/// (None when absent).
pub fn resolve_chown(
    spec: &Chown,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<Owner, ChownError> {
    let (uid, primary_gid) = match &spec.user {
        OwnerId::Numeric(uid) => (*uid, None),
        OwnerId::Name(user) => {
            let uid = lookup(passwd, user, 2).ok_or_else(|| ChownError::NoUser(user.clone()))?;
            (uid, lookup(passwd, user, 3))
        }
    };
    let gid = match &spec.group {
        None => primary_gid.unwrap_or(uid),
        Some(OwnerId::Numeric(gid)) => *gid,
        Some(OwnerId::Name(g)) => {
            lookup(group, g, 2).ok_or_else(|| ChownError::NoGroup(g.clone()))?
        }
    };
    Ok(Owner { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> Chown {
        Chown::parse(s).unwrap()
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:\napp:x:1001:\n";

    #[test]
    fn names_and_numbers() {
        assert_eq!(
            resolve_chown(&spec("1000"), None, None),
            Ok(Owner {
                uid: 1000,
                gid: 1000
            })
        );
        assert_eq!(
            resolve_chown(&spec("1000:50"), None, None),
            Ok(Owner { uid: 1000, gid: 50 })
        );
        assert_eq!(
            resolve_chown(&spec("app"), Some(PASSWD), Some(GROUP)),
            Ok(Owner {
                uid: 1000,
                gid: 1001
            })
        );
        assert_eq!(
            resolve_chown(&spec("app:staff"), Some(PASSWD), Some(GROUP)),
            Ok(Owner { uid: 1000, gid: 50 })
        );
        assert_eq!(
            resolve_chown(&spec("nobody"), Some(PASSWD), Some(GROUP)),
            Err(ChownError::NoUser("nobody".into()))
        );
        assert_eq!(
            resolve_chown(&spec("app:wheel"), Some(PASSWD), Some(GROUP)),
            Err(ChownError::NoGroup("wheel".into()))
        );
    }
}
