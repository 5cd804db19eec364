//! `berth user` as an operator runs it: the real binary writing an htpasswd
//! file that bcrypt (and so the server) accepts, beside lines Apache's
//! `htpasswd -B` wrote.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests fail loudly

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

// Written by Apache's `htpasswd -nbB -C 4 alice 's3cret pw'` and `-C 5 bob hunter2`.
const APACHE_LINES: &str = "# written by htpasswd -B\n\
    alice:$2y$04$5NI7LcRsnsVVs34w5CpboeMHGtn07.ssQm121h/7XmK0A3K9n0682\n\
    bob:$2y$05$r8601WKbzglhe9zjZu6eNe3GnoKhuZTCRShQFSM6tjgkS6gDjNY4.\n";

/// Runs `berth user ARGS` with `stdin` fed in and BERTH_* cleared.
fn berth_user(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BERTH)
        .arg("user")
        .args(args)
        .env_remove("BERTH_DATA_DIR")
        .env_remove("BERTH_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn hash_of(file: &Path, user: &str) -> Option<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|line| {
            let (name, hash) = line.split_once(':')?;
            (name == user).then(|| hash.to_string())
        })
}

fn listed(file: &Path) -> Vec<String> {
    let out = berth_user(&["list", "--htpasswd", file.to_str().unwrap()], "");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn add_list_change_and_remove_users() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    let f = file.to_str().unwrap();
    assert!(listed(&file).is_empty(), "no file yet: no users");

    let out = berth_user(
        &[
            "add",
            "carol",
            "--htpasswd",
            f,
            "--password-stdin",
            "--cost",
            "4",
        ],
        "pw one\n",
    );
    assert!(out.status.success(), "{out:?}");
    let hash = hash_of(&file, "carol").unwrap();
    assert!(hash.starts_with("$2y$04$"), "{hash}");
    assert!(bcrypt::verify("pw one", &hash).unwrap());
    assert!(!bcrypt::verify("pw one\n", &hash).unwrap());
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(listed(&file), ["carol"]);

    // Adding again changes the password in place.
    let out = berth_user(
        &[
            "add",
            "carol",
            "--htpasswd",
            f,
            "--password-stdin",
            "--cost",
            "4",
        ],
        "pw two\n",
    );
    assert!(out.status.success(), "{out:?}");
    let hash = hash_of(&file, "carol").unwrap();
    assert!(bcrypt::verify("pw two", &hash).unwrap());
    assert!(!bcrypt::verify("pw one", &hash).unwrap());

    let out = berth_user(
        &[
            "add",
            "dave",
            "--htpasswd",
            f,
            "--password-stdin",
            "--cost",
            "4",
        ],
        "pw\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(listed(&file), ["carol", "dave"]);

    let out = berth_user(&["remove", "carol", "--htpasswd", f], "");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(listed(&file), ["dave"]);
    let out = berth_user(&["remove", "carol", "--htpasswd", f], "");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user \"carol\""));
}

#[test]
fn apache_bcrypt_lines_are_kept_and_still_verify() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, APACHE_LINES).unwrap();
    let f = file.to_str().unwrap();
    assert_eq!(listed(&file), ["alice", "bob"]);
    let out = berth_user(
        &[
            "add",
            "carol",
            "--htpasswd",
            f,
            "--password-stdin",
            "--cost",
            "4",
        ],
        "x\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(listed(&file), ["alice", "bob", "carol"]);
    assert!(bcrypt::verify("s3cret pw", &hash_of(&file, "alice").unwrap()).unwrap());
    assert!(bcrypt::verify("hunter2", &hash_of(&file, "bob").unwrap()).unwrap());
    // And berth's own reader (the server's) accepts the file.
    let users = berth_auth::Htpasswd::load(&file).unwrap();
    assert!(users.verify("alice", "s3cret pw"));
    assert!(users.verify("carol", "x"));
}

#[test]
fn a_file_with_other_hash_schemes_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    let text = format!("{APACHE_LINES}carol:$apr1$8wAYurVA$YDjjFQ9HgtnxdgibZGHP00\n");
    std::fs::write(&file, &text).unwrap();
    let f = file.to_str().unwrap();
    let out = berth_user(
        &[
            "add",
            "dave",
            "--htpasswd",
            f,
            "--password-stdin",
            "--cost",
            "4",
        ],
        "x\n",
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("line 4") && stderr.contains("carol"),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[test]
fn passwords_are_never_taken_from_arguments_and_never_empty() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    let f = file.to_str().unwrap();
    let out = berth_user(
        &["add", "eve", "s3cret", "--htpasswd", f, "--password-stdin"],
        "x\n",
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = berth_user(
        &[
            "add",
            "eve",
            "--htpasswd",
            f,
            "--password-stdin",
            "--cost",
            "4",
        ],
        "\n",
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = berth_user(
        &["add", "bad:name", "--htpasswd", f, "--password-stdin"],
        "x\n",
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = berth_user(
        &[
            "add",
            "eve",
            "--htpasswd",
            f,
            "--password-stdin",
            "--cost",
            "3",
        ],
        "x\n",
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!file.exists());
}

#[test]
fn the_default_file_is_in_the_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let out = berth_user(
        &[
            "add",
            "frank",
            "--data-dir",
            d,
            "--password-stdin",
            "--cost",
            "4",
        ],
        "pw\n",
    );
    assert!(out.status.success(), "{out:?}");
    let hash = hash_of(&data.join("htpasswd"), "frank").unwrap();
    assert!(bcrypt::verify("pw", &hash).unwrap());
    let out = berth_user(&["list", "--data-dir", d], "");
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "frank\n");
}
