//! Apache Cassandra 5.0 as a plain JVM process on 127.0.0.1:19042 (storage 17000, JMX 17199):
//! owns the jars it needs, a minimal `cassandra.yaml`, a WARN-level `logback.xml` and the JVM
//! flags Java 17 requires; `super` owns starting and stopping.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::process;

pub const PORT: u16 = 19042;
const STORAGE_PORT: u16 = 17000;
const JMX_PORT: u16 = 17199;
const VERSION: &str = "5.0.8";

pub fn install() -> anyhow::Result<()> {
    process::require(
        "java",
        "install a Java 17 runtime (e.g. openjdk-17-jre-headless)",
    )?;
    libs().map(|_| ())
}

fn libs() -> anyhow::Result<std::path::PathBuf> {
    super::maven::jars(
        "cassandra",
        VERSION,
        &[("org.apache.cassandra", "cassandra-all", VERSION)],
    )
}

/// Java 17 module flags from upstream's `conf/jvm17-server.options`.
const EXPORTS: &[&str] = &[
    "java.base/jdk.internal.misc",
    "java.base/jdk.internal.ref",
    "java.base/sun.nio.ch",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server",
    "java.sql/java.sql",
];
const OPENS: &[&str] = &[
    "java.base/java.lang.module",
    "java.base/jdk.internal.loader",
    "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect",
    "java.base/jdk.internal.math",
    "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar",
    "java.base/sun.nio.ch",
    "java.base/java.io",
    "java.base/java.nio",
    "java.base/java.util.concurrent",
    "java.base/java.util.concurrent.atomic",
    "java.base/java.util",
    "java.base/java.lang",
    "java.base/java.math",
    "java.base/java.lang.reflect",
    "java.base/java.net",
    "jdk.management/com.sun.management.internal",
];

pub fn command(dir: &Path) -> anyhow::Result<Command> {
    let data = dir.join("data");
    for sub in [
        "data",
        "commitlog",
        "saved_caches",
        "hints",
        "cdc_raw",
        "triggers",
    ] {
        fs::create_dir_all(data.join(sub))?;
    }
    let yaml = dir.join("cassandra.yaml");
    fs::write(
        &yaml,
        format!(
            "cluster_name: orderpipe-dev
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
data_file_directories:
  - {data}/data
commitlog_directory: {data}/commitlog
saved_caches_directory: {data}/saved_caches
hints_directory: {data}/hints
cdc_raw_directory: {data}/cdc_raw
# Acknowledge a write only once its commit log is fsynced: with one node and replication
# factor 1, a periodic sync loses acknowledged writes on SIGKILL. `batch` syncs at once (an
# fsync is ~0.2 ms here); `group` with a 10 ms window made every Paxos round trip wait for it.
commitlog_sync: batch
# The commit log written with direct I/O from Cassandra's own buffers instead of through a
# memory-mapped file (`legacy`), with the same `batch` sync: the worker's 10,000-order drains
# ran 2,224-3,312 orders/s against 2,009-2,232 (BENCHMARKS.md, 2026-12-05).
commitlog_disk_access_mode: direct
# orderpipe sends the writes of concurrent events as one batch of up to 16 KiB
# (`cassandra.batch_max_bytes`): warn only about batches past 64 KiB, not past the default 5.
batch_size_warn_threshold: 64KiB
# ... and such a batch covers up to `cassandra.batch_statements` (48) orders' partitions by
# design: warn only past 64 of them, not past the default 10 (a warning on nearly every batch).
unlogged_batch_across_partitions_warn_threshold: 64
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: \"127.0.0.1:{STORAGE_PORT}\"
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: {STORAGE_PORT}
native_transport_port: {PORT}
endpoint_snitch: SimpleSnitch
start_native_transport: true
",
            data = data.display()
        ),
    )?;
    let logback = dir.join("logback.xml");
    fs::write(
        &logback,
        r#"<configuration>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d %-5level [%thread] %logger{20} - %msg%n</pattern></encoder>
  </appender>
  <root level="WARN"><appender-ref ref="STDOUT"/></root>
</configuration>
"#,
    )?;
    let mut command = Command::new("java");
    command.args([
        "-Xms1g",
        "-Xmx1g",
        "-XX:+UseG1GC",
        &super::gc_log_option(dir),
        &format!("-Dcassandra.config=file://{}", yaml.display()),
        "-Dcassandra-foreground=yes",
        &format!("-Dlogback.configurationFile={}", logback.display()),
        &format!("-Dcassandra.jmx.local.port={JMX_PORT}"),
        &format!("-Dcassandra.storagedir={}", data.display()),
        &format!(
            "-Dcassandra.triggers_dir={}",
            data.join("triggers").display()
        ),
        // A JVM that ran out of memory may corrupt data if it carries on: exit instead.
        "-XX:+ExitOnOutOfMemoryError",
        "-Djdk.attach.allowAttachSelf=true",
        "-Dio.netty.tryReflectionSetAccessible=true",
    ]);
    for module in EXPORTS {
        command.arg(format!("--add-exports={module}=ALL-UNNAMED"));
    }
    for module in OPENS {
        command.arg(format!("--add-opens={module}=ALL-UNNAMED"));
    }
    command.args([
        "-cp",
        &format!("{}/*", libs()?.display()),
        "org.apache.cassandra.service.CassandraDaemon",
    ]);
    Ok(command)
}
