"""Where the original service finds its servers and its names, from ORIGINAL_* variables.

Its own Cassandra keyspace, Kafka topic and Redis key prefix, so it never reads or writes
orderpipe's data even on the same servers.
"""

import os

KAFKA_BROKERS = os.environ.get("ORIGINAL_KAFKA_BROKERS", "127.0.0.1:19092").split(",")
TOPIC = os.environ.get("ORIGINAL_KAFKA_TOPIC", "original-orders")
GROUP_ID = os.environ.get("ORIGINAL_KAFKA_GROUP_ID", "original-order-consumer")
PARTITIONS = int(os.environ.get("ORIGINAL_KAFKA_PARTITIONS", "6"))
CASSANDRA_NODES = os.environ.get("ORIGINAL_CASSANDRA_NODES", "127.0.0.1:19042").split(",")
KEYSPACE = os.environ.get("ORIGINAL_CASSANDRA_KEYSPACE", "original_orders")
REDIS_URL = os.environ.get("ORIGINAL_REDIS_URL", "redis://127.0.0.1:16379")
REDIS_PREFIX = os.environ.get("ORIGINAL_REDIS_PREFIX", "original")
# How long a cached order view lives in Redis.
CACHE_TTL_SECONDS = 3600


def cassandra_session():
    """A session on the keyspace (one per process: the driver does not survive a fork)."""
    from cassandra.cluster import Cluster

    hosts, port = [], 9042
    for node in CASSANDRA_NODES:
        host, _, node_port = node.partition(":")
        hosts.append(host)
        port = int(node_port or port)
    cluster = Cluster(hosts, port=port)
    return cluster.connect(KEYSPACE)


def redis_client():
    import redis

    return redis.Redis.from_url(REDIS_URL)


def cache_key(order_id):
    return f"{REDIS_PREFIX}:order:{order_id}"
