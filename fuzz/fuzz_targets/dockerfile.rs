//! The Dockerfile front end on arbitrary text: the parser, BuildKit's JSON shape of its
//! tree, lowering to a plan against a small context, the build checks, and rendering any
//! error. Nothing may panic.
#![no_main]

mod common;

use kiln_compiler::context::StatCache;
use kiln_compiler::frontend::{self, FrontendInput};
use kiln_compiler::plan::{BuildOptions, NoImages};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(tree) = kiln_compiler::syntax::parse(text) {
            let _ = kiln_compiler::syntax::json::to_buildkit_json(&tree);
        }
    }
    let ctx = common::context();
    std::fs::write(ctx.join("Dockerfile"), data).expect("write the Dockerfile");
    let input = FrontendInput {
        context: ctx.to_path_buf(),
        dockerfile: None,
    };
    let opts = BuildOptions::default();
    match frontend::plan_input(&input, &opts, &StatCache::default(), &NoImages) {
        Ok(planned) => {
            let _ = planned.lowered.plan.to_json();
            if let Some(parsed) = &planned.parsed {
                if let Err(report) =
                    frontend::check(parsed, None, &[], planned.lowered.warnings.clone())
                {
                    common::render(&report);
                }
            }
        }
        Err(report) => common::render(&report),
    }
});
