//! The `jeex-operator` binary: `crd` prints the committed CRD, `run` without a cluster fails
//! with one clear line instead of a panic.

use std::process::Command;

fn operator() -> Command {
    Command::new(env!("CARGO_BIN_EXE_jeex-operator"))
}

#[test]
fn crd_prints_the_committed_file() {
    let out = operator().arg("crd").output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/jeexbackend.yaml")).unwrap();
    assert_eq!(out.stdout, committed);
}

#[test]
fn run_without_a_cluster_says_so_and_exits_non_zero() {
    let out = operator()
        .args(["run", "--http-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("HOME", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("jeex-operator: cannot reach Kubernetes"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn help_documents_every_option() {
    let out = operator().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for option in ["--http-addr", "--namespace", "--identity", "--leader-election", "--log-format", "POD_NAMESPACE", "POD_NAME"] {
        assert!(help.contains(option), "{option} missing from:\n{help}");
    }
}
