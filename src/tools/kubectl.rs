//! Every call of kubectl (always with the lab's kubeconfig).

use std::path::Path;

use serde_json::Value;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::tools::process::Cmd;

pub struct Kubectl<'a> {
    pub path: &'a Path,
    pub kubeconfig: &'a Path,
    pub env: &'a Environment,
    pub out: &'a Output,
}

impl Kubectl<'_> {
    fn cmd(&self, description: &str) -> Cmd {
        Cmd::new(self.path, description)
            .arg("--kubeconfig")
            .arg(self.kubeconfig)
            .arg("--request-timeout=10s")
    }

    /// `kubectl get --raw /readyz`.
    pub fn readyz(&self) -> Result<String> {
        self.cmd("asking the API server whether it is ready")
            .args(["get", "--raw", "/readyz"])
            .output(self.env, self.out)
    }

    /// `/readyz` with a short request timeout, for polling.
    pub fn readyz_within(&self, timeout: std::time::Duration) -> Result<String> {
        self.cmd("asking the API server whether it is ready")
            .arg(format!("--request-timeout={}ms", timeout.as_millis()))
            .args(["get", "--raw", "/readyz"])
            .output(self.env, self.out)
    }

    /// `kubectl get … -o json`, parsed.
    pub fn get_json(&self, description: &str, args: &[&str]) -> Result<Value> {
        let text = self
            .cmd(description)
            .arg("get")
            .args(args.iter().copied())
            .args(["-o", "json"])
            .output(self.env, self.out)?;
        serde_json::from_str(&text)
            .map_err(|e| Error::Step(format!("{description}: kubectl printed no JSON: {e}")))
    }

    /// `kubectl apply --server-side --force-conflicts -f FILE` (server-side: CRDs are too
    /// large for the last-applied annotation).
    pub fn apply(&self, description: &str, file: &Path) -> Result<String> {
        self.cmd(description)
            .args(["apply", "--server-side", "--force-conflicts", "-f"])
            .arg(file)
            .output(self.env, self.out)
    }

    /// `kubectl delete --ignore-not-found -f FILE`.
    /// `get -f FILE --ignore-not-found -o json`: empty when none of the file's objects exist.
    pub fn get_file(&self, description: &str, file: &Path) -> Result<String> {
        self.cmd(description)
            .args(["get", "--ignore-not-found", "-o", "json", "-f"])
            .arg(file)
            .output(self.env, self.out)
    }

    pub fn delete_file(&self, description: &str, file: &Path, wait: bool) -> Result<String> {
        self.cmd(description)
            .args([
                "delete",
                "--ignore-not-found",
                if wait { "--wait=true" } else { "--wait=false" },
                "-f",
            ])
            .arg(file)
            .output(self.env, self.out)
    }

    /// `kubectl delete KIND NAME --ignore-not-found`.
    pub fn delete(&self, description: &str, kind: &str, name: &str) -> Result<String> {
        self.cmd(description)
            .args(["delete", kind, name, "--ignore-not-found"])
            .output(self.env, self.out)
    }

    /// `kubectl delete KINDS -l SELECTOR --all-namespaces --ignore-not-found --wait=false`: every
    /// object of these kinds (comma-separated resource names) with the labels.
    pub fn delete_selected(
        &self,
        description: &str,
        kinds: &str,
        selector: &str,
    ) -> Result<String> {
        self.cmd(description)
            .args(["delete", kinds, "-l", selector])
            .args(["--all-namespaces", "--ignore-not-found", "--wait=false"])
            .output(self.env, self.out)
    }

    /// `kubectl kustomize TARGET`: the manifest a kustomize directory or a remote
    /// kustomization (a git URL, which kustomize clones) builds.
    pub fn kustomize(&self, target: &std::ffi::OsStr) -> Result<String> {
        Cmd::new(
            self.path,
            format!("building {} with kustomize", target.to_string_lossy()),
        )
        .arg("kustomize")
        .arg(target)
        .output(self.env, self.out)
    }

    /// `kubectl patch KIND NAME --namespace NS --subresource=status --type=merge -p PATCH`:
    /// a status only the lab can write (no controller of the lab writes it).
    pub fn patch_status(
        &self,
        description: &str,
        kind: &str,
        name: &str,
        namespace: &str,
        patch: &str,
    ) -> Result<String> {
        self.cmd(description)
            .args(["patch", kind, name, "--namespace", namespace])
            .args(["--subresource=status", "--type=merge", "-p", patch])
            .output(self.env, self.out)
    }

    /// `kubectl version --client` of the kubectl at `path`.
    pub fn version(path: &Path, env: &Environment, out: &Output) -> Result<String> {
        Cmd::new(path, "asking kubectl for its version")
            .args(["version", "--client"])
            .output(env, out)
    }
}
