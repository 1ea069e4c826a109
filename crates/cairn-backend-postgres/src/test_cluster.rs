//! A throwaway PostgreSQL cluster for tests: `initdb` and `pg_ctl` from Debian's packages (on
//! PATH or under /usr/lib/postgresql/*/bin), a temporary data directory, a free port on
//! 127.0.0.1, trust authentication. Each test takes a fresh database of its own. The cluster is
//! stopped and removed on drop. When PostgreSQL is missing or cannot start, `start` fails with
//! what to do: tests that need it fail loudly, never skip.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A running cluster.
pub struct TestCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    run_as_postgres: bool,
    next_database: AtomicUsize,
}

impl TestCluster {
    /// Starts a cluster for tests (without fsync, for speed), or says why it cannot.
    pub fn start() -> Result<TestCluster, String> {
        TestCluster::start_with(false)
    }

    /// Starts a cluster; `durable` keeps PostgreSQL's fsync on, as benchmarks must.
    pub fn start_with(durable: bool) -> Result<TestCluster, String> {
        TestCluster::start_full(durable, false)
    }

    /// Starts a cluster that also accepts TLS, with a certificate for 127.0.0.1 signed by a CA
    /// made here (`ca_cert`).
    pub fn start_tls() -> Result<TestCluster, String> {
        TestCluster::start_full(false, true)
    }

    /// The CA that signed a TLS cluster's certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn start_full(durable: bool, tls: bool) -> Result<TestCluster, String> {
        let bin = find_bin_dir().ok_or_else(|| {
            "PostgreSQL's initdb was not found on PATH or under /usr/lib/postgresql/*/bin; \
             run scripts/ensure-postgres.sh (apt-get install -y postgresql)"
                .to_owned()
        })?;
        let dir = tempfile::Builder::new()
            .prefix("cairn-pg-")
            .tempdir()
            .map_err(|error| format!("creating a directory for the cluster: {error}"))?;
        // initdb refuses to run as root; the cluster then belongs to the `postgres` user.
        let run_as_postgres = is_root();
        if run_as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .map_err(|error| format!("chown of the cluster directory: {error}"))?;
            if !status.success() {
                return Err("could not hand the cluster directory to the postgres user".to_owned());
            }
        }
        let port = free_port()?;
        let cluster = TestCluster {
            dir,
            bin,
            port,
            run_as_postgres,
            next_database: AtomicUsize::new(0),
        };
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
            ],
        )?;
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=200",
            cluster.dir.path().display(),
            if durable { "on" } else { "off" }
        );
        if tls {
            cluster.make_certificates()?;
            let dir = cluster.dir.path().display();
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={dir}/server.crt -c ssl_key_file={dir}/server.key"
            ));
        }
        let log = cluster.dir.path().join("server.log");
        cluster.run(
            "pg_ctl",
            &[
                "-D",
                &data,
                "-o",
                &options,
                "-l",
                &log.display().to_string(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        Ok(cluster)
    }

    /// A CA, and a server certificate for 127.0.0.1 signed by it (a self-signed CA certificate
    /// cannot serve as the server's own: rustls refuses a CA as an end entity).
    fn make_certificates(&self) -> Result<(), String> {
        let dir = self.dir.path();
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
        )
        .map_err(|error| error.to_string())?;
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                "/CN=cairn-test-ca",
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        ];
        for args in steps {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .map_err(|error| format!("running openssl: {error}"))?;
            if !output.status.success() {
                return Err(format!(
                    "openssl {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
        }
        let key = dir.join("server.key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(|error| error.to_string())?;
        if self.run_as_postgres {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&key)
                .arg(dir.join("server.crt"))
                .status()
                .map_err(|error| error.to_string())?;
            if !status.success() {
                return Err("could not hand the server key to the postgres user".to_owned());
            }
        }
        Ok(())
    }

    fn data_dir(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut command = if self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .map_err(|error| format!("running {}: {error}", path.display()))?;
        if output.status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        Err(format!(
            "{program} failed ({}): {}{}\n{log}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }

    /// The URL of the `postgres` database (for creating others).
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates a fresh database and returns its URL.
    pub async fn new_database(&self) -> Result<String, String> {
        let number = self.next_database.fetch_add(1, Ordering::Relaxed);
        let name = format!("cairn_test_{}_{number}", std::process::id());
        let (client, connection) =
            tokio_postgres::connect(&self.admin_url(), tokio_postgres::NoTls)
                .await
                .map_err(|error| format!("connecting to the test cluster: {error}"))?;
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .map_err(|error| format!("creating database {name}: {error}"))?;
        drop(client);
        let _ = connection.await;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
    }
}

fn find_bin_dir() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    });
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").is_file())
        .collect();
    versions.sort();
    versions.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|error| format!("finding a free port: {error}"))?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| format!("finding a free port: {error}"))
}
