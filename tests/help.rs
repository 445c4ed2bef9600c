//! Help that stands alone: no command's `--help` points to a document users do not have.

mod common;

use common::ok;

#[test]
fn no_help_text_cites_documents_outside_the_repository() {
    let commands = [
        "",
        "train",
        "prune",
        "unlearn",
        "eval",
        "report",
        "sweep",
        "audit",
        "run-job",
        "demo",
        "info",
        "verify-audit",
        "import-torch",
        "export-torch",
        "bench",
    ];
    for command in commands {
        let mut args: Vec<&str> = command.split_whitespace().collect();
        args.push("--help");
        let out = ok(&args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.len() > 100,
            "{command} --help printed almost nothing: {text}"
        );
        assert!(
            !text.contains("SPEC"),
            "{command} --help cites SPEC:\n{text}"
        );
    }
}
