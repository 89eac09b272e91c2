//! `kiln compose convert --to kubernetes`: a compose project as Kubernetes objects — one
//! PersistentVolumeClaim per top-level volume, one Deployment per service and one Service per
//! service that has `ports:` or `expose:` — in a fixed order with fixed key order, so the same project
//! gives the same bytes.
//! Must not: touch the store (the caller resolves each service's image to a reference pinned
//! by digest and passes them in) or write files.

use std::collections::BTreeMap;

use serde_norway::{Mapping, Value};

use super::{Mount, NetworkMode, Project, Service};

/// One object: the file name `-o DIR` gives it, and the object.
pub struct Object {
    pub file: String,
    pub value: Value,
}

/// The object for `kind` named `name`, file `<name>-<kind>.yaml` (as kompose names them).
fn object(kind: &str, name: &str, value: Value) -> Object {
    Object {
        file: format!("{name}-{}.yaml", kind.to_lowercase()),
        value,
    }
}

/// A DNS-1123 label from a compose name: lowercase, `[a-z0-9-]`, alphanumeric at both ends,
/// at most 63 characters.
pub fn dns_label(name: &str) -> String {
    let mut out: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    out.truncate(63);
    out.trim_matches('-').to_string()
}

fn s(t: &str) -> Value {
    Value::String(t.to_string())
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(s(k), v);
    }
    Value::Mapping(m)
}

fn list(items: &[String]) -> Value {
    Value::Sequence(items.iter().map(|i| s(i)).collect())
}

fn num(n: u64) -> Value {
    Value::Number(n.into())
}

/// Whole seconds, at least `min` (probe fields are integers).
fn seconds(d: std::time::Duration, min: u64) -> Value {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    num(secs.max(min))
}

fn labels(p: &Project, service: &str) -> Value {
    map(vec![
        ("app.kubernetes.io/name", s(&dns_label(service))),
        ("app.kubernetes.io/part-of", s(&dns_label(&p.name))),
    ])
}

/// The name of a top-level volume's claim: `<project>-<volume>`.
pub fn claim_name(p: &Project, volume: &str) -> String {
    dns_label(&format!("{}-{volume}", p.name))
}

/// Converts the project. `images` maps each service name to its pinned image reference.
/// Returns the objects and notes on what has no Kubernetes equivalent (for stderr).
pub fn convert(p: &Project, images: &BTreeMap<String, String>) -> (Vec<Object>, Vec<String>) {
    let mut objects = Vec::new();
    let mut notes = Vec::new();
    let mut volumes = p.volumes.clone();
    volumes.sort();
    for v in &volumes {
        let name = claim_name(p, v);
        objects.push(object(
            "PersistentVolumeClaim",
            &name,
            map(vec![
                ("apiVersion", s("v1")),
                ("kind", s("PersistentVolumeClaim")),
                (
                    "metadata",
                    map(vec![
                        ("name", s(&name)),
                        (
                            "labels",
                            map(vec![("app.kubernetes.io/part-of", s(&dns_label(&p.name)))]),
                        ),
                    ]),
                ),
                (
                    "spec",
                    map(vec![
                        ("accessModes", list(&["ReadWriteOnce".to_string()])),
                        (
                            "resources",
                            map(vec![("requests", map(vec![("storage", s("1Gi"))]))]),
                        ),
                    ]),
                ),
            ]),
        ));
    }
    let mut services: Vec<&Service> = p.services.iter().collect();
    services.sort_by(|a, b| a.name.cmp(&b.name));
    for svc in services {
        let image = images
            .get(&svc.name)
            .cloned()
            .unwrap_or_else(|| p.image(svc));
        objects.push(deployment(p, svc, &image, &mut notes));
        if let Some(o) = service(p, svc) {
            objects.push(o);
        }
    }
    (objects, notes)
}

fn deployment(p: &Project, svc: &Service, image: &str, notes: &mut Vec<String>) -> Object {
    let name = dns_label(&svc.name);
    let mut c = Mapping::new();
    c.insert(s("name"), s(&name));
    c.insert(s("image"), s(image));
    if let Some(e) = &svc.entrypoint {
        c.insert(s("command"), list(e));
    }
    if let Some(a) = &svc.command {
        c.insert(s("args"), list(a));
    }
    if let Some(w) = &svc.working_dir {
        c.insert(s("workingDir"), s(w));
    }
    if !svc.environment.is_empty() {
        let env = svc
            .environment
            .iter()
            .map(|(k, v)| map(vec![("name", s(k)), ("value", s(v))]))
            .collect();
        c.insert(s("env"), Value::Sequence(env));
    }
    let mut container_ports: Vec<(u16, String)> = Vec::new();
    for port in svc.ports.iter().chain(&svc.expose) {
        let key = (port.target, port.protocol.clone());
        if !container_ports.contains(&key) {
            container_ports.push(key);
        }
    }
    if !container_ports.is_empty() {
        let ports = container_ports
            .iter()
            .map(|(target, protocol)| {
                map(vec![
                    ("containerPort", num((*target).into())),
                    ("protocol", s(&protocol.to_uppercase())),
                ])
            })
            .collect();
        c.insert(s("ports"), Value::Sequence(ports));
    }
    let mut volumes = Vec::new();
    let mut mounts = Vec::new();
    for (i, m) in svc.volumes.iter().enumerate() {
        let vol_name = volume_name(m, i);
        let mut vm = Mapping::new();
        vm.insert(s("name"), s(&vol_name));
        vm.insert(s("mountPath"), s(&m.target));
        if m.read_only {
            vm.insert(s("readOnly"), Value::Bool(true));
        }
        mounts.push(Value::Mapping(vm));
        let source = if m.kind == "volume" && m.source.is_empty() {
            // An anonymous volume lives and dies with its container: the pod's emptyDir.
            ("emptyDir", Value::Mapping(Mapping::new()))
        } else if m.kind == "volume" {
            (
                "persistentVolumeClaim",
                map(vec![("claimName", s(&claim_name(p, &m.source)))]),
            )
        } else {
            notes.push(format!(
                "service {}: the bind mount {} becomes a hostPath volume: the path must exist on the node that runs the pod",
                svc.name, m.source
            ));
            ("hostPath", map(vec![("path", s(&m.source))]))
        };
        volumes.push(map(vec![("name", s(&vol_name)), source]));
    }
    // A tmpfs is memory-backed scratch space: an emptyDir in memory, its size as the limit.
    for (i, t) in svc.tmpfs.iter().enumerate() {
        let (target, options) = t.split_once(':').unwrap_or((t, ""));
        let vol_name = format!("tmpfs-{i}");
        mounts.push(map(vec![("name", s(&vol_name)), ("mountPath", s(target))]));
        let mut empty_dir = vec![("medium", s("Memory"))];
        if let Some(size) = options.split(',').find_map(|o| o.strip_prefix("size=")) {
            empty_dir.push(("sizeLimit", s(&quantity(size))));
        }
        volumes.push(map(vec![
            ("name", s(&vol_name)),
            ("emptyDir", map(empty_dir)),
        ]));
    }
    if !mounts.is_empty() {
        c.insert(s("volumeMounts"), Value::Sequence(mounts));
    }
    if let Some(u) = &svc.user {
        match security_context(u) {
            Some(sc) => {
                c.insert(s("securityContext"), sc);
            }
            None => notes.push(format!(
                "service {}: user {u} is not numeric; Kubernetes runs as numeric IDs only (runAsUser), so the image's user is kept",
                svc.name
            )),
        }
    }
    if let Some(h) = &svc.healthcheck {
        let probe = || {
            let mut pairs = vec![
                ("exec", map(vec![("command", list(&h.argv()))])),
                ("periodSeconds", seconds(h.interval, 1)),
                ("timeoutSeconds", seconds(h.timeout, 1)),
                ("failureThreshold", num(u64::from(h.retries.max(1)))),
            ];
            if !h.start_period.is_zero() {
                pairs.push(("initialDelaySeconds", seconds(h.start_period, 0)));
            }
            map(pairs)
        };
        c.insert(s("livenessProbe"), probe());
        c.insert(s("readinessProbe"), probe());
    }
    match svc.restart.as_deref() {
        None | Some("always") | Some("unless-stopped") => {}
        Some(r) => notes.push(format!(
            "service {}: restart: {r} has no Deployment equivalent; a Deployment always restarts its containers",
            svc.name
        )),
    }
    let mut pod = Mapping::new();
    pod.insert(s("containers"), Value::Sequence(vec![Value::Mapping(c)]));
    pod.insert(s("restartPolicy"), s("Always"));
    match &svc.network_mode {
        None => {}
        Some(NetworkMode::Host) => {
            pod.insert(s("hostNetwork"), Value::Bool(true));
        }
        Some(mode) => notes.push(format!(
            "service {}: network_mode: {} has no Deployment equivalent; the pod gets the cluster's network",
            svc.name,
            mode.text()
        )),
    }
    if !volumes.is_empty() {
        pod.insert(s("volumes"), Value::Sequence(volumes));
    }
    let mut spec = Mapping::new();
    spec.insert(s("replicas"), num(1));
    spec.insert(
        s("selector"),
        map(vec![("matchLabels", labels(p, &svc.name))]),
    );
    if svc
        .volumes
        .iter()
        .any(|m| m.kind == "volume" && !m.source.is_empty())
    {
        // A ReadWriteOnce claim cannot be mounted by the old and the new pod at once.
        spec.insert(s("strategy"), map(vec![("type", s("Recreate"))]));
    }
    spec.insert(
        s("template"),
        map(vec![
            ("metadata", map(vec![("labels", labels(p, &svc.name))])),
            ("spec", Value::Mapping(pod)),
        ]),
    );
    object(
        "Deployment",
        &name,
        map(vec![
            ("apiVersion", s("apps/v1")),
            ("kind", s("Deployment")),
            (
                "metadata",
                map(vec![("name", s(&name)), ("labels", labels(p, &svc.name))]),
            ),
            ("spec", Value::Mapping(spec)),
        ]),
    )
}

/// The pod volume a mount uses: the top-level volume's name, `bind-N` for a bind.
/// A docker size (`64m`: binary units, lower-case) as a Kubernetes quantity (`64Mi`; a
/// lower-case `m` there means thousandths).
fn quantity(size: &str) -> String {
    let lower = size.to_ascii_lowercase();
    let lower = lower.strip_suffix('b').unwrap_or(&lower);
    for (suffix, unit) in [("k", "Ki"), ("m", "Mi"), ("g", "Gi")] {
        if let Some(n) = lower.strip_suffix(suffix) {
            return format!("{n}{unit}");
        }
    }
    lower.to_string()
}

fn volume_name(m: &Mount, i: usize) -> String {
    if m.kind == "volume" && m.source.is_empty() {
        format!("anon-{i}")
    } else if m.kind == "volume" {
        dns_label(&m.source)
    } else {
        format!("bind-{i}")
    }
}

/// `UID[:GID]` as runAsUser/runAsGroup; `None` when either is a name.
fn security_context(user: &str) -> Option<Value> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let mut pairs = vec![("runAsUser", num(u.parse().ok()?))];
    if let Some(g) = g {
        pairs.push(("runAsGroup", num(g.parse().ok()?)));
    }
    Some(map(pairs))
}

/// A ClusterIP Service for a service with `ports:` or `expose:`: each port under its
/// published number (the target where none is published), forwarding to the target.
fn service(p: &Project, svc: &Service) -> Option<Object> {
    if svc.ports.is_empty() && svc.expose.is_empty() {
        return None;
    }
    let name = dns_label(&svc.name);
    let mut seen = Vec::new();
    let mut ports = Vec::new();
    for port in svc.ports.iter().chain(&svc.expose) {
        let number = port.published.unwrap_or(port.target);
        let key = (number, port.protocol.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        ports.push(map(vec![
            ("name", s(&format!("{}-{number}", port.protocol))),
            ("port", num(number.into())),
            ("targetPort", num(port.target.into())),
            ("protocol", s(&port.protocol.to_uppercase())),
        ]));
    }
    Some(object(
        "Service",
        &name,
        map(vec![
            ("apiVersion", s("v1")),
            ("kind", s("Service")),
            (
                "metadata",
                map(vec![("name", s(&name)), ("labels", labels(p, &svc.name))]),
            ),
            (
                "spec",
                map(vec![
                    ("selector", labels(p, &svc.name)),
                    ("ports", Value::Sequence(ports)),
                ]),
            ),
        ]),
    ))
}
