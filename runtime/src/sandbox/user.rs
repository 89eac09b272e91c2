//! The payload's identity: `user[:group]` resolved in the container's own /etc/passwd and
//! /etc/group, as Docker does it (numeric ids need no entry; supplementary groups are the
//! groups that list the user; HOME comes from the passwd entry, else `/`).
//! Must not: read the host's files (callers pass the container's file contents).

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(text: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f[5],
        })
    })
}

/// (name, gid, members) of each group line.
fn group_entries(text: &str) -> impl Iterator<Item = (&str, u32, Vec<&str>)> {
    text.lines().filter_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        let members = f[3].split(',').filter(|m| !m.is_empty()).collect();
        Some((f[0], f[2].parse().ok()?, members))
    })
}

/// Resolve `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...).
pub fn resolve(
    spec: &str,
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<Identity, UserError> {
    let passwd = passwd.unwrap_or("");
    let group = group.unwrap_or("");
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entry = match user.parse::<u32>() {
        Ok(uid) => passwd_entries(passwd).find(|e| e.uid == uid),
        Err(_) => Some(
            passwd_entries(passwd)
                .find(|e| e.name == user)
                .ok_or_else(|| UserError::NoUser(user.to_string()))?,
        ),
    };
    let uid = match (&entry, user.parse::<u32>()) {
        (_, Ok(uid)) => uid,
        (Some(e), Err(_)) => e.uid,
        (None, Err(_)) => return Err(UserError::NoUser(user.to_string())),
    };
    let gid = match grp {
        Some(g) if !g.is_empty() => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_entries(group)
                .find(|(name, _, _)| *name == g)
                .map(|(_, gid, _)| gid)
                .ok_or_else(|| UserError::NoGroup(g.to_string()))?,
        },
        _ => entry.as_ref().map_or(0, |e| e.gid),
    };
    let mut groups = Vec::new();
    if grp.is_none() {
        if let Some(e) = &entry {
            for (_, g, members) in group_entries(group) {
                if members.contains(&e.name) && g != gid && !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
    }
    let home = entry
        .as_ref()
        .map(|e| e.home)
        .filter(|h| !h.is_empty())
        .unwrap_or("/")
        .to_string();
    Ok(Identity {
        uid,
        gid,
        groups,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n";
    const GROUP: &str = "root:x:0:\napp:x:1000:\nwheel:x:10:app,root\naudio:x:29:app\n";

    fn id(spec: &str) -> Result<Identity, UserError> {
        resolve(spec, Some(PASSWD), Some(GROUP))
    }

    #[test]
    fn names_numbers_and_groups() {
        assert_eq!(
            id("").unwrap(),
            Identity {
                uid: 0,
                gid: 0,
                groups: vec![10],
                home: "/root".into()
            }
        );
        let app = id("app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.groups, app.home.as_str()),
            (1000, 1000, vec![10, 29], "/home/app")
        );
        assert_eq!(id("app:wheel").unwrap().gid, 10);
        assert!(id("app:wheel").unwrap().groups.is_empty());
        let n = id("4242").unwrap();
        assert_eq!((n.uid, n.gid, n.home.as_str()), (4242, 0, "/"));
        assert_eq!(id("1000:7").unwrap().gid, 7);
        assert_eq!(id("nobody"), Err(UserError::NoUser("nobody".into())));
        assert_eq!(id("app:nogroup"), Err(UserError::NoGroup("nogroup".into())));
        assert_eq!(resolve("0", None, None).unwrap().home, "/");
    }
}
