//! Networking, from the step that adds a network namespace (step09) on. Only addresses inside
//! the namespaces the steps create are ever contacted.

use std::process::Command;

use box_tests::binaries::{step_name, steps_from, FIRST_STEP_WITH_BRIDGE, FIRST_STEP_WITH_NET};
use box_tests::lab::{container_address, http_get};
use box_tests::{guard, require_root, Lab};
use nix::sys::signal::Signal;

/// Every process a test starts goes through the guard, or a concurrent test's guard would take
/// it for a leaked orphan.
trait Tracked {
    fn output_tracked(&mut self) -> std::io::Result<std::process::Output>;
    fn status_tracked(&mut self) -> std::io::Result<std::process::ExitStatus>;
}

impl Tracked for Command {
    fn output_tracked(&mut self) -> std::io::Result<std::process::Output> {
        guard::output(self)
    }

    fn status_tracked(&mut self) -> std::io::Result<std::process::ExitStatus> {
        guard::status(self)
    }
}

fn address_of(pid: u32) -> String {
    container_address(pid).expect("the container has an address on eth0")
}

fn host_pings(address: &str) -> bool {
    guard::status(
        Command::new("busybox")
            .args(["ping", "-c", "1", "-W", "2", address])
            .stdout(std::process::Stdio::null()),
    )
    .map(|status| status.success())
    .unwrap_or(false)
}

#[test]
fn the_host_reaches_the_container_and_the_link_goes_with_it() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_NET) {
        let running = lab.start(step, &["--net", "veth", "--", "/bin/sleep", "30"]);
        let sleep = running.wait_for_command("sleep");
        let address = address_of(sleep);
        assert!(address.starts_with("10.200."), "{address}");
        assert!(
            host_pings(&address),
            "{}: the host cannot ping {address}",
            step_name(step)
        );
        let link = format!("box-{}", lab.names().last().unwrap());
        assert!(
            std::path::Path::new("/sys/class/net").join(&link).exists(),
            "no host end {link}"
        );
        running.signal(Signal::SIGTERM);
        let run = running.wait();
        assert_eq!(run.status, 143, "{run}");
        assert!(
            !std::path::Path::new("/sys/class/net").join(&link).exists(),
            "{link} is still there"
        );
        assert_eq!(lab.leftovers(), Vec::<String>::new());
    }
}

#[test]
fn two_containers_at_once_get_different_subnets() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_NET) {
        let first = lab.start(step, &["--net", "veth", "--", "/bin/sleep", "30"]);
        let second = lab.start(step, &["--net", "veth", "--", "/bin/sleep", "30"]);
        let (a, b) = (
            address_of(first.wait_for_command("sleep")),
            address_of(second.wait_for_command("sleep")),
        );
        assert_ne!(a, b);
        assert!(host_pings(&a) && host_pings(&b), "{a} {b}");
        for running in [first, second] {
            running.signal(Signal::SIGTERM);
            assert_eq!(running.wait().status, 143);
        }
    }
}

#[test]
fn a_killed_runtime_leaves_no_link() {
    require_root!();
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_NET) {
        let running = lab.start(step, &["--net", "veth", "--", "/bin/sleep", "30"]);
        running.wait_for_command("sleep");
        let link = format!("box-{}", lab.names().last().unwrap());
        running.signal(Signal::SIGKILL);
        running.wait();
        // Init dies of its parent-death signal, its namespace with it, and the veth pair too.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::path::Path::new("/sys/class/net").join(&link).exists()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            !std::path::Path::new("/sys/class/net").join(&link).exists(),
            "{link} outlived its runtime"
        );
        // The cgroups, scratch area and claim are swept by the next run.
        let run = lab.run(step, &["--net", "none", "--", "/bin/true"]);
        assert_eq!(run.status, 0, "{run}");
    }
}

/// Tests that look at the bridge as a whole take turns: it is shared by every container.
static BRIDGE_USERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn bridge_rules() -> String {
    let mut rules = String::new();
    for table in ["nat", "filter"] {
        let output = Command::new("iptables")
            .args(["-w", "-t", table, "-S"])
            .output_tracked()
            .expect("iptables");
        rules.push_str(&String::from_utf8_lossy(&output.stdout));
    }
    rules
        .lines()
        .filter(|line| line.contains("box-br0"))
        .map(|line| format!("{line}\n"))
        .collect()
}

fn ip_forward() -> String {
    fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
        .unwrap()
        .trim()
        .to_string()
}

use std::fs;

#[test]
fn containers_on_the_bridge_reach_each_other_and_it_goes_with_the_last() {
    require_root!();
    let _turn = BRIDGE_USERS.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_BRIDGE) {
        let forward_before = ip_forward();
        let first = lab.start(step, &["--", "/bin/sleep", "30"]);
        let address = address_of(first.wait_for_command("sleep"));
        assert!(address.starts_with("10.201.0."), "{address}");
        assert!(std::path::Path::new("/sys/class/net/box-br0").exists());
        // MASQUERADE; the jump from the top of FORWARD; the chain's two ACCEPT rules.
        assert_eq!(bridge_rules().lines().count(), 4, "{}", bridge_rules());
        assert_eq!(ip_forward(), "1");
        let second = lab.run(step, &["--", "/bin/ping", "-c", "1", "-W", "2", &address]);
        assert_eq!(
            second.status,
            0,
            "{}: one container cannot reach the other: {second}",
            step_name(step)
        );
        first.signal(Signal::SIGTERM);
        assert_eq!(first.wait().status, 143);
        assert!(
            !std::path::Path::new("/sys/class/net/box-br0").exists(),
            "the bridge outlived its last container"
        );
        assert_eq!(bridge_rules(), "", "rules left");
        assert_eq!(ip_forward(), forward_before, "ip_forward not restored");
    }
}

#[test]
fn a_published_port_answers_on_localhost_and_from_another_namespace() {
    require_root!();
    let _turn = BRIDGE_USERS.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    // A free port of the host, from the kernel.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for step in steps_from(FIRST_STEP_WITH_BRIDGE) {
        let server = lab.start_web_server(step, port);
        let page = http_get(&format!("127.0.0.1:{port}"));
        assert!(
            page.contains("Hello from a container"),
            "{}: localhost:{port} gave {page:?}",
            step_name(step)
        );
        // Another container reaches the same port through the bridge's address.
        let url = format!("http://10.201.0.1:{port}/");
        let other = lab.run(step, &["--", "wget", "-q", "-O", "-", &url]);
        assert!(other.stdout.contains("Hello from a container"), "{other}");
        server.signal(Signal::SIGTERM);
        server.wait();
        assert!(
            std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
            "the port outlived the container"
        );
    }
}

#[test]
fn the_way_out_is_masqueraded() {
    require_root!();
    let _turn = BRIDGE_USERS.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    // "The outside world": a network namespace of the test's own, joined to the host by a
    // veth pair on 10.202.0.0/30, with no route back to the containers' 10.201.0.0/24. A
    // container's ping can only be answered if its address was rewritten to the host's.
    let mut holder = guard::spawn(Command::new("unshare").args(["--net", "sleep", "60"])).unwrap();
    let pid = holder.id();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let outside = || {
        let mut command = Command::new("nsenter");
        command.args([&format!("--target={pid}"), "--net", "--", "ip"]);
        command
    };
    let ok = |mut command: Command, args: &[&str]| {
        assert!(command.args(args).status_tracked().unwrap().success(), "{args:?}")
    };
    ok(
        Command::new("ip"),
        &[
            "link",
            "add",
            "box-tout",
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &pid.to_string(),
        ],
    );
    ok(
        Command::new("ip"),
        &["addr", "add", "10.202.0.1/30", "dev", "box-tout"],
    );
    ok(Command::new("ip"), &["link", "set", "box-tout", "up"]);
    ok(outside(), &["addr", "add", "10.202.0.2/30", "dev", "eth0"]);
    ok(outside(), &["link", "set", "eth0", "up"]);
    for step in steps_from(FIRST_STEP_WITH_BRIDGE) {
        let run = lab.run(step, &["--", "/bin/ping", "-c", "1", "-W", "2", "10.202.0.2"]);
        assert_eq!(
            run.status,
            0,
            "{}: no way out through NAT: {run}",
            step_name(step)
        );
    }
    let _ = Command::new("ip")
        .args(["link", "delete", "box-tout"])
        .status_tracked();
    let _ = holder.kill();
    let _ = holder.wait();
    guard::untrack(holder.id());
}

#[test]
fn a_killed_runtimes_bridge_is_removed_by_the_next_bridge_run() {
    require_root!();
    let _turn = BRIDGE_USERS.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_BRIDGE) {
        let forward_before = ip_forward();
        let running = lab.start(step, &["--", "/bin/sleep", "30"]);
        running.wait_for_command("sleep");
        let link = format!("/sys/class/net/box-{}", lab.names().last().unwrap());
        running.signal(Signal::SIGKILL);
        running.wait();
        // The killed runtime could not remove the bridge. Its link goes with its namespace...
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::path::Path::new(&link).exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(std::path::Path::new("/sys/class/net/box-br0").exists());
        // ...and the next container on the bridge, the last one, removes it all.
        let run = lab.run(step, &["--", "/bin/true"]);
        assert_eq!(run.status, 0, "{run}");
        assert!(
            !std::path::Path::new("/sys/class/net/box-br0").exists(),
            "{}: bridge left",
            step_name(step)
        );
        assert_eq!(bridge_rules(), "");
        assert_eq!(ip_forward(), forward_before);
    }
}

/// A free port of the host, from the kernel.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn accept_ra(link: &str) -> String {
    fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{link}/accept_ra"))
        .unwrap_or_else(|_| "no IPv6".into())
        .trim()
        .to_string()
}

#[test]
fn the_host_takes_no_router_advertisements_from_containers() {
    require_root!();
    let _turn = BRIDGE_USERS.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    if !std::path::Path::new("/proc/sys/net/ipv6/conf/all").exists() {
        eprintln!("skipped: this kernel has no IPv6, so no router advertisements either");
        return;
    }
    for step in steps_from(FIRST_STEP_WITH_NET) {
        // The veth's host end (step 9's network), and the bridge (step 10's).
        let name = lab.new_name();
        let veth = lab.start(
            step,
            &["--name", &name, "--net", "veth", "--", "/bin/sleep", "30"],
        );
        veth.wait_for_command("sleep");
        assert_eq!(
            accept_ra(&format!("box-{name}")),
            "0",
            "{}: the veth's host end",
            step_name(step)
        );
        veth.signal(Signal::SIGTERM);
        veth.wait();
        if step >= FIRST_STEP_WITH_BRIDGE {
            let bridged = lab.start(step, &["--", "/bin/sleep", "30"]);
            bridged.wait_for_command("sleep");
            assert_eq!(accept_ra("box-br0"), "0", "{}: the bridge", step_name(step));
            bridged.signal(Signal::SIGTERM);
            bridged.wait();
        }
    }
}

/// ip_forward, set for the length of `f` and put back afterwards whatever happens.
fn with_ip_forward(value: &str, f: impl FnOnce()) {
    let before = ip_forward();
    fs::write("/proc/sys/net/ipv4/ip_forward", value).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    fs::write("/proc/sys/net/ipv4/ip_forward", before).unwrap();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn an_ip_forward_change_made_during_a_run_survives_it() {
    require_root!();
    let _turn = BRIDGE_USERS.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_BRIDGE) {
        // Forwarding is on when the bridge comes, so the runtime changes nothing; an
        // administrator turns it off while the container runs: it stays off.
        with_ip_forward("1", || {
            let container = lab.start(step, &["--", "/bin/sleep", "30"]);
            container.wait_for_command("sleep");
            fs::write("/proc/sys/net/ipv4/ip_forward", "0").unwrap();
            container.signal(Signal::SIGTERM);
            container.wait();
            assert_eq!(
                ip_forward(),
                "0",
                "{}: the runtime undid the change",
                step_name(step)
            );
        });
        // Forwarding is off: the bridge turns it on, and back off when it goes.
        with_ip_forward("0", || {
            let container = lab.start(step, &["--", "/bin/sleep", "30"]);
            container.wait_for_command("sleep");
            assert_eq!(ip_forward(), "1");
            container.signal(Signal::SIGTERM);
            container.wait();
            assert_eq!(ip_forward(), "0", "{}", step_name(step));
        });
    }
}

/// How many descriptors process `pid` has open.
fn open_fds(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// CPU time (user + system, in clock ticks) process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name start at field 3 (the state); utime and stime are
    // fields 14 and 15.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    field(14) + field(15)
}

#[test]
fn the_proxy_serves_while_hundreds_of_idle_clients_hold_connections() {
    require_root!();
    let _turn = BRIDGE_USERS.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_BRIDGE) {
        let port = free_port();
        // The runtime with the descriptor limit many distributions give a login (ulimit -n).
        let server = lab.start_web_server_with_nofile(step, port, 1024);
        let runtime = server.pid();
        let idle: Vec<std::net::TcpStream> = (0..300)
            .filter_map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).ok())
            .collect();
        assert_eq!(
            idle.len(),
            300,
            "{}: the proxy refused idle clients",
            step_name(step)
        );
        let ticks = cpu_ticks(runtime);
        let page = http_get(&format!("127.0.0.1:{port}"));
        assert!(
            page.contains("Hello from a container"),
            "{}: with 300 idle connections open the proxy gave {page:?}",
            step_name(step)
        );
        std::thread::sleep(std::time::Duration::from_secs(1));
        let spent = cpu_ticks(runtime) - ticks;
        assert!(
            spent < 50,
            "{}: the runtime spun ({spent} ticks in a second)",
            step_name(step)
        );
        drop(idle);
        // Served connections give their descriptors back.
        let before = open_fds(runtime);
        for _ in 0..50 {
            assert!(http_get(&format!("127.0.0.1:{port}")).contains("Hello"));
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            open_fds(runtime) <= before,
            "{}: descriptors grew",
            step_name(step)
        );
        server.signal(Signal::SIGTERM);
        server.wait();
    }
}

#[test]
fn eight_containers_at_once_each_publish_a_port() {
    require_root!();
    let _turn = BRIDGE_USERS.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_BRIDGE) {
        let ports: Vec<u16> = (0..8).map(|_| free_port()).collect();
        let servers: Vec<_> = std::thread::scope(|scope| {
            let starting: Vec<_> = ports
                .iter()
                .map(|&port| {
                    let lab = &lab;
                    scope.spawn(move || lab.start_web_server(step, port))
                })
                .collect();
            starting
                .into_iter()
                .map(|s| s.join().expect("a server did not start"))
                .collect()
        });
        let mut addresses: Vec<String> = servers
            .iter()
            .map(|server| address_of(server.wait_for_command("httpd")))
            .collect();
        for port in &ports {
            let page = http_get(&format!("127.0.0.1:{port}"));
            assert!(page.contains("Hello from a container"), "port {port}: {page:?}");
        }
        addresses.sort();
        addresses.dedup();
        assert_eq!(
            addresses.len(),
            8,
            "{}: two containers share an address",
            step_name(step)
        );
        for server in servers {
            server.signal(Signal::SIGTERM);
            server.wait();
        }
        assert!(!std::path::Path::new("/sys/class/net/box-br0").exists());
        assert_eq!(bridge_rules(), "", "rules left");
    }
}

/// What `lab`'s containers have on the host now (links, cgroups, /run entries, named after
/// them), and the bridge's firewall rules (the other bridge tests take turns with this one).
fn workshop_footprint(lab: &Lab) -> (usize, usize, usize, usize) {
    let names = lab.names();
    let ours = |name: &str| names.iter().any(|n| name.contains(&format!("box-{n}")));
    let count = |dir: &str| {
        fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| ours(&e.file_name().to_string_lossy()))
                    .count()
            })
            .unwrap_or(0)
    };
    let rules = bridge_rules().lines().count();
    let cgroups = Command::new("find")
        .args(["/sys/fs/cgroup", "-name", "box-*", "-type", "d"])
        .output_tracked()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| ours(l))
                .count()
        })
        .unwrap_or(0);
    (count("/sys/class/net"), rules, cgroups, count("/run"))
}

#[test]
fn two_hundred_containers_in_a_row_leave_nothing_behind() {
    require_root!();
    let _turn = BRIDGE_USERS.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    for step in steps_from(FIRST_STEP_WITH_BRIDGE) {
        let before = workshop_footprint(&lab);
        for i in 0..box_tests::binaries::repetitions(200, 10) {
            let run = lab.run(step, &["--", "/bin/true"]);
            assert_eq!(run.status, 0, "run {i}: {run}");
        }
        assert_eq!(
            workshop_footprint(&lab),
            before,
            "{}: (links, rules, cgroups, /run entries)",
            step_name(step)
        );
    }
}

/// A host of the test's own outside the workshop's bridge: a network namespace, held by a
/// sleeping process of the test's (no name under /run/netns, so no mount on the host), joined to
/// the host by a veth pair, at 10.250.N.2 (the host's end is 10.250.N.1). Gone when dropped.
struct TestHost {
    holder: std::process::Child,
    netns: String,
    link: String,
    address: String,
}

impl TestHost {
    fn new() -> TestHost {
        let n = std::process::id() % 200 + 20;
        let link = format!("boxtest{n}");
        let mut sleeper = Command::new("unshare");
        sleeper.args(["--net", "sleep", "600"]);
        let holder = box_tests::guard::spawn(&mut sleeper).expect("unshare");
        let pid = holder.id();
        // unshare makes the namespace, then execs sleep: wait until it is a namespace of its own.
        let own = fs::read_link("/proc/self/ns/net").unwrap();
        while fs::read_link(format!("/proc/{pid}/ns/net")).is_ok_and(|ns| ns == own) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let script = format!(
            "ip link add {link} type veth peer name eth0 netns {pid} && \
             ip addr add 10.250.{n}.1/30 dev {link} && ip link set {link} up && \
             nsenter --target={pid} --net sh -c 'ip addr add 10.250.{n}.2/30 dev eth0 && \
             ip link set eth0 up && ip link set lo up'"
        );
        let made = Command::new("sh").args(["-c", &script]).status_tracked().unwrap();
        let host = TestHost {
            holder,
            netns: format!("/proc/{pid}/ns/net"),
            link,
            address: format!("10.250.{n}.2"),
        };
        assert!(made.success(), "could not make the test's host in {}", host.netns);
        host
    }

    /// Answer DNS queries for `name` with `address` from inside the namespace, on a thread of
    /// the test's own (setns(2) moves only that thread), until the returned flag is set.
    fn serve_dns(
        &self,
        name: &'static str,
        address: [u8; 4],
    ) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        use std::os::fd::AsRawFd;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (netns, listen) = (self.netns.clone(), format!("{}:53", self.address));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        std::thread::spawn(move || {
            let ns = fs::File::open(&netns).unwrap();
            // SAFETY: setns on a namespace file we hold open; it moves this thread only.
            assert_eq!(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let socket = std::net::UdpSocket::bind(&listen).unwrap();
            socket
                .set_read_timeout(Some(std::time::Duration::from_millis(100)))
                .unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 512];
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let _ = socket.send_to(&dns_answer(&buf[..n], name, address), from);
            }
        });
        ready_rx.recv().unwrap();
        stop
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "delete", &self.link])
            .status_tracked();
        // The namespace goes with the last process in it.
        let _ = self.holder.kill();
        let _ = self.holder.wait();
        box_tests::guard::untrack(self.holder.id());
    }
}

/// A DNS response (RFC 1035) to `query`: one A record if it asks for `name`'s address, else no
/// records (so AAAA questions get a quick empty answer).
fn dns_answer(query: &[u8], name: &str, address: [u8; 4]) -> Vec<u8> {
    let mut asked = Vec::new();
    let mut at = 12;
    while at < query.len() && query[at] != 0 {
        let len = query[at] as usize;
        asked.push(String::from_utf8_lossy(&query[at + 1..(at + 1 + len).min(query.len())]).into_owned());
        at += 1 + len;
    }
    let question_end = (at + 5).min(query.len());
    let qtype = query
        .get(at + 1..at + 3)
        .map(|t| u16::from_be_bytes([t[0], t[1]]))
        .unwrap_or(0);
    let answer = asked.join(".") == name && qtype == 1;
    let mut reply = query[..question_end].to_vec();
    reply[2] = 0x81; // a response, recursion desired
    reply[3] = 0x80; // recursion available, no error
    reply[6..8].copy_from_slice(&(answer as u16).to_be_bytes());
    if answer {
        // The name as a pointer to the question's, type A, class IN, a minute, four bytes.
        reply.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        reply.extend_from_slice(&address);
    }
    reply
}

#[test]
fn names_resolve_through_the_resolv_conf_the_container_gets() {
    require_root!();
    let _turn = BRIDGE_USERS.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    let host = TestHost::new();
    let stop = host.serve_dns("box-dns.test", [10, 250, 99, 9]);
    for step in steps_from(FIRST_STEP_WITH_BRIDGE) {
        let run = lab.run(
            step,
            &[
                "--dns",
                &host.address,
                "--",
                "/bin/box-probe",
                "resolve",
                "box-dns.test",
            ],
        );
        assert!(
            run.stdout.contains("box-dns.test is 10.250.99.9"),
            "{}: the container's resolver did not reach the test's server: {run}",
            step_name(step)
        );
        // Without --dns, the host's servers, less those on its loopback.
        let files = lab.run(
            step,
            &[
                "--hostname",
                "web",
                "--",
                "/bin/cat",
                "/etc/hostname",
                "/etc/hosts",
                "/etc/resolv.conf",
            ],
        );
        assert!(files.stdout.starts_with("web\n127.0.0.1\tlocalhost\n"), "{files}");
        assert!(
            files.stdout.contains("\tweb\nnameserver ") || files.stdout.contains("\tweb\n# "),
            "{files}"
        );
        assert!(!files.stdout.contains("nameserver 127."), "{files}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// The filter table as iptables-save prints it, without counters: to compare before and after.
fn filter_table() -> String {
    let out = Command::new("iptables-save")
        .args(["-t", "filter"])
        .output_tracked()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(" [").next().unwrap_or(l).to_string() + "\n")
        .collect()
}

#[test]
fn a_host_firewall_that_rejects_forwarding_does_not_cut_the_container_off() {
    require_root!();
    let _turn = BRIDGE_USERS.lock().unwrap_or_else(|p| p.into_inner());
    let lab = Lab::new();
    let host = TestHost::new();
    let before = filter_table();
    let policy = before
        .lines()
        .find_map(|l| l.strip_prefix(":FORWARD "))
        .unwrap_or("ACCEPT")
        .to_string();
    // As ufw leaves a host: FORWARD's policy DROP, and a REJECT rule first.
    let firewall = |action: &str| {
        let reject = [
            "-w",
            action,
            "FORWARD",
            "-j",
            "REJECT",
            "-m",
            "comment",
            "--comment",
            "boxtest-ufw",
        ];
        let mut args: Vec<&str> = reject.to_vec();
        if action == "-I" {
            args.insert(3, "1");
        }
        Command::new("iptables").args(args).status_tracked().unwrap()
    };
    Command::new("iptables")
        .args(["-w", "-P", "FORWARD", "DROP"])
        .status_tracked()
        .unwrap();
    firewall("-I");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for step in steps_from(FIRST_STEP_WITH_BRIDGE) {
            let run = lab.run(step, &["--", "/bin/ping", "-c", "1", "-W", "2", &host.address]);
            assert_eq!(
                run.status,
                0,
                "{}: the host's firewall cut the container off: {run}",
                step_name(step)
            );
        }
    }));
    firewall("-D");
    Command::new("iptables")
        .args(["-w", "-P", "FORWARD", &policy])
        .status_tracked()
        .unwrap();
    assert_eq!(filter_table(), before, "the host's rules are not as they were");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
