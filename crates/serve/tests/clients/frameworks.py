"""The frameworks people call OpenAI-compatible servers through, against `duet serve` (run by
crates/serve/tests/clients.rs with a tiny random model, where only the server's grammar makes
a call or a structured answer valid).

Usage: python frameworks.py BASE_URL MODEL
Every check asserts; the script exits non-zero on the first failure.
"""

import json
import os
import sys
from typing import Literal

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of litellm's price list

import instructor
import jsonschema
import litellm
import openai
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

base_url, model = sys.argv[1:3]
KEY = "unused"


class Weather(BaseModel):
    """Weather in a city."""

    city: str = Field(max_length=8)
    unit: Literal["c", "f"]


@tool(args_schema=Weather)
def get_weather(city: str, unit: Literal["c", "f"]) -> str:
    """Weather in a city."""
    return f"12 degrees {unit} in {city}"


WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                  "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["city", "unit"]}

# langchain-openai: plain chat, bind_tools forced, an agent loop that runs the function and
# answers with its result, and with_structured_output by function calling and JSON schema.
llm = ChatOpenAI(base_url=base_url, api_key=KEY, model=model, temperature=0, max_tokens=5,
                 max_retries=0, timeout=60)
assert isinstance(llm.invoke("the cat").content, str)
tool_llm = ChatOpenAI(base_url=base_url, api_key=KEY, model=model, temperature=1.0, max_tokens=120,
                      max_retries=0, timeout=60, seed=1)
forced = tool_llm.bind_tools([Weather], tool_choice="Weather", parallel_tool_calls=False)
msg = forced.invoke("the cat")
assert msg.tool_calls and msg.tool_calls[0]["name"] == "Weather", msg
Weather(**msg.tool_calls[0]["args"])

agent = tool_llm.bind_tools([get_weather], tool_choice="required", parallel_tool_calls=False)
messages = [HumanMessage("Weather in Oslo?")]
ai = agent.invoke(messages)
assert ai.tool_calls, ai
messages.append(ai)
for call in ai.tool_calls:
    assert call["name"] == "get_weather", call
    jsonschema.validate(call["args"], WEATHER_SCHEMA)
    messages.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
final = tool_llm.bind_tools([get_weather], tool_choice="none").invoke(messages)
assert isinstance(final.content, str) and not final.tool_calls, final

for method in ("function_calling", "json_schema"):
    out = tool_llm.with_structured_output(Weather, method=method).invoke("the cat")
    assert isinstance(out, Weather), (method, out)
# (json_mode is not run: it sends only `response_format: json_object`, and a random model writes
# an object that never closes; the schema-bound methods above are the ones a grammar can hold.)

# instructor in TOOLS and JSON_SCHEMA modes: the answer is the pydantic model.
for mode in (instructor.Mode.TOOLS, instructor.Mode.JSON_SCHEMA):
    client = instructor.from_openai(openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0),
                                    mode=mode)
    w = client.chat.completions.create(model=model, response_model=Weather, max_retries=0,
                                       max_tokens=120, temperature=1.0, seed=2,
                                       messages=[{"role": "user", "content": "the cat"}])
    assert isinstance(w, Weather), (mode, w)

# litellm, as an OpenAI-compatible provider: chat and a forced tool call.
r = litellm.completion(model="openai/" + model, api_base=base_url, api_key=KEY, max_tokens=5,
                       messages=[{"role": "user", "content": "the cat"}], temperature=0)
assert isinstance(r.choices[0].message.content, str), r
r = litellm.completion(model="openai/" + model, api_base=base_url, api_key=KEY, max_tokens=120,
                       messages=[{"role": "user", "content": "the cat"}], seed=4,
                       tools=[{"type": "function", "function": {"name": "get_weather",
                               "parameters": Weather.model_json_schema()}}], tool_choice="required")
call = r.choices[0].message.tool_calls[0]
Weather(**json.loads(call.function.arguments))
print("frameworks: all checks passed")
