//! Merging several compose files (`-f a.yml -f b.yml`, `COMPOSE_FILE`, or a default file and
//! its `*.override.yml`) into one document, by the Compose Specification's merge rules: a
//! later file's mappings merge into an earlier one's key by key; `ports`, `expose`, `dns`,
//! `dns_search`, `external_links` and `tmpfs` are concatenated; `environment`, `labels` and
//! `build.args` merge by variable name; `volumes` and `devices` by their container path;
//! anything else (`command`, `entrypoint`, scalars) is replaced.
//! Must not: read files or interpolate (src/compose.rs does both, per file, before merging).

use serde_norway::{Mapping, Value};

/// Merges `over` (a later file) into `base` (the files before it), both whole documents.
pub fn documents(base: &mut Value, over: Value) {
    let (Value::Mapping(b), Value::Mapping(o)) = (&mut *base, &over) else {
        *base = over;
        return;
    };
    for (k, v) in o {
        match (k.as_str(), b.get_mut(k)) {
            (Some("services"), Some(Value::Mapping(services))) => {
                let Value::Mapping(over_services) = v else {
                    b.insert(k.clone(), v.clone());
                    continue;
                };
                for (name, svc) in over_services {
                    match services.get_mut(name) {
                        Some(existing) => service(existing, svc.clone()),
                        None => {
                            services.insert(name.clone(), svc.clone());
                        }
                    }
                }
            }
            (_, Some(existing)) => mappings(existing, v.clone()),
            (_, None) => {
                b.insert(k.clone(), v.clone());
            }
        }
    }
}

/// One service's definition from a later file merged into an earlier one's.
fn service(base: &mut Value, over: Value) {
    let (Value::Mapping(b), Value::Mapping(o)) = (&mut *base, over.clone()) else {
        *base = over;
        return;
    };
    for (k, v) in o {
        let name = k.as_str().unwrap_or_default().to_string();
        let Some(existing) = b.get_mut(&k) else {
            b.insert(k, v);
            continue;
        };
        match name.as_str() {
            "ports" | "expose" | "dns" | "dns_search" | "external_links" | "tmpfs" => {
                let mut items = as_list(existing.clone());
                items.extend(as_list(v));
                *existing = Value::Sequence(items);
            }
            "environment" | "labels" => {
                let mut m = as_map(existing.clone());
                m.extend(as_map(v));
                *existing = Value::Mapping(m);
            }
            "volumes" | "devices" => *existing = by_target(existing.clone(), v),
            "depends_on" => {
                let mut m = depends_on(existing.clone());
                m.extend(depends_on(v));
                *existing = Value::Mapping(m);
            }
            "build" => build(existing, v),
            "command" | "entrypoint" => *existing = v,
            _ => mappings(existing, v),
        }
    }
}

/// `build:` as a path or a mapping; `args` merge by name.
fn build(base: &mut Value, over: Value) {
    let as_mapping = |v: Value| match v {
        Value::Mapping(m) => m,
        other => {
            let mut m = Mapping::new();
            m.insert(Value::String("context".into()), other);
            m
        }
    };
    let mut b = as_mapping(base.clone());
    for (k, v) in as_mapping(over) {
        match (k.as_str(), b.get_mut(&k)) {
            (Some("args"), Some(existing)) => {
                let mut m = as_map(existing.clone());
                m.extend(as_map(v));
                *existing = Value::Mapping(m);
            }
            _ => {
                b.insert(k, v);
            }
        }
    }
    *base = Value::Mapping(b);
}

/// Mappings merge key by key (recursively); anything else is replaced.
fn mappings(base: &mut Value, over: Value) {
    match (&mut *base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => mappings(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (_, over) => *base = over,
    }
}

/// A list, or a single value as a list of one (`tmpfs: /run`).
fn as_list(v: Value) -> Vec<Value> {
    match v {
        Value::Sequence(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// `environment:`/`labels:` as a mapping: `K=V` items become `K: V`, a bare `K` becomes `K: ~`.
fn as_map(v: Value) -> Mapping {
    match v {
        Value::Mapping(m) => m,
        Value::Sequence(items) => items
            .into_iter()
            .filter_map(|i| {
                let text = i.as_str()?.to_string();
                Some(match text.split_once('=') {
                    Some((k, v)) => (Value::String(k.into()), Value::String(v.into())),
                    None => (Value::String(text), Value::Null),
                })
            })
            .collect(),
        _ => Mapping::new(),
    }
}

/// `depends_on:` as a mapping; a list's names get the default condition.
fn depends_on(v: Value) -> Mapping {
    match v {
        Value::Sequence(items) => items
            .into_iter()
            .map(|name| {
                let mut c = Mapping::new();
                c.insert(
                    Value::String("condition".into()),
                    Value::String("service_started".into()),
                );
                (name, Value::Mapping(c))
            })
            .collect(),
        Value::Mapping(m) => m,
        _ => Mapping::new(),
    }
}

/// Mount lists merged by container path: a later entry replaces an earlier one with the same
/// target; the earlier file's others come first, then the later file's.
fn by_target(base: Value, over: Value) -> Value {
    let over = as_list(over);
    let targets: Vec<Option<String>> = over.iter().map(mount_target).collect();
    let mut items: Vec<Value> = as_list(base)
        .into_iter()
        .filter(|i| {
            let t = mount_target(i);
            t.is_none() || !targets.contains(&t)
        })
        .collect();
    items.extend(over);
    Value::Sequence(items)
}

/// The container path of a `volumes:`/`devices:` item: `SRC:DST[:MODE]`, `DST`, or `target:`.
fn mount_target(item: &Value) -> Option<String> {
    match item {
        Value::String(s) => {
            let mut parts = s.split(':');
            let first = parts.next()?;
            Some(parts.next().unwrap_or(first).to_string())
        }
        Value::Mapping(m) => m.get("target").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn a_later_file_overrides_by_the_specification_rules() {
        let mut base = yaml(
            "services:\n  web:\n    image: a\n    command: [x, y]\n    environment: {A: '1', B: '2'}\n    ports: ['80:80']\n    volumes: ['data:/data', '/anon']\n    tmpfs: /run\n    depends_on: [db]\n    healthcheck: {test: [CMD, a], retries: 2}\n  db:\n    image: d\nvolumes:\n  data: {}\n",
        );
        documents(
            &mut base,
            yaml(
                "services:\n  web:\n    command: sleep 1\n    environment: [B=3, C=4]\n    ports: ['81:81']\n    volumes: ['./x:/data:ro']\n    tmpfs: [/var]\n    depends_on: {cache: {condition: service_healthy}}\n    healthcheck: {retries: 5}\n  cache:\n    image: c\nvolumes:\n  other: {}\n",
            ),
        );
        let expect = yaml(
            "services:\n  web:\n    image: a\n    command: sleep 1\n    environment: {A: '1', B: '3', C: '4'}\n    ports: ['80:80', '81:81']\n    volumes: ['/anon', './x:/data:ro']\n    tmpfs: [/run, /var]\n    depends_on: {db: {condition: service_started}, cache: {condition: service_healthy}}\n    healthcheck: {test: [CMD, a], retries: 5}\n  db:\n    image: d\n  cache:\n    image: c\nvolumes:\n  data: {}\n  other: {}\n",
        );
        assert_eq!(base, expect);
    }

    #[test]
    fn build_args_merge_and_a_path_becomes_a_context() {
        let mut base = yaml("services:\n  a:\n    build: ./app\n");
        documents(
            &mut base,
            yaml("services:\n  a:\n    build:\n      args: [V=2]\n      target: dev\n"),
        );
        assert_eq!(
            base,
            yaml("services:\n  a:\n    build: {context: ./app, args: [V=2], target: dev}\n")
        );
        documents(
            &mut base,
            yaml("services:\n  a:\n    build:\n      args: {U: '1'}\n"),
        );
        assert_eq!(
            base,
            yaml("services:\n  a:\n    build: {context: ./app, args: {V: '2', U: '1'}, target: dev}\n")
        );
    }
}
