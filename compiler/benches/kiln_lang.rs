//! The kiln language's figures. A benchmark, not a test:
//!     cargo bench -p kiln-compiler --bench kiln_lang
//! - loading (parsing) and checking a generated 10,000-line program (2,000 functions);
//! - planning a program and the equivalent Dockerfile (200 COPY/ENV steps over one
//!   context), both through their whole front end (read, parse or check, scan, lower).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use kiln_compiler::context::StatCache;
use kiln_compiler::frontend::{self, FrontendInput};
use kiln_compiler::plan::{BuildOptions, NoImages};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("KILN_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let dir = tempfile::tempdir().unwrap();

    let mut big = String::new();
    for i in 0..2000 {
        big.push_str(&format!(
            "fn f{i}(src: Files, port: Int = 3000) -> Image {{\n  scratch()\n    |> copy(src.only([\"a{i}\"]), to: \"/app/\")\n    |> env(N: \"${{port}}\")\n}}\n"
        ));
    }
    big.push_str("export app = f0(context(\".\"))\n");
    let lines = big.lines().count();
    let path = dir.path().join("big.kiln");
    std::fs::write(&path, &big).unwrap();
    let mut times = Vec::new();
    for _ in 0..rounds {
        let start = Instant::now();
        let prog = kiln_compiler::kiln::check_file(&path).unwrap();
        times.push(start.elapsed());
        std::hint::black_box(prog);
    }
    println!(
        "parse + check of a {lines}-line program: median {:.1} ms over {rounds} runs",
        median(times).as_secs_f64() * 1e3
    );

    let ctx = dir.path().join("ctx");
    let mut df = String::from("FROM scratch\n");
    let mut prog = String::from("export app = scratch()\n");
    for i in 0..100 {
        std::fs::create_dir_all(ctx.join(format!("d{i}"))).unwrap();
        std::fs::write(ctx.join(format!("d{i}/f.txt")), format!("{i}\n")).unwrap();
        df.push_str(&format!("COPY d{i} /d{i}\nENV V{i}={i}\n"));
        prog.push_str(&format!(
            "  |> copy(context(\"d{i}\"), to: \"/d{i}\")\n  |> env(V{i}: \"{i}\")\n"
        ));
    }
    std::fs::write(ctx.join("Dockerfile"), &df).unwrap();
    std::fs::write(ctx.join("build.kiln"), &prog).unwrap();
    let input = FrontendInput {
        context: ctx.clone(),
        dockerfile: Some(ctx.join("Dockerfile")),
    };
    let opts = BuildOptions::default();
    let (mut tdf, mut tk) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        let (_, a) = frontend::plan(&input, &opts, &StatCache::default(), &NoImages).unwrap();
        tdf.push(start.elapsed());
        let start = Instant::now();
        let (b, _) = frontend::plan_kiln(
            &ctx.join("build.kiln"),
            &ctx,
            &opts,
            &StatCache::default(),
            &NoImages,
        )
        .unwrap();
        tk.push(start.elapsed());
        assert_eq!(
            a.plan.nodes.iter().map(|n| n.key).collect::<Vec<_>>(),
            b.plan.nodes.iter().map(|n| n.key).collect::<Vec<_>>()
        );
    }
    let (d, k) = (median(tdf), median(tk));
    println!(
        "plan of 200 steps: Dockerfile median {:.2} ms, kiln program {:.2} ms ({:.2}x), equal keys",
        d.as_secs_f64() * 1e3,
        k.as_secs_f64() * 1e3,
        k.as_secs_f64() / d.as_secs_f64()
    );
}
