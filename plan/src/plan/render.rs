//! The human-readable plan: one numbered line per node, indented by stage.

use super::{Op, Plan};

/// `#3 copy   a1b2c3d4e5f6  hermetic     COPY . /app   <- #1 #2`
pub fn render_tree(plan: &Plan) -> String {
    let mut out = String::new();
    for n in &plan.nodes {
        let kind = match &n.op {
            Op::Scratch => "scratch",
            Op::BaseImage { .. } => "image",
            Op::Context(_) => "context",
            Op::Copy(c) if c.add => "add",
            Op::Copy(_) => "copy",
            Op::Mkdir { .. } => "mkdir",
            Op::Run(_) => "run",
            Op::Config { .. } => "config",
            Op::Image(_) => "target",
        };
        let what = match &n.op {
            Op::BaseImage {
                reference, digest, ..
            } => {
                format!(
                    "{reference}{}",
                    digest
                        .as_deref()
                        .map(|d| format!(" ({})", &d[..d.len().min(19)]))
                        .unwrap_or_default()
                )
            }
            Op::Context(sel) => format!("{} [{} entries]", sel.patterns.join(" "), sel.entries),
            Op::Image(img) => format!(
                "stage {} ({} history entries)",
                n.origin.stage,
                img.history.len()
            ),
            Op::Scratch => "scratch".to_string(),
            _ => n.origin.text.clone(),
        };
        let inputs: Vec<String> = n.inputs.iter().map(|i| format!("#{}", i.0)).collect();
        let herm = if n.hermetic {
            "hermetic"
        } else {
            "NOT hermetic"
        };
        out.push_str(&format!(
            "#{:<3} {:<8} {}  {:<12} [{}] {}{}\n",
            n.id.0,
            kind,
            n.key.short(),
            herm,
            n.origin.stage,
            what,
            if inputs.is_empty() {
                String::new()
            } else {
                format!("  <- {}", inputs.join(" "))
            }
        ));
        for r in &n.reasons {
            if !r.starts_with("input #") {
                out.push_str(&format!("       ! {r}\n"));
            }
        }
    }
    out
}
