"""The original consumer: one kafka-python consumer that reads each order, decides it, and
writes the new status to Cassandra and the order's view to Redis (`python consumer.py`).

Every 100 orders it prints `processed <n>` (the bench reads the last one to time a drain).
"""

import json
import time
import uuid

from kafka import KafkaConsumer

import orders
import settings


def main():
    session = settings.cassandra_session()
    update = session.prepare(
        "UPDATE orders SET status = ?, version = 1, attributes = ?, updated_at = ? "
        "WHERE order_id = ?"
    )
    cache = settings.redis_client()
    consumer = KafkaConsumer(
        settings.TOPIC,
        bootstrap_servers=settings.KAFKA_BROKERS,
        group_id=settings.GROUP_ID,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    print(f"consumer: reading {settings.TOPIC} as {settings.GROUP_ID}", flush=True)
    processed = 0
    for message in consumer:
        body = json.loads(message.value)
        order_id = uuid.UUID(body["order_id"])
        order = body["order"]
        status, attributes = orders.decide_created(order)
        now = int(time.time() * 1000)
        session.execute(update, (status, json.dumps(attributes), now, order_id))
        view = orders.view(order_id, status, 1, order, attributes, body["at_ms"], now)
        cache.set(settings.cache_key(order_id), json.dumps(view), ex=settings.CACHE_TTL_SECONDS)
        processed += 1
        if processed % 100 == 0:
            print(f"processed {processed}", flush=True)


if __name__ == "__main__":
    main()
