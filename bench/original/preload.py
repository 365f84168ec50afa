"""Queues orders on the topic (`python preload.py <count>`), each the message the API produces
for an order without items, so the bench can time the consumer draining a full topic. Like
orderpipe's bench preload, it only produces: the consumer's UPDATE writes the whole row.
"""

import json
import sys
import time
import uuid

from kafka import KafkaProducer

import settings

# No items: the consumer decides it straight to `processed`.
PLAIN_ORDER = {"customer": "bench", "items": [], "currency": None, "attributes": {}}


def main(count):
    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BROKERS, acks="all", linger_ms=5)
    now = int(time.time() * 1000)
    for _ in range(count):
        order_id = str(uuid.uuid4())
        message = {"order_id": order_id, "order": PLAIN_ORDER, "at_ms": now}
        producer.send(settings.TOPIC, key=order_id.encode(), value=json.dumps(message).encode())
    producer.flush()
    print(f"preloaded {count} orders on {settings.TOPIC}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
