//! What the targets share: a build context made once per process, and rendering a
//! diagnostic as the CLI does (a span outside its text must not panic there either).

use std::path::Path;
use std::sync::OnceLock;

/// A context directory with a few files, a subdirectory and a symlink, for COPY and ADD.
pub fn context() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let p = dir.path();
        std::fs::write(p.join("a.txt"), b"alpha\n").expect("write");
        std::fs::create_dir(p.join("src")).expect("mkdir");
        std::fs::write(p.join("src/main.c"), b"int main(void) { return 0; }\n").expect("write");
        std::fs::write(p.join(".dockerignore"), b"*.log\n!keep.log\n").expect("write");
        std::os::unix::fs::symlink("a.txt", p.join("link")).expect("symlink");
        dir
    })
    .path()
}

/// Renders a report with miette's graphical handler, as `kiln` prints errors.
pub fn render(report: &miette::Report) {
    let mut out = String::new();
    let handler = miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor());
    let _ = handler.render_report(&mut out, report.as_ref());
}
