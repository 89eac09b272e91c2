//! `kiln compose`: `config` of a file with `${VAR}` interpolation and `.env`, `config` of the
//! seeds' to-do app, and `up -d` / `ps` / `down [-v]` of two busybox services (one built from
//! its `build:`) where one reaches the other by its service name on the project's network,
//! leaving nothing behind.
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
        "LITERAL: $HOME\n",
        "- 8080:80\n",
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
        "- 3000:80\n",
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
    struct Down<'a>(&'a KilnStore, &'a Path);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = run(self
                .0
                .cmd()
                .args(["compose", "down", "-v"])
                .current_dir(self.1));
        }
    }
    let _down = Down(&store, &proj);
    ok(compose(&["up", "-d"]), "compose up -d");
    let ps = ok(compose(&["ps"]), "compose ps");
    let lines: Vec<&str> = ps.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two containers:\n{ps}");
    assert!(
        lines[1].starts_with("pair-web-1 ") && lines[1].contains("running"),
        "{ps}"
    );
    assert!(
        lines[2].starts_with("pair-client-1 ") && lines[2].contains("running"),
        "{ps}"
    );
    let web_id: String = lines[1].split_whitespace().nth(3).unwrap().to_string();

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
