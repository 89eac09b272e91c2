//! The cgroup directories a process is in, read the way the kernel shows them
//! (`/proc/PID/cgroup` joined to the cgroup mounts of `/proc/self/mountinfo`), for tests
//! that compare kiln's and docker's cgroup files and check kiln removes its cgroups.

use std::path::PathBuf;

/// `(directory, v1 controllers or empty for v2)` of each hierarchy `pid` is in.
pub fn cgroup_dirs(pid: u32) -> Vec<(PathBuf, Vec<String>)> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts: Vec<(String, String, Vec<String>)> = mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            let fstype = f.get(sep + 1)?.to_string();
            (fstype == "cgroup" || fstype == "cgroup2").then(|| {
                (
                    f[4].to_string(),
                    fstype,
                    f.get(sep + 3)
                        .map(|o| o.split(',').map(str::to_string).collect())
                        .unwrap_or_default(),
                )
            })
        })
        .collect();
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let ctrls: Vec<String> = ctrls
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .collect();
        let mount = mounts.iter().find(|(_, fstype, opts)| match ctrls.first() {
            None => fstype == "cgroup2",
            Some(c) => fstype == "cgroup" && opts.contains(c),
        });
        if let Some((m, _, _)) = mount {
            out.push((PathBuf::from(m).join(path.trim_start_matches('/')), ctrls));
        }
    }
    out
}

/// The contents of `file` in `pid`'s cgroup of the hierarchy that has it.
pub fn cgroup_file(pid: u32, file: &str) -> Option<String> {
    cgroup_dirs(pid)
        .into_iter()
        .find_map(|(d, _)| std::fs::read_to_string(d.join(file)).ok())
        .map(|s| s.trim().to_string())
}
