"""Creates what the original service needs, idempotently: its keyspace and `orders` table in
Cassandra, and its topic in Kafka. `python schema.py` before the first start.
"""

from cassandra.cluster import Cluster
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

import settings

TABLE = """
CREATE TABLE IF NOT EXISTS {keyspace}.orders (
    order_id uuid PRIMARY KEY,
    status text,
    version bigint,
    request text,
    attributes text,
    created_at timestamp,
    updated_at timestamp
)
"""


def create_tables():
    hosts = [node.partition(":")[0] for node in settings.CASSANDRA_NODES]
    port = int(settings.CASSANDRA_NODES[0].partition(":")[2] or 9042)
    cluster = Cluster(hosts, port=port)
    session = cluster.connect()
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {settings.KEYSPACE} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    session.execute(TABLE.format(keyspace=settings.KEYSPACE))
    cluster.shutdown()


def create_topic():
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BROKERS)
    try:
        admin.create_topics(
            [NewTopic(settings.TOPIC, num_partitions=settings.PARTITIONS, replication_factor=1)]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


if __name__ == "__main__":
    create_tables()
    create_topic()
    print(f"schema: keyspace {settings.KEYSPACE}, topic {settings.TOPIC} ready", flush=True)
