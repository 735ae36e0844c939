//! `d365 emulator` as a service: stopped with SIGTERM (what `kill`, shell traps and service
//! managers send), it shuts down cleanly and leaves nothing in the temporary directory (its
//! certificates, and the database it spills to disk for large `--rows`, are removed). Its ready
//! file, which holds the test apps' secrets, is readable by its owner only.

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn sigterm_stops_the_emulator_and_removes_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tempfile::tempdir().unwrap();
    let ready = keep.path().join("ready.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_d365"))
        .args(["emulator", "--rows", "10", "--port", "0", "--ready-file"])
        .arg(&ready)
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the banner (no sleeping: the read blocks until the line is printed).
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("the emulator exited before it was ready: {printed}");
        }
        printed.push_str(&line);
        if line.contains("Press Ctrl-C to stop") {
            break;
        }
    }
    assert!(std::fs::read_dir(tmp.path()).unwrap().next().is_some(), "the emulator keeps its state under TMPDIR");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&ready).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the ready file holds client secrets");
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&ready).unwrap()).unwrap();
        assert!(json["org_url"].as_str().is_some_and(|u| u.starts_with("https://")), "{json}");
        let names: Vec<_> = std::fs::read_dir(keep.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("ready.json")], "no temporary file left beside it");
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
