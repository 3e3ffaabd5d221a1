//! compose.yaml's topology without compose: PostgreSQL, two `roster serve` processes, and nginx
//! in front of them with `deploy/nginx.conf`. A subscription through the balancer hears of an
//! enrollment whichever replica took it.
//!
//! nginx comes from Debian's package (`.ci/run` installs it). Where it is missing the test says
//! so and passes, except under CI (`CI` set), where it fails.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    helpers::{Server, TestApp, post_json},
    subscriptions::Client,
};
use serde_json::json;

const NGINX: &str = "/usr/sbin/nginx";

/// nginx running `deploy/nginx.conf` with its upstreams and port replaced by local ones;
/// stopped (and its workers with it) when dropped.
struct Balancer {
    child: Child,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Balancer {
    fn start(replicas: [SocketAddr; 2]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx.conf");
        let mut site = std::fs::read_to_string(&shipped).unwrap();
        for (from, to) in [
            ("server roster-1:8080 ", format!("server {} ", replicas[0])),
            ("server roster-2:8080 ", format!("server {} ", replicas[1])),
            ("listen 80;", format!("listen 127.0.0.1:{port};")),
        ] {
            assert_eq!(site.matches(from).count(), 1, "{from:?} in {shipped:?}");
            site = site.replace(from, &to);
        }
        let here = dir.path().display();
        std::fs::write(dir.path().join("roster.conf"), site).unwrap();
        // One worker keeps round-robin's order plain; as root it may run as root, to use the
        // private temporary folder.
        let main = format!(
            "user root;\nworker_processes 1;\npid {here}/nginx.pid;\nerror_log {here}/error.log warn;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {here}/body;\n  \
             proxy_temp_path {here}/proxy;\n  fastcgi_temp_path {here}/fastcgi;\n  \
             uwsgi_temp_path {here}/uwsgi;\n  scgi_temp_path {here}/scgi;\n  \
             include {here}/roster.conf;\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx");
        Self {
            child,
            address: format!("127.0.0.1:{port}").parse().unwrap(),
            _dir: dir,
        }
    }

    async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while reqwest::get(format!("http://{}/healthz", self.address))
            .await
            .map_or(true, |r| !r.status().is_success())
        {
            assert!(Instant::now() < deadline, "nginx did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers (SIGKILL would leave them behind).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn nginx_available() -> bool {
    if PathBuf::from(NGINX).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{NGINX} is missing: install Debian's nginx package (.ci/run does)"
    );
    eprintln!("SKIPPED the balancer topology: {NGINX} is missing (Debian's nginx package)");
    false
}

/// Active subscriptions on the replica at `address`, from its `/metrics`.
async fn subscriptions_on(address: SocketAddr) -> f64 {
    let text = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("roster_subscriptions_active "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_through_the_balancer_hears_of_enrollments_on_either_replica() {
    if !nginx_available() {
        return;
    }
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    let campus = app.campus("Balanced").await;
    let (_, section) = app
        .course_with_section(&campus, "Behind nginx", Some(10), "MONDAY")
        .await;
    let students = app.students(&campus, 2).await;
    let replicas = [
        Server::start(&app.database_url, &[], None).await,
        Server::start(&app.database_url, &[], None).await,
    ];
    let balancer = Balancer::start([replicas[0].address, replicas[1].address]);
    balancer.ready().await;
    assert_eq!(
        reqwest::get(format!("http://{}/metrics", balancer.address))
            .await
            .unwrap()
            .status(),
        404,
        "metrics stay off the public side"
    );

    // Subscribe through the balancer until each replica holds a subscription.
    let mut clients = Vec::new();
    while subscriptions_on(replicas[0].address).await < 1.0
        || subscriptions_on(replicas[1].address).await < 1.0
    {
        assert!(clients.len() < 6, "round-robin never reached both replicas");
        let mut client = Client::ready(balancer.address, false, json!({})).await;
        client.seats("seats", section, "registeredCount").await;
        assert_eq!(
            client.data_of("seats").await["sectionSeats"]["registeredCount"],
            0
        );
        clients.push(client);
    }

    // Enroll through the balancer, then directly at each replica: every subscription, on
    // either replica, sees each enrollment, whichever replica committed it.
    let enroll = |section| {
        json!({
            "query": "mutation($s: UUID!) { enroll(sectionId: $s) { status } }",
            "variables": { "s": section },
        })
    };
    let through = format!("http://{}/graphql", balancer.address);
    let answer = post_json(&through, Some(&students[0].1), &enroll(section)).await;
    assert_eq!(answer["data"]["enroll"]["status"], "REGISTERED", "{answer}");
    for client in &mut clients {
        let seen = client.data_of("seats").await;
        assert_eq!(seen["sectionSeats"]["registeredCount"], 1, "{seen}");
    }
    let direct = format!("http://{}/graphql", replicas[1].address);
    let answer = post_json(&direct, Some(&students[1].1), &enroll(section)).await;
    assert_eq!(answer["data"]["enroll"]["status"], "REGISTERED", "{answer}");
    for client in &mut clients {
        let seen = client.data_of("seats").await;
        assert_eq!(seen["sectionSeats"]["registeredCount"], 2, "{seen}");
    }
}
