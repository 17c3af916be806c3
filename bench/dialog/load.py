"""Load on `duet dialog serve`: N simultaneous conversations over Rasa's REST channel, each the
order-status form of examples/customer-service (greeting, request, order number, email).
Checks that every reply belongs to its conversation and carries its own order number;
reports requests/s and latency percentiles.

  load.py --url http://127.0.0.1:5005 --conversations 100 --out result.json
"""

import argparse
import asyncio
import json
import statistics
import time

import aiohttp

ap = argparse.ArgumentParser()
ap.add_argument("--url", required=True)
ap.add_argument("--conversations", type=int, default=100)
ap.add_argument("--rounds", type=int, default=3, help="conversations per client, one after another")
ap.add_argument("--out", required=True)
a = ap.parse_args()

latencies, errors, wrong = [], [], []


async def say(session, sender, text):
    t0 = time.perf_counter()
    async with session.post(a.url + "/webhooks/rest/webhook", json={"sender": sender, "message": text}) as r:
        body = await r.json()
        latencies.append(time.perf_counter() - t0)
        if r.status != 200:
            errors.append((sender, r.status, body))
            return ""
    for m in body:
        if m.get("recipient_id") != sender:
            wrong.append((sender, m))
    return " / ".join(m.get("text", "") for m in body)


async def client(session, i):
    for k in range(a.rounds):
        who = f"load-{i}-{k}"
        order = f"ORD-{30000 + i * 10 + k:05d}"
        await say(session, who, "hi")
        await say(session, who, "where is my order?")
        await say(session, who, order)
        done = await say(session, who, f"{who}@example.com")
        if order not in done or f"{who}@example.com" not in done:
            wrong.append((who, done))


async def main():
    conn = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=conn) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(session, i) for i in range(a.conversations)))
        wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    out = {
        "conversations": a.conversations * a.rounds,
        "simultaneous": a.conversations,
        "requests": len(latencies),
        "errors": len(errors),
        "misrouted_or_wrong": len(wrong),
        "wall_s": wall,
        "requests_per_s": len(latencies) / wall,
        "p50_ms": q[49] * 1000,
        "p90_ms": q[89] * 1000,
        "p99_ms": q[98] * 1000,
        "max_ms": max(latencies) * 1000,
    }
    json.dump(out, open(a.out, "w"), indent=1)
    print(json.dumps(out))


asyncio.run(main())
