//! Every call of kubectl (always with the lab's kubeconfig).

use std::path::Path;

use serde_json::Value;

use crate::environment::Environment;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::process::Cmd;

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

    pub fn version(&self) -> Result<String> {
        Cmd::new(self.path, "asking kubectl for its version")
            .args(["version", "--client"])
            .output(self.env, self.out)
    }
}
