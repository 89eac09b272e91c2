//! `kiln compose`: `config` of a file with `${VAR}` interpolation and `.env` and of the long
//! syntaxes, `env_file` and `healthcheck`; `config` of the seeds' to-do app and of three
//! files against recorded docker-compose 1.29 output; `convert --to kubernetes` checked
//! against the Kubernetes OpenAPI schemas (kubernetes-validate); `build`/`push`/`pull`
//! through a loopback registry, with `convert` pinning the digests it serves; `run` against
//! the same `docker run`; the lifecycle of one project under docker-compose 1 and kiln; `up`
//! failing on a dependency that stays unhealthy; `up -d`
//! / `ps` / `down [-v]` of two busybox services (one built from its `build:`) where one
//! reaches the other by its service name; and a seeds-like project: a web service that waits
//! for a healthy backend, a named volume that survives `down` and `up`, and the lifecycle
//! subcommands (`stop`, `start`, `restart`, `rm`, `exec`, `run --rm`, `logs`, `--scale`, `up`
//! in the foreground stopped by SIGTERM), leaving nothing behind.
//!
//! Must not: start anything outside the kiln store of each test (no docker, no bridges).

use crate::common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::*;

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: status {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        stdout_text(&out),
        stderr_text(&out)
    );
    stdout_text(&out)
}

/// Takes a project down (`compose down -v`) when dropped, so a failed assertion does not
/// leave its containers running past the test.
struct TakeDown<'a>(&'a KilnStore, &'a Path);

impl Drop for TakeDown<'_> {
    fn drop(&mut self) {
        let _ = run(self
            .0
            .cmd()
            .args(["compose", "down", "-v"])
            .current_dir(self.1));
    }
}

/// One compose project run side by side by kiln (`kiln compose -p NAME`) and docker-compose
/// 1.29 (`docker-compose -p NAME`, stdin closed), in `dir`; both are taken down (`down -v -t
/// 1`) when this is dropped. `COMPOSE_PROFILES` is removed unless a call sets it.
struct SideBySide<'a> {
    store: &'a KilnStore,
    dir: std::path::PathBuf,
    name: String,
}

impl SideBySide<'_> {
    fn kiln(&self, args: &[&str]) -> Output {
        self.kiln_with(None, args)
    }

    fn docker_compose(&self, args: &[&str]) -> Output {
        self.docker_compose_with(None, args)
    }

    fn kiln_with(&self, profiles: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = self.store.cmd();
        cmd.args(["compose", "-p", &self.name])
            .args(args)
            .current_dir(&self.dir);
        with_profiles(&mut cmd, profiles);
        run(&mut cmd)
    }

    fn docker_compose_with(&self, profiles: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = std::process::Command::new("docker-compose");
        cmd.args(["-p", &self.name, "--no-ansi"])
            .args(args)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::null());
        with_profiles(&mut cmd, profiles);
        run(&mut cmd)
    }
}

fn with_profiles(cmd: &mut std::process::Command, profiles: Option<&str>) {
    match profiles {
        Some(p) => cmd.env("COMPOSE_PROFILES", p),
        None => cmd.env_remove("COMPOSE_PROFILES"),
    };
}

impl Drop for SideBySide<'_> {
    fn drop(&mut self) {
        let _ = self.docker_compose(&["down", "-v", "-t", "1"]);
        let _ = self.kiln(&["down", "-v", "-t", "1"]);
    }
}

fn config(dir: &Path, extra: &[&str]) -> String {
    let store = shared_store();
    let mut cmd = store.cmd();
    cmd.arg("compose")
        .args(extra)
        .arg("config")
        .current_dir(dir);
    cmd.env_remove("COMPOSE_PROJECT_NAME");
    ok(run(&mut cmd), "compose config")
}

#[test]
fn config_interpolates_from_env_and_dotenv() {
    let dir = temp_dir();
    let proj = dir.path().join("My Proj.1");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(
        proj.join(".env"),
        "TAG=1.36\n# a comment\nPORT=\"8080\"\nEMPTY=\n",
    )
    .unwrap();
    std::fs::write(
        proj.join("compose.yaml"),
        r#"services:
  web:
    image: "busybox:${TAG}"
    command: httpd -f -p "${PORT}" -h '/var/www'
    environment:
      - GREETING=${GREETING:-hello}
      - EMPTY_DEFAULT=${EMPTY:-fallback}
      - EMPTY_DASH=${EMPTY-unused}
      - LITERAL=$$HOME
    ports:
      - "${PORT}:80"
    volumes:
      - data:/data
      - ./site:/var/www:ro
    working_dir: /var/www
    user: "1000"
    depends_on:
      db:
        condition: service_started
  db:
    image: busybox:${TAG}
    restart: always
volumes:
  data:
"#,
    )
    .unwrap();
    let text = config(&proj, &[]);
    for want in [
        "name: myproj1\n",
        "image: busybox:1.36\n",
        "- httpd\n",
        "- '8080'\n",
        "- /var/www\n",
        "GREETING: hello\n",
        "EMPTY_DEFAULT: fallback\n",
        "EMPTY_DASH: ''\n",
        "LITERAL: $$HOME\n",
        "published: '8080'\n",
        "target: 80\n",
        "type: volume\n",
        "source: data\n",
        &format!("source: {}/site\n", proj.display()),
        "read_only: true\n",
        "condition: service_started\n",
        "name: myproj1_default\n",
        "name: myproj1_data\n",
        "restart: always\n",
        "user: '1000'\n",
        "working_dir: /var/www\n",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    // The environment wins over .env, and -p over everything.
    let store = shared_store();
    let out = run(store
        .cmd()
        .args(["compose", "-p", "Other", "config"])
        .current_dir(&proj)
        .env("TAG", "stable")
        .env("GREETING", "hi"));
    let text = ok(out, "compose -p config");
    assert!(text.contains("name: other\n"), "{text}");
    assert!(text.contains("image: busybox:stable\n"), "{text}");
    assert!(text.contains("GREETING: hi\n"), "{text}");
    // A required variable that is unset is an error naming it.
    std::fs::write(
        proj.join("bad.yaml"),
        "services:\n  a:\n    image: ${NOPE:?set NOPE}\n",
    )
    .unwrap();
    let out = run(store
        .cmd()
        .args(["compose", "-f", "bad.yaml", "config"])
        .current_dir(&proj));
    assert!(!out.status.success());
    assert!(
        stderr_text(&out).contains("set NOPE"),
        "{}",
        stderr_text(&out)
    );
}

#[test]
fn config_reads_the_seeds_todo_app() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose/todo");
    // --services in depends_on order, --volumes, -q (as docker compose config's flags).
    let list = |flag: &str| {
        let store = shared_store();
        let mut cmd = store.cmd();
        cmd.args(["compose", "config", flag]).current_dir(&dir);
        ok(run(&mut cmd), "compose config flag")
    };
    assert_eq!(list("--services"), "db\napp\nlb\n");
    assert_eq!(list("--volumes"), "data\n");
    assert_eq!(list("-q"), "");
    let text = config(&dir, &["-f", "docker-compose.yml"]);
    for want in [
        "name: todo\n",
        "  app:\n",
        "  db:\n",
        "  lb:\n",
        "dockerfile: Dockerfile.full\n",
        &format!("context: {}\n", dir.display()),
        "DATABASE_URL: mongodb://db:27017\n",
        "image: mongo:3\n",
        "published: '3000'\n",
        "target: /etc/nginx/nginx.conf\n",
        &format!("source: {}/nginx.conf\n", dir.display()),
        "name: todo_data\n",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.display().to_string();
    text.lines()
        .filter(|l| l.contains(&dir))
        .map(str::to_string)
        .collect()
}

#[test]
fn up_ps_down_two_services_by_name() {
    if !running_as_root() {
        skip_or_fail("root", "containers need root");
        return;
    }
    if let Err(why) = peer_status("busybox") {
        skip_or_fail("busybox", &why);
        return;
    }
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    let proj = dir.path().join("pair");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(
        proj.join("compose.yaml"),
        format!(
            r#"services:
  web:
    image: {BUSYBOX}
    command: ["busybox", "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/etc"]
    volumes:
      - data:/data
  client:
    build:
      context: ./client
      args:
        MSG: built by compose
    command: sleep 300
    depends_on: [web]
volumes:
  data:
"#
        ),
    )
    .unwrap();
    std::fs::create_dir(proj.join("client")).unwrap();
    std::fs::write(
        proj.join("client/Dockerfile"),
        format!("FROM {BUSYBOX}\nARG MSG\nRUN echo \"$MSG\" > /built\n"),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut cmd = store.cmd();
        cmd.arg("compose").args(args).current_dir(&proj);
        cmd.env_remove("COMPOSE_PROJECT_NAME");
        run(&mut cmd)
    };
    // A failed assertion still takes the project down (its containers outlive the test).
    let _down = TakeDown(&store, &proj);
    ok(compose(&["up", "-d"]), "compose up -d");
    let ps = ok(compose(&["ps"]), "compose ps");
    let lines: Vec<&str> = ps.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two containers:\n{ps}");
    // docker compose ps's columns, docker's STATUS.
    assert!(
        lines[0].split_whitespace().collect::<Vec<_>>()
            == ["NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"],
        "{ps}"
    );
    assert!(
        lines[1].starts_with("pair-web-1 ")
            && lines[1].contains(" web ")
            && lines[1].contains(" Up "),
        "{ps}"
    );
    assert!(
        lines[2].starts_with("pair-client-1 ") && lines[2].contains(" Up "),
        "{ps}"
    );
    let ids = ok(compose(&["ps", "-q"]), "compose ps -q");
    let web_id: String = ids.lines().next().unwrap()[..12].to_string();

    // The client finds `web` in the /etc/hosts kiln writes for the project's network (the
    // static busybox cannot use glibc's resolver in the image) and fetches from it.
    let script = "ip=$(grep -w web /etc/hosts | cut -f1 | head -n1); \
        printf 'GET /hostname HTTP/1.0\\r\\n\\r\\n' | busybox nc \"$ip\" 8080 | sed '1,/^\\r$/d'";
    let start = Instant::now();
    let body = loop {
        let out = store.kiln(["exec", "pair-client-1", "sh", "-c", script]);
        let body = stdout_text(&out).trim().to_string();
        if (out.status.success() && !body.is_empty()) || start.elapsed() > Duration::from_secs(10) {
            break body;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(body, web_id, "the client reached web by its service name");
    // The client's image was built from its build: with its args, and tagged <project>-<service>.
    let built = ok(
        store.kiln(["exec", "pair-client-1", "cat", "/built"]),
        "exec cat /built",
    );
    assert_eq!(built.trim(), "built by compose");
    assert!(lines[2].contains(" pair-client "), "{ps}");
    let net = ok(store.kiln(["network", "ls", "-q"]), "network ls");
    assert_eq!(net.trim(), "pair_default");

    // down keeps the named volume; down -v removes it.
    ok(compose(&["down"]), "compose down");
    assert_eq!(ok(store.kiln(["ps", "-a", "-q"]), "ps -a").trim(), "");
    assert_eq!(
        ok(store.kiln(["network", "ls", "-q"]), "network ls").trim(),
        ""
    );
    assert_eq!(
        ok(store.kiln(["volume", "ls", "-q"]), "volume ls").trim(),
        "pair_data"
    );
    ok(compose(&["down", "-v"]), "compose down -v");
    assert_eq!(
        ok(store.kiln(["volume", "ls", "-q"]), "volume ls").trim(),
        ""
    );
    assert_eq!(mounts_under(store.root()), Vec::<String>::new());
}

#[test]
fn config_long_syntax_env_file_and_healthcheck() {
    let dir = temp_dir();
    let proj = dir.path().join("long");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(proj.join("web.env"), "FROM_FILE=1\nBOTH=file\n# c\n").unwrap();
    std::fs::write(
        proj.join("compose.yaml"),
        r#"services:
  web:
    image: busybox
    env_file: web.env
    environment:
      BOTH: environment
    ports:
      - target: 80
        published: 8080
        host_ip: 127.0.0.1
        protocol: tcp
      - "9090:90/udp"
    volumes:
      - type: volume
        source: data
        target: /data
        read_only: true
      - type: bind
        source: ./conf
        target: /conf
    entrypoint: ["/bin/sh", "-c"]
    command: echo hi
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/ready"]
      interval: 1m30s
      timeout: 500ms
      retries: 5
      start_period: 2s
volumes:
  data: {}
"#,
    )
    .unwrap();
    let text = config(&proj, &[]);
    for want in [
        "FROM_FILE: '1'\n",
        "BOTH: environment\n",
        "host_ip: 127.0.0.1\n",
        "published: '8080'\n",
        "published: '9090'\n",
        "protocol: udp\n",
        "read_only: true\n",
        &format!("source: {}/conf\n", proj.display()),
        "- CMD-SHELL\n",
        "- test -f /tmp/ready\n",
        "interval: 1m30s\n",
        "timeout: 500ms\n",
        "retries: 5\n",
        "start_period: 2s\n",
        "- echo\n",
        "- /bin/sh\n",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    // A missing env_file and an unknown healthcheck test form are errors naming the service.
    for (bad, why) in [
        ("env_file: nope.env", "nope.env is not a file"),
        ("healthcheck:\n      test: [\"WHAT\"]", "CMD"),
        (
            "ports:\n      - \"8000-8010:80\"",
            "the host and container ranges differ in length",
        ),
        (
            "depends_on:\n      b:\n        condition: service_ready",
            "condition service_ready is not",
        ),
    ] {
        std::fs::write(
            proj.join("bad.yaml"),
            format!("services:\n  a:\n    image: busybox\n    {bad}\n"),
        )
        .unwrap();
        let store = shared_store();
        let out = run(store
            .cmd()
            .args(["compose", "-f", "bad.yaml", "config"])
            .current_dir(&proj));
        assert!(!out.status.success(), "{bad} was accepted");
        // miette wraps long lines: compare the words.
        let err = stderr_text(&out)
            .split_whitespace()
            .filter(|w| *w != "│")
            .collect::<Vec<_>>()
            .join(" ");
        assert!(
            err.contains("service a") && err.contains(why),
            "{bad}: {err}"
        );
    }
}

/// The ManifestDigest `kiln inspect` shows for an image.
fn manifest_digest(store: &KilnStore, image: &str) -> String {
    let out = ok(store.kiln(["inspect", image]), "kiln inspect");
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect prints JSON");
    let v = if v.is_array() { v[0].clone() } else { v };
    v["ManifestDigest"]
        .as_str()
        .unwrap_or_else(|| panic!("no ManifestDigest in {out}"))
        .to_string()
}

#[test]
fn convert_to_kubernetes_pins_digests_and_validates() {
    if !running_as_root() {
        skip_or_fail("root", "kiln build needs root");
        return;
    }
    if let Err(why) = peer_status("busybox") {
        skip_or_fail("busybox", &why);
        return;
    }
    let validate = peer_status("kubernetes-validate");
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    let proj = dir.path().join("shop");
    std::fs::create_dir_all(proj.join("app")).unwrap();
    std::fs::write(
        proj.join("app/Dockerfile"),
        format!("FROM {BUSYBOX}\nENV GREETING=hello\nCMD [\"httpd\", \"-f\"]\n"),
    )
    .unwrap();
    std::fs::write(proj.join("app.env"), "MODE=production\n").unwrap();
    std::fs::write(
        proj.join("compose.yaml"),
        format!(
            r#"services:
  app:
    build: ./app
    env_file: app.env
    environment:
      DB: db:5432
    ports:
      - "8080:80"
      - target: 9000
    user: "1000:1000"
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1:80/"]
      interval: 5s
      timeout: 1500ms
      retries: 4
      start_period: 10s
    depends_on:
      db:
        condition: service_healthy
  db:
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    expose: ["5432"]
    working_dir: /data
    restart: "no"
    volumes:
      - db_data:/data
      - ./init.sql:/docker-entrypoint-initdb.d/init.sql:ro
volumes:
  db_data:
"#
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut cmd = store.cmd();
        cmd.arg("compose").args(args).current_dir(&proj);
        cmd.env_remove("COMPOSE_PROJECT_NAME");
        run(&mut cmd)
    };
    // Before the build, app's image has no digest to pin: a clear error, nothing printed.
    let out = compose(&["convert", "--to", "kubernetes"]);
    assert!(!out.status.success(), "{}", show(&out));
    let err = stderr_text(&out);
    assert!(
        err.contains("service app: image shop-app is not in kiln's store")
            && err.contains("kiln compose build"),
        "{err}"
    );
    assert_eq!(stdout_text(&out), "");
    ok(compose(&["build"]), "compose build");

    let first = ok(compose(&["convert", "--to", "kubernetes"]), "convert");
    let second = ok(compose(&["convert", "--to", "kubernetes"]), "convert again");
    assert_eq!(first, second, "the same project gives the same bytes");
    let docs: Vec<serde_json::Value> = first
        .split("\n---\n")
        .map(|d| serde_norway::from_str(d).expect("each document is YAML"))
        .collect();
    let kinds: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "PersistentVolumeClaim/shop-db-data",
            "Deployment/app",
            "Service/app",
            "Deployment/db",
            "Service/db"
        ]
    );
    // Images pinned by the manifest digest in the store.
    let app = &docs[1]["spec"]["template"]["spec"]["containers"][0];
    let db = &docs[3]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        app["image"].as_str().unwrap(),
        format!("shop-app@{}", manifest_digest(&store, "shop-app"))
    );
    let db_image = db["image"].as_str().unwrap();
    assert_eq!(
        db_image,
        format!("busybox@{}", manifest_digest(&store, BUSYBOX))
    );
    ok(
        store.kiln(["inspect", db_image]),
        "the pinned reference resolves",
    );
    // The service's fields, as Kubernetes spells them.
    assert_eq!(app["env"][0]["name"], "DB");
    assert_eq!(app["env"][1]["value"], "production");
    assert_eq!(app["securityContext"]["runAsUser"], 1000);
    assert_eq!(app["readinessProbe"]["exec"]["command"][0], "wget");
    assert_eq!(app["readinessProbe"]["timeoutSeconds"], 2);
    assert_eq!(app["livenessProbe"]["initialDelaySeconds"], 10);
    assert_eq!(docs[2]["spec"]["ports"][0]["port"], 8080);
    assert_eq!(docs[2]["spec"]["ports"][0]["targetPort"], 80);
    assert_eq!(docs[2]["spec"]["ports"][1]["port"], 9000);
    assert_eq!(db["args"][0], "sleep");
    assert_eq!(db["workingDir"], "/data");
    assert_eq!(
        docs[3]["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "shop-db-data"
    );
    assert_eq!(docs[3]["spec"]["strategy"]["type"], "Recreate");
    // expose: gives db a Service, so app's db:5432 resolves in the cluster too.
    assert_eq!(db["ports"][0]["containerPort"], 5432);
    assert_eq!(docs[4]["spec"]["ports"][0]["port"], 5432);
    assert_eq!(docs[4]["spec"]["ports"][0]["targetPort"], 5432);
    let err = stderr_text(&compose(&["convert", "--to", "kubernetes"]));
    assert!(
        err.contains("hostPath") && err.contains("restart: no"),
        "{err}"
    );

    // -o DIR: one file per object, the same objects.
    let out_dir = dir.path().join("k8s");
    ok(
        compose(&[
            "convert",
            "--to",
            "kubernetes",
            "-o",
            out_dir.to_str().unwrap(),
        ]),
        "convert -o",
    );
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "app-deployment.yaml",
            "app-service.yaml",
            "db-deployment.yaml",
            "db-service.yaml",
            "shop-db-data-persistentvolumeclaim.yaml"
        ]
    );
    let joined = [
        "shop-db-data-persistentvolumeclaim.yaml",
        "app-deployment.yaml",
        "app-service.yaml",
        "db-deployment.yaml",
        "db-service.yaml",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(out_dir.join(f)).unwrap())
    .collect::<Vec<_>>()
    .join("---\n");
    assert_eq!(joined, first);

    // Every object against the Kubernetes OpenAPI schemas, rejecting unknown fields.
    if let Err(why) = validate {
        skip_or_fail("kubernetes-validate", &why);
        return;
    }
    let mut cmd = std::process::Command::new(kubernetes_validate_bin());
    cmd.arg("--strict");
    for f in &files {
        cmd.arg(out_dir.join(f));
    }
    let out = run(&mut cmd);
    assert!(out.status.success(), "kubernetes-validate: {}", show(&out));
    let said = stdout_text(&out);
    assert_eq!(said.matches("INFO").count(), files.len(), "{said}");
    // And it does reject a wrong object: the check can fail.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(out_dir.join("app-deployment.yaml"))
            .unwrap()
            .replace("containerPort", "containerPorts"),
    )
    .unwrap();
    let out = run(std::process::Command::new(kubernetes_validate_bin())
        .arg("--strict")
        .arg(&broken));
    assert!(
        !out.status.success(),
        "a misspelt field passed: {}",
        show(&out)
    );
}

/// A seeds-like project (the to-do app's shape: `app` needs `db`, whose data is a named
/// volume): `app` waits for `db`'s healthcheck, reaches it by its service name and reads what
/// the volume holds; the volume survives `down` and `up`; then the lifecycle subcommands.
#[test]
fn seeds_like_project_healthcheck_volume_and_lifecycle() {
    if !running_as_root() {
        skip_or_fail("root", "containers need root");
        return;
    }
    if let Err(why) = peer_status("busybox") {
        skip_or_fail("busybox", &why);
        return;
    }
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    let proj = dir.path().join("todo");
    std::fs::create_dir(&proj).unwrap();
    // db becomes ready (its healthcheck passes) only a second after it starts, and only then
    // serves /data; app fetches /data/count from db by name once, when it starts.
    std::fs::write(
        proj.join("compose.yaml"),
        format!(
            r#"services:
  db:
    image: {BUSYBOX}
    command:
      - sh
      - -c
      - |
        [ -f /data/count ] || echo 0 > /data/count
        sleep 1
        busybox httpd -p 127.0.0.1:27017 -h /data
        touch /tmp/ready
        trap 'exit 0' TERM
        sleep 300 & wait
    volumes:
      - type: volume
        source: data
        target: /data
    healthcheck:
      test: ["CMD-SHELL", "test -f /tmp/ready"]
      interval: 100ms
      timeout: 5s
      retries: 100
  app:
    image: {BUSYBOX}
    environment:
      DATABASE_HOST: db
    command:
      - sh
      - -c
      - |
        ip=$$(grep -w "$$DATABASE_HOST" /etc/hosts | cut -f1 | head -n1)
        echo "app got $$(busybox wget -q -O- http://$$ip:27017/count)"
        trap 'exit 0' TERM
        sleep 300 & wait
    depends_on:
      db:
        condition: service_healthy
volumes:
  data:
"#
        ),
    )
    .unwrap();
    let compose_cmd = |args: &[&str]| {
        let mut cmd = store.cmd();
        cmd.arg("compose").args(args).current_dir(&proj);
        cmd.env_remove("COMPOSE_PROJECT_NAME");
        cmd
    };
    let compose = |args: &[&str]| run(&mut compose_cmd(args));
    let _down = TakeDown(&store, &proj);
    let app_log = |want: &str| {
        let mut last = String::new();
        let seen = wait_until(Duration::from_secs(20), || {
            last = stdout_text(&compose(&["logs", "app"]));
            last.contains(want)
        });
        assert!(seen, "{want:?} in app's log:\n{last}");
    };

    let up = compose(&["up", "-d"]);
    let err = ok(up, "compose up -d");
    let _ = err;
    app_log("app got 0\n");
    // db's health is the supervisor's record, in docker's State.Health shape.
    let out = ok(store.kiln(["inspect", "todo-db-1"]), "inspect db");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    assert_eq!(v["State"]["Health"]["Status"], "healthy", "{out}");
    assert_eq!(v["State"]["Health"]["FailingStreak"], 0, "{out}");
    assert_eq!(v["Config"]["Healthcheck"]["Test"][0], "CMD-SHELL", "{out}");
    let ps = ok(compose(&["ps"]), "compose ps");
    assert!(ps.contains(" (healthy)"), "{ps}");
    // A second up leaves running containers alone.
    let again = compose(&["up", "-d"]);
    assert!(
        stderr_text(&again).contains("Container todo-db-1 Running"),
        "{}",
        show(&again)
    );

    // exec: the command's status comes back; the volume is written through db.
    let out = compose(&["exec", "db", "sh", "-c", "echo 41 > /data/count; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));

    // The named volume survives down and up: app now reads 41.
    ok(compose(&["down"]), "compose down");
    assert_eq!(ok(store.kiln(["ps", "-a", "-q"]), "ps -a").trim(), "");
    ok(compose(&["up", "-d"]), "compose up -d again");
    app_log("app got 41\n");

    // logs -f: the prefixed lines so far, then it follows until the container stops.
    let mut follower = compose_cmd(&["logs", "-f", "app"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("kiln compose logs -f");
    let mut reader = std::io::BufReader::new(follower.stdout.take().unwrap());
    let first = {
        use std::io::BufRead;
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        line
    };
    assert_eq!(first, "app-1  | app got 41\n");
    ok(compose(&["stop", "-t", "1", "app"]), "compose stop app");
    let mut status = None;
    let ended = wait_until(Duration::from_secs(30), || {
        status = follower.try_wait().unwrap();
        status.is_some()
    });
    if !ended {
        let _ = follower.kill();
    }
    assert!(ended, "logs -f did not end when the container stopped");
    assert!(status.unwrap().success());
    let rest = {
        use std::io::Read;
        let mut rest = String::new();
        reader.read_to_string(&mut rest).unwrap();
        rest
    };
    assert_eq!(
        rest, "app-1 exited with code 0\n",
        "as docker compose says it"
    );
    ok(compose(&["start", "app"]), "compose start app");

    // stop / start / restart / rm.
    ok(compose(&["stop", "-t", "1"]), "compose stop");
    let ps = ok(compose(&["ps"]), "compose ps");
    assert_eq!(
        ps.lines().count(),
        1,
        "ps lists running containers only: {ps}"
    );
    let ps = ok(compose(&["ps", "-a"]), "compose ps -a");
    assert_eq!(ps.matches("Exited (0)").count(), 2, "{ps}");
    ok(compose(&["start"]), "compose start");
    let ps = ok(compose(&["ps"]), "compose ps");
    assert_eq!(ps.matches(" Up ").count(), 2, "{ps}");
    let started = |name: &str| {
        let out = ok(store.kiln(["inspect", name]), "inspect");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let v = if v.is_array() { v[0].clone() } else { v };
        v["State"]["StartedAt"].as_str().unwrap().to_string()
    };
    let (app_before, db_before) = (started("todo-app-1"), started("todo-db-1"));
    ok(
        compose(&["restart", "-t", "1", "app"]),
        "compose restart app",
    );
    assert_ne!(started("todo-app-1"), app_before, "app was restarted");
    assert_eq!(started("todo-db-1"), db_before, "db was left alone");
    // rm leaves a running container alone; stopped, it goes.
    ok(compose(&["rm", "-f", "app"]), "compose rm running");
    assert!(ok(compose(&["ps"]), "ps").contains("todo-app-1 "));
    ok(compose(&["stop", "-t", "1", "app"]), "compose stop app");
    ok(compose(&["rm", "-f", "app"]), "compose rm stopped");
    let ps = ok(compose(&["ps", "-a"]), "compose ps -a");
    assert!(
        !ps.contains("todo-app-1 ") && ps.contains("todo-db-1 "),
        "{ps}"
    );

    // run --rm: a one-off container with its own command and status, removed after.
    let out = compose(&["run", "--rm", "app", "sh", "-c", "echo one-off; exit 4"]);
    assert_eq!(out.status.code(), Some(4), "{}", show(&out));
    assert_eq!(stdout_text(&out), "one-off\n");
    let names = ok(store.kiln(["ps", "-a", "--format", "{{.Names}}"]), "ps -a");
    assert!(!names.contains("run"), "the run container is gone: {names}");
    // Without --rm it stays (exited) until down removes it with the project.
    let out = compose(&["run", "app", "true"]);
    assert!(out.status.success(), "{}", show(&out));
    let names = ok(store.kiln(["ps", "-a", "--format", "{{.Names}}"]), "ps -a");
    assert!(names.contains("todo-app-run-"), "{names}");

    // --scale: two app containers, then back to one.
    ok(
        compose(&["up", "-d", "--scale", "app=2"]),
        "up --scale app=2",
    );
    let ps = ok(compose(&["ps"]), "compose ps");
    assert!(
        ps.contains("todo-app-1 ") && ps.contains("todo-app-2 "),
        "{ps}"
    );
    ok(compose(&["up", "-d"]), "up without --scale");
    let ps = ok(compose(&["ps"]), "compose ps");
    assert!(
        ps.contains("todo-app-1 ") && !ps.contains("todo-app-2 "),
        "{ps}"
    );
    ok(compose(&["down"]), "compose down");

    // up in the foreground: prefixed logs; SIGTERM stops the project's containers.
    let mut child = compose_cmd(&["up"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kiln compose up");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        lines.push(line);
        if lines.iter().any(|l| l.starts_with("app-1  | app got 41")) {
            break;
        }
    }
    assert!(
        lines.iter().any(|l| l == "app-1  | app got 41"),
        "prefixed app output in {lines:?}"
    );
    nix_kill(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "compose up after SIGTERM: {status}");
    let ps = ok(compose(&["ps", "-a"]), "compose ps -a");
    assert_eq!(
        ps.matches("Exited (0)").count(),
        2,
        "SIGTERM stopped both: {ps}"
    );
    ok(compose(&["down", "-v"]), "compose down -v");
    assert_eq!(
        ok(store.kiln(["volume", "ls", "-q"]), "volume ls").trim(),
        ""
    );
    assert_eq!(mounts_under(store.root()), Vec::<String>::new());
}

fn nix_kill(pid: u32, sig: &str) {
    let out = run(std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string()));
    assert!(out.status.success(), "kill: {}", show(&out));
}

/// `depends_on: condition: service_healthy` on a service whose check keeps failing: `up`
/// fails naming it and the last check, and does not start the dependent service.
#[test]
fn up_fails_when_a_dependency_stays_unhealthy() {
    if !can_run_containers() {
        return;
    }
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    let proj = dir.path().join("sick");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(
        proj.join("compose.yaml"),
        format!(
            r#"services:
  db:
    image: {BUSYBOX}
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 120 & wait"]
    healthcheck:
      test: ["CMD", "sh", "-c", "echo not ready; exit 1"]
      interval: 100ms
      retries: 3
  app:
    image: {BUSYBOX}
    command: ["sleep", "120"]
    depends_on:
      db:
        condition: service_healthy
"#
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut cmd = store.cmd();
        cmd.arg("compose").args(args).current_dir(&proj);
        cmd.env_remove("COMPOSE_PROJECT_NAME");
        run(&mut cmd)
    };
    let out = compose(&["up", "-d"]);
    let down = compose(&["down"]);
    assert!(!out.status.success(), "{}", show(&out));
    let err = stderr_text(&out)
        .split_whitespace()
        .filter(|w| *w != "│")
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        err.contains("service db did not become healthy")
            && err.contains("3 checks failed in a row")
            && err.contains("exited 1: not ready"),
        "{err}"
    );
    assert!(!stderr_text(&out).contains("sick-app-1 Started"), "{err}");
    assert!(down.status.success(), "{}", show(&down));
}

// --- `kiln compose config` against recorded `docker-compose config` (v1.29.2, Debian's
// docker-compose package): tests/fixtures/compose/{todo,long,interp}/docker-compose-v1-config.yaml,
// with the project directory written as ${PROJECT_DIR}. Both outputs are brought to one
// model first, for the spellings that differ but mean the same (docs/compose.md lists them).

use serde_json::{json, Value as Json};

/// Shell words, as compose splits a command string.
fn words(s: &str) -> Vec<String> {
    let (mut out, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                if let Some(n) = chars.next() {
                    word.push(n);
                }
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            (_, c) => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

fn millis(s: &str) -> u64 {
    let (mut total, mut num) = (0f64, String::new());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            0.001
        } else {
            match c {
                'h' => 3600.0,
                'm' => 60.0,
                's' => 1.0,
                _ => panic!("duration {s}"),
            }
        };
        total += num.parse::<f64>().unwrap() * unit;
        num.clear();
    }
    (total * 1000.0).round() as u64
}

fn text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        v => v.to_string(),
    }
}

fn normal_port(p: &Json) -> Json {
    if let Some(s) = p.as_str() {
        let (spec, proto) = s.rsplit_once('/').unwrap_or((s, "tcp"));
        let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
        return json!({
            "target": parts[0].parse::<u64>().unwrap(),
            "published": parts.get(1).map(|p| p.to_string()),
            "host_ip": parts.get(2).map(|p| p.to_string()),
            "protocol": proto,
        });
    }
    json!({
        "target": p["target"].as_u64().unwrap(),
        "published": p.get("published").map(text),
        "host_ip": p.get("host_ip").map(text),
        "protocol": p.get("protocol").map(text).unwrap_or_else(|| "tcp".into()),
    })
}

fn normal_volume(v: &Json) -> Json {
    if let Some(s) = v.as_str() {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() == 1 {
            return json!({"type": "volume", "source": "", "target": parts[0], "read_only": false});
        }
        return json!({
            "type": if parts[0].starts_with('/') { "bind" } else { "volume" },
            "source": parts[0],
            "target": parts[1],
            "read_only": parts.get(2) == Some(&"ro"),
        });
    }
    json!({
        "type": text(&v["type"]),
        "source": text(&v["source"]),
        "target": text(&v["target"]),
        "read_only": v["read_only"].as_bool().unwrap_or(false),
    })
}

fn normal_list(v: &Json) -> Json {
    match v {
        Json::String(s) => json!(words(s)),
        v => v.clone(),
    }
}

fn sorted(items: impl Iterator<Item = Json>) -> Vec<Json> {
    let mut v: Vec<Json> = items.collect();
    v.sort_by_key(|j| j.to_string());
    v
}

/// The model both outputs mean.
fn normal_model(yaml: &str) -> Json {
    let v: Json = serde_norway::from_str(yaml).expect("config output is YAML");
    let mut services = serde_json::Map::new();
    for (name, s) in v["services"].as_object().unwrap() {
        let mut out = serde_json::Map::new();
        for (k, field) in s.as_object().unwrap() {
            let n = match k.as_str() {
                "networks" => continue,
                "command" | "entrypoint" => normal_list(field),
                "environment" => json!(field
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(text(v))))
                    .collect::<serde_json::Map<_, _>>()),
                // docker-compose 1 prints ports and mounts sorted; their order means nothing.
                "ports" => json!(sorted(field.as_array().unwrap().iter().map(normal_port))),
                "volumes" => json!(sorted(field.as_array().unwrap().iter().map(normal_volume))),
                "depends_on" => json!(field
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v["condition"].clone()))
                    .collect::<serde_json::Map<_, _>>()),
                "healthcheck" => {
                    let test = match &field["test"] {
                        Json::String(s) => json!(["CMD-SHELL", s]),
                        t => t.clone(),
                    };
                    let d = |k: &str, default: &str| {
                        millis(field.get(k).and_then(Json::as_str).unwrap_or(default))
                    };
                    json!({
                        "test": test,
                        "interval": d("interval", "30s"),
                        "timeout": d("timeout", "30s"),
                        "start_period": d("start_period", "0s"),
                        "retries": field.get("retries").and_then(Json::as_u64).unwrap_or(3),
                    })
                }
                _ => field.clone(),
            };
            out.insert(k.clone(), n);
        }
        services.insert(name.clone(), Json::Object(out));
    }
    let volumes: Vec<String> = v["volumes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    json!({"services": services, "volumes": volumes})
}

#[test]
fn config_matches_recorded_docker_compose_v1_output() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose");
    for case in ["todo", "long", "interp", "override", "profiles", "runflags"] {
        let dir = fixtures.join(case);
        let recorded = std::fs::read_to_string(dir.join("docker-compose-v1-config.yaml"))
            .unwrap()
            .replace("${PROJECT_DIR}", &dir.display().to_string());
        let store = shared_store();
        let mut cmd = store.cmd();
        cmd.args(["compose", "config"]).current_dir(&dir);
        for var in [
            "COMPOSE_PROJECT_NAME",
            "COMPOSE_PROFILES",
            "GREETING",
            "TAG",
            "PORT",
            "EMPTY",
        ] {
            cmd.env_remove(var);
        }
        let ours = ok(run(&mut cmd), "compose config");
        assert_eq!(
            normal_model(&ours),
            normal_model(&recorded),
            "{case}: kiln's model (left) differs from docker-compose's (right)\n--- kiln\n{ours}\n--- docker-compose\n{recorded}"
        );
    }
}

/// A port range published one port each, an anonymous volume (one per container, removed by
/// `down -v`), and tmpfs mounts noexec as docker's.
#[test]
fn port_ranges_anonymous_volumes_and_tmpfs() {
    if !running_as_root() {
        skip_or_fail("root", "containers need root");
        return;
    }
    if let Err(why) = peer_status("busybox") {
        skip_or_fail("busybox", &why);
        return;
    }
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    let proj = dir.path().join("ranges");
    std::fs::create_dir(&proj).unwrap();
    let port = free_port_pair();
    std::fs::write(
        proj.join("compose.yaml"),
        format!(
            r#"services:
  web:
    image: {BUSYBOX}
    command: ["sh", "-c", "mount > /anon/mounts; exec httpd -f -p 9001 -h /anon"]
    ports:
      - "127.0.0.1:{port}-{next}:9000-9001"
    volumes:
      - /anon
    tmpfs:
      - /run
      - /scratch:size=64k,exec
"#,
            next = port + 1
        ),
    )
    .unwrap();
    let compose = |args: &[&str]| {
        let mut cmd = store.cmd();
        cmd.arg("compose").args(args).current_dir(&proj);
        cmd.env_remove("COMPOSE_PROJECT_NAME");
        run(&mut cmd)
    };
    let _down = TakeDown(&store, &proj);
    ok(compose(&["up", "-d"]), "compose up -d");
    // The container's 9001 is the range's second host port.
    let page = http_get(port + 1, "/mounts", Duration::from_secs(10));
    assert!(page.contains("200 OK"), "{page}");
    let mount_line = |dst: &str| {
        page.lines()
            .find(|l| l.contains(&format!(" on {dst} ")))
            .unwrap_or_else(|| panic!("no mount on {dst}:\n{page}"))
            .to_string()
    };
    let run_line = mount_line("/run");
    assert!(
        run_line.contains("tmpfs") && run_line.contains("noexec"),
        "{run_line}"
    );
    let scratch = mount_line("/scratch");
    assert!(
        scratch.contains("size=64k") && !scratch.contains("noexec"),
        "{scratch}"
    );
    let volumes = ok(store.kiln(["volume", "ls", "-q"]), "volume ls");
    assert_eq!(
        volumes.lines().count(),
        1,
        "one anonymous volume: {volumes}"
    );
    // httpd as PID 1 ignores TERM: -t 1 kills it after a second.
    ok(compose(&["down", "-v", "-t", "1"]), "compose down -v");
    let volumes = ok(store.kiln(["volume", "ls", "-q"]), "volume ls");
    assert!(volumes.trim().is_empty(), "down -v removes it: {volumes}");
}

/// Several files: `-f a -f b`, `COMPOSE_FILE=a:b` and the default file with its override
/// beside it give one model; a file named alone is read alone.
#[test]
fn several_files_merge_in_order() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose/override");
    let default = config(&dir, &[]);
    let named = config(
        &dir,
        &[
            "-f",
            "docker-compose.yml",
            "-f",
            "docker-compose.override.yml",
        ],
    );
    assert_eq!(default, named);
    let store = shared_store();
    let out = run(store
        .cmd()
        .args(["compose", "config"])
        .current_dir(&dir)
        .env_remove("COMPOSE_PROJECT_NAME")
        .env(
            "COMPOSE_FILE",
            "docker-compose.yml:docker-compose.override.yml",
        ));
    assert_eq!(ok(out, "COMPOSE_FILE config"), default);
    let base_only = config(&dir, &["-f", "docker-compose.yml"]);
    assert!(!base_only.contains("cache:"), "{base_only}");
    assert!(base_only.contains("- '9000'\n"), "{base_only}");
    assert!(default.contains("- '9001'\n"), "{default}");
    // The other order: the base file's command wins.
    let reversed = config(
        &dir,
        &[
            "-f",
            "docker-compose.override.yml",
            "-f",
            "docker-compose.yml",
        ],
    );
    assert!(reversed.contains("- '9000'\n"), "{reversed}");
}

/// `compose build`, `compose push` to a loopback registry, `compose pull` into an empty
/// store; `convert --to kubernetes` pins each image by the digest the registry serves
/// (as skopeo reads it).
#[test]
fn push_pull_and_convert_pin_the_registry_digest() {
    use crate::registry::{require_tools, Registry, REGISTRY_BIN};
    if !require_tools(&[REGISTRY_BIN]) {
        return;
    }
    require_peer!("busybox", "skopeo");
    if !running_as_root() {
        skip_or_fail("root", "kiln build needs root");
        return;
    }
    let registry = Registry::start(None, None);
    let host = registry.host();
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    let proj = dir.path().join("reg");
    std::fs::create_dir_all(proj.join("app")).unwrap();
    std::fs::write(
        proj.join("app/Dockerfile"),
        format!("FROM {BUSYBOX}\nENV BUILT=by-compose\n"),
    )
    .unwrap();
    std::fs::write(
        proj.join("compose.yaml"),
        format!(
            "services:\n  app:\n    build: ./app\n    image: {host}/kiln-e2e/app:1\n  db:\n    image: {host}/kiln-e2e/db:1\n    command: [\"true\"]\n"
        ),
    )
    .unwrap();
    let compose = |store: &KilnStore, args: &[&str]| {
        let mut cmd = store.cmd();
        cmd.arg("compose").args(args).current_dir(&proj);
        cmd.env_remove("COMPOSE_PROJECT_NAME");
        run(&mut cmd)
    };
    ok(compose(&store, &["build"]), "compose build");
    store.kiln_ok(["tag", BUSYBOX, &format!("{host}/kiln-e2e/db:1")]);
    ok(compose(&store, &["push"]), "compose push");
    let served = |image: &str| {
        let out = run_ok(std::process::Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{host}/kiln-e2e/{image}:1"),
        ]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["Digest"].as_str().unwrap().to_string()
    };
    let (app, db) = (served("app"), served("db"));
    let pinned = |store: &KilnStore| {
        let text = ok(
            compose(store, &["convert", "--to", "kubernetes"]),
            "convert",
        );
        text.lines()
            .filter_map(|l| l.trim().strip_prefix("image: "))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        pinned(&store),
        [
            format!("{host}/kiln-e2e/app@{app}"),
            format!("{host}/kiln-e2e/db@{db}")
        ]
    );
    // A store without the project's images (only the base): pull fetches db (app is built,
    // not pulled); convert then pins db by the same digest and refuses app until it is built.
    let fresh = KilnStore::with_busybox();
    ok(compose(&fresh, &["pull"]), "compose pull");
    assert_eq!(
        manifest_digest(&fresh, &format!("{host}/kiln-e2e/db:1")),
        db
    );
    let out = compose(&fresh, &["convert", "--to", "kubernetes"]);
    assert!(!out.status.success(), "{}", show(&out));
    assert!(stderr_text(&out).contains("service app"), "{}", show(&out));
    ok(
        compose(&fresh, &["build"]),
        "compose build in the fresh store",
    );
    assert_eq!(pinned(&fresh)[1], format!("{host}/kiln-e2e/db@{db}"));
    // up pulls a missing image, as docker compose up does.
    let third = KilnStore::with_busybox();
    let out = compose(&third, &["up", "-d", "db"]);
    let _ = compose(&third, &["down"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        stderr_text(&out).contains("Service db Pulling"),
        "{}",
        show(&out)
    );
    assert_eq!(
        manifest_digest(&third, &format!("{host}/kiln-e2e/db:1")),
        db
    );
}

/// `user`, `working_dir`, a list `entrypoint` with a string `command`, `environment` over
/// `env_file`: `compose run --rm` prints what the same `docker run` prints.
#[test]
fn run_takes_the_service_settings_as_docker_run_does() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    docker_busybox();
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    let proj = dir.path().join("tool");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(proj.join("tool.env"), "A=from-file\nB=from-file\n").unwrap();
    let script = r#"echo "$(id -u):$(id -g) $(pwd) $A $B $*""#;
    std::fs::write(
        proj.join("compose.yaml"),
        format!(
            "services:\n  tool:\n    image: {BUSYBOX}\n    user: \"1000:1000\"\n    working_dir: /tmp\n    env_file: tool.env\n    environment:\n      B: from-environment\n    entrypoint: [\"sh\", \"-c\", '{}', \"sh\"]\n    command: one \"two three\"\n",
            script.replace('$', "$$")
        ),
    )
    .unwrap();
    let mut cmd = store.cmd();
    cmd.args(["compose", "run", "--rm", "tool"])
        .current_dir(&proj);
    cmd.env_remove("COMPOSE_PROJECT_NAME");
    let ours = ok(run(&mut cmd), "compose run --rm tool");
    let theirs = run_ok(docker().args([
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "1000:1000",
        "-w",
        "/tmp",
        "-e",
        "A=from-file",
        "-e",
        "B=from-environment",
        "--entrypoint",
        "sh",
        BUSYBOX,
        "-c",
        script,
        "sh",
        "one",
        "two three",
    ]));
    assert_eq!(ours, stdout_text(&theirs));
    assert_eq!(
        ours,
        "1000:1000 /tmp from-file from-environment one two three\n"
    );
    // The command given to run replaces the service's command, not its entrypoint.
    let mut cmd = store.cmd();
    cmd.args(["compose", "run", "--rm", "tool", "other"])
        .current_dir(&proj);
    cmd.env_remove("COMPOSE_PROJECT_NAME");
    assert_eq!(
        ok(run(&mut cmd), "compose run --rm tool other"),
        "1000:1000 /tmp from-file from-environment other\n"
    );
    let mut cmd = store.cmd();
    cmd.args(["compose", "down"]).current_dir(&proj);
    ok(run(&mut cmd), "compose down");
    assert_eq!(ok(store.kiln(["ps", "-a", "-q"]), "ps -a").trim(), "");
}

/// The same project under docker-compose 1 (every service `network_mode: none`, so it makes
/// no network) and kiln: `depends_on: service_healthy` holds `app` back until `db` is healthy
/// (app sees the file db writes before its check passes, through the shared named volume),
/// the volume survives `down`/`up`, `exec` and `run --rm` return the command's status, and
/// `down -v` removes the volume.
#[test]
fn lifecycle_matches_docker_compose_v1() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker-compose");
    docker_busybox();
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    let proj = dir.path().join("pair");
    std::fs::create_dir(&proj).unwrap();
    let name = format!("kilne2e{}", std::process::id());
    std::fs::write(
        proj.join("compose.yaml"),
        format!(
            r#"services:
  db:
    image: {BUSYBOX}
    network_mode: none
    command:
      - sh
      - -c
      - |
        sleep 1
        echo $$(( $$(cat /data/starts 2>/dev/null || echo 0) + 1 )) > /data/starts
        touch /tmp/ok
        trap 'exit 0' TERM
        sleep 120 & wait
    volumes:
      - data:/data
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 200ms
      retries: 50
  app:
    image: {BUSYBOX}
    network_mode: none
    command:
      - sh
      - -c
      - |
        echo "db started $$(cat /data/starts 2>/dev/null || echo never) times"
        trap 'exit 0' TERM
        sleep 120 & wait
    volumes:
      - data:/data
    depends_on:
      db:
        condition: service_healthy
volumes:
  data:
"#
        ),
    )
    .unwrap();
    let both_tools = SideBySide {
        store: &store,
        dir: proj.clone(),
        name: name.clone(),
    };
    let kiln = |args: &[&str]| both_tools.kiln(args);
    let docker_compose = |args: &[&str]| both_tools.docker_compose(args);
    // The message of each log line, without the `container  | ` prefix both put there.
    let messages = |out: std::process::Output| -> Vec<String> {
        assert!(out.status.success(), "{}", show(&out));
        stdout_text(&out)
            .lines()
            .filter_map(|l| l.split_once("| ").map(|(_, m)| m.trim_end().to_string()))
            .filter(|m| !m.is_empty())
            .collect()
    };
    for round in 1..=2 {
        let k = kiln(&["up", "-d"]);
        assert!(k.status.success(), "kiln up: {}", show(&k));
        let d = docker_compose(&["up", "-d"]);
        assert!(d.status.success(), "docker-compose up: {}", show(&d));
        let want = vec![format!("db started {round} times")];
        let mut got = (Vec::new(), Vec::new());
        let seen = wait_until(Duration::from_secs(20), || {
            got = (
                messages(kiln(&["logs", "app"])),
                messages(docker_compose(&["logs", "--no-color", "app"])),
            );
            got.0 == want && got.1 == want
        });
        assert!(
            seen,
            "round {round}: kiln {:?}, docker-compose {:?}",
            got.0, got.1
        );
        let k = kiln(&["exec", "db", "sh", "-c", "exit 3"]);
        let d = docker_compose(&["exec", "-T", "db", "sh", "-c", "exit 3"]);
        assert_eq!(k.status.code(), Some(3), "{}", show(&k));
        assert_eq!(d.status.code(), k.status.code(), "{}", show(&d));
        let k = kiln(&["run", "--rm", "app", "sh", "-c", "cat /data/starts; exit 4"]);
        let d = docker_compose(&[
            "run",
            "--rm",
            "-T",
            "app",
            "sh",
            "-c",
            "cat /data/starts; exit 4",
        ]);
        assert_eq!(k.status.code(), Some(4), "{}", show(&k));
        assert_eq!(d.status.code(), k.status.code(), "{}", show(&d));
        assert_eq!(stdout_text(&k), format!("{round}\n"));
        assert_eq!(stdout_text(&d).replace("\r\n", "\n"), stdout_text(&k));
        // down keeps the volume for the next round.
        let k = kiln(&["down", "-t", "1"]);
        assert!(k.status.success(), "{}", show(&k));
        let d = docker_compose(&["down", "-t", "1"]);
        assert!(d.status.success(), "{}", show(&d));
    }
    let k = kiln(&["down", "-v"]);
    assert!(k.status.success(), "{}", show(&k));
    let d = docker_compose(&["down", "-v"]);
    assert!(d.status.success(), "{}", show(&d));
    assert_eq!(
        ok(store.kiln(["volume", "ls", "-q"]), "volume ls").trim(),
        ""
    );
    let vols = run_ok(docker().args(["volume", "ls", "-q", "--filter", &format!("name={name}")]));
    assert_eq!(stdout_text(&vols).trim(), "");
}

/// `network_mode:` as docker compose gives it without a bridge: `none` (own loopback),
/// `service:NAME` (that service's namespace, started first); no project network is made when
/// no service is on it; `bridge` is refused with the forms kiln has.
#[test]
fn network_mode_none_and_service_share_a_namespace_and_make_no_network() {
    let dir = temp_dir();
    let proj = dir.path().join("netmode");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(
        proj.join("compose.yaml"),
        format!(
            r#"services:
  client:
    image: {BUSYBOX}
    network_mode: "service:web"
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"]
  web:
    image: {BUSYBOX}
    network_mode: none
    command: ["busybox", "httpd", "-f", "-p", "127.0.0.1:8080", "-h", "/etc"]
"#
        ),
    )
    .unwrap();
    let printed = config(&proj, &["-p", "netmode"]);
    assert!(printed.contains("network_mode: service:web"), "{printed}");
    assert!(printed.contains("network_mode: none"), "{printed}");
    assert!(!printed.contains("netmode_default"), "{printed}");
    // client depends on web through its network_mode: web comes first.
    assert!(
        printed.find("depends_on").is_some(),
        "the namespace's owner is a dependency: {printed}"
    );

    let bad = dir.path().join("bridge");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(
        bad.join("compose.yaml"),
        format!("services:\n  a:\n    image: {BUSYBOX}\n    network_mode: bridge\n"),
    )
    .unwrap();
    let store = shared_store();
    let out = run(store.cmd().args(["compose", "config"]).current_dir(&bad));
    assert!(!out.status.success());
    let err = stderr_text(&out);
    assert!(err.contains("network_mode: bridge"), "{err}");
    assert!(err.contains("service:NAME"), "{err}");

    if !can_run_containers() {
        return;
    }
    let store = KilnStore::with_busybox();
    let compose = |args: &[&str]| {
        let mut cmd = store.cmd();
        cmd.args(["compose", "-p", "netmode"])
            .args(args)
            .current_dir(&proj);
        run(&mut cmd)
    };
    struct Down<'a>(&'a dyn Fn(&[&str]) -> Output);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["down", "-t", "1"]);
        }
    }
    let _down = Down(&compose);
    ok(compose(&["up", "-d"]), "compose up -d");
    let networks = ok(store.kiln(["network", "ls"]), "network ls");
    assert!(!networks.contains("netmode_default"), "{networks}");
    // client is in web's namespace: web's loopback server answers it.
    let mut fetched = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let out = compose(&[
                "exec",
                "client",
                "busybox",
                "wget",
                "-q",
                "-O",
                "-",
                "http://127.0.0.1:8080/hostname",
            ]);
            fetched = show(&out);
            out.status.success()
        }),
        "{fetched}"
    );
    ok(compose(&["down", "-t", "1"]), "compose down");
}

/// `up` on a project already up, as docker-compose 1.29 converges it: an unchanged running
/// container is kept, a stopped one is started again (its files kept), a changed one is
/// recreated with its anonymous volume's data, `--force-recreate` always and `--no-recreate`
/// never replaces it. Each step is checked on both tools by container ID and by the files seen.
#[test]
fn up_recreates_only_changed_containers_as_docker_compose_does() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker-compose");
    docker_busybox();
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    let proj = dir.path().join("converge");
    std::fs::create_dir(&proj).unwrap();
    let name = format!("kilnrc{}", std::process::id());
    let write = |x: &str| {
        std::fs::write(
            proj.join("compose.yaml"),
            format!(
                "services:\n  app:\n    image: {BUSYBOX}\n    network_mode: none\n    \
                 command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 120 & wait\"]\n    \
                 environment:\n      X: \"{x}\"\n    volumes:\n      - /data\n"
            ),
        )
        .unwrap()
    };
    let both_tools = SideBySide {
        store: &store,
        dir: proj.clone(),
        name: name.clone(),
    };
    let kiln = |args: &[&str]| both_tools.kiln(args);
    let docker_compose = |args: &[&str]| both_tools.docker_compose(args);
    let both = |args: &[&str]| {
        for (who, out) in [
            ("kiln", kiln(args)),
            ("docker-compose", docker_compose(args)),
        ] {
            assert!(out.status.success(), "{who} {args:?}: {}", show(&out));
        }
    };
    // The app container's ID, and what `sh -c script` prints in it, on each tool.
    let ids = || {
        let k = ok(
            store.kiln([
                "ps",
                "-aq",
                "--no-trunc",
                "--filter",
                &format!("name={name}-app-1"),
            ]),
            "ps",
        );
        let d = stdout_text(&docker_compose(&["ps", "-q", "app"]));
        (k.trim().to_string(), d.trim().to_string())
    };
    let sh = |script: &str| {
        let k = kiln(&["exec", "app", "sh", "-c", script]);
        let d = docker_compose(&["exec", "-T", "app", "sh", "-c", script]);
        (stdout_text(&k), stdout_text(&d).replace("\r\n", "\n"))
    };
    write("1");
    both(&["up", "-d"]);
    let first = ids();
    assert!(!first.0.is_empty() && !first.1.is_empty(), "{first:?}");
    sh("echo kept > /data/f; echo layer > /tmp/f");
    // Unchanged and running: kept.
    both(&["up", "-d"]);
    assert_eq!(ids(), first, "an unchanged running container is kept");
    // Stopped, unchanged: the same container started again, its own files still there.
    both(&["stop", "-t", "1"]);
    both(&["up", "-d"]);
    assert_eq!(
        ids(),
        first,
        "a stopped unchanged container is started, not recreated"
    );
    let seen = sh("cat /tmp/f");
    assert_eq!(seen, ("layer\n".to_string(), "layer\n".to_string()));
    // Changed: recreated; the anonymous volume's data goes along, the old layer does not.
    write("2");
    both(&["up", "-d", "-t", "1"]);
    let changed = ids();
    assert!(
        changed.0 != first.0 && changed.1 != first.1,
        "{first:?} {changed:?}"
    );
    let seen = sh("cat /data/f; cat /tmp/f 2>/dev/null || echo gone; echo $X");
    assert_eq!(seen.0, "kept\ngone\n2\n");
    assert_eq!(seen.1, seen.0);
    // --force-recreate replaces it; --no-recreate keeps it even when changed.
    both(&["up", "-d", "-t", "1", "--force-recreate"]);
    let forced = ids();
    assert!(
        forced.0 != changed.0 && forced.1 != changed.1,
        "{changed:?} {forced:?}"
    );
    write("3");
    both(&["up", "-d", "--no-recreate"]);
    assert_eq!(ids(), forced, "--no-recreate keeps the container");
    assert_eq!(sh("cat /data/f; echo $X").0, "kept\n2\n");
    // One anonymous volume all along: down -v removes it.
    let vols = ok(store.kiln(["volume", "ls", "-q"]), "volume ls");
    assert_eq!(vols.lines().count(), 1, "{vols}");
    both(&["down", "-v", "-t", "1"]);
    assert_eq!(
        ok(store.kiln(["volume", "ls", "-q"]), "volume ls").trim(),
        ""
    );
}

/// `profiles:` as docker-compose 1.29 reads them: `up -d` runs only the services without a
/// profile, `--profile` (or `COMPOSE_PROFILES`) adds a profile's, a service named on the
/// command line runs whatever its profiles, and `up` refuses to pull in a dependency the
/// active profiles leave out. `stop` and `down` reach every container of the project.
#[test]
fn profiles_choose_the_services_as_docker_compose_does() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker-compose");
    docker_busybox();
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    let proj = dir.path().join("profiles");
    std::fs::create_dir(&proj).unwrap();
    let name = format!("kilnpf{}", std::process::id());
    let svc = |extra: &str| {
        format!(
            "    image: {BUSYBOX}\n    network_mode: none\n    \
             command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 120 & wait\"]\n{extra}"
        )
    };
    std::fs::write(
        proj.join("compose.yaml"),
        format!(
            "services:\n  web:\n{}  debug:\n{}  tool:\n{}",
            svc(""),
            svc("    profiles: [debug, tools]\n"),
            svc("    profiles: [tools]\n    depends_on: [debug]\n"),
        ),
    )
    .unwrap();
    let both_tools = SideBySide {
        store: &store,
        dir: proj.clone(),
        name: name.clone(),
    };
    let kiln = |env: Option<&str>, args: &[&str]| both_tools.kiln_with(env, args);
    let docker_compose =
        |env: Option<&str>, args: &[&str]| both_tools.docker_compose_with(env, args);
    // The services with a running container, on each tool.
    let running = || {
        let k = stdout_text(&store.kiln(["ps", "--format", "{{.Names}}"]));
        let mut d = stdout_text(&run(docker().args(["ps", "--format", "{{.Names}}"])))
            .lines()
            .filter_map(|n| n.strip_prefix(&format!("{name}_")))
            .map(|n| n.trim_end_matches("_1").to_string())
            .collect::<Vec<_>>();
        let mut k = k
            .lines()
            .filter_map(|n| n.strip_prefix(&format!("{name}-")))
            .map(|n| n.trim_end_matches("-1").to_string())
            .collect::<Vec<_>>();
        k.sort();
        d.sort();
        (k, d)
    };
    let both = |env: Option<&str>, args: &[&str], running_after: &[&str]| {
        for (who, out) in [
            ("kiln", kiln(env, args)),
            ("docker-compose", docker_compose(env, args)),
        ] {
            assert!(out.status.success(), "{who} {args:?}: {}", show(&out));
        }
        let (k, d) = running();
        assert_eq!(
            k, running_after,
            "kiln after {args:?} (COMPOSE_PROFILES={env:?})"
        );
        assert_eq!(d, running_after, "docker-compose after {args:?}");
    };
    both(None, &["up", "-d"], &["web"]);
    both(None, &["--profile", "debug", "up", "-d"], &["debug", "web"]);
    both(None, &["stop", "-t", "1"], &[]);
    both(None, &["up", "-d", "debug"], &["debug"]);
    both(Some("tools"), &["up", "-d"], &["debug", "tool", "web"]);
    both(None, &["down", "-t", "1"], &[]);
    // Naming tool activates its profile, tools, which enables its dependency debug.
    both(None, &["up", "-d", "tool"], &["debug", "tool"]);
    both(None, &["down", "-t", "1"], &[]);
    // web depends on debug in an override, and no active profile enables debug: both
    // refuse, naming the dependency.
    std::fs::write(
        proj.join("compose.override.yaml"),
        "services:\n  web:\n    depends_on: [debug]\n",
    )
    .unwrap();
    for (who, out) in [
        ("kiln", kiln(None, &["up", "-d"])),
        ("docker-compose", docker_compose(None, &["up", "-d"])),
    ] {
        assert_eq!(out.status.code(), Some(1), "{who}: {}", show(&out));
        let err = stderr_text(&out);
        assert!(
            err.contains("\"debug\" was pulled in as a dependency of service \"web\"")
                || err.contains("debug was pulled in as a dependency of service web"),
            "{who}: {err}"
        );
    }
    assert_eq!(running(), (vec![], vec![]), "a refused up starts nothing");
}

/// The service keys that are `kiln run` flags, on both tools: a fixed container_name (found
/// again by `stop`, `ps` and `down`), labels, hostname, init, stop_signal and
/// stop_grace_period, read_only, tty, stdin_open; and a container_name cannot scale.
#[test]
fn run_keys_of_a_service_match_docker_compose() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker-compose");
    docker_busybox();
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    let proj = dir.path().join("runkeys");
    std::fs::create_dir(&proj).unwrap();
    let name = format!("kilnrk{}", std::process::id());
    let fixed = format!("{name}-fixed");
    std::fs::write(
        proj.join("compose.yaml"),
        format!(
            "services:\n  web:\n    image: {BUSYBOX}\n    network_mode: none\n    \
             container_name: {fixed}\n    labels: [tier=web, empty]\n    hostname: webhost\n    \
             init: true\n    stop_signal: SIGUSR1\n    stop_grace_period: 1m30s\n    \
             read_only: true\n    tty: true\n    stdin_open: true\n    \
             command: [\"sh\", \"-c\", \"trap 'exit 0' USR1; sleep 120 & wait\"]\n"
        ),
    )
    .unwrap();
    let both_tools = SideBySide {
        store: &store,
        dir: proj.clone(),
        name: name.clone(),
    };
    let kiln = |args: &[&str]| both_tools.kiln(args);
    let docker_compose = |args: &[&str]| both_tools.docker_compose(args);
    for (who, out) in [
        ("kiln", kiln(&["up", "-d"])),
        ("docker-compose", docker_compose(&["up", "-d"])),
    ] {
        assert!(out.status.success(), "{who} up: {}", show(&out));
    }
    let template = "{{.Name}} {{.Config.Hostname}} {{index .Config.Labels \"tier\"}}|{{index .Config.Labels \"empty\"}}| \
                    {{.Config.StopSignal}} {{.Config.StopTimeout}} {{.HostConfig.ReadonlyRootfs}} \
                    {{.Config.Tty}} {{.Config.OpenStdin}} {{.HostConfig.Init}}";
    let k = ok(
        store.kiln(["inspect", "-f", template, &fixed]),
        "kiln inspect",
    );
    let d = ok(
        run(docker().args(["inspect", "-f", template, &fixed])),
        "docker inspect",
    );
    assert_eq!(k, d);
    assert_eq!(
        k.trim(),
        format!("/{fixed} webhost web|| SIGUSR1 90 true true true true")
    );
    // Found again by its labels: ps lists it, stop sends SIGUSR1 (the trap ends it at once).
    let ps = ok(kiln(&["ps", "-q"]), "compose ps -q");
    assert_eq!(ps.lines().count(), 1, "{ps}");
    let started = std::time::Instant::now();
    let out = kiln(&["stop"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stop waited for the grace period"
    );
    let state = ok(
        store.kiln(["inspect", "-f", "{{.State.Status}}", &fixed]),
        "inspect",
    );
    assert_eq!(state.trim(), "exited");
    let out = kiln(&["up", "-d", "--scale", "web=2"]);
    assert!(!out.status.success());
    assert!(
        stderr_text(&out).contains("container name"),
        "{}",
        show(&out)
    );
    let out = kiln(&["down", "-t", "1"]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(
        !store.kiln(["inspect", &fixed]).status.success(),
        "down left {fixed}"
    );
}
