//! Container health against docker's: an image's HEALTHCHECK run by `kiln run -d`'s
//! supervisor and by dockerd, `starting` → `healthy` → (the checked file removed) `unhealthy`
//! after `--retries` failures, in `inspect`'s `State.Health` and `Config.Healthcheck`.
//!
//! Must not: use a docker network other than `none`; leave containers or tags behind.

use crate::common;

use std::time::Duration;

use common::*;

const DOCKERFILE: &str = "FROM busybox:test\n\
HEALTHCHECK --interval=200ms --timeout=2s --retries=2 CMD test -f /tmp/ok\n\
CMD [\"sh\", \"-c\", \"touch /tmp/ok; trap 'exit 0' TERM; sleep 120 & wait\"]\n";

fn inspect(out: std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "inspect: {}", show(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    if v.is_array() {
        v[0].clone()
    } else {
        v
    }
}

#[test]
fn image_healthcheck_goes_healthy_then_unhealthy_as_dockers() {
    if !can_run_containers() {
        return;
    }
    require_peer!("docker");
    docker_busybox();
    let store = KilnStore::with_busybox();
    let dir = temp_dir();
    std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE).unwrap();
    let tag = "health-kiln-e2e:latest";
    store.kiln_ok([
        "build".as_ref(),
        "-q".as_ref(),
        "-t".as_ref(),
        tag.as_ref(),
        dir.path().as_os_str(),
    ]);
    run_ok(docker().args(["build", "-q", "-t", tag]).arg(dir.path()));
    let name = format!("health-kiln-e2e-{}", std::process::id());
    struct Cleanup<'a>(&'a KilnStore, String, &'a str);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = self.0.kiln(["rm", "-f", &self.1]);
            let _ = run(docker().args(["rm", "-f", &self.1]));
            docker_rmi(self.2);
        }
    }
    let _cleanup = Cleanup(&store, name.clone(), tag);
    store.kiln_ok(["run", "-d", "--name", &name, tag]);
    run_ok(docker().args(["run", "-d", "--network", "none", "--name", &name, tag]));
    let kiln_inspect = || inspect(store.kiln(["inspect", &name]));
    let docker_inspect = || inspect(run(docker().args(["inspect", &name])));

    // The check's settings, as the image carries them.
    assert_eq!(
        kiln_inspect()["Config"]["Healthcheck"],
        docker_inspect()["Config"]["Healthcheck"]
    );
    let reach = |what: &str, inspect: &dyn Fn() -> serde_json::Value, want: &str| {
        let mut last = serde_json::Value::Null;
        let ok = wait_until(Duration::from_secs(30), || {
            last = inspect()["State"]["Health"].clone();
            last["Status"] == want
        });
        assert!(ok, "{what} never {want}: {last}");
        last
    };
    let k = reach("kiln", &kiln_inspect, "healthy");
    let d = reach("docker", &docker_inspect, "healthy");
    // ps's STATUS carries it as docker's does: `Up 2 seconds (healthy)`.
    let status = |out: std::process::Output| {
        assert!(out.status.success(), "{}", show(&out));
        stdout_text(&out).trim().to_string()
    };
    let filter = format!("name={name}");
    let kiln_status = status(store.kiln(["ps", "--filter", &filter, "--format", "{{.Status}}"]));
    let docker_status = status(run(docker().args([
        "ps",
        "--filter",
        &filter,
        "--format",
        "{{.Status}}",
    ])));
    for s in [&kiln_status, &docker_status] {
        assert!(
            s.starts_with("Up ") && s.ends_with(" (healthy)"),
            "{kiln_status} / {docker_status}"
        );
    }
    assert_eq!(k["FailingStreak"], d["FailingStreak"]);
    let last = |h: &serde_json::Value| h["Log"].as_array().and_then(|l| l.last()).cloned();
    assert_eq!(last(&k).unwrap()["ExitCode"], 0);
    assert_eq!(last(&d).unwrap()["ExitCode"], 0);

    // Remove the file: two failures in a row make both unhealthy, the container still up.
    store.kiln_ok(["exec", &name, "rm", "/tmp/ok"]);
    run_ok(docker().args(["exec", &name, "rm", "/tmp/ok"]));
    let k = reach("kiln", &kiln_inspect, "unhealthy");
    let d = reach("docker", &docker_inspect, "unhealthy");
    for h in [&k, &d] {
        assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
        assert_eq!(last(h).unwrap()["ExitCode"], 1, "{h}");
        assert!(h["Log"].as_array().unwrap().len() <= 5, "{h}");
    }
    assert_eq!(kiln_inspect()["State"]["Running"], true);
    assert_eq!(docker_inspect()["State"]["Running"], true);
}
