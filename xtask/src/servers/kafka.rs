//! Apache Kafka 4.1 in KRaft mode as a plain JVM process: one node that is both broker and
//! controller, on 127.0.0.1:19092 (controller 19093). Owns the jars it needs, its
//! `server.properties` and the one-time storage format; `super` owns starting and stopping.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::process;

pub const PORT: u16 = 19092;
const CONTROLLER_PORT: u16 = 19093;
const VERSION: &str = "4.1.1";
const HEAP: &str = "-Xmx512m";

fn libs() -> anyhow::Result<PathBuf> {
    super::maven::jars(
        "kafka",
        VERSION,
        &[
            ("org.apache.kafka", "kafka_2.13", VERSION),
            ("org.apache.kafka", "kafka-tools", VERSION),
            ("org.slf4j", "slf4j-reload4j", "1.7.36"),
        ],
    )
}

pub fn install() -> anyhow::Result<()> {
    process::require(
        "java",
        "install a Java 17 runtime (e.g. openjdk-17-jre-headless)",
    )?;
    libs().map(|_| ())
}

fn classpath() -> anyhow::Result<String> {
    Ok(format!("{}/*", libs()?.display()))
}

/// The topics the tests create (`orders-test-<id>` and its dead letters, one set per test
/// host configuration; `host/tests/support`), as a `TopicCommand` regular expression.
const TEST_TOPICS: &str = ".*-test-.*";

/// Deletes the topics earlier test runs left on this broker. Each test creates its own
/// topics (6 partitions each, and as many for its dead letters) and none deletes them: after
/// a few hundred runs the broker held 2,768 of them (16,700 partition directories), took
/// seconds to give a new topic a leader, and tests failed with `503`s from `POST`. Run at
/// the start of a test run only (tests running at the time would lose their topics).
pub fn prune_test_topics() -> anyhow::Result<()> {
    process::output(Command::new("java").args([
        "-cp",
        &classpath()?,
        "org.apache.kafka.tools.TopicCommand",
        "--bootstrap-server",
        &format!("127.0.0.1:{PORT}"),
        "--delete",
        "--if-exists",
        "--topic",
        TEST_TOPICS,
    ]))
    .map(|_| ())
}

/// Writes `server.properties` and `log4j.properties`, formats the log directory once (skipped
/// when it already holds `meta.properties`), and returns the command that runs the broker.
pub fn command(dir: &Path) -> anyhow::Result<Command> {
    let data = dir.join("data");
    let properties = dir.join("server.properties");
    fs::write(
        &properties,
        format!(
            "process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{CONTROLLER_PORT}
listeners=PLAINTEXT://127.0.0.1:{PORT},CONTROLLER://127.0.0.1:{CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://127.0.0.1:{PORT}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={data}
num.partitions=6
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=24
",
            data = data.display()
        ),
    )?;
    fs::write(
        dir.join("log4j.properties"),
        "log4j.rootLogger=WARN, stdout\nlog4j.appender.stdout=org.apache.log4j.ConsoleAppender\nlog4j.appender.stdout.layout=org.apache.log4j.PatternLayout\nlog4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n",
    )?;
    let classpath = classpath()?;
    if !data.join("meta.properties").exists() {
        let printed = process::output(Command::new("java").args([
            "-cp",
            &classpath,
            "kafka.tools.StorageTool",
            "random-uuid",
        ]))?;
        let cluster_id = printed
            .lines()
            .map(str::trim)
            .rfind(|line| !line.is_empty())
            .context("StorageTool random-uuid printed no cluster id")?;
        // No `--standalone`: it refuses to run when `controller.quorum.voters` is set.
        process::output(Command::new("java").args([
            "-cp",
            &classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id,
            "-c",
            &properties.to_string_lossy(),
        ]))
        .context("formatting Kafka's log directory")?;
    }
    let mut command = Command::new("java");
    command.args([
        HEAP,
        "-XX:+UseG1GC",
        &super::gc_log_option(dir),
        &format!(
            "-Dlog4j.configuration=file:{}",
            dir.join("log4j.properties").display()
        ),
        "-cp",
        &classpath,
        "kafka.Kafka",
        &properties.to_string_lossy(),
    ]);
    Ok(command)
}
