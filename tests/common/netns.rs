//! A small network of our own: one namespace holding a bridge (the switch) and one namespace
//! per host, each joined to the bridge by a veth pair, with addresses `10.<net>.0.<n>/24`.
//! Everything is named after the test process, so parallel tests never collide, and deleted
//! when the network drops (deleting a namespace removes its interfaces).
//!
//! Needs root and `ip` (iproute2; `.ci/run` installs it). Where namespaces cannot be made the
//! constructor panics with a message saying so: such a test fails, it is never skipped.

use std::process::{Command, Output};

pub struct Netns {
    prefix: String,
    net: u8,
    made: Vec<String>,
}

/// Runs `ip` with `args`, panicking with its message when it fails.
fn ip(args: &[&str]) -> Output {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (iproute2 missing?): {e}"));
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    out
}

impl Netns {
    /// A switch namespace with a bridge. `net` picks the address block `10.<net>.0.0/24`;
    /// give each test its own.
    pub fn new(net: u8) -> Netns {
        let prefix = format!("mcpt{}n{net}", std::process::id());
        let probe = Command::new("ip")
            .args(["netns", "add", &format!("{prefix}sw")])
            .output();
        match probe {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!(
                "network namespaces cannot be created here (`ip netns add` said: {}); \
                 this test needs root and iproute2",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("network namespaces cannot be created here: `ip` is missing ({e})"),
        }
        let n = Netns {
            made: vec![format!("{prefix}sw")],
            prefix,
            net,
        };
        let sw = n.switch();
        n.exec_ok(&sw, &["ip", "link", "add", "br0", "type", "bridge"]);
        n.exec_ok(&sw, &["ip", "link", "set", "br0", "up"]);
        n.exec_ok(&sw, &["ip", "link", "set", "lo", "up"]);
        n
    }

    fn switch(&self) -> String {
        format!("{}sw", self.prefix)
    }

    /// Adds host `n` (1..=254): a namespace with `eth0` at `10.<net>.0.<n>/24` on the bridge,
    /// and `lo` up. Returns the namespace's name.
    pub fn host(&mut self, n: u8) -> String {
        let ns = format!("{}h{n}", self.prefix);
        ip(&["netns", "add", &ns]);
        self.made.push(ns.clone());
        // Interface names are at most 15 bytes: keep them short and unique per network.
        let outer = format!("v{}x{n}", self.net);
        let sw = self.switch();
        ip(&[
            "link", "add", &outer, "netns", &sw, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ]);
        self.exec_ok(&sw, &["ip", "link", "set", &outer, "master", "br0"]);
        self.exec_ok(&sw, &["ip", "link", "set", &outer, "up"]);
        let addr = format!("{}/24", self.addr(n));
        self.exec_ok(&ns, &["ip", "addr", "add", &addr, "dev", "eth0"]);
        self.exec_ok(&ns, &["ip", "link", "set", "eth0", "up"]);
        self.exec_ok(&ns, &["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The address of host `n`.
    pub fn addr(&self, n: u8) -> String {
        format!("10.{}.0.{n}", self.net)
    }

    /// A command that runs `program` inside namespace `ns` (`ip netns exec` execs it, so the
    /// child's pid is the program's).
    pub fn command(&self, ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }

    /// Runs `argv` inside `ns` and returns its output, whatever its exit status.
    pub fn exec(&self, ns: &str, argv: &[&str]) -> Output {
        let mut c = self.command(ns, argv[0]);
        c.args(&argv[1..]);
        c.output().expect("ip netns exec runs")
    }

    fn exec_ok(&self, ns: &str, argv: &[&str]) -> Output {
        let out = self.exec(ns, argv);
        assert!(
            out.status.success(),
            "`{}` in {ns} failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in self.made.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
