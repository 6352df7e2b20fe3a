//! The lab's SSH key pair: created once, never overwritten.

use std::fs;
use std::path::{Path, PathBuf};

use rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey};

use crate::error::{Error, Result};
use crate::fsutil::{write_all_or_none, Planned, Written};
use crate::lab::files::MODE_PRIVATE;

/// The lab's key pair as it is to be: its public key line, and the files still to write
/// (none when both exist; the public half when only it is missing; both for a new pair).
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub line: String,
    /// (file, content), to be written with mode 0600.
    pub to_write: Vec<(PathBuf, String)>,
    /// Whether the pair is new.
    pub created: bool,
}

/// The key pair at `private` / `public`, created in memory if neither exists; nothing is
/// written. An existing private key is kept; a missing public half is derived from it.
pub fn key_pair(private: &Path, public: &Path, comment: &str) -> Result<KeyPair> {
    let key_err = |path: &Path, reason: String| Error::Key {
        path: path.to_path_buf(),
        reason,
    };
    if private.exists() {
        let text = fs::read_to_string(private).map_err(|e| Error::io("reading", private, e))?;
        let key = PrivateKey::from_openssh(&text)
            .map_err(|e| key_err(private, format!("not an OpenSSH private key: {e}")))?;
        let line = public_line(&key, private)?;
        let to_write = if public.exists() {
            Vec::new()
        } else {
            vec![(public.to_path_buf(), format!("{line}\n"))]
        };
        return Ok(KeyPair {
            line,
            to_write,
            created: false,
        });
    }
    if public.exists() {
        return Err(key_err(
            private,
            format!(
                "missing, but {} exists; k0slab will not replace a key pair it cannot read \
                 whole. Move {} away to let k0slab create a new pair",
                public.display(),
                public.display()
            ),
        ));
    }
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|e| key_err(private, e.to_string()))?;
    key.set_comment(comment);
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| key_err(private, e.to_string()))?;
    let line = public_line(&key, private)?;
    Ok(KeyPair {
        to_write: vec![
            (private.to_path_buf(), text.to_string()),
            (public.to_path_buf(), format!("{line}\n")),
        ],
        line,
        created: true,
    })
}

/// The public key line of the pair at `private` / `public`, creating the pair if neither
/// exists (both files or neither).
pub fn ensure_key_pair(private: &Path, public: &Path, comment: &str) -> Result<(String, Written)> {
    let pair = key_pair(private, public, comment)?;
    let planned: Vec<Planned<'_>> = pair
        .to_write
        .iter()
        .map(|(path, text)| Planned {
            path,
            contents: text.as_bytes(),
            mode: MODE_PRIVATE,
        })
        .collect();
    write_all_or_none(&planned)?;
    let written = if pair.created {
        Written::Created
    } else {
        Written::Unchanged
    };
    Ok((pair.line, written))
}

fn public_line(key: &PrivateKey, path: &Path) -> Result<String> {
    key.public_key().to_openssh().map_err(|e| Error::Key {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("id"), dir.path().join("id.pub"));
        let (line, w) = ensure_key_pair(&private, &public, "k0slab@test").unwrap();
        assert_eq!(w, Written::Created);
        assert!(
            line.starts_with("ssh-ed25519 ") && line.ends_with(" k0slab@test"),
            "{line}"
        );
        for p in [&private, &public] {
            assert_eq!(fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let before = fs::read(&private).unwrap();
        let (again, w) = ensure_key_pair(&private, &public, "k0slab@test").unwrap();
        assert_eq!((again.as_str(), w), (line.as_str(), Written::Unchanged));
        assert_eq!(fs::read(&private).unwrap(), before);

        fs::remove_file(&public).unwrap();
        let (derived, _) = ensure_key_pair(&private, &public, "ignored").unwrap();
        assert_eq!(derived, line);
        assert_eq!(fs::read_to_string(&public).unwrap(), format!("{line}\n"));
    }

    #[test]
    fn a_lone_public_key_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("id"), dir.path().join("id.pub"));
        fs::write(&public, "ssh-ed25519 AAAA mine\n").unwrap();
        let err = ensure_key_pair(&private, &public, "c").unwrap_err();
        assert!(err.to_string().contains("will not replace"), "{err}");
        assert_eq!(
            fs::read_to_string(&public).unwrap(),
            "ssh-ed25519 AAAA mine\n"
        );
        assert!(!private.exists());
    }
}
