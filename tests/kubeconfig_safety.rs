//! `kubeconfig --merge` and `destroy` against a user's kubeconfig that is not a plain, writable
//! file holding only k0slab's entries: a symbolic link, entries of the user's with the lab's
//! names, a current context to give back, a file destroy cannot read, `KUBECONFIG` naming the
//! lab's own kubeconfig, a read-only file. The real kubectl reads the results.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::standins::{both, stderr, stdout, Sandbox};

/// A sandbox with a healthy 1+1 lab named `k0slab` (the sandbox's name).
fn lab_up() -> Sandbox {
    let sb = Sandbox::new();
    let o = sb.k0slab(&["up", "--wait", "5s"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    sb
}

fn home_config(sb: &Sandbox) -> PathBuf {
    sb.home().join(".kube/config")
}

fn write_home_config(sb: &Sandbox, text: &str) -> PathBuf {
    let path = home_config(sb);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path
}

/// `kubectl config ARGS --kubeconfig FILE` with the real kubectl (not the stand-in).
fn kubectl(file: &Path, args: &[&str]) -> Output {
    let mut all = vec!["config", "--kubeconfig", file.to_str().unwrap()];
    all.extend_from_slice(args);
    std::process::Command::new(common::require_tool("kubectl"))
        .args(&all)
        .env_clear()
        .output()
        .unwrap()
}

fn kubectl_ok(file: &Path, args: &[&str]) -> String {
    let o = kubectl(file, args);
    assert!(o.status.success(), "kubectl {args:?}: {}", both(&o));
    stdout(&o)
}

/// The names of `what` (`contexts`, `clusters`, `users`) in `file`, sorted, as kubectl sees them.
fn names(file: &Path, what: &str) -> Vec<String> {
    let out = kubectl_ok(
        file,
        &["view", "-o", &format!("jsonpath={{.{what}[*].name}}")],
    );
    let mut names: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    names.sort();
    names
}

/// The current context as kubectl reports it; `None` when it is not set.
fn current_context(file: &Path) -> Option<String> {
    let o = kubectl(file, &["current-context"]);
    o.status.success().then(|| stdout(&o).trim().to_string())
}

/// The files in `dir` whose names start with `prefix`.
fn files_starting(dir: &Path, prefix: &str) -> Vec<String> {
    let mut found: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(prefix))
        .collect();
    found.sort();
    found
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_symlinked_kube_config_stays_a_link_and_its_target_is_written() {
    let sb = lab_up();
    let dotfiles = sb.home().join("dotfiles");
    fs::create_dir_all(&dotfiles).unwrap();
    let target = dotfiles.join("kubeconfig");
    fs::write(&target, common::USER_KUBECONFIG).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o640)).unwrap();
    let link = home_config(&sb);
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("../dotfiles/kubeconfig", &link).unwrap();

    let o = sb.k0slab(&["kubeconfig", "--merge"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        fs::symlink_metadata(&link).unwrap().is_symlink(),
        "the link was replaced by a file"
    );
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("../dotfiles/kubeconfig")
    );
    let real = fs::canonicalize(&target).unwrap();
    assert!(
        stdout(&o).contains(&format!(
            "merged context k0slab into {} (a link to {}) (backup: ",
            link.display(),
            real.display()
        )),
        "{}",
        stdout(&o)
    );
    assert_eq!(names(&target, "contexts"), ["k0slab", "kind-dev", "prod"]);
    assert_eq!(current_context(&link).as_deref(), Some("k0slab"));
    assert_eq!(
        mode(&target),
        0o600,
        "the target holds the lab's admin key now: the owner's bits only"
    );
    // The backup, as before: beside the name the user knows, with the old contents.
    let backup = sb.home().join(".kube/config.k0slab-backup-1");
    assert_eq!(
        fs::read_to_string(&backup).unwrap(),
        common::USER_KUBECONFIG
    );
    assert_eq!(files_starting(&dotfiles, ""), ["kubeconfig"]);

    // destroy writes through the link too.
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(names(&target, "contexts"), ["kind-dev", "prod"]);
    assert_eq!(names(&target, "clusters"), ["kind-dev", "prod"]);
}

#[test]
fn the_users_own_entries_with_the_labs_names_are_refused_on_merge() {
    let sb = lab_up();
    // The user's own cluster and user that happen to have the lab's names.
    let theirs = common::USER_KUBECONFIG
        .replace("- name: kind-dev\n  cluster:", "- name: k0slab\n  cluster:")
        .replace("- name: kind-dev\n  user:", "- name: k0slab-admin\n  user:");
    let path = write_home_config(&sb, &theirs);
    let record_before = fs::read(sb.lab().join("lab.json")).unwrap();

    let o = sb.k0slab(&["kubeconfig", "--merge"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{} already has cluster \"k0slab\" and user \"k0slab-admin\" that k0slab did not create",
            path.display()
        )),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        theirs,
        "nothing changed"
    );
    assert_eq!(
        files_starting(path.parent().unwrap(), ""),
        ["config"],
        "no backup"
    );
    assert_eq!(
        fs::read(sb.lab().join("lab.json")).unwrap(),
        record_before,
        "the file is not recorded as merged into"
    );
}

#[test]
fn destroy_keeps_the_users_own_entry_with_the_labs_name_and_says_so() {
    let sb = lab_up();
    let path = write_home_config(&sb, common::USER_KUBECONFIG);
    let o = sb.k0slab(&["kubeconfig", "--merge"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    // After the merge the user replaces the lab's context with one of their own.
    kubectl_ok(&path, &["delete-context", "k0slab"]);
    kubectl_ok(
        &path,
        &["set-context", "k0slab", "--cluster=prod", "--user=prod"],
    );
    kubectl_ok(&path, &["use-context", "prod"]);

    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "warning: kept context \"k0slab\" in {}: k0slab did not create it",
            path.display()
        )),
        "{err}"
    );
    assert_eq!(names(&path, "contexts"), ["k0slab", "kind-dev", "prod"]);
    let cluster = kubectl_ok(
        &path,
        &[
            "view",
            "-o",
            "jsonpath={.contexts[?(@.name==\"k0slab\")].context.cluster}",
        ],
    );
    assert_eq!(cluster, "prod", "the user's context is untouched");
    // k0slab's own cluster and user are gone.
    assert_eq!(names(&path, "clusters"), ["kind-dev", "prod"]);
    assert_eq!(names(&path, "users"), ["kind-dev", "prod"]);
}

#[test]
fn destroy_gives_back_the_context_that_was_current_before_the_merge() {
    let sb = lab_up();
    let path = write_home_config(&sb, common::USER_KUBECONFIG);
    let o = sb.k0slab(&["kubeconfig", "--merge"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(current_context(&path).as_deref(), Some("k0slab"));
    // kubectl rewrites the file in between; k0slab's marks survive it.
    kubectl_ok(&path, &["use-context", "kind-dev"]);
    kubectl_ok(&path, &["use-context", "k0slab"]);
    // A second merge does not forget what was current before the first.
    let o = sb.k0slab(&["kubeconfig", "--merge"], &[]);
    assert!(o.status.success(), "{}", both(&o));

    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(
        stdout(&o).contains(&format!(
            "removed cluster \"k0slab\", user \"k0slab-admin\" and context \"k0slab\" from {}",
            path.display()
        )),
        "{}",
        stdout(&o)
    );
    assert!(
        stdout(&o).contains("; current context: prod"),
        "{}",
        stdout(&o)
    );
    assert_eq!(current_context(&path).as_deref(), Some("prod"));
    assert_eq!(names(&path, "contexts"), ["kind-dev", "prod"]);
}

#[test]
fn destroy_leaves_the_current_context_unset_when_the_previous_one_is_gone() {
    let sb = lab_up();
    let path = write_home_config(&sb, common::USER_KUBECONFIG);
    assert!(sb.k0slab(&["kubeconfig", "--merge"], &[]).status.success());
    kubectl_ok(&path, &["delete-context", "prod"]);
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(current_context(&path), None);
    assert_eq!(names(&path, "contexts"), ["kind-dev"]);
}

#[test]
fn destroy_warns_about_a_kubeconfig_it_cannot_read_and_still_succeeds() {
    // Broken YAML, and a directory where the file was (root reads any mode, so no chmod 000).
    for broken in ["yaml", "directory"] {
        let sb = lab_up();
        let path = write_home_config(&sb, common::USER_KUBECONFIG);
        assert!(sb.k0slab(&["kubeconfig", "--merge"], &[]).status.success());
        let garbled = "clusters: [unclosed\n";
        if broken == "yaml" {
            fs::write(&path, garbled).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
            fs::create_dir(&path).unwrap();
        }

        let o = sb.k0slab(&["destroy"], &[]);
        assert!(o.status.success(), "{broken}: {}", both(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "warning: could not take lab k0slab out of {} (",
                path.display()
            )),
            "{broken}: {err}"
        );
        assert!(
            err.contains(
                "cluster \"k0slab\", user \"k0slab-admin\" and context \"k0slab\" may still be in it"
            ),
            "{broken}: {err}"
        );
        assert!(!sb.lab().exists(), "{broken}: the lab is destroyed");
        if broken == "yaml" {
            assert_eq!(fs::read_to_string(&path).unwrap(), garbled);
        }
        assert_eq!(
            files_starting(path.parent().unwrap(), "config."),
            ["config.k0slab-backup-1"],
            "{broken}: only the merge's backup"
        );
    }
}

#[test]
fn kubeconfig_naming_the_labs_own_file_merges_into_home_kube_config() {
    let mut sb = lab_up();
    let lab_file = sb.lab().join("kubeconfig");
    let before = fs::read(&lab_file).unwrap();
    // What `up` tells the user to export.
    sb.set("KUBECONFIG", lab_file.to_str().unwrap());

    let o = sb.k0slab(&["kubeconfig", "--merge"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let home = home_config(&sb);
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "KUBECONFIG names the lab's own kubeconfig ({}): merging into {} instead",
            lab_file.display(),
            home.display()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("merged context k0slab into {}", home.display())),
        "{out}"
    );
    assert_eq!(
        fs::read(&lab_file).unwrap(),
        before,
        "the lab's file is untouched"
    );
    assert_eq!(files_starting(&sb.lab(), "kubeconfig"), ["kubeconfig"]);
    assert_eq!(names(&home, "contexts"), ["k0slab"]);

    // destroy takes it out of ~/.kube/config again.
    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert!(names(&home, "contexts").is_empty());
}

#[test]
fn a_read_only_kubeconfig_is_refused_and_left_as_it_is() {
    for ro in [0o400, 0o444] {
        let sb = lab_up();
        let path = write_home_config(&sb, common::USER_KUBECONFIG);
        fs::set_permissions(&path, fs::Permissions::from_mode(ro)).unwrap();

        let o = sb.k0slab(&["kubeconfig", "--merge"], &[]);
        assert_eq!(o.status.code(), Some(1), "{ro:o}: {}", both(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "writing {}: the file is read-only (mode {ro:04o})",
                path.display()
            )),
            "{ro:o}: {err}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), common::USER_KUBECONFIG);
        assert_eq!(mode(&path), ro);
        assert_eq!(files_starting(path.parent().unwrap(), ""), ["config"]);
    }
}

#[test]
fn destroy_leaves_a_kubeconfig_made_read_only_after_the_merge_and_warns() {
    let sb = lab_up();
    let path = write_home_config(&sb, common::USER_KUBECONFIG);
    assert!(sb.k0slab(&["kubeconfig", "--merge"], &[]).status.success());
    fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
    let merged = fs::read(&path).unwrap();

    let o = sb.k0slab(&["destroy"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    let err = stderr(&o);
    assert!(err.contains("the file is read-only (mode 0444)"), "{err}");
    assert!(err.contains("may still be in it"), "{err}");
    assert_eq!(fs::read(&path).unwrap(), merged);
    assert_eq!(mode(&path), 0o444);
}

#[test]
fn a_kubeconfig_that_is_not_yaml_is_called_a_kubeconfig_and_left_as_it_is() {
    let sb = lab_up();
    let garbled = "clusters: [unclosed\n";
    let path = write_home_config(&sb, garbled);
    let o = sb.k0slab(&["kubeconfig", "--merge"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", both(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{} is not a kubeconfig k0slab can read: it is not valid YAML",
            path.display()
        )),
        "{err}"
    );
    assert!(
        !err.contains("lab file"),
        "the user's file is no lab file: {err}"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), garbled);
    assert!(files_starting(path.parent().unwrap(), "config.").is_empty());
}

/// Issue 16, 12: a kubeconfig readable by others (0644, as many are) holds the lab's admin key
/// after the merge: it keeps only the owner's permissions, and k0slab says so.
#[test]
fn a_merge_makes_a_kubeconfig_readable_by_others_private() {
    let sb = lab_up();
    let path = write_home_config(&sb, common::USER_KUBECONFIG);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let o = sb.k0slab(&["kubeconfig", "--merge"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(mode(&path), 0o600, "{}", both(&o));
    assert!(
        stdout(&o).contains(&format!(
            "{} now has mode 0600 (was 0644): it holds the lab's admin key",
            path.display()
        )),
        "{}",
        stdout(&o)
    );
    // The backup, the file as it was, and the merge as before: every entry kept.
    let backup = sb.home().join(".kube/config.k0slab-backup-1");
    assert_eq!(
        fs::read_to_string(&backup).unwrap(),
        common::USER_KUBECONFIG
    );
    assert_eq!(mode(&backup), 0o600);
    assert_eq!(names(&path, "contexts"), ["k0slab", "kind-dev", "prod"]);
    assert_eq!(
        files_starting(path.parent().unwrap(), "config"),
        ["config", "config.k0slab-backup-1"]
    );
    // Merging again changes nothing and keeps it private.
    let o = sb.k0slab(&["kubeconfig", "--merge"], &[]);
    assert!(o.status.success(), "{}", both(&o));
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        files_starting(path.parent().unwrap(), "config"),
        ["config", "config.k0slab-backup-1"]
    );
}
