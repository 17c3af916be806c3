"""The prefix cache under a conversation load: `duet serve` with SmolLM2-135M-Instruct (Q4_1),
a system prompt of about 1,000 tokens shared by every conversation, CONVERSATIONS conversations
of TURNS turns (each answer fed back), one client; time to first token of every turn, with the
prefix cache on and then off (the same server binary started twice). No peer: this measures
duet against itself.

Usage: python3 bench/serve/prefix.py [--conversations 8] [--turns 5] [--duet target/release/duet]
Writes data/bench/serve/prefix.json and prints the table with met / not met for the issue's
check: the median time to first token from the second turn on, cache on, is at most 20% of the
first turn's with the cache off. It also counts the answers that are equal with the cache on
and off: a GGUF model's arithmetic depends on how many tokens a batch holds (as llama.cpp's
does), so a prompt run as cached prefix plus rest can round differently from one run whole.
"""

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
MODEL = os.path.join(ROOT, "data/external/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

SYSTEM = " ".join(
    f"Rule {i}: when a customer asks about order number {1000 + i}, check the shipping table, "
    f"quote the delivery window of zone {i % 7}, and never promise a refund before the return "
    f"is received at warehouse {chr(65 + i % 26)}."
    for i in range(24)
)
QUESTIONS = ["Where is my order 1003?", "Can I get a refund?", "Which zone is Oslo in?",
             "How long does delivery take?", "Thanks, anything else I should know?"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(duet, port, cache_mb):
    cmd = ["taskset", "-c", "0,1", duet, "serve", "--model", f"smollm2={MODEL}", "--port", str(port),
           "--prefix-cache-mb", str(cache_mb)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return p
        except OSError:
            time.sleep(0.2)
    p.kill()
    sys.exit("the server did not start")


def turn(port, messages):
    """Streams one answer; (seconds to the first content, answer text, prompt tokens)."""
    body = json.dumps({"model": "smollm2", "messages": messages, "max_tokens": 24, "temperature": 0,
                       "stream": True, "stream_options": {"include_usage": True}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/chat/completions", data=body,
                                 headers={"content-type": "application/json"})
    t0 = time.perf_counter()
    first, text, prompt = None, "", 0
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            line = line.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                prompt = chunk["usage"]["prompt_tokens"]
            for c in chunk.get("choices", []):
                if c["delta"].get("content") and first is None:
                    first = time.perf_counter() - t0
                text += c["delta"].get("content") or ""
    return first if first is not None else time.perf_counter() - t0, text, prompt


def run(duet, cache_mb, conversations, turns):
    port = free_port()
    server = start(duet, port, cache_mb)
    try:
        ttft, answers, prompts = [], [], []
        for c in range(conversations):
            messages = [{"role": "system", "content": SYSTEM}]
            row = []
            for t in range(turns):
                messages.append({"role": "user", "content": f"(customer {c}) {QUESTIONS[t % len(QUESTIONS)]}"})
                s, text, p = turn(port, messages)
                messages.append({"role": "assistant", "content": text})
                row.append(s)
                answers.append(text)
                prompts.append(p)
            ttft.append(row)
        return {"ttft": ttft, "answers": answers, "prompt_tokens": prompts}
    finally:
        server.terminate()
        server.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=8)
    ap.add_argument("--turns", type=int, default=5)
    ap.add_argument("--duet", default=os.path.join(ROOT, "target/release/duet"))
    a = ap.parse_args()
    on = run(a.duet, 256, a.conversations, a.turns)
    off = run(a.duet, 0, a.conversations, a.turns)
    cold = off["ttft"][0][0]
    first_off = statistics.median(r[0] for r in off["ttft"])
    later_on = statistics.median(x for r in on["ttft"] for x in r[1:])
    later_off = statistics.median(x for r in off["ttft"] for x in r[1:])
    first_on = statistics.median(r[0] for r in on["ttft"][1:]) if a.conversations > 1 else None
    ratio = later_on / first_off
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    result = {
        "cpu": cpu, "conversations": a.conversations, "turns": a.turns,
        "system_prompt_tokens": min(on["prompt_tokens"]),
        "ttft_first_turn_cache_off_median_s": first_off, "ttft_cold_s": cold,
        "ttft_first_turn_cache_on_other_conversations_median_s": first_on,
        "ttft_later_turns_cache_on_median_s": later_on, "ttft_later_turns_cache_off_median_s": later_off,
        "ratio_later_on_to_first_off": ratio, "met": ratio <= 0.2,
        "same_answers": sum(a == b for a, b in zip(on["answers"], off["answers"])),
        "on": on, "off": off,
    }
    out = os.path.join(ROOT, "data/bench/serve")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "prefix.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"CPU: {cpu}; {a.conversations} conversations x {a.turns} turns; "
          f"prompts of {min(on['prompt_tokens'])} to {max(on['prompt_tokens'])} tokens (no peer)")
    print("| time to first token (median) | cache off | cache on |")
    print("| --- | ---: | ---: |")
    print(f"| turn 1 | {first_off * 1000:.0f} ms | {first_on * 1000:.0f} ms (conversations 2 on) |" if first_on else "")
    print(f"| turns 2-{a.turns} | {later_off * 1000:.0f} ms | {later_on * 1000:.0f} ms |")
    print(f"turns 2-{a.turns} with the cache / turn 1 without: {ratio:.3f} "
          f"(target <= 0.2: {'met' if ratio <= 0.2 else 'not met'}); "
          f"answers equal with the cache on and off: {result['same_answers']} of {len(on['answers'])}")


if __name__ == "__main__":
    main()
