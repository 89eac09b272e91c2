//! The kiln language on arbitrary text: parsing, type checking against the standard
//! library, lowering to a plan, and rendering every problem. Nothing may panic.
#![no_main]

mod common;

use kiln_compiler::context::StatCache;
use kiln_compiler::frontend;
use kiln_compiler::plan::{BuildOptions, NoImages};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = common::context();
    let program = ctx.join("build.kiln");
    std::fs::write(&program, data).expect("write the program");
    let opts = BuildOptions::default();
    match frontend::plan_kiln(&program, ctx, &opts, &StatCache::default(), &NoImages) {
        Ok((lowered, _)) => {
            let _ = lowered.plan.to_json();
        }
        Err(report) => common::render(&report),
    }
});
