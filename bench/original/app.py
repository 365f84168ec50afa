"""The original API: Flask, served by gunicorn (`gunicorn -w 4 -b 127.0.0.1:5000 app:app`).

POST /api/orders stores the order in Cassandra as `created`, produces it to Kafka and answers
201 once Kafka acknowledged it. GET /api/orders/<id> answers from Redis, else from Cassandra
(caching what it read once the consumer has decided the order).
"""

import json
import time
import uuid

from flask import Flask, Response, jsonify, request
from kafka import KafkaProducer

import orders
import settings

app = Flask(__name__)

# Made in each gunicorn worker as it imports this module (gunicorn forks first, as none of
# the three clients survives a fork), so a worker is connected before its first request.
_clients = {}


def clients():
    if not _clients:
        session = settings.cassandra_session()
        _clients["session"] = session
        _clients["insert"] = session.prepare(
            "INSERT INTO orders (order_id, status, version, request, attributes, created_at, "
            "updated_at) VALUES (?, 'created', 0, ?, '{}', ?, ?)"
        )
        _clients["select"] = session.prepare(
            "SELECT status, version, request, attributes, created_at, updated_at FROM orders "
            "WHERE order_id = ?"
        )
        _clients["producer"] = KafkaProducer(
            bootstrap_servers=settings.KAFKA_BROKERS, acks="all", linger_ms=1
        )
        _clients["redis"] = settings.redis_client()
    return _clients


def error(status, message, headers=None):
    answer = jsonify({"error": message})
    answer.status_code = status
    for name, value in (headers or {}).items():
        answer.headers[name] = value
    return answer


def millis(at):
    return int(at.timestamp() * 1000) if at is not None else 0


@app.post("/api/orders")
def create_order():
    c = clients()
    raw = request.get_data()
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError as problem:
        return error(400, f"malformed JSON: {problem}")
    try:
        order = orders.parse_request(body)
    except orders.BadOrder as problem:
        return error(400, str(problem))
    order_id = uuid.uuid4()
    now = int(time.time() * 1000)
    text = json.dumps(order)
    c["session"].execute(c["insert"], (order_id, text, now, now))
    message = json.dumps({"order_id": str(order_id), "order": order, "at_ms": now}).encode()
    try:
        c["producer"].send(settings.TOPIC, key=str(order_id).encode(), value=message).get(
            timeout=10
        )
    except Exception as problem:  # noqa: BLE001 (any Kafka failure is a 503)
        return error(503, f"kafka unavailable: {problem}", {"Retry-After": "1"})
    return jsonify({"order_id": str(order_id), "message": "Order created successfully"}), 201


@app.get("/api/orders/<order_id>")
def get_order(order_id):
    try:
        order_id = uuid.UUID(order_id)
    except ValueError:
        return error(400, "order id: expected a UUID")
    c = clients()
    cached = c["redis"].get(settings.cache_key(order_id))
    if cached is not None:
        return Response(cached, mimetype="application/json")
    row = c["session"].execute(c["select"], (order_id,)).one()
    if row is None:
        return error(404, "order not found")
    answer = json.dumps(
        orders.view(
            order_id,
            row.status,
            row.version,
            json.loads(row.request or "{}"),
            json.loads(row.attributes or "{}"),
            millis(row.created_at),
            millis(row.updated_at),
        )
    )
    # An order the consumer has not decided yet is not cached: it would hide the decision.
    if row.status != "created":
        c["redis"].set(settings.cache_key(order_id), answer, ex=settings.CACHE_TTL_SECONDS)
    return Response(answer, mimetype="application/json")


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


clients()
