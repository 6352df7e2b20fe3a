//! Image names the way containerd stores them after `ctr images import`: a RepoTag without a
//! registry gets `docker.io`, a single path component `library/`, no tag `:latest`
//! (containerd `core/images/archive/reference.go` lines 42-56, `importer.go` lines 217-231;
//! the rules of distribution/reference `normalize.go`).

/// `myapp:dev` → `docker.io/library/myapp:dev`; `ghcr.io/me/op` → `ghcr.io/me/op:latest`.
pub fn normalize(name: &str) -> String {
    let (first, rest) = match name.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    let is_registry = |c: &str| {
        c.contains('.')
            || c.contains(':')
            || c == "localhost"
            || c.chars().any(|x| x.is_ascii_uppercase())
    };
    let full = match rest {
        Some(_) if is_registry(first) => name.to_string(),
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    };
    // A tag is a `:` after the last `/`; a digest is `@`.
    let last = full.rsplit('/').next().unwrap_or("");
    if last.contains(':') || full.contains('@') {
        full
    } else {
        format!("{full}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn names_as_containerd_stores_them() {
        for (given, stored) in [
            ("myapp:dev", "docker.io/library/myapp:dev"),
            ("myapp", "docker.io/library/myapp:latest"),
            ("me/x:1", "docker.io/me/x:1"),
            ("ghcr.io/me/op", "ghcr.io/me/op:latest"),
            ("localhost:5000/a:b", "localhost:5000/a:b"),
            ("localhost/a", "localhost/a:latest"),
            (
                "docker.io/library/busybox:1.36",
                "docker.io/library/busybox:1.36",
            ),
        ] {
            assert_eq!(normalize(given), stored, "{given}");
        }
    }
}
