//! `mcpt target` over TLS and HTTP/2, as real processes: HTTPS with the CA it generates and
//! writes, certificates from files, HTTP/2 by ALPN and h2c with prior knowledge, mTLS, and bad
//! flags. The clients are curl (HTTP/2 through nghttp2, TLS through OpenSSL: a second
//! implementation, not ours); what the target received is read from its own `/stats`.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{ChildGuard, mcpt};
use rcgen::{
    BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde_json::Value;

/// A running `mcpt target` and the base URL from its listening line.
struct Target {
    _guard: ChildGuard,
    base: String,
    port: u16,
}

/// Spawns `mcpt target --port 0 --workers 1 ARGS` and waits for its listening line.
fn target(args: &[&str]) -> Target {
    let mut all = vec!["target", "--port", "0", "--workers", "1"];
    all.extend_from_slice(args);
    let mut guard = ChildGuard::spawn(&mut mcpt(&all));
    let stderr = guard.take_stderr();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1)
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(rest.split(' ').next().unwrap_or("").to_string());
            }
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("mcpt target prints its listening line");
    let port = base.rsplit(':').next().unwrap().parse().expect("a port");
    Target {
        _guard: guard,
        base,
        port,
    }
}

/// Runs curl with `args`; its exit status, and its stdout (the body, then `%{http_version}`).
fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", " %{http_version}"])
        .args(args)
        .output()
        .expect("curl runs (.ci/run installs it)");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// curl that must succeed: the body and HTTP version it printed.
fn fetch(args: &[&str]) -> String {
    let (ok, out) = curl(args);
    assert!(ok, "curl {args:?} failed: {out}");
    out
}

/// The target's `/stats`, read with the same curl options.
fn stats(url: &str, args: &[&str]) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .arg(format!("{url}/stats"))
        .output()
        .expect("curl runs");
    assert!(out.status.success(), "GET /stats: {out:?}");
    serde_json::from_slice(&out.stdout).expect("stats are JSON")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A CA of the test's own, which signs certificates written to files.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A leaf for `names` with the usage `eku`: its certificate PEM and key PEM.
    fn leaf(&self, names: &[&str], eku: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

#[test]
fn https_with_the_written_ca_counts_h1_and_tls_versions() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let t = target(&["--tls", "--tls-ca-out", path(&ca)]);
    assert!(t.base.starts_with("https://127.0.0.1:"), "{}", t.base);
    let cacert = ["--cacert", path(&ca)];
    let localhost = format!("https://localhost:{}/", t.port);
    let ip = format!("https://127.0.0.1:{}/", t.port);
    // The leaf names localhost and 127.0.0.1; TLS 1.3 by default, 1.2 when the client caps it.
    assert_eq!(
        fetch(&[&cacert[..], &[&localhost]].concat()),
        "Hello, World! 1.1"
    );
    assert_eq!(fetch(&[&cacert[..], &[&ip]].concat()), "Hello, World! 1.1");
    let tls12 = ["--tls-max", "1.2", ip.as_str()];
    assert_eq!(fetch(&[&cacert[..], &tls12].concat()), "Hello, World! 1.1");
    // Without --h2 the target offers only HTTP/1.1, whatever the client would like.
    let h2 = ["--http2", ip.as_str()];
    assert_eq!(fetch(&[&cacert[..], &h2].concat()), "Hello, World! 1.1");
    // A client that does not trust the CA refuses the target.
    assert!(!curl(&[&ip]).0, "curl without the CA trusted the target");

    let s = stats(&t.base, &cacert);
    assert_eq!(s["total"], 4, "{s}");
    assert_eq!(s["protocols"], serde_json::json!({"h1": 4, "h2": 0}), "{s}");
    assert_eq!(
        s["tls_versions"],
        serde_json::json!({"TLSv1.2": 1, "TLSv1.3": 3}),
        "{s}"
    );
    // DELETE /stats resets the new counts too.
    let del = Command::new("curl")
        .args(["-sS", "-X", "DELETE", "--cacert", path(&ca)])
        .arg(format!("{}/stats", t.base))
        .status()
        .unwrap();
    assert!(del.success());
    let s = stats(&t.base, &cacert);
    assert_eq!(s["total"], 0, "{s}");
    assert_eq!(s["protocols"], serde_json::json!({"h1": 0, "h2": 0}), "{s}");
    assert_eq!(
        s["tls_versions"],
        serde_json::json!({"TLSv1.2": 0, "TLSv1.3": 0}),
        "{s}"
    );
}

#[test]
fn h2_by_alpn_over_tls_and_h2c_with_prior_knowledge_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let tls = target(&["--tls", "--h2", "--tls-ca-out", path(&ca)]);
    let cacert = ["--cacert", path(&ca)];
    let url = format!("{}/", tls.base);
    assert_eq!(
        fetch(&[&cacert[..], &["--http2", &url]].concat()),
        "Hello, World! 2"
    );
    assert_eq!(
        fetch(&[&cacert[..], &["--http1.1", &url]].concat()),
        "Hello, World! 1.1"
    );
    let s = stats(&tls.base, &cacert);
    assert_eq!(s["protocols"], serde_json::json!({"h1": 1, "h2": 1}), "{s}");
    assert_eq!(s["tls_versions"]["TLSv1.3"], 2, "{s}");

    let clear = target(&["--h2"]);
    assert!(clear.base.starts_with("http://"), "{}", clear.base);
    let url = format!("{}/", clear.base);
    assert_eq!(fetch(&["--http2-prior-knowledge", &url]), "Hello, World! 2");
    assert_eq!(fetch(&["--http1.1", &url]), "Hello, World! 1.1");
    let s = stats(&clear.base, &[]);
    assert_eq!(s["protocols"], serde_json::json!({"h1": 1, "h2": 1}), "{s}");
    assert_eq!(
        s["tls_versions"],
        serde_json::json!({"TLSv1.2": 0, "TLSv1.3": 0}),
        "{s}"
    );

    // Without --h2, a clear target speaks HTTP/1.1 only: prior-knowledge h2 gets no answer.
    let plain = target(&[]);
    let url = format!("{}/", plain.base);
    assert!(!curl(&["--http2-prior-knowledge", &url]).0);
    assert_eq!(stats(&plain.base, &[])["protocols"]["h2"], 0);
}

#[test]
fn require_client_cert_refuses_clients_without_one_signed_by_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let server_ca = TestCa::new("server CA");
    let (cert, key) = server_ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let client_ca = TestCa::new("client CA");
    let (ccert, ckey) = client_ca.leaf(&["client"], ExtendedKeyUsagePurpose::ClientAuth);
    let stranger = TestCa::new("stranger CA");
    let (scert, skey) = stranger.leaf(&["client"], ExtendedKeyUsagePurpose::ClientAuth);
    let server_ca_pem = write(d, "server-ca.pem", &server_ca.pem);
    let client_ca_pem = write(d, "client-ca.pem", &client_ca.pem);
    let (cert, key) = (write(d, "cert.pem", &cert), write(d, "key.pem", &key));
    let (ccert, ckey) = (write(d, "c.pem", &ccert), write(d, "c.key", &ckey));
    let (scert, skey) = (write(d, "s.pem", &scert), write(d, "s.key", &skey));

    let t = target(&[
        "--tls-cert",
        path(&cert),
        "--tls-key",
        path(&key),
        "--require-client-cert",
        path(&client_ca_pem),
    ]);
    let url = format!("https://localhost:{}/", t.port);
    let trust = ["--cacert", path(&server_ca_pem)];
    let (ok, out) = curl(&[&trust[..], &[&url]].concat());
    assert!(!ok, "a client without a certificate was served: {out}");
    let stranger = ["--cert", path(&scert), "--key", path(&skey), url.as_str()];
    let (ok, out) = curl(&[&trust[..], &stranger].concat());
    assert!(!ok, "a certificate of another CA was accepted: {out}");
    let mine = ["--cert", path(&ccert), "--key", path(&ckey)];
    assert_eq!(
        fetch(&[&trust[..], &mine, &[&url]].concat()),
        "Hello, World! 1.1"
    );
    let s = stats(
        &format!("https://localhost:{}", t.port),
        &[&trust[..], &mine].concat(),
    );
    assert_eq!(
        s["total"], 1,
        "only the client with a certificate got in: {s}"
    );
}

/// `mcpt target ARGS` exits with 2 and says `needle` on stderr.
fn refused(args: &[&str], needle: &str) {
    let mut all = vec!["target", "--port", "0"];
    all.extend_from_slice(args);
    let out = ChildGuard::spawn(&mut mcpt(&all)).wait(Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: {needle:?} not in {stderr}"
    );
    assert!(!stderr.contains("listening on"), "{args:?}: {stderr}");
}

#[test]
fn bad_tls_flags_and_files_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca = TestCa::new("ca");
    let (cert, key) = ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (_, other_key) = ca.leaf(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (cert, key) = (write(d, "cert.pem", &cert), write(d, "key.pem", &key));
    let other_key = write(d, "other.key", &other_key);
    let junk = write(d, "junk.pem", "not a PEM file\n");
    let missing = d.join("missing.pem");
    let (cert, key, junk, missing) = (path(&cert), path(&key), path(&junk), path(&missing));

    refused(&["--tls-cert", cert], "--tls-key");
    refused(&["--tls-key", key], "--tls-cert");
    refused(&["--tls-ca-out", "ca.pem"], "--tls");
    refused(&["--require-client-cert", cert], "--tls");
    refused(&["--tls-name", "example.test"], "--tls");
    refused(
        &["--tls-cert", cert, "--tls-key", key, "--tls-ca-out", "x"],
        "--tls-ca-out",
    );
    refused(&["--tls-cert", missing, "--tls-key", key], missing);
    refused(
        &["--tls-cert", junk, "--tls-key", key],
        "no PEM certificate",
    );
    refused(
        &["--tls-cert", cert, "--tls-key", junk],
        "no PEM private key",
    );
    refused(
        &["--tls-cert", cert, "--tls-key", path(&other_key)],
        "do not make a TLS configuration",
    );
    refused(
        &["--tls", "--require-client-cert", junk],
        "--require-client-cert",
    );
    refused(&["--tls", "--tls-name", "bücher.test"], "certificate");
    let unwritable = d.join("no-such-dir").join("ca.pem");
    refused(
        &["--tls", "--tls-ca-out", path(&unwritable)],
        "--tls-ca-out",
    );
}

/// Runs `plan` with `mcpt run`; the JSON report.
fn run(plan: &str) -> Value {
    let (output, report) = common::run_plan(plan, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    report.expect("a report")
}

/// The plan's `http_version` decides the protocol the target counts: "2" is h2 (by ALPN over
/// TLS, prior knowledge in clear) and "1.1" is h1, on a target that offers both.
#[test]
fn http_version_picks_the_protocol_the_target_counts() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let tls = target(&["--tls", "--h2", "--tls-ca-out", path(&ca)]);
    let clear = target(&["--h2"]);
    let cacert = ["--cacert", path(&ca)];
    let cases = [
        (&tls, "'2'", "h2", &cacert[..]),
        (&tls, "'1.1'", "h1", &cacert[..]),
        (&tls, "auto", "h2", &cacert[..]),
        (&clear, "'2'", "h2", &[][..]),
        (&clear, "'1.1'", "h1", &[][..]),
        (&clear, "auto", "h1", &[][..]),
    ];
    for (target, version, protocol, curl_args) in cases {
        let reset = Command::new("curl")
            .args(["-sS", "-X", "DELETE"])
            .args(curl_args)
            .arg(format!("{}/stats", target.base))
            .status()
            .unwrap();
        assert!(reset.success());
        let report = run(&format!(
            "tasks:\n- type: load_test\n  parameters:\n    targets: ['{}/']\n    duration: 1s\n    base_rps: 10\n    http_version: {version}\n    tls: {{ca: '{}'}}\n",
            target.base.replace("127.0.0.1", "localhost"),
            path(&ca),
        ));
        let task = &report["tasks"][0];
        assert_eq!(task["total_requests"], 10, "{version}: {task}");
        assert_eq!(task["errors"]["total"], 0, "{version}: {task}");
        let s = stats(&target.base, curl_args);
        let other = if protocol == "h2" { "h1" } else { "h2" };
        assert_eq!(
            s["protocols"][protocol], 10,
            "{version} on {}: {s}",
            target.base
        );
        assert_eq!(
            s["protocols"][other], 0,
            "{version} on {}: {s}",
            target.base
        );
    }
}
